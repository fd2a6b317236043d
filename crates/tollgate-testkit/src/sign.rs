//! cosign-format signatures made in tests with generated keys.

use std::collections::BTreeMap;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use tollgate_oci::{Digest, Reference, manifest::signature_tag, media_types};
use tollgate_verify::cosign::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING};
use tollgate_verify::payload::Payload;

/// An ECDSA signing key: P-256 with SHA-256 (cosign's default), or P-384 with SHA-384.
pub struct TestKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    p384: bool,
    pkcs8: Vec<u8>,
}

impl TestKey {
    /// A fresh P-256 key.
    pub fn generate() -> TestKey {
        TestKey::generate_with(&ECDSA_P256_SHA256_ASN1_SIGNING, false)
    }

    /// A fresh P-384 key; it signs with SHA-384.
    pub fn generate_p384() -> TestKey {
        TestKey::generate_with(&ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING, true)
    }

    fn generate_with(alg: &'static ring::signature::EcdsaSigningAlgorithm, p384: bool) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("parse");
        TestKey { pair, rng, p384, pkcs8: pkcs8.as_ref().to_vec() }
    }

    /// The P-256 key in `pkcs8` (DER), as [`TestKey::pkcs8_der`] gives it.
    pub fn from_pkcs8(pkcs8: &[u8]) -> TestKey {
        let alg = &ECDSA_P256_SHA256_ASN1_SIGNING;
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng).expect("parse");
        TestKey { pair, rng, p384: false, pkcs8: pkcs8.to_vec() }
    }

    /// The private key as PKCS#8 DER (to certify it, or hand it to another signer).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The private key as PEM `PRIVATE KEY` (PKCS#8).
    pub fn private_pem(&self) -> String {
        pem("PRIVATE KEY", &self.pkcs8)
    }

    /// The sigstore names of the key and the hash it signs with
    /// (`PKIX_ECDSA_P256_SHA_256`, `SHA2_256`).
    pub fn sigstore_details(&self) -> (&'static str, &'static str) {
        if self.p384 { ("PKIX_ECDSA_P384_SHA_384", "SHA2_384") } else { ("PKIX_ECDSA_P256_SHA_256", "SHA2_256") }
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        const P256_SPKI_PREFIX: [u8; 26] = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        const P384_SPKI_PREFIX: [u8; 23] = [
            0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
            0x00, 0x22, 0x03, 0x62, 0x00,
        ];
        let mut der = if self.p384 { P384_SPKI_PREFIX.to_vec() } else { P256_SPKI_PREFIX.to_vec() };
        der.extend_from_slice(self.pair.public_key().as_ref());
        der
    }

    /// The public key as PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki_der())
    }

    /// An ASN.1 ECDSA signature over `message` (SHA-256, or SHA-384 for P-384).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(&self.rng, message).expect("sign").as_ref().to_vec()
    }
}

/// A PEM block.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// One signature to attach: payload bytes and layer annotations.
#[derive(Debug, Clone)]
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
