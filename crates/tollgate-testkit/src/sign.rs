//! cosign-format signatures made in tests with generated keys.

use std::collections::BTreeMap;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use tollgate_oci::{Digest, Reference, manifest::signature_tag, media_types};
use tollgate_verify::cosign::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING};
use tollgate_verify::payload::Payload;

/// A P-256 signing key.
pub struct TestKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl TestKey {
    /// A fresh key.
    pub fn generate() -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("generate");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).expect("parse");
        TestKey { pair, rng }
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        const P256_SPKI_PREFIX: [u8; 26] = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.pair.public_key().as_ref());
        der
    }

    /// The public key as PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.spki_der());
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    }

    /// An ASN.1 ECDSA signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(&self.rng, message).expect("sign").as_ref().to_vec()
    }
}

/// One signature to attach: payload bytes and layer annotations.
pub struct Attached {
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Layer annotations (including the signature).
    pub annotations: BTreeMap<String, String>,
}

impl Attached {
    /// A cosign signature by `key` claiming `docker_reference` and `digest`.
    pub fn cosign(key: &TestKey, docker_reference: &str, digest: &Digest) -> Attached {
        let payload = Payload::render(docker_reference, digest);
        let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload));
        Attached { payload, annotations: BTreeMap::from([(SIGNATURE_ANNOTATION.to_owned(), sig)]) }
    }
}

/// Pushes `signatures` as the `sha256-<hex>.sig` manifest of `digest` in `repo`.
pub async fn attach(client: &tollgate_registry::Client, repo: &Reference, digest: &Digest, signatures: &[Attached]) {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for s in signatures {
        let d = client.put_blob(repo, &s.payload).await.expect("push payload");
        diff_ids.push(d.to_string());
        layers.push(serde_json::json!({
            "mediaType": SIMPLE_SIGNING, "digest": d.to_string(), "size": s.payload.len(), "annotations": s.annotations,
        }));
    }
    let config = serde_json::json!({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}})
        .to_string()
        .into_bytes();
    let config_digest = client.put_blob(repo, &config).await.expect("push config");
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_types::OCI_MANIFEST,
        "config": {"mediaType": media_types::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    })
    .to_string()
    .into_bytes();
    let target = Reference::parse_normalized(&format!("{}:{}", repo.repository(), signature_tag(digest))).expect("ref");
    client.put_manifest(&target, media_types::OCI_MANIFEST, &manifest).await.expect("push signature manifest");
}
