//! Notary Project (notation) signatures made in tests: a CA, a signing
//! certificate it issued, and JWS (`application/jose+json`) and COSE_Sign1
//! (`application/cose`) envelopes of the shape `notation sign` writes, attached to an image as OCI referrers the way
//! notation does on a registry without the referrers API (the `sha256-<hex>`
//! fallback tag).

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use tollgate_oci::{Digest, Reference};

/// The artifact type of a notation signature manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// The media type of a JWS envelope.
pub const JWS: &str = "application/jose+json";

/// Where a signing certificate's revocation status is published.
struct Revocation<'a> {
    crl: Option<&'a str>,
    ocsp: Option<&'a str>,
    serial: u64,
}

/// An Authority Information Access extension naming one OCSP responder (rcgen has no field for it).
fn authority_info_access(url: &str) -> rcgen::CustomExtension {
    let tlv = |tag: u8, content: &[u8]| {
        assert!(content.len() < 128, "short-form lengths only");
        [&[tag, content.len() as u8][..], content].concat()
    };
    // id-ad-ocsp 1.3.6.1.5.5.7.48.1, then [6] IA5String URI.
    let oid = tlv(0x06, &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01]);
    let description = tlv(0x30, &[oid, tlv(0x86, url.as_bytes())].concat());
    rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], tlv(0x30, &description))
}

/// A CA and a P-256 signing certificate issued by it.
pub struct TestNotary {
    ca: rcgen::Certificate,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
    leaf: rcgen::Certificate,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl TestNotary {
    /// A fresh CA named `CN=<ca_name>` and a signing certificate with subject
    /// `CN=<signer>,O=tollgate,ST=WA,C=US` (for `x509.subject:` trusted identities,
    /// which notation requires to name at least C, ST and O).
    pub fn generate(ca_name: &str, signer: &str) -> TestNotary {
        let (ca_params, ca_key, ca) = crate::test_ca(ca_name);
        Self::issue(ca, ca_params, ca_key, signer, None)
    }

    /// Another signing certificate from the same CA, with serial number `serial` and the CRL
    /// distribution point `crl_url`.
    pub fn revocable(&self, signer: &str, crl_url: &str, serial: u64) -> TestNotary {
        self.reissue(signer, Revocation { crl: Some(crl_url), ocsp: None, serial })
    }

    /// Another signing certificate from the same CA, with serial number `serial`, naming the OCSP
    /// responder `ocsp_url` (Authority Information Access) and, when given, the CRL distribution
    /// point `crl_url`.
    pub fn with_ocsp(&self, signer: &str, ocsp_url: &str, crl_url: Option<&str>, serial: u64) -> TestNotary {
        self.reissue(signer, Revocation { crl: crl_url, ocsp: Some(ocsp_url), serial })
    }

    fn reissue(&self, signer: &str, revocation: Revocation<'_>) -> TestNotary {
        let ca_key = rcgen::KeyPair::try_from(self.ca_key.serialize_der().as_slice()).expect("CA key");
        Self::issue(self.ca.clone(), self.ca_params.clone(), ca_key, signer, Some(revocation))
    }

    /// The signing certificate (PEM).
    pub fn leaf_pem(&self) -> String {
        self.leaf.pem()
    }

    /// An OCSP response made by `openssl ocsp`, the reference responder, for the signing
    /// certificate: its request from `openssl ocsp -reqout` (SHA-1 CertID, no nonce), answered from
    /// an index that lists the certificate as `status` (`V` valid, `R` revoked, or `None`: not
    /// listed, so "unknown"), signed by the CA, valid for a day. Files go to `dir`. Returns the
    /// request and the response, DER.
    #[allow(clippy::disallowed_methods)]
    pub fn openssl_ocsp(&self, dir: &std::path::Path, status: Option<char>) -> (Vec<u8>, Vec<u8>) {
        use std::process::Command;
        let f = |n: &str| dir.join(n).to_str().expect("utf-8 path").to_owned();
        std::fs::write(f("ocsp-ca.pem"), self.ca.pem()).expect("ca");
        std::fs::write(f("ocsp-ca.key"), self.ca_key.serialize_pem()).expect("key");
        std::fs::write(f("ocsp-leaf.pem"), self.leaf.pem()).expect("leaf");
        let leaf = <x509_cert::Certificate as der::Decode>::from_der(self.leaf.der()).expect("leaf");
        let serial: String =
            leaf.tbs_certificate().serial_number().as_bytes().iter().map(|b| format!("{b:02X}")).collect();
        let index = match status {
            Some('R') => format!("R\t491231235959Z\t250101000000Z\t{serial}\tunknown\t/CN=x\n"),
            Some(c) => format!("{c}\t491231235959Z\t\t{serial}\tunknown\t/CN=x\n"),
            None => String::new(),
        };
        std::fs::write(f("ocsp-index.txt"), index).expect("index");
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).output().expect("openssl (Debian package openssl)");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let (ca, key, leaf, index, req, resp) = (
            f("ocsp-ca.pem"),
            f("ocsp-ca.key"),
            f("ocsp-leaf.pem"),
            f("ocsp-index.txt"),
            f("ocsp-req.der"),
            f("ocsp-resp.der"),
        );
        run(&["ocsp", "-issuer", &ca, "-cert", &leaf, "-no_nonce", "-reqout", &req]);
        run(&[
            "ocsp", "-index", &index, "-reqin", &req, "-rsigner", &ca, "-rkey", &key, "-CA", &ca, "-ndays", "1",
            "-respout", &resp,
        ]);
        (std::fs::read(&req).expect("request"), std::fs::read(&resp).expect("response"))
    }

