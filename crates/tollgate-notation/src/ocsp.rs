//! OCSP (RFC 6960) as notation-core-go uses it for a signing chain: a request per certificate
//! (SHA-1 `CertID`, no nonce, as Go's `ocsp.CreateRequest`), and the response decided for that
//! certificate. Pure: the caller POSTs [`request`] to the responder and gives back what it answered.
//!
//! A response is trusted when it is signed by the certificate's issuer, or by a responder
//! certificate that the issuer signed and that carries `id-kp-OCSPSigning` (RFC 6960 4.2.2.2;
//! stricter than Go's x/crypto, which does not check that usage). Its single response must be for
//! this very certificate (serial and issuer key hash), and must have a `nextUpdate` that has not
//! passed (notation-core-go treats a response without one as expired).

use der::asn1::{Any, BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _, Enumerated, Sequence, Tagged as _};
use x509_cert::Certificate;
use x509_cert::ext::Extensions;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::certs;

/// Largest OCSP response read (notation-core-go's limit).
pub const MAX_RESPONSE_BYTES: usize = 20480;
/// The media type of an OCSP request (POST body).
pub const REQUEST_MEDIA_TYPE: &str = "application/ocsp-request";

const SHA1: &str = "1.3.14.3.2.26";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const BASIC: &str = "1.3.6.1.5.5.7.48.1.1";
const OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";
const INVALIDITY_DATE: &str = "2.5.29.24";

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct CertId {
    hash_algorithm: AlgorithmIdentifierOwned,
    issuer_name_hash: OctetString,
    issuer_key_hash: OctetString,
    serial_number: SerialNumber,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct Request {
    req_cert: CertId,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TbsRequest {
    request_list: Vec<Request>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct OcspRequest {
    tbs_request: TbsRequest,
}

#[derive(Enumerated, Copy, Clone, Debug, Eq, PartialEq)]
#[repr(u32)]
enum ResponseStatus {
    Successful = 0,
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    SigRequired = 5,
    Unauthorized = 6,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct ResponseBytes {
    response_type: ObjectIdentifier,
    response: OctetString,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct OcspResponse {
    response_status: ResponseStatus,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    response_bytes: Option<ResponseBytes>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct BasicResponse {
    /// Kept whole: the signature is over its DER.
    tbs_response_data: Any,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    certs: Option<Vec<Certificate>>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct ResponseData {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<u8>,
    /// `byName [1]` or `byKey [2]`: not used (the signature decides who answered).
    responder_id: Any,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    response_extensions: Option<Extensions>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SingleResponse {
    cert_id: CertId,
    /// `good [0]`, `revoked [1]`, `unknown [2]`, all IMPLICIT.
    cert_status: Any,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    single_extensions: Option<Extensions>,
}

/// What a responder said about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Not revoked.
    Good,
    /// Revoked.
    Revoked,
    /// The responder does not know the certificate (notation-core-go then stops asking other
    /// responders, and falls back to CRLs).
    Unknown,
}

fn sha(alg: &str, data: &[u8]) -> Option<Vec<u8>> {
    let alg = match alg {
        SHA1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        SHA256 => &ring::digest::SHA256,
        _ => return None,
    };
    Some(ring::digest::digest(alg, data).as_ref().to_vec())
}

/// The `CertID` of `cert` issued by `issuer`, hashed with `alg`.
fn cert_id(cert: &Certificate, issuer: &Certificate, alg: &str) -> Result<CertId, String> {
    let m = |e: der::Error| e.to_string();
    let name = issuer.tbs_certificate().subject().to_der().map_err(m)?;
    let key = issuer.tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes();
    let oid = ObjectIdentifier::new(alg).map_err(|e| e.to_string())?;
    let hash = |d: &[u8]| sha(alg, d).ok_or_else(|| format!("hash algorithm {alg} is not supported"));
    Ok(CertId {
        // With NULL parameters, as Go writes them.
        hash_algorithm: AlgorithmIdentifierOwned { oid, parameters: Some(der::asn1::Null.into()) },
        issuer_name_hash: OctetString::new(hash(&name)?).map_err(m)?,
        issuer_key_hash: OctetString::new(hash(key)?).map_err(m)?,
        serial_number: cert.tbs_certificate().serial_number().clone(),
    })
}

/// The DER OCSP request for the DER certificate `cert`, issued by `issuer`.
pub fn request(cert: &[u8], issuer: &[u8]) -> Result<Vec<u8>, String> {
    let m = |e: der::Error| e.to_string();
    let (cert, issuer) = (Certificate::from_der(cert).map_err(m)?, Certificate::from_der(issuer).map_err(m)?);
    let req = OcspRequest {
        tbs_request: TbsRequest { request_list: vec![Request { req_cert: cert_id(&cert, &issuer, SHA1)? }] },
    };
    req.to_der().map_err(m)
}

/// The responders (`id-ad-ocsp` URIs of the Authority Information Access extension) of a DER
/// certificate, as Go's `x509.Certificate.OCSPServer`.
pub fn responders(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_cert::ext::pkix::AuthorityInfoAccessSyntax;
    use x509_cert::ext::pkix::name::GeneralName;
    let cert = Certificate::from_der(der).map_err(|e| e.to_string())?;
    let aia = cert.tbs_certificate().get_extension::<AuthorityInfoAccessSyntax>().map_err(|e| e.to_string())?;
    Ok(aia
        .map(|(_, a)| a.0)
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.access_method.to_string() == "1.3.6.1.5.5.7.48.1")
        .filter_map(|d| match d.access_location {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .collect())
}

/// What the DER OCSP `response` says about the DER certificate `cert`, issued by `issuer`, at `now`
/// (Unix seconds); `signing_time` is a signing authority's authentic signing time (an
/// `invalidityDate` after it leaves the certificate good). `Err` when the response cannot be trusted
/// or says nothing about this certificate.
pub fn answer(
    cert: &[u8],
    issuer: &[u8],
    response: &[u8],
    now: i64,
    signing_time: Option<i64>,
) -> Result<Answer, String> {
    let m = |e: der::Error| e.to_string();
    let (cert, issuer) = (Certificate::from_der(cert).map_err(m)?, Certificate::from_der(issuer).map_err(m)?);
    if response.len() > MAX_RESPONSE_BYTES {
        return Err(format!("the OCSP response is larger than {MAX_RESPONSE_BYTES} bytes"));
    }
    let outer = OcspResponse::from_der(response).map_err(|e| format!("not an OCSP response: {e}"))?;
    if outer.response_status != ResponseStatus::Successful {
        return Err(format!("the responder answered {:?}", outer.response_status));
    }
    let bytes = outer.response_bytes.ok_or("a successful OCSP response without a response")?;
    if bytes.response_type.to_string() != BASIC {
        return Err(format!("OCSP response type {} is not the basic one", bytes.response_type));
    }
    let basic =
        BasicResponse::from_der(bytes.response.as_bytes()).map_err(|e| format!("not a basic OCSP response: {e}"))?;
    let tbs = basic.tbs_response_data.to_der().map_err(m)?;
    let data = ResponseData::from_der(&tbs).map_err(|e| format!("malformed OCSP response data: {e}"))?;
    // Who signed it: the issuer, or a responder the issuer delegated to.
    let issuer_spki = issuer.tbs_certificate().subject_public_key_info().to_der().map_err(m)?;
    let sig_alg = basic.signature_algorithm.oid.to_string();
    let signature = basic.signature.as_bytes().unwrap_or_default();
    let mut signed = certs::verify_signed(&sig_alg, &tbs, signature, &issuer_spki)?;
    if !signed {
        for responder in basic.certs.iter().flatten() {
            if delegated(responder, &issuer)? {
                let spki = responder.tbs_certificate().subject_public_key_info().to_der().map_err(m)?;
                if certs::verify_signed(&sig_alg, &tbs, signature, &spki)? {
                    signed = true;
                    break;
                }
            }
        }
    }
    if !signed {
        return Err("the OCSP response is signed neither by the issuer nor by a responder it delegated to".into());
    }
    let serial = cert.tbs_certificate().serial_number();
    let single = data
        .responses
        .iter()
        .find(|r| {
            &r.cert_id.serial_number == serial
                && cert_id(&cert, &issuer, &r.cert_id.hash_algorithm.oid.to_string()).is_ok_and(|id| {
                    id.issuer_key_hash == r.cert_id.issuer_key_hash && id.issuer_name_hash == r.cert_id.issuer_name_hash
                })
        })
        .ok_or("the OCSP response says nothing about this certificate")?;
    let secs = |t: &GeneralizedTime| i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    match single.next_update.as_ref().map(secs) {
        None => return Err("the OCSP response has no nextUpdate".into()),
        Some(next) if now > next => {
            return Err(format!("the OCSP response expired at {}", tollgate_verify::tlog::format_rfc3339(next)));
        }
        Some(_) => {}
    }
    let status = &single.cert_status;
    if status.tag().class() != der::Class::ContextSpecific {
        return Err("an OCSP certStatus that is not [0], [1] or [2]".into());
    }
    match u32::from(status.tag().number()) {
        0 => Ok(Answer::Good),
        1 => {
            // An invalidityDate after a signing authority's authentic signing time leaves it good.
            for ext in single.single_extensions.iter().flatten() {
                if ext.extn_id.to_string() == INVALIDITY_DATE
                    && let (Ok(from), Some(signed_at)) =
                        (GeneralizedTime::from_der(ext.extn_value.as_bytes()), signing_time)
                    && signed_at < secs(&from)
                {
                    return Ok(Answer::Good);
                }
            }
            Ok(Answer::Revoked)
        }
        2 => Ok(Answer::Unknown),
        n => Err(format!("an OCSP certStatus [{n}]")),
    }
}

/// Whether `responder` is a delegated OCSP responder of `issuer`: issued and signed by it, with
/// `id-kp-OCSPSigning`.
fn delegated(responder: &Certificate, issuer: &Certificate) -> Result<bool, String> {
    use x509_cert::ext::pkix::ExtendedKeyUsage;
    let m = |e: der::Error| e.to_string();
    if responder.tbs_certificate().issuer().to_der().map_err(m)?
        != issuer.tbs_certificate().subject().to_der().map_err(m)?
    {
        return Ok(false);
    }
    let eku = responder.tbs_certificate().get_extension::<ExtendedKeyUsage>().map_err(m)?;
    if !eku.is_some_and(|(_, e)| e.0.iter().any(|o| o.to_string() == OCSP_SIGNING)) {
        return Ok(false);
    }
    let spki = issuer.tbs_certificate().subject_public_key_info().to_der().map_err(m)?;
    certs::signed_by(responder, &spki)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The fuzz seed: an openssl certificate, its CA, and `openssl ocsp`'s answer that it is revoked.
    fn seed() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let data = include_bytes!("../../../fuzz/corpus/notation_trust/ocsp_revoked");
        let split = |b: &[u8]| {
            let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
            (b[2..2 + n].to_vec(), b[2 + n..].to_vec())
        };
        let (cert, rest) = split(&data[1..]);
        let (issuer, response) = split(&rest);
        (cert, issuer, response)
    }

    const NOW: i64 = 1_767_225_600;

    #[test]
    fn openssls_answer_is_read_for_its_certificate_only() {
        let (cert, issuer, response) = seed();
        assert_eq!(answer(&cert, &issuer, &response, NOW, None), Ok(Answer::Revoked));
        // Long after its nextUpdate.
        let late = answer(&cert, &issuer, &response, NOW + 10 * 365 * 86400, None).unwrap_err();
        assert!(late.contains("the OCSP response expired at"), "{late}");
        // Another certificate of the same issuer (the issuer itself, another serial): not answered for.
        let other = answer(&issuer, &issuer, &response, NOW, None).unwrap_err();
        assert_eq!(other, "the OCSP response says nothing about this certificate");
        // A changed byte of the signed response data (bytes 34 to 196 here) breaks the signature or
        // the structure; the certificate openssl appends after them is not signed over, and is not
        // needed when the issuer signed.
        for i in 34..197 {
            let mut tampered = response.clone();
            tampered[i] ^= 0x10;
            assert!(answer(&cert, &issuer, &tampered, NOW, None).is_err(), "byte {i} changed, still accepted");
        }
    }

    #[test]
    fn a_request_names_the_issuer_and_serial_with_sha1() {
        let (cert, issuer, _) = seed();
        let der = request(&cert, &issuer).unwrap();
        let parsed = OcspRequest::from_der(&der).unwrap();
        let id = &parsed.tbs_request.request_list[0].req_cert;
        assert_eq!(id.hash_algorithm.oid.to_string(), SHA1);
        let c = Certificate::from_der(&cert).unwrap();
        assert_eq!(&id.serial_number, c.tbs_certificate().serial_number());
        assert!(request(b"not a certificate", &issuer).is_err());
    }

    #[test]
    fn what_is_not_an_answer_is_said() {
        let (cert, issuer, _) = seed();
        let e = answer(&cert, &issuer, b"\x30\x03\x0a\x01\x01", NOW, None).unwrap_err();
        assert_eq!(e, "the responder answered MalformedRequest");
        assert!(answer(&cert, &issuer, b"junk", NOW, None).unwrap_err().starts_with("not an OCSP response"));
        let big = vec![0u8; MAX_RESPONSE_BYTES + 1];
        assert!(answer(&cert, &issuer, &big, NOW, None).unwrap_err().contains("larger than"));
    }

    proptest::proptest! {
        #[test]
        fn any_response_bytes_give_an_answer_or_a_reason(body in proptest::collection::vec(proptest::num::u8::ANY, 0..1024)) {
            let (cert, issuer, _) = seed();
            let _ = answer(&cert, &issuer, &body, NOW, Some(NOW));
        }

        #[test]
        fn a_mutated_answer_never_panics(i in 0usize..671, bit in 0u8..8) {
            let (cert, issuer, mut response) = seed();
            if let Some(b) = response.get_mut(i) {
                *b ^= 1 << bit;
            }
            let _ = answer(&cert, &issuer, &response, NOW, None);
        }
    }
}
