//! Sigstore bundles made in tests: a stand-in transparency log (a P-256 key,
//! one-entry trees) that issues key-signed DSSE bundles v0.3, either as Rekor
//! v1 does (signed entry timestamp, inclusion proof, signed checkpoint) or as
//! Rekor v2 does (a `dsse` 0.0.2 entry with inclusion proof and checkpoint, its
//! time from an RFC 3161 timestamp of a [`TestTsa`]), its `trusted_root.json`,
//! and the OCI referrer artifact cosign v3 attaches.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use tollgate_oci::{Digest, Reference, media_types};

use crate::sign::TestKey;
use crate::tsa::TestTsa;

/// The bundle media type (also the referrer's artifact type and layer type).
pub const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A transparency log that logs each entry in a tree of its own.
pub struct TestLog {
    key: TestKey,
    tsa: Option<TestTsa>,
}

impl Default for TestLog {
    fn default() -> Self {
        Self::generate()
    }
}

impl TestLog {
    /// A log with a fresh key.
    pub fn generate() -> TestLog {
        TestLog { key: TestKey::generate(), tsa: None }
    }

    /// A log with a fresh key, and a timestamp authority its trusted root lists.
    pub fn with_tsa() -> TestLog {
        TestLog { key: TestKey::generate(), tsa: Some(TestTsa::generate()) }
    }

    fn key_id(&self) -> [u8; 32] {
        Sha256::digest(self.key.spki_der()).into()
    }

