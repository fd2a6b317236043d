//! RFC 3161 timestamps, as sigstore bundles carry them for Rekor v2 entries.
//!
//! A bundle's `signedTimestamp` is a DER `TimeStampResp` (RFC 3161 §2.4.2)
//! whose token is CMS `SignedData` (RFC 5652) over a `TSTInfo`. [`verify`]
//! checks one against one timestamp authority's certificate chain
//! (`[leaf, intermediates…, root]`, as `trusted_root.json` lists it) and
//! returns the generation time. Like sigstore's verifier it requires: status
//! granted; exactly one signer, which is the authority's leaf (certificates
//! embedded in the token must be from the authority's chain, byte for byte);
//! signed attributes with the TSTInfo content type and its message digest
//! (and, when present, the signing-certificate-v2 hash of the leaf); a valid
//! signature over them; a leaf whose only extended key usage is a critical
//! id-kp-timeStamping; a chain valid at the generation time (so a timestamp
//! outlives its certificate's expiry); and a message imprint equal to the hash
//! of the timestamped bytes. Beyond it, the structure's versions and digest
//! algorithm list must be consistent, so that no unsigned byte but the status
//! can change. Whether the authority itself was trusted at that time
//! (`validFor`) is the caller's check. Pure: bytes in, a time out.

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{Any, BitString, Int, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _, Sequence, Tag, Tagged as _};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use crate::keys::{HashAlgorithm, PublicKey};
use crate::x509;

/// A timestamp was refused. Every variant says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// Not a well-formed timestamp response.
    #[error("malformed timestamp: {0}")]
    Malformed(String),
    /// Well-formed, but uses an algorithm tollgate does not verify.
    #[error("timestamp uses {0}, which tollgate does not verify")]
    Unsupported(String),
    /// Signed by another certificate than this authority's.
    #[error("signed by a timestamp authority the trusted root does not list")]
    OtherAuthority,
    /// This authority's certificate, but the signature or the chain does not hold.
    #[error("timestamp does not verify: {0}")]
    Untrusted(String),
    /// Issued for other bytes than the signature.
    #[error("the timestamp is for other data than the signature")]
    Imprint,
}

fn malformed(what: impl Into<String>) -> TimestampError {
    TimestampError::Malformed(what.into())
}

fn untrusted(what: impl Into<String>) -> TimestampError {
    TimestampError::Untrusted(what.into())
}

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// `TimeStampResp` (RFC 3161 §2.4.2).
#[derive(Sequence)]
struct TimeStampResp {
    status: PkiStatusInfo,
    #[asn1(optional = "true")]
    time_stamp_token: Option<ContentInfo>,
}

