//! Certificates for keyless (Fulcio) and private-PKI signatures.
//!
//! Path validation is rustls-webpki's (ring), at a time the caller passes in:
//! the Rekor integration time for Fulcio, the current time for PKI, as
//! containers/image does. The leaf must allow code signing.

use der::asn1::{ObjectIdentifier, Utf8StringRef};
use der::{Decode as _, Encode as _};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};

use crate::keys::PublicKey;

/// Fulcio's deprecated issuer extension (a raw string).
const FULCIO_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's issuer extension (a DER UTF8String).
const FULCIO_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// id-kp-codeSigning, DER content bytes.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// id-kp-timeStamping, DER content bytes.
const TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];
/// id-kp-timeStamping.
const TIME_STAMPING_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");

/// What a certificate chain is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Signing code and artifacts (Fulcio, private PKI). A leaf without an
    /// extended key usage extension may sign anything, as in Go.
    CodeSigning,
    /// Issuing RFC 3161 timestamps: the leaf must name id-kp-timeStamping (checked by
    /// [`check_time_stamping_eku`], which every caller runs first); CA certificates of the chain
    /// may omit the EKU extension, as in Go.
    TimeStamping,
}

/// A certificate problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Not PEM certificates.
    #[error("not a PEM certificate: {0}")]
    Pem(String),
    /// A certificate that does not parse.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The chain does not lead to a trusted root at the given time.
    #[error("the certificate does not chain to a trusted root at {time}: {reason}")]
    Untrusted {
        /// Unix time of the check.
        time: u64,
        /// webpki's reason.
        reason: String,
    },
    /// The certificate is not for the required identity.
    #[error("{0}")]
    Identity(String),
}

/// Parses every `CERTIFICATE` block of `pem` into DER. At least one is required.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    let certs = Certificate::load_pem_chain(pem).map_err(|e| CertError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::Pem("no certificate found".into()));
    }
    certs.iter().map(|c| c.to_der().map_err(|e| CertError::Malformed(e.to_string()))).collect()
}

/// What the signing certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafInfo {
    /// The certified public key.
    pub public_key: PublicKey,
    /// SAN email addresses.
    pub emails: Vec<String>,
    /// SAN URIs.
    pub uris: Vec<String>,
    /// SAN DNS names.
    pub dns_names: Vec<String>,
    /// Fulcio OIDC issuer (extension .1.8, else .1.1), if present.
    pub issuer: Option<String>,
}

pub use regex::Regex;

/// Which identity (SAN, email or URI) a keyless certificate must carry.
#[derive(Debug, Clone, Copy)]
pub enum San<'a> {
    /// Exactly this email address or URI.
    Exact(&'a str),
    /// An email address or URI this regular expression matches whole (see [`san_pattern`]).
    Matches(&'a regex::Regex),
}

impl San<'_> {
    /// The certificate's SAN (its URIs, then its emails) that this accepts, if any.
    pub fn find<'i>(&self, info: &'i LeafInfo) -> Option<&'i str> {
        let mut all = info.uris.iter().chain(&info.emails);
        match self {
            San::Exact(want) => all.find(|s| s == want),
            San::Matches(re) => all.find(|s| re.is_match(s)),
        }
        .map(String::as_str)
    }
}

impl std::fmt::Display for San<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Exact(s) => write!(f, "{s:?}"),
            San::Matches(re) => write!(f, "a SAN matching {:?}", re.as_str()),
        }
    }
}

/// `pattern` as a [`San::Matches`] expression: anchored at both ends (the whole SAN must match, as
/// cosign's `--certificate-identity-regexp` users expect from policy-controller), and bounded in
/// size.
pub fn san_pattern(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("subject regular expression {pattern:?}: {e}"))
}