    /// A DER CRL from the CA listing the serial numbers `revoked` (reason keyCompromise), valid
    /// until `next_update` (Unix seconds).
    pub fn crl(&self, revoked: &[u64], next_update: i64) -> Vec<u8> {
        let at = |secs: i64| time::OffsetDateTime::from_unix_timestamp(secs).expect("time");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
        let params = rcgen::CertificateRevocationListParams {
            this_update: at(now - 3600),
            next_update: at(next_update),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: at(now - 60),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        params.signed_by(&issuer).expect("CRL").der().to_vec()
    }

    fn issue(
        ca: rcgen::Certificate,
        params: rcgen::CertificateParams,
        ca_key: rcgen::KeyPair,
        signer: &str,
        revocation: Option<Revocation<'_>>,
    ) -> TestNotary {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("parse");
        let leaf_key = rcgen::KeyPair::try_from(pkcs8.as_ref()).expect("leaf key");
        let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        leaf.distinguished_name.push(rcgen::DnType::CommonName, signer);
        leaf.distinguished_name.push(rcgen::DnType::OrganizationName, "tollgate");
        leaf.distinguished_name.push(rcgen::DnType::StateOrProvinceName, "WA");
        leaf.distinguished_name.push(rcgen::DnType::CountryName, "US");
        leaf.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
        if let Some(r) = revocation {
            if let Some(url) = r.crl {
                leaf.crl_distribution_points = vec![rcgen::CrlDistributionPoint { uris: vec![url.to_owned()] }];
            }
            if let Some(url) = r.ocsp {
                leaf.custom_extensions = vec![authority_info_access(url)];
            }
            leaf.serial_number = Some(rcgen::SerialNumber::from(r.serial));
        }
        let issuer = rcgen::Issuer::from_params(&params, &ca_key);
        let leaf = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
        TestNotary { ca, ca_params: params, ca_key, leaf, key, rng }
    }

    /// The CA certificate (PEM), for a `ca:` trust store.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A JWS envelope (`notary.x509`) signing the descriptor of the manifest
    /// `digest` (`media_type`, `size` bytes) at `signing_time` (Unix seconds),
    /// with the optional `expiry`.
    pub fn jws(
        &self,
        media_type: &str,
        digest: &Digest,
        size: usize,
        signing_time: i64,
        expiry: Option<i64>,
    ) -> Vec<u8> {
        let b64url = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let rfc3339 = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .expect("time")
                .format(&time::format_description::well_known::Rfc3339)
                .expect("format")
        };
        let mut protected = serde_json::json!({
            "alg": "ES256",
            "cty": "application/vnd.cncf.notary.payload.v1+json",
            "crit": ["io.cncf.notary.signingScheme"],
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": rfc3339(signing_time),
        });
        if let Some(e) = expiry {
            protected["crit"] = serde_json::json!(["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]);
            protected["io.cncf.notary.expiry"] = serde_json::json!(rfc3339(e));
        }
        let payload = serde_json::json!({
            "targetArtifact": {"mediaType": media_type, "digest": digest.to_string(), "size": size},
        });
        let protected = b64url(protected.to_string().as_bytes());
        let payload = b64url(payload.to_string().as_bytes());
        let signature = self.key.sign(&self.rng, format!("{protected}.{payload}").as_bytes()).expect("sign");
        serde_json::json!({
            "payload": payload,
            "protected": protected,
            "header": {
                "x5c": [b64(self.leaf.der()), b64(self.ca.der())],
                "io.cncf.notary.signingAgent": "tollgate-testkit",
            },
            "signature": b64url(signature.as_ref()),
        })
        .to_string()
        .into_bytes()
    }
}

/// The media type of a COSE_Sign1 envelope.
pub const COSE: &str = "application/cose";

/// CBOR items, encoded as a COSE envelope needs them (definite lengths).
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Cbor>),
    Map(Vec<(Cbor, Cbor)>),
    Tag(u64, Box<Cbor>),
}