/// `PKIStatusInfo`; the text and failure bits are read and ignored.
#[derive(Sequence)]
struct PkiStatusInfo {
    status: u8,
    #[asn1(optional = "true")]
    status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// `TSTInfo` (RFC 3161 §2.4.2).
#[derive(Sequence)]
struct TstInfo {
    version: u8,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    serial_number: Int,
    /// A GeneralizedTime, read by hand: TSAs add fractional seconds, which
    /// `der`'s GeneralizedTime refuses.
    gen_time: Any,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<Any>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    extensions: Option<x509_cert::ext::Extensions>,
}

#[derive(Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

#[derive(Sequence)]
struct Accuracy {
    #[asn1(optional = "true")]
    seconds: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    millis: Option<Int>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    micros: Option<Int>,
}

/// `SigningCertificateV2` (RFC 5035): the hash of the certificate that signed.
#[derive(Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

#[derive(Sequence)]
struct EssCertIdV2 {
    /// Absent means SHA-256.
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

fn hash_of(alg: &AlgorithmIdentifierOwned) -> Result<HashAlgorithm, TimestampError> {
    match alg.oid {
        SHA256 => Ok(HashAlgorithm::Sha256),
        SHA384 => Ok(HashAlgorithm::Sha384),
        SHA512 => Ok(HashAlgorithm::Sha512),
        other => Err(TimestampError::Unsupported(format!("digest algorithm {other}"))),
    }
}

/// A parsed timestamp: what it says, before any trust decision.
struct Token {
    signed_data: SignedData,
    tst_der: Vec<u8>,
    tst: TstInfo,
}

fn parse(response: &[u8]) -> Result<Token, TimestampError> {
    let resp = TimeStampResp::from_der(response).map_err(|e| malformed(format!("TimeStampResp: {e}")))?;
    // 0 granted, 1 grantedWithMods; anything else carries no token worth reading.
    if resp.status.status > 1 {
        return Err(malformed(format!("the authority refused the request (status {})", resp.status.status)));
    }
    let token = resp.time_stamp_token.ok_or_else(|| malformed("the response has no timeStampToken"))?;
    parse_token(token)
}

/// A `TimeStampToken` (RFC 3161 §2.4.2): CMS `ContentInfo` with `SignedData` over a `TSTInfo`.
fn parse_token(token: ContentInfo) -> Result<Token, TimestampError> {
    if token.content_type != ID_SIGNED_DATA {
        return Err(malformed(format!("token content type {} is not signedData", token.content_type)));
    }
    let signed_data: SignedData = token.content.decode_as().map_err(|e| malformed(format!("SignedData: {e}")))?;
    // RFC 5652 §5.1: version 3 whenever the content is not id-data.
    if signed_data.version != CmsVersion::V3 {
        return Err(malformed(format!("SignedData version {:?}, expected V3", signed_data.version)));
    }
    let encap = &signed_data.encap_content_info;
    if encap.econtent_type != ID_CT_TST_INFO {
        return Err(malformed(format!("encapsulated content type {} is not TSTInfo", encap.econtent_type)));
    }
    let econtent = encap.econtent.as_ref().ok_or_else(|| malformed("the token has no TSTInfo"))?;
    let octets: OctetString = econtent.decode_as().map_err(|e| malformed(format!("eContent: {e}")))?;
    let tst_der = octets.as_bytes().to_vec();
    let tst = TstInfo::from_der(&tst_der).map_err(|e| malformed(format!("TSTInfo: {e}")))?;
    if tst.version != 1 {
        return Err(malformed(format!("TSTInfo version {}", tst.version)));
    }
    Ok(Token { signed_data, tst_der, tst })
}

/// The generation time of a timestamp response, Unix milliseconds, without
/// any check. For reports and fuzzing; [`verify`] is the trust decision.
pub fn gen_time_unverified(response: &[u8]) -> Result<i64, TimestampError> {
    gen_time_millis(&parse(response)?.tst.gen_time)
}

/// Reads `YYYYMMDDHHMMSS[.f…]Z` (RFC 3161 §2.4.2: UTC, optional fraction).
fn gen_time_millis(any: &Any) -> Result<i64, TimestampError> {
    let bad = || malformed("genTime is not a UTC GeneralizedTime");
    if any.tag() != Tag::GeneralizedTime {
        return Err(bad());
    }
    let text = std::str::from_utf8(any.value()).map_err(|_| bad())?;
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if body.contains('.') && frac.is_empty() {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| whole.get(r).and_then(|s| s.parse::<i64>().ok()).ok_or_else(bad);
    let ms = match frac.get(..3) {
        Some(d) => d.parse::<i64>().map_err(|_| bad())?,
        None if frac.is_empty() => 0,
        None => format!("{frac:0<3}").parse::<i64>().map_err(|_| bad())?,
    };
    crate::tlog::unix_millis([n(0..4)?, n(4..6)?, n(6..8)?, n(8..10)?, n(10..12)?, n(12..14)?], ms)
        // Before 1970 is no time for a sigstore timestamp (and would leave no
        // whole second to check the certificate chain at).
        .filter(|t| *t >= 0)
        .ok_or_else(bad)
}

/// Verifies `response` as a timestamp of `message` by the authority whose
/// chain is `chain` (`[leaf, intermediates…, root]`). Returns the generation
/// time in Unix milliseconds.
pub fn verify(response: &[u8], message: &[u8], chain: &[Vec<u8>]) -> Result<i64, TimestampError> {
    let token = parse(response)?;
    let leaf_der = chain.first().ok_or_else(|| untrusted("the authority lists no certificates"))?;
    let signer = single_signer(&token.signed_data)?;
    if !signed_by(signer, leaf_der)? {
        return Err(TimestampError::OtherAuthority);
    }
    // Certificates in the token may only be the authority's own: anything
    // else is unexplained material, refused rather than ignored.
    for der in embedded(&token.signed_data)? {
        if !chain.contains(&der) {
            return Err(untrusted("the token embeds a certificate that is not in the authority's chain"));
        }
    }
    let (intermediates, root) = match chain {
        [_, inter @ .., root] => (inter, std::slice::from_ref(root)),
        [only] => (&[][..], std::slice::from_ref(only)),
        [] => return Err(untrusted("the authority lists no certificates")),
    };
    let t_ms = check_signer(&token, signer, leaf_der, intermediates, root, false)?;
    check_imprint(&token.tst, message)?;
    Ok(t_ms)
}

/// A verified timestamp: its generation time and accuracy, Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// `genTime`.
    pub millis: i64,
    /// The `accuracy`; one second when absent under the ETSI baseline timestamp policy
    /// (0.4.0.2023.1.1), as the Notary Project specifies, else zero.
    pub accuracy_millis: i64,
}

impl Stamp {
    /// The earliest time the timestamp may stand for.
    pub fn earliest(&self) -> i64 {
        self.millis.saturating_sub(self.accuracy_millis)
    }