/// Reads the leaf's key, SANs and Fulcio issuer.
pub fn leaf_info(der: &[u8]) -> Result<LeafInfo, CertError> {
    let m = |e: der::Error| CertError::Malformed(e.to_string());
    let cert = Certificate::from_der(der).map_err(m)?;
    let tbs = cert.tbs_certificate();
    let spki = tbs.subject_public_key_info().to_der().map_err(m)?;
    let public_key = PublicKey::from_spki_der(&spki).map_err(|e| CertError::Malformed(e.to_string()))?;
    let (mut emails, mut uris, mut dns_names) = (Vec::new(), Vec::new(), Vec::new());
    if let Some((_, san)) = tbs.get_extension::<SubjectAltName>().map_err(m)? {
        for name in san.0 {
            match name {
                GeneralName::Rfc822Name(s) => emails.push(s.to_string()),
                GeneralName::UniformResourceIdentifier(s) => uris.push(s.to_string()),
                GeneralName::DnsName(s) => dns_names.push(s.to_string()),
                _ => {}
            }
        }
    }
    let mut v1 = None;
    let mut v2 = None;
    let mut seen = std::collections::HashSet::new();
    for ext in tbs.extensions().into_iter().flatten() {
        // Go's ParseCertificate (containers/image, sigstore-go) refuses any
        // duplicate extension; a second issuer extension must not pick the identity.
        if !seen.insert(ext.extn_id) {
            return Err(CertError::Malformed(format!("the certificate repeats extension {}", ext.extn_id)));
        }
        if ext.extn_id == FULCIO_ISSUER_V2 {
            let s = Utf8StringRef::from_der(ext.extn_value.as_bytes()).map_err(m)?;
            v2 = Some(s.as_str().to_owned());
        } else if ext.extn_id == FULCIO_ISSUER_V1 {
            v1 = Some(String::from_utf8_lossy(ext.extn_value.as_bytes()).into_owned());
        }
    }
    let issuer = match (v1, v2) {
        (Some(a), Some(b)) if a != b => {
            return Err(CertError::Identity(format!("inconsistent Fulcio OIDC issuer extensions: v1 {a:?}, v2 {b:?}")));
        }
        (v1, v2) => v2.or(v1),
    };
    Ok(LeafInfo { public_key, emails, uris, dns_names, issuer })
}

/// The certificate's `notAfter`, in Unix seconds.
pub fn not_after(der: &[u8]) -> Result<u64, CertError> {
    let cert = Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
    Ok(cert.tbs_certificate().validity().not_after.to_unix_duration().as_secs())
}

/// Validates `leaf` → `intermediates` → one of `roots` at `time` (Unix seconds), for code signing.
/// A root may be any trusted certificate, including an intermediate CA.
pub fn verify_chain(leaf: &[u8], intermediates: &[Vec<u8>], roots: &[Vec<u8>], time: u64) -> Result<(), CertError> {
    verify_chain_for(leaf, intermediates, roots, time, Purpose::CodeSigning)
}

/// Validates `leaf` → `intermediates` → one of `roots` at `time` (Unix seconds) for `purpose`.
pub fn verify_chain_for(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    roots: &[Vec<u8>],
    time: u64,
    purpose: Purpose,
) -> Result<(), CertError> {
    let untrusted = |reason: String| CertError::Untrusted { time, reason };
    let root_ders: Vec<CertificateDer<'_>> = roots.iter().map(|r| CertificateDer::from(r.as_slice())).collect();
    let anchors = root_ders
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).map_err(|e| untrusted(format!("bad trusted root: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let inter: Vec<CertificateDer<'_>> = intermediates.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    let leaf_der = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| CertError::Malformed(e.to_string()))?;
    let algs = [
        webpki::ring::ECDSA_P256_SHA256,
        webpki::ring::ECDSA_P256_SHA384,
        webpki::ring::ECDSA_P384_SHA256,
        webpki::ring::ECDSA_P384_SHA384,
        webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        webpki::ring::RSA_PKCS1_2048_8192_SHA384,
        webpki::ring::RSA_PKCS1_2048_8192_SHA512,
        webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        webpki::ring::ED25519,
    ];
    ee.verify_for_usage(
        &algs,
        &anchors,
        &inter,
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(time)),
        match purpose {
            // As Go: a certificate without an EKU extension may sign anything.
            Purpose::CodeSigning => webpki::KeyUsage::required_if_present(CODE_SIGNING),
            // The leaf's own EKU (exactly timeStamping, critical) is checked by
            // `check_time_stamping_eku`; along the chain, as in Go, a CA certificate
            // without an EKU extension may issue timestamping certificates, and one
            // with the extension must list timeStamping.
            Purpose::TimeStamping => webpki::KeyUsage::required_if_present(TIME_STAMPING),
        },
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| untrusted(format!("{e:?}")))
}

/// RFC 3161 §2.3: a timestamping certificate has exactly one extended key
/// usage, id-kp-timeStamping, in a critical extension.
pub fn check_time_stamping_eku(der: &[u8]) -> Result<(), CertError> {
    let m = |e: der::Error| CertError::Malformed(e.to_string());
    let cert = Certificate::from_der(der).map_err(m)?;
    let (critical, eku) = cert
        .tbs_certificate()
        .get_extension::<ExtendedKeyUsage>()
        .map_err(m)?
        .ok_or_else(|| CertError::Identity("the timestamping certificate has no extended key usage".into()))?;
    if !critical {
        return Err(CertError::Identity("the timestamping certificate's extended key usage is not critical".into()));
    }
    if eku.0 != [TIME_STAMPING_OID] {
        return Err(CertError::Identity("the certificate's only extended key usage must be timeStamping".into()));
    }
    Ok(())
}

/// Checks that `leaf` is valid for the DNS name `host`.
pub fn verify_hostname(leaf: &[u8], host: &str) -> Result<(), CertError> {
    let leaf_der = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| CertError::Malformed(e.to_string()))?;
    let name = rustls_pki_types::ServerName::try_from(host)
        .map_err(|e| CertError::Identity(format!("invalid hostname {host:?}: {e}")))?;
    ee.verify_is_valid_for_subject_name(&name)
        .map_err(|_| CertError::Identity(format!("the certificate is not valid for host {host:?}")))
}