impl Cbor {
    fn encode(&self, out: &mut Vec<u8>) {
        fn head(out: &mut Vec<u8>, major: u8, n: u64) {
            let m = major << 5;
            if n < 24 {
                out.push(m | n as u8);
            } else if n <= 0xff {
                out.extend_from_slice(&[m | 24, n as u8]);
            } else if n <= 0xffff {
                out.push(m | 25);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else if n <= 0xffff_ffff {
                out.push(m | 26);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            } else {
                out.push(m | 27);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        match self {
            Cbor::Int(i) if *i >= 0 => head(out, 0, *i as u64),
            Cbor::Int(i) => head(out, 1, (-1 - *i) as u64),
            Cbor::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Cbor::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Cbor::Array(items) => {
                head(out, 4, items.len() as u64);
                items.iter().for_each(|i| i.encode(out));
            }
            Cbor::Map(pairs) => {
                head(out, 5, pairs.len() as u64);
                for (k, v) in pairs {
                    k.encode(out);
                    v.encode(out);
                }
            }
            Cbor::Tag(t, v) => {
                head(out, 6, *t);
                v.encode(out);
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

impl TestNotary {
    /// A COSE_Sign1 envelope (`notary.x509`, ES256) signing the same descriptor as [`TestNotary::jws`].
    pub fn cose(&self, media_type: &str, digest: &Digest, size: usize, signing_time: i64) -> Vec<u8> {
        let t = |s: &str| Cbor::Text(s.to_owned());
        let protected = Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(-7)),
            (Cbor::Int(2), Cbor::Array(vec![t("io.cncf.notary.signingScheme")])),
            (Cbor::Int(3), t("application/vnd.cncf.notary.payload.v1+json")),
            (t("io.cncf.notary.signingScheme"), t("notary.x509")),
            (t("io.cncf.notary.signingTime"), Cbor::Tag(1, Box::new(Cbor::Int(signing_time)))),
        ])
        .bytes();
        let payload = serde_json::json!({
            "targetArtifact": {"mediaType": media_type, "digest": digest.to_string(), "size": size},
        })
        .to_string()
        .into_bytes();
        let to_sign = Cbor::Array(vec![
            t("Signature1"),
            Cbor::Bytes(protected.clone()),
            Cbor::Bytes(Vec::new()),
            Cbor::Bytes(payload.clone()),
        ])
        .bytes();
        let signature = self.key.sign(&self.rng, &to_sign).expect("sign");
        let unprotected = Cbor::Map(vec![
            (
                Cbor::Int(33),
                Cbor::Array(vec![Cbor::Bytes(self.leaf.der().to_vec()), Cbor::Bytes(self.ca.der().to_vec())]),
            ),
            (t("io.cncf.notary.signingAgent"), t("tollgate-testkit")),
        ]);
        Cbor::Tag(
            18,
            Box::new(Cbor::Array(vec![
                Cbor::Bytes(protected),
                unprotected,
                Cbor::Bytes(payload),
                Cbor::Bytes(signature.as_ref().to_vec()),
            ])),
        )
        .bytes()
    }
}

/// A notation trust policy (`trustpolicy.json`, version 1.0) with one
/// statement for `scope`: `level`, trust store `ca:<store>`, and the trusted
/// identity `identity` (`x509.subject: …` or `*`).
pub fn trust_policy(scope: &str, level: &str, store: &str, identity: &str) -> String {
    serde_json::json!({
        "version": "1.0",
        "trustPolicies": [{
            "name": "tollgate-test",
            "registryScopes": [scope],
            "signatureVerification": {"level": level},
            "trustStores": [format!("ca:{store}")],
            "trustedIdentities": [identity],
        }],
    })
    .to_string()
}

/// Attaches `envelope` to `subject` (a manifest of `repo` with this media type
/// and size) as notation does: a signature manifest with the envelope as its
/// layer and `subject` set, listed under the `sha256-<hex>` fallback tag
/// (replacing what that tag listed).
pub async fn attach_signature(
    client: &tollgate_registry::Client,
    repo: &Reference,
    subject: &Digest,
    subject_media_type: &str,
    subject_size: usize,
    envelope: &[u8],
) -> Digest {
    // The envelope's format by its first byte: tag 18 is COSE_Sign1, else JSON (JWS).
    let media_type = if envelope.first() == Some(&0xd2) { COSE } else { JWS };
    crate::bundle::attach_referrer(
        client,
        repo,
        (subject, subject_media_type, subject_size),
        ARTIFACT_TYPE,
        media_type,
        envelope,
    )
    .await
}