    /// The latest time the timestamp may stand for.
    pub fn latest(&self) -> i64 {
        self.millis.saturating_add(self.accuracy_millis)
    }
}

/// The ETSI baseline timestamp policy (ETSI EN 319 422).
const BASELINE_TIMESTAMP_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");

/// Verifies `token`, a DER `TimeStampToken` as notation envelopes carry it
/// (`io.cncf.notary.timestampSignature`), as a timestamp of `message` by an
/// authority that chains to one of `roots` (a `tsa:` trust store). Unlike
/// [`verify`], the authority is not named in advance: the token must carry its
/// signing certificate (and any intermediates), identified by the signer and
/// pinned by the signing-certificate-v2 attribute, which is required here.
pub fn verify_token(token: &[u8], message: &[u8], roots: &[Vec<u8>]) -> Result<Stamp, TimestampError> {
    let info = ContentInfo::from_der(token).map_err(|e| malformed(format!("TimeStampToken: {e}")))?;
    let token = parse_token(info)?;
    let signer = single_signer(&token.signed_data)?;
    let certs = embedded(&token.signed_data)?;
    let mut leaf = None;
    for der in &certs {
        if signed_by(signer, der)? {
            leaf = Some(der);
            break;
        }
    }
    let leaf = leaf.ok_or_else(|| untrusted("the token does not carry the certificate that signed it"))?;
    let intermediates: Vec<Vec<u8>> = certs.iter().filter(|c| *c != leaf).cloned().collect();
    if roots.is_empty() {
        return Err(untrusted("no trusted timestamp authority certificate (the tsa trust store is empty)"));
    }
    let t_ms = check_signer(&token, signer, leaf, &intermediates, roots, true)?;
    check_imprint(&token.tst, message)?;
    let accuracy_millis = match &token.tst.accuracy {
        Some(a) => {
            let part = |i: &Option<Int>| -> Result<i64, TimestampError> {
                match i {
                    None => Ok(0),
                    Some(i) => i64::from_der(&i.to_der().map_err(|e| malformed(e.to_string()))?)
                        .ok()
                        .filter(|v| *v >= 0)
                        .ok_or_else(|| malformed("accuracy is not a small non-negative integer")),
                }
            };
            let (s, ms, us) = (part(&a.seconds)?, part(&a.millis)?, part(&a.micros)?);
            s.saturating_mul(1000).saturating_add(ms).saturating_add((us + 999) / 1000)
        }
        None => 0,
    };
    let accuracy_millis =
        if accuracy_millis == 0 && token.tst.policy == BASELINE_TIMESTAMP_POLICY { 1000 } else { accuracy_millis };
    Ok(Stamp { millis: t_ms, accuracy_millis })
}

fn single_signer(signed_data: &SignedData) -> Result<&cms::signed_data::SignerInfo, TimestampError> {
    let mut signers = signed_data.signer_infos.0.iter();
    match (signers.next(), signers.next()) {
        (Some(s), None) => Ok(s),
        _ => Err(malformed("a timestamp needs exactly one signer")),
    }
}

/// The certificates the token embeds, DER.
fn embedded(signed_data: &SignedData) -> Result<Vec<Vec<u8>>, TimestampError> {
    let mut out = Vec::new();
    for choice in signed_data.certificates.iter().flat_map(|set| set.0.iter()) {
        let CertificateChoices::Certificate(c) = choice else {
            return Err(malformed("the token carries a non-X.509 certificate"));
        };
        out.push(c.to_der().map_err(|e| malformed(format!("embedded certificate: {e}")))?);
    }
    Ok(out)
}

/// Whether the signer info identifies the certificate `der` (issuer and serial, or key identifier).
fn signed_by(signer: &cms::signed_data::SignerInfo, der: &[u8]) -> Result<bool, TimestampError> {
    let cert = Certificate::from_der(der).map_err(|e| untrusted(format!("a certificate: {e}")))?;
    let tbs = cert.tbs_certificate();
    Ok(match &signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(is) => {
            is.issuer == *tbs.issuer() && is.serial_number == *tbs.serial_number()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            matches!(tbs.get_extension::<SubjectKeyIdentifier>(), Ok(Some((_, own))) if own == *ski)
        }
    })
}

/// Everything about the signer: versions, signed attributes, the signature by `leaf_der`, its
/// timestamping key usage, and its chain to `roots` at the generation time, which it returns.
fn check_signer(
    token: &Token,
    signer: &cms::signed_data::SignerInfo,
    leaf_der: &[u8],
    intermediates: &[Vec<u8>],
    roots: &[Vec<u8>],
    require_signing_certificate: bool,
) -> Result<i64, TimestampError> {
    let Token { signed_data, tst_der, tst } = token;
    let leaf = Certificate::from_der(leaf_der).map_err(|e| untrusted(format!("the authority's certificate: {e}")))?;
    let tbs = leaf.tbs_certificate();
    let sid_version = match &signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V1,
        SignerIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V3,
    };
    // RFC 5652 §5.3: the signer info's version follows the form of its sid.
    if signer.version != sid_version {
        return Err(malformed(format!("SignerInfo version {:?} does not fit its signer identifier", signer.version)));
    }
    if !signed_data.digest_algorithms.iter().any(|a| a.oid == signer.digest_alg.oid) {
        return Err(malformed("the signer's digest algorithm is not among the token's digest algorithms"));
    }

