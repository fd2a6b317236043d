//! Certificate files as notation-core-go's `ReadCertificateFile` reads them: PEM with one or more
//! `CERTIFICATE` blocks, else DER with one or more certificates back to back. And what a trust store
//! needs to know about each: CA or not, self-issued, self-signed.

use der::{Decode as _, Encode as _, Reader as _};
use tollgate_verify::PublicKey;
use tollgate_verify::keys::HashAlgorithm;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};

/// A certificate file that does not hold certificates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertFileError(pub String);

/// Largest certificate file read.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// The certificates of a file, DER each.
pub fn read_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, CertFileError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(CertFileError(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let text = std::str::from_utf8(bytes).ok();
    if text.is_some_and(|t| t.contains("-----BEGIN")) {
        let certs =
            Certificate::load_pem_chain(bytes).map_err(|e| CertFileError(format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(CertFileError("no certificate in the PEM file".into()));
        }
        return certs.iter().map(|c| c.to_der().map_err(|e| CertFileError(e.to_string()))).collect();
    }
    let mut reader = der::SliceReader::new(bytes).map_err(|e| CertFileError(e.to_string()))?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        let cert = Certificate::decode(&mut reader)
            .map_err(|e| CertFileError(format!("not a certificate (PEM or DER): {e}")))?;
        out.push(cert.to_der().map_err(|e| CertFileError(e.to_string()))?);
    }
    if out.is_empty() {
        return Err(CertFileError("the file is empty".into()));
    }
    Ok(out)
}

/// What a trust store checks about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// Its subject, as Go's `pkix.Name.String()` writes it (for messages and identities).
    pub subject: String,
    /// Basic constraints say CA.
    pub is_ca: bool,
    /// It may sign certificates: a v3 CA whose key usage, if any, allows certificate signing
    /// (Go's `CheckSignatureFrom` requirements of a parent), or a v1 certificate.
    pub can_sign_certs: bool,
    /// Issuer and subject are the same bytes.
    pub self_issued: bool,
    /// Its signature verifies with its own key.
    pub self_signed: bool,
    /// It may sign CRLs: its key usage, if any, allows CRL signing, and a v3 certificate is a CA
    /// (Go's `RevocationList.CheckSignatureFrom` requirements of an issuer).
    pub can_sign_crls: bool,
}

/// The facts of one DER certificate.
pub fn facts(der: &[u8]) -> Result<CertFacts, CertFileError> {
    let m = |e: der::Error| CertFileError(e.to_string());
    let cert = Certificate::from_der(der).map_err(m)?;
    let tbs = cert.tbs_certificate();
    let constraints = tbs.get_extension::<BasicConstraints>().map_err(m)?;
    let is_ca = constraints.as_ref().is_some_and(|(_, b)| b.ca);
    let key_usage = tbs.get_extension::<KeyUsage>().map_err(m)?;
    let v1 = tbs.version() == x509_cert::certificate::Version::V1;
    let can_sign_certs = v1 || (is_ca && key_usage.as_ref().is_none_or(|(_, k)| k.0.contains(KeyUsages::KeyCertSign)));
    let can_sign_crls = (v1 || is_ca) && key_usage.as_ref().is_none_or(|(_, k)| k.0.contains(KeyUsages::CRLSign));
    let self_issued = tbs.issuer().to_der().map_err(m)? == tbs.subject().to_der().map_err(m)?;
    let spki = tbs.subject_public_key_info().to_der().map_err(m)?;
    let self_signed = signed_by(&cert, &spki).unwrap_or(false);
    Ok(CertFacts {
        subject: crate::identity::go_name_string(tbs.subject()),
        is_ca,
        can_sign_certs,
        self_issued,
        self_signed,
        can_sign_crls,
    })
}

/// Whether `cert`'s signature verifies with the key `issuer_spki` (DER SubjectPublicKeyInfo). An error
/// when the key or the signature algorithm is not one tollgate verifies.
pub(crate) fn signed_by(cert: &Certificate, issuer_spki: &[u8]) -> Result<bool, String> {
    let message = cert.tbs_certificate().to_der().map_err(|e| e.to_string())?;
    let signature = cert.signature().as_bytes().unwrap_or_default();
    verify_signed(&cert.signature_algorithm().oid.to_string(), &message, signature, issuer_spki)
}

/// Whether `signature` (by the X.509 signature algorithm `oid`) over `message` verifies with the key
/// `spki` (DER SubjectPublicKeyInfo): certificates and CRLs alike. An error when the key or the
/// algorithm is not one tollgate verifies.
pub(crate) fn verify_signed(oid: &str, message: &[u8], signature: &[u8], spki: &[u8]) -> Result<bool, String> {
    let hash = hash_of(oid).ok_or_else(|| format!("signature algorithm {oid} is not supported"))?;
    let key = PublicKey::from_spki_der(spki).map_err(|e| e.to_string())?;
    Ok(key.verify_with_hash(message, signature, hash).is_ok())
}

/// The hash of a certificate signature algorithm tollgate verifies (RSA PKCS#1 v1.5, ECDSA, Ed25519).
fn hash_of(oid: &str) -> Option<HashAlgorithm> {
    Some(match oid {
        "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" | "1.3.101.112" => HashAlgorithm::Sha256,
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => HashAlgorithm::Sha384,
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => HashAlgorithm::Sha512,
        _ => return None,
    })
}