    /// A `trusted_root.json` listing this log and its timestamp authority, if
    /// any (and no CA: key-signed bundles only).
    pub fn trusted_root(&self) -> String {
        let tsas: Vec<serde_json::Value> = self
            .tsa
            .iter()
            .map(|t| {
                serde_json::json!({
                    "subject": {"organization": "tollgate", "commonName": "tollgate test TSA"},
                    "certChain": {"certificates": t.chain().iter().map(|c| serde_json::json!({"rawBytes": b64(c)}))
                                                     .collect::<Vec<_>>()},
                    "validFor": {"start": "2020-01-01T00:00:00Z"},
                })
            })
            .collect();
        serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(&self.key.spki_der()), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                              "validFor": {"start": "2020-01-01T00:00:00Z"}},
                "logId": {"keyId": b64(&self.key_id())},
            }],
            "certificateAuthorities": [],
            "ctlogs": [],
            "timestampAuthorities": tsas,
        })
        .to_string()
    }

    /// A one-leaf tree's inclusion proof for `body`, with a checkpoint signed by the log.
    fn inclusion_proof(&self, body: &[u8]) -> serde_json::Value {
        let root = tollgate_verify::tlog::leaf_hash(body);
        let note = format!("rekor.test - 1\n1\n{}\n", b64(&root));
        let mut signed = self.key_id()[..4].to_vec();
        signed.extend_from_slice(&self.key.sign(note.as_bytes()));
        let checkpoint = format!("{note}\n\u{2014} rekor.test {}\n", b64(&signed));
        serde_json::json!({"logIndex": "0", "rootHash": b64(&root), "treeSize": "1", "hashes": [],
                           "checkpoint": {"envelope": checkpoint}})
    }

    /// The Rekor v2 form of [`TestLog::dsse_bundle`]: a `dsse` 0.0.2 entry
    /// without integration time or signed entry timestamp, and an RFC 3161
    /// timestamp of the DSSE signature made at `gen_time` (a GeneralizedTime,
    /// `20261122093000Z`) by this log's timestamp authority.
    pub fn dsse_bundle_v2(&self, signer: &TestKey, subject_name: &str, digest: &Digest, gen_time: &str) -> Vec<u8> {
        self.bundle_v2(signer, subject_name, digest, gen_time, false)
    }

    /// Like [`TestLog::dsse_bundle_v2`], but logged as Rekor v2 logs DSSE by
    /// default: a `hashedrekord` 0.0.2 entry over the hash of the envelope's
    /// pre-authentication encoding, with the hash the key signs with
    /// (`SHA2_384` for a P-384 key).
    pub fn hashedrekord_dsse_bundle_v2(
        &self,
        signer: &TestKey,
        subject_name: &str,
        digest: &Digest,
        gen_time: &str,
    ) -> Vec<u8> {
        self.bundle_v2(signer, subject_name, digest, gen_time, true)
    }

    fn bundle_v2(
        &self,
        signer: &TestKey,
        subject_name: &str,
        digest: &Digest,
        gen_time: &str,
        hashed: bool,
    ) -> Vec<u8> {
        let tsa = self.tsa.as_ref().expect("a log made with TestLog::with_tsa");
        let (statement, payload_type, sig) = signed_statement(signer, subject_name, digest, COSIGN_SIGN);
        let (key_details, hash) = signer.sigstore_details();
        let verifier =
            serde_json::json!({"publicKey": {"rawBytes": b64(&signer.spki_der())}, "keyDetails": key_details});
        let (kind, spec) = if hashed {
            let pae = pae(payload_type, &statement);
            let digest =
                if hash == "SHA2_384" { sha2::Sha384::digest(&pae).to_vec() } else { Sha256::digest(&pae).to_vec() };
            let data = serde_json::json!({"algorithm": hash, "digest": b64(&digest)});
            (
                "hashedrekord",
                serde_json::json!({"hashedRekordV002": {"data": data, "signature": {"content": b64(&sig), "verifier": verifier}}}),
            )
        } else {
            let payload_hash = serde_json::json!({"algorithm": "SHA2_256", "digest": b64(&Sha256::digest(&statement))});
            (
                "dsse",
                serde_json::json!({"dsseV002": {"payloadHash": payload_hash, "signatures": [{"content": b64(&sig), "verifier": verifier}]}}),
            )
        };
        let body = serde_json::json!({"apiVersion": "0.0.2", "kind": kind, "spec": spec}).to_string().into_bytes();
        let entry = serde_json::json!({
            "logIndex": "0",
            "logId": {"keyId": b64(&self.key_id())},
            "kindVersion": {"kind": kind, "version": "0.0.2"},
            "inclusionProof": self.inclusion_proof(&body),
            "canonicalizedBody": b64(&body),
        });
        let stamps =
            serde_json::json!({"rfc3161Timestamps": [{"signedTimestamp": b64(&tsa.timestamp(&sig, gen_time))}]});
        key_signed_dsse_bundle(entry, Some(stamps), &statement, payload_type, &sig)
    }

    /// A bundle in which `signer` signs an in-toto statement whose subject is
    /// `digest` (as cosign v3 signs an image), logged at `integrated_time`.
    pub fn dsse_bundle(&self, signer: &TestKey, subject_name: &str, digest: &Digest, integrated_time: i64) -> Vec<u8> {
        self.attestation_bundle(signer, subject_name, digest, integrated_time, COSIGN_SIGN)
    }

    /// Like [`TestLog::dsse_bundle`], with another predicate type: an attestation
    /// (SBOM, provenance…) as `cosign attest` makes it.
    pub fn attestation_bundle(
        &self,
        signer: &TestKey,
        subject_name: &str,
        digest: &Digest,
        integrated_time: i64,
        predicate_type: &str,
    ) -> Vec<u8> {
        let (statement, payload_type, sig) = signed_statement(signer, subject_name, digest, predicate_type);
        let body = serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(&statement))},
                "signatures": [{"signature": b64(&sig), "verifier": b64(signer.public_pem().as_bytes())}],
            },
        })
        .to_string()
        .into_bytes();
        let body_b64 = b64(&body);
        let key_id = self.key_id();
        let set = self
            .key
            .sign(tollgate_verify::rekor::set_payload(&body_b64, integrated_time, &hex::encode(key_id), 0).as_bytes());
        let entry = serde_json::json!({
            "logIndex": "0",
            "logId": {"keyId": b64(&key_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": integrated_time.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": b64(&set)},
            "inclusionProof": self.inclusion_proof(&body),
            "canonicalizedBody": body_b64,
        });
        key_signed_dsse_bundle(entry, None, &statement, payload_type, &sig)
    }
}

/// A v0.3 bundle of a key-signed DSSE envelope with one log entry and, if
/// given, its timestamp verification data.
fn key_signed_dsse_bundle(
    entry: serde_json::Value,
    timestamps: Option<serde_json::Value>,
    statement: &[u8],
    payload_type: &str,
    sig: &[u8],
) -> Vec<u8> {
    let mut material = serde_json::json!({"publicKey": {"hint": ""}, "tlogEntries": [entry]});
    if let Some(t) = timestamps {
        material["timestampVerificationData"] = t;
    }
    serde_json::json!({
        "mediaType": BUNDLE_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {"payload": b64(statement), "payloadType": payload_type, "signatures": [{"sig": b64(sig)}]},
    })
    .to_string()
    .into_bytes()
}

/// An in-toto statement with `digest` as its subject, its DSSE payload type,
/// and `signer`'s signature over the pre-authentication encoding.
/// The predicate `cosign sign` writes.
pub const COSIGN_SIGN: &str = "https://sigstore.dev/cosign/sign/v1";