    // Signed attributes: content type, message digest, and (if present) the
    // signing certificate's hash.
    let digest_alg = hash_of(&signer.digest_alg)?;
    let attrs = signer.signed_attrs.as_ref().ok_or_else(|| malformed("the signer has no signed attributes"))?;
    let single = |oid: ObjectIdentifier| -> Result<Option<&Any>, TimestampError> {
        let mut found = attrs.iter().filter(|a| a.oid == oid);
        match (found.next(), found.next()) {
            (None, _) => Ok(None),
            (Some(a), None) if a.values.len() == 1 => Ok(a.values.iter().next()),
            _ => Err(malformed(format!("signed attribute {oid} must appear once with one value"))),
        }
    };
    let content_type: ObjectIdentifier = single(ID_CONTENT_TYPE)?
        .ok_or_else(|| malformed("no content-type signed attribute"))?
        .decode_as()
        .map_err(|e| malformed(format!("content-type attribute: {e}")))?;
    if content_type != ID_CT_TST_INFO {
        return Err(malformed("the content-type attribute is not TSTInfo"));
    }
    let md: OctetString = single(ID_MESSAGE_DIGEST)?
        .ok_or_else(|| malformed("no message-digest signed attribute"))?
        .decode_as()
        .map_err(|e| malformed(format!("message-digest attribute: {e}")))?;
    if md.as_bytes() != digest_alg.digest(tst_der) {
        return Err(untrusted("the message-digest attribute is not the TSTInfo's digest"));
    }
    match single(ID_SIGNING_CERTIFICATE_V2)? {
        Some(v2) => {
            let sc: SigningCertificateV2 =
                v2.decode_as().map_err(|e| malformed(format!("signing-certificate-v2 attribute: {e}")))?;
            let first = sc.certs.first().ok_or_else(|| malformed("signing-certificate-v2 names no certificate"))?;
            let alg = first.hash_algorithm.as_ref().map(hash_of).transpose()?.unwrap_or(HashAlgorithm::Sha256);
            if first.cert_hash.as_bytes() != alg.digest(leaf_der) {
                return Err(untrusted("the signing-certificate attribute names another certificate"));
            }
        }
        None if require_signing_certificate => {
            return Err(malformed("no signing-certificate-v2 signed attribute names the signing certificate"));
        }
        None => {}
    }

    // The signature over the DER SET OF the signed attributes.
    let signed_bytes = attrs.to_der().map_err(|e| malformed(format!("signed attributes: {e}")))?;
    let spki = tbs.subject_public_key_info().to_der().map_err(|e| untrusted(e.to_string()))?;
    let key = PublicKey::from_spki_der(&spki).map_err(|e| TimestampError::Unsupported(e.to_string()))?;
    check_signature_algorithm(&signer.signature_algorithm, &key, digest_alg)?;
    key.verify_with_hash(&signed_bytes, signer.signature.as_bytes(), digest_alg)
        .map_err(|_| untrusted("the signature does not verify with the authority's key"))?;

    // The certificate: a timestamping leaf, chaining to a root when the
    // timestamp was made.
    let t_ms = gen_time_millis(&tst.gen_time)?;
    x509::check_time_stamping_eku(leaf_der).map_err(|e| untrusted(e.to_string()))?;
    for t in whole_seconds_around(t_ms) {
        x509::verify_chain_for(leaf_der, intermediates, roots, t, x509::Purpose::TimeStamping)
            .map_err(|e| untrusted(e.to_string()))?;
    }
    Ok(t_ms)
}

