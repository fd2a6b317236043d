//! Keyless cosign signatures made in tests: a stand-in Fulcio CA that
//! certifies a fresh key for an email and an OIDC issuer, and a stand-in
//! Rekor whose signed entry timestamp (SET) logs the signature at a given
//! time. The material has the shape cosign attaches to a `.sig` layer
//! (`dev.sigstore.cosign/certificate`, `…/chain`, `…/bundle`), which
//! containers/image and tollgate verify with a policy's `fulcio` and
//! `rekorPublicKeyPath`.

use std::collections::BTreeMap;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use tollgate_oci::Digest;
use tollgate_verify::cosign::{BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, SIGNATURE_ANNOTATION};
use tollgate_verify::payload::Payload;

use crate::sign::{Attached, TestKey};

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A Fulcio CA and a Rekor log key.
pub struct TestFulcio {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    ca: rcgen::Certificate,
    rekor: TestKey,
}

impl TestFulcio {
    /// A fresh CA and log key.
    pub fn generate() -> TestFulcio {
        let (params, key, ca) = crate::test_ca("tollgate test Fulcio");
        TestFulcio { params, key, ca, rekor: TestKey::generate() }
    }

    /// The CA certificate (PEM), for a policy's `fulcio.caPath`.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The Rekor public key (PEM), for `rekorPublicKeyPath`.
    pub fn rekor_pem(&self) -> String {
        self.rekor.public_pem()
    }

    /// A sigstore `trusted_root.json` naming this CA and this Rekor log.
    pub fn trusted_root(&self) -> String {
        serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(&self.rekor.spki_der()), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                              "validFor": {"start": "2020-01-01T00:00:00Z"}},
                "logId": {"keyId": b64(&Sha256::digest(self.rekor.spki_der()))},
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "tollgate", "commonName": "tollgate test Fulcio"},
                "uri": "https://fulcio.test",
                "certChain": {"certificates": [{"rawBytes": b64(self.ca.der())}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }],
            "ctlogs": [],
            "timestampAuthorities": [],
        })
        .to_string()
    }

    /// A keyless signature claiming `docker_reference` and `digest`, by a key
    /// certified for `email` via `issuer` from `integrated_time - 60` for ten
    /// minutes, and logged at `integrated_time` (Unix seconds).
    pub fn cosign(
        &self,
        email: &str,
        issuer: &str,
        docker_reference: &str,
        digest: &Digest,
        integrated_time: i64,
    ) -> Attached {
        let signer = TestKey::generate();
        let leaf = self.certify(&signer, email, issuer, integrated_time);
        let payload = Payload::render(docker_reference, digest);
        let sig = signer.sign(&payload);
        let bundle = self.set(&leaf, &sig, &payload, integrated_time);
        Attached {
            payload,
            annotations: BTreeMap::from([
                (SIGNATURE_ANNOTATION.to_owned(), b64(&sig)),
                (CERTIFICATE_ANNOTATION.to_owned(), leaf),
                (CHAIN_ANNOTATION.to_owned(), self.ca.pem()),
                (BUNDLE_ANNOTATION.to_owned(), bundle),
            ]),
        }
    }

    /// A code-signing certificate (PEM) for `signer`, as Fulcio issues one:
    /// the email as SAN, the issuer in both Fulcio extensions.
    fn certify(&self, signer: &TestKey, email: &str, issuer: &str, at: i64) -> String {
        let key = rcgen::KeyPair::try_from(signer.pkcs8_der()).expect("leaf key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(email.try_into().expect("email"))];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
        params.not_before = time::OffsetDateTime::from_unix_timestamp(at - 60).expect("time");
        params.not_after = time::OffsetDateTime::from_unix_timestamp(at + 540).expect("time");
        let mut v2 = vec![0x0c, u8::try_from(issuer.len()).expect("short issuer")];
        v2.extend_from_slice(issuer.as_bytes());
        params.custom_extensions = vec![
            rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 57264, 1, 1], issuer.as_bytes().to_vec()),
            rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 57264, 1, 8], v2),
        ];
        let issuer_ca = rcgen::Issuer::from_params(&self.params, &self.key);
        params.signed_by(&key, &issuer_ca).expect("leaf").pem()
    }

    /// The `dev.sigstore.cosign/bundle` annotation: a SET over a
    /// `hashedrekord` entry naming this signature, certificate and payload.
    fn set(&self, cert_pem: &str, sig: &[u8], payload: &[u8], integrated_time: i64) -> String {
        let body = serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(payload))}},
                "signature": {"content": b64(sig), "publicKey": {"content": b64(cert_pem.as_bytes())}},
            },
        })
        .to_string();
        let body_b64 = b64(body.as_bytes());
        let log_id = hex::encode(Sha256::digest(self.rekor.spki_der()));
        let set =
            self.rekor.sign(tollgate_verify::rekor::set_payload(&body_b64, integrated_time, &log_id, 7).as_bytes());
        serde_json::json!({
            "SignedEntryTimestamp": b64(&set),
            "Payload": {"body": body_b64, "integratedTime": integrated_time, "logIndex": 7, "logID": log_id},
        })
        .to_string()
    }
}