fn signed_statement(
    signer: &TestKey,
    subject_name: &str,
    digest: &Digest,
    predicate_type: &str,
) -> (Vec<u8>, &'static str, Vec<u8>) {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": subject_name, "digest": {"sha256": digest.hex()}}],
        "predicateType": predicate_type,
        "predicate": {},
    })
    .to_string()
    .into_bytes();
    let payload_type = "application/vnd.in-toto+json";
    let sig = signer.sign(&pae(payload_type, &statement));
    (statement, payload_type, sig)
}

/// DSSE pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut pae = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    pae.extend_from_slice(payload);
    pae
}

/// Attaches `bundle` to `subject` (an image manifest or index of `repo`) the
/// way cosign v3 does: an OCI artifact manifest with the bundle as its layer
/// and `subject` set, listed under the `sha256-<hex>` fallback tag (the
/// referrers API of docker-registry 2.8 does not exist).
pub async fn attach_bundle(
    client: &tollgate_registry::Client,
    repo: &Reference,
    subject: &Digest,
    subject_media_type: &str,
    subject_size: usize,
    bundle: &[u8],
) -> Digest {
    attach_referrer(client, repo, (subject, subject_media_type, subject_size), BUNDLE_TYPE, BUNDLE_TYPE, bundle).await
}

/// Attaches `blob` to `subject` (its digest, media type and size) as the one
/// layer (`layer_type`) of an OCI artifact manifest of `artifact_type`,
/// listed under the `sha256-<hex>` fallback tag, which then lists only it.
pub async fn attach_referrer(
    client: &tollgate_registry::Client,
    repo: &Reference,
    subject: (&Digest, &str, usize),
    artifact_type: &str,
    layer_type: &str,
    blob: &[u8],
) -> Digest {
    let (subject, subject_media_type, subject_size) = subject;
    let empty = b"{}";
    let empty_digest = client.put_blob(repo, empty).await.expect("empty config");
    let layer = client.put_blob(repo, blob).await.expect("referrer blob");
    let artifact = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest.to_string(), "size": 2},
        "layers": [{"mediaType": layer_type, "digest": layer.to_string(), "size": blob.len()}],
        "subject": {"mediaType": subject_media_type, "digest": subject.to_string(), "size": subject_size},
    })
    .to_string()
    .into_bytes();
    let at = repo.clone().without_digest().with_digest(Digest::sha256_of(&artifact));
    let artifact_digest = client.put_manifest(&at, media_types::OCI_MANIFEST, &artifact).await.expect("artifact");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [{"mediaType": media_types::OCI_MANIFEST, "digest": artifact_digest.to_string(),
                       "size": artifact.len(), "artifactType": artifact_type}],
    })
    .to_string()
    .into_bytes();
    let tag = tollgate_oci::manifest::referrers_tag(subject);
    let tagged = Reference::parse_normalized(&format!("{}:{tag}", repo.repository())).expect("tag");
    client.put_manifest(&tagged, media_types::OCI_INDEX, &index).await.expect("fallback tag");
    artifact_digest
}

#[cfg(test)]
mod tests {
    use tollgate_verify::bundle::{self, Artifact, Expected, TrustedRoot};

    use super::*;

    /// Rekor v2 entries record the hash the key signs with: SHA-384 for P-384.
    #[test]
    fn rekor_v2_entries_of_p384_keys_carry_sha384_hashes() {
        let log = TestLog::with_tsa();
        let root = TrustedRoot::parse(log.trusted_root().as_bytes()).unwrap();
        let image = Digest::sha256_of(b"image");
        let now = 1_795_392_000;
        for signer in [TestKey::generate(), TestKey::generate_p384()] {
            let key = tollgate_verify::PublicKey::from_spki_der(&signer.spki_der()).unwrap();
            let digest: [u8; 32] = hex::decode(image.hex()).unwrap().try_into().unwrap();
            for b in [
                log.hashedrekord_dsse_bundle_v2(&signer, "app", &image, "20260101000000Z"),
                log.dsse_bundle_v2(&signer, "app", &image, "20260101000000Z"),
            ] {
                let v = bundle::verify(&b, &root, Artifact::Sha256(&digest), Expected::Key(&key), now);
                assert_eq!(v.map(|v| v.signed_at), Ok(1_767_225_600), "{}", signer.sigstore_details().0);
            }
            // The logged hash must be of this envelope, whatever its algorithm.
            let other = Digest::sha256_of(b"other");
            let b = log.hashedrekord_dsse_bundle_v2(&signer, "app", &other, "20260101000000Z");
            assert!(bundle::verify(&b, &root, Artifact::Sha256(&digest), Expected::Key(&key), now).is_err());
        }
    }
}