/// Whether a certificate is self-issued (issuer equals subject): a root.
pub fn is_self_issued(der: &[u8]) -> Result<bool, CertError> {
    let cert = Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
    Ok(cert.tbs_certificate().issuer() == cert.tbs_certificate().subject())
}

/// The SubjectPublicKeyInfo (DER) of the certificate among `candidates` that issued `leaf`.
pub fn issuer_spki(leaf: &[u8], candidates: &[Vec<u8>]) -> Option<Vec<u8>> {
    let leaf = Certificate::from_der(leaf).ok()?;
    candidates.iter().find_map(|c| {
        let c = Certificate::from_der(c).ok()?;
        if c.tbs_certificate().subject() == leaf.tbs_certificate().issuer() {
            c.tbs_certificate().subject_public_key_info().to_der().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod issuer_tests {
    use super::*;

    const V1: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];
    const V2: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];

    fn utf8(s: &str) -> Vec<u8> {
        let mut v = vec![0x0c, u8::try_from(s.len()).unwrap_or(0)];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn leaf(extensions: &[(&[u64], Vec<u8>)]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        for (oid, content) in extensions {
            params.custom_extensions.push(rcgen::CustomExtension::from_oid_content(oid, content.clone()));
        }
        params.self_signed(&key).unwrap_or_else(|e| panic!("{e}")).der().to_vec()
    }

    #[test]
    fn issuer_comes_from_v2_then_v1_and_must_agree() {
        let a = "https://accounts.example.com";
        assert_eq!(leaf_info(&leaf(&[(V1, a.as_bytes().to_vec())])).map(|i| i.issuer), Ok(Some(a.to_owned())));
        assert_eq!(leaf_info(&leaf(&[(V2, utf8(a))])).map(|i| i.issuer), Ok(Some(a.to_owned())));
        let both = leaf(&[(V1, a.as_bytes().to_vec()), (V2, utf8(a))]);
        assert_eq!(leaf_info(&both).map(|i| i.issuer), Ok(Some(a.to_owned())));
        let disagree = leaf(&[(V1, b"https://evil.example".to_vec()), (V2, utf8(a))]);
        assert_eq!(
            leaf_info(&disagree).map(|i| i.issuer),
            Err(CertError::Identity(format!(
                "inconsistent Fulcio OIDC issuer extensions: v1 \"https://evil.example\", v2 \"{a}\""
            )))
        );
    }

    #[test]
    fn a_repeated_extension_is_malformed() {
        let twice = leaf(&[(V2, utf8("https://a.example")), (V2, utf8("https://b.example"))]);
        assert_eq!(
            leaf_info(&twice).map(|i| i.issuer),
            Err(CertError::Malformed("the certificate repeats extension 1.3.6.1.4.1.57264.1.8".into()))
        );
    }
}