/// What was timestamped: the message imprint is the hash of `message`.
fn check_imprint(tst: &TstInfo, message: &[u8]) -> Result<(), TimestampError> {
    let imprint_alg = hash_of(&tst.message_imprint.hash_algorithm)?;
    if tst.message_imprint.hashed_message.as_bytes() != imprint_alg.digest(message) {
        return Err(TimestampError::Imprint);
    }
    Ok(())
}

/// The whole seconds a millisecond time falls between: both ends of the
/// second when it has a fraction, so that a validity check holds at the exact
/// time. Callers pass times from 1970 on; an earlier time yields second 0, so
/// a check is never skipped.
pub(crate) fn whole_seconds_around(t_ms: i64) -> impl Iterator<Item = u64> {
    let floor = t_ms.div_euclid(1000).max(0);
    let ceil = floor + i64::from(t_ms > 0 && t_ms.rem_euclid(1000) != 0);
    (floor..=ceil).map(|s| u64::try_from(s).unwrap_or_default())
}

/// The signer info's signature algorithm must fit the key (and name the
/// digest algorithm, when it names one).
fn check_signature_algorithm(
    alg: &AlgorithmIdentifierOwned,
    key: &PublicKey,
    digest: HashAlgorithm,
) -> Result<(), TimestampError> {
    use crate::keys::KeyAlgorithm as K;
    let (family_ok, named) = match alg.oid {
        EC_PUBLIC_KEY => (matches!(key.algorithm(), K::EcdsaP256 | K::EcdsaP384), None),
        ECDSA_SHA256 => (matches!(key.algorithm(), K::EcdsaP256 | K::EcdsaP384), Some(HashAlgorithm::Sha256)),
        ECDSA_SHA384 => (matches!(key.algorithm(), K::EcdsaP256 | K::EcdsaP384), Some(HashAlgorithm::Sha384)),
        ECDSA_SHA512 => (matches!(key.algorithm(), K::EcdsaP256 | K::EcdsaP384), Some(HashAlgorithm::Sha512)),
        RSA => (key.algorithm() == K::Rsa, None),
        RSA_SHA256 => (key.algorithm() == K::Rsa, Some(HashAlgorithm::Sha256)),
        RSA_SHA384 => (key.algorithm() == K::Rsa, Some(HashAlgorithm::Sha384)),
        RSA_SHA512 => (key.algorithm() == K::Rsa, Some(HashAlgorithm::Sha512)),
        ED25519 => (key.algorithm() == K::Ed25519, None),
        other => return Err(TimestampError::Unsupported(format!("signature algorithm {other}"))),
    };
    if !family_ok {
        return Err(untrusted(format!("signature algorithm {} does not fit the authority's key", alg.oid)));
    }
    // Go's pkcs7 hashes with the digest algorithm whatever the signature
    // algorithm's name says; a disagreement is refused here, not guessed at.
    if named.is_some_and(|n| n != digest) {
        return Err(malformed("the signature algorithm and the digest algorithm disagree"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> Result<i64, TimestampError> {
        gen_time_millis(&Any::new(Tag::GeneralizedTime, text.as_bytes()).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn generalized_time_with_and_without_fractions() {
        assert_eq!(time("20250612120220Z"), Ok(1_749_729_740_000));
        assert_eq!(time("20250612120220.5Z"), Ok(1_749_729_740_500));
        assert_eq!(time("20250612120220.123456Z"), Ok(1_749_729_740_123));
        for bad in [
            "20250612120220",
            "2025061212022Z",
            "20250612120220.Z",
            "20251312120220Z",
            "2025061212022aZ",
            "19691231235959Z",
        ] {
            assert!(time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fractional_times_are_checked_at_both_whole_seconds() {
        assert_eq!(whole_seconds_around(5_000).collect::<Vec<_>>(), [5]);
        assert_eq!(whole_seconds_around(5_001).collect::<Vec<_>>(), [5, 6]);
        // Never empty, so a chain check can never be skipped.
        assert_eq!(whole_seconds_around(-1).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for input in [&b""[..], b"\x30\x00", b"\x30\x03\x02\x01\x00", b"\x30\x05\x30\x03\x02\x01\x02"] {
            assert!(matches!(verify(input, b"m", &[]), Err(TimestampError::Malformed(_))), "{input:?}");
        }
    }
}
