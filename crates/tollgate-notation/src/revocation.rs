//! Certificate revocation, checked as notation-core-go's `revocation` package checks a signing chain:
//! every certificate but the root, by OCSP when it names a responder, else (or when OCSP cannot say)
//! by each CRL distribution point it names. Pure: [`queries`] says what to fetch, the caller fetches
//! it (with a timeout, capped at [`Query::limit`]), and [`check_chain`] decides over what was
//! fetched at a given time.
//!
//! What notation-core-go does and this does too: OCSP is asked over plain HTTP only; a responder
//! that answers "good" or "revoked" decides, one that does not know the certificate ends the OCSP
//! attempt, and then the CRLs decide if the certificate names any. A CRL must verify with the
//! issuing certificate's key, that certificate may sign CRLs, `nextUpdate` is required and must not
//! have passed, a critical extension other than the issuing distribution point is refused, a serial
//! listed with reason `certificateHold` is revoked and one listed with `removeFromCRL` is not, and
//! for a signing authority an `invalidityDate` after the authentic signing time leaves the signature
//! good (in OCSP responses too). Every distribution point of a certificate must answer. A
//! certificate that names neither cannot be revoked. Not done: delta CRLs (refused: notation-core-go
//! fetches them), and the timestamping chain.

use der::{Decode as _, Encode as _};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::CrlDistributionPoints;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};

use crate::certs;
use crate::ocsp::{self, Answer};

/// Largest CRL read (notation-core-go reads at most 10 MiB... a CA's CRL is rarely over a few MiB).
pub const MAX_CRL_BYTES: usize = 10 << 20;

const ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";
const DELTA_CRL_INDICATOR: &str = "2.5.29.27";
const FRESHEST_CRL: &str = "2.5.29.46";
const REASON_CODE: &str = "2.5.29.21";
const INVALIDITY_DATE: &str = "2.5.29.24";
const CERTIFICATE_HOLD: u8 = 6;
const REMOVE_FROM_CRL: u8 = 8;

/// What was fetched, by [`Query::key`]: the response's bytes, or why there are none.
pub type Fetched = std::collections::BTreeMap<String, Result<Vec<u8>, String>>;

/// One thing to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// GET this CRL distribution point.
    Crl(String),
    /// POST `request` (`application/ocsp-request`) to the responder `url`.
    Ocsp {
        /// The responder.
        url: String,
        /// The DER OCSP request.
        request: Vec<u8>,
    },
}

impl Query {
    /// The key of its answer in [`Fetched`].
    pub fn key(&self) -> String {
        use base64::Engine as _;
        match self {
            Query::Crl(url) => url.clone(),
            Query::Ocsp { url, request } => {
                format!("ocsp {url} {}", base64::engine::general_purpose::STANDARD.encode(request))
            }
        }
    }

    /// The URL it is fetched from.
    pub fn url(&self) -> &str {
        match self {
            Query::Crl(url) | Query::Ocsp { url, .. } => url,
        }
    }

    /// The most bytes its answer may have.
    pub fn limit(&self) -> usize {
        match self {
            Query::Crl(_) => MAX_CRL_BYTES,
            Query::Ocsp { .. } => ocsp::MAX_RESPONSE_BYTES,
        }
    }
}

/// The revocation status of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// No certificate is revoked, and every one that can be was checked.
    Good,
    /// A certificate is revoked.
    Revoked {
        /// Its subject.
        subject: String,
        /// Who said so: `CRL URL` or `OCSP URL`.
        source: String,
    },
    /// The status of a certificate could not be learnt.
    Unknown {
        /// Its subject.
        subject: String,
        /// Why.
        reason: String,
    },
}

/// The CRL distribution points (HTTP and HTTPS URIs of their full names) of one DER certificate,
/// as Go's `x509.Certificate.CRLDistributionPoints`.
pub fn crl_urls(der: &[u8]) -> Result<Vec<String>, String> {
    let cert = Certificate::from_der(der).map_err(|e| e.to_string())?;
    let points = cert.tbs_certificate().get_extension::<CrlDistributionPoints>().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for point in points.map(|(_, p)| p.0).unwrap_or_default() {
        if let Some(DistributionPointName::FullName(names)) = point.distribution_point {
            for name in names {
                if let GeneralName::UniformResourceIdentifier(uri) = name {
                    out.push(uri.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// What to fetch for a chain (leaf first): for every certificate but the last, a request to each
/// plain-HTTP OCSP responder it names and each CRL distribution point it names, each once.
pub fn queries(chain: &[Vec<u8>]) -> Vec<Query> {
    let mut out: Vec<Query> = Vec::new();
    for (der, issuer) in chain.iter().zip(chain.iter().skip(1)) {
        let mut add = |q: Query| {
            if !out.contains(&q) {
                out.push(q);
            }
        };
        let responders = ocsp::responders(der).unwrap_or_default();
        if let Ok(request) = ocsp::request(der, issuer) {
            for url in responders.into_iter().filter(|u| u.starts_with("http://")) {
                add(Query::Ocsp { url, request: request.clone() });
            }
        }
        for url in crl_urls(der).unwrap_or_default() {
            add(Query::Crl(url));
        }
    }
    out
}

/// What the responders of one certificate say, as notation-core-go asks them: in order, the first
/// that answers decides; `Err` with the last reason when none could.
fn ocsp_status(
    der: &[u8],
    issuer: &[u8],
    responders: &[String],
    fetched: &Fetched,
    now: i64,
    signing_time: Option<i64>,
) -> Result<(Answer, String), String> {
    // One request for the certificate, whichever responder it was sent to.
    let request = ocsp::request(der, issuer);
    let mut last = String::new();
    for url in responders {
        if !url.starts_with("http://") {
            last = format!("OCSP {url}: only plain-HTTP responders are asked (as notation)");
            continue;
        }
        let said =
            request.clone().and_then(|request| match fetched.get(&Query::Ocsp { url: url.clone(), request }.key()) {
                None => Err("it was not fetched".to_owned()),
                Some(Err(e)) => Err(e.clone()),
                Some(Ok(response)) => ocsp::answer(der, issuer, response, now, signing_time),
            });
        match said {
            Ok(answer) => return Ok((answer, url.clone())),
            Err(e) => last = format!("OCSP {url}: {e}"),
        }
    }
    Err(last)
}

/// Whether the DER `crl` lists the DER certificate `cert`, issued by `issuer`, as revoked at `now`
/// ([`check_chain`] for one certificate and one CRL): `Err` when the CRL cannot say.
pub fn listed(cert: &[u8], issuer: &[u8], crl: &[u8], now: i64, signing_time: Option<i64>) -> Result<bool, String> {
    let cert = Certificate::from_der(cert).map_err(|e| format!("the certificate: {e}"))?;
    let issuer = Certificate::from_der(issuer).map_err(|e| format!("the issuer: {e}"))?;
    crl_says_revoked(&cert, &issuer, crl, now, signing_time)
}

/// The status of one certificate (not the root) from one CRL, as notation-core-go's
/// `checkRevocation`: `Ok(true)` revoked, `Ok(false)` not, `Err` not learnt.
fn crl_says_revoked(
    cert: &Certificate,
    issuer: &Certificate,
    crl: &[u8],
    now: i64,
    signing_time: Option<i64>,
) -> Result<bool, String> {
    let m = |e: der::Error| e.to_string();
    let list = CertificateList::from_der(crl).map_err(|e| format!("not a DER CRL: {e}"))?;
    let tbs = &list.tbs_cert_list;
    // The issuer signs it, and may sign CRLs (Go's RevocationList.CheckSignatureFrom).
    let facts = certs::facts(&issuer.to_der().map_err(m)?).map_err(|e| e.0)?;
    if !facts.can_sign_crls {
        return Err(format!("{} may not sign CRLs", facts.subject));
    }
    if tbs.issuer.to_der().map_err(m)? != issuer.tbs_certificate().subject().to_der().map_err(m)? {
        return Err(format!("the CRL's issuer is not {}", facts.subject));
    }
    let spki = issuer.tbs_certificate().subject_public_key_info().to_der().map_err(m)?;
    let signed = certs::verify_signed(
        &list.signature_algorithm.oid.to_string(),
        &tbs.to_der().map_err(m)?,
        list.signature.as_bytes().unwrap_or_default(),
        &spki,
    )?;
    if !signed {
        return Err(format!("the CRL is not signed by {}", facts.subject));
    }
    let secs = |t: &x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    let Some(next) = tbs.next_update.as_ref().map(secs) else {
        return Err("the CRL has no nextUpdate".into());
    };
    if now > next {
        return Err(format!("the CRL expired at {} (its nextUpdate)", tollgate_verify::tlog::format_rfc3339(next)));
    }
    for ext in tbs.crl_extensions.iter().flatten() {
        match ext.extn_id.to_string().as_str() {
            DELTA_CRL_INDICATOR => return Err("it is a delta CRL; delta CRLs are not supported".into()),
            ISSUING_DISTRIBUTION_POINT => {}
            other if ext.critical => return Err(format!("the CRL has an unsupported critical extension {other}")),
            _ => {}
        }
    }
    let serial = cert.tbs_certificate().serial_number();
    // The latest `certificateHold` or `removeFromCRL` entry, by revocation date.
    let mut temporary: Option<(i64, u8)> = None;
    for entry in tbs.revoked_certificates.iter().flatten().filter(|e| &e.serial_number == serial) {
        let mut reason = 0u8;
        let mut invalid_from = None;
        for ext in entry.crl_entry_extensions.iter().flatten() {
            let value = ext.extn_value.as_bytes();
            match ext.extn_id.to_string().as_str() {
                REASON_CODE => {
                    // ENUMERATED, one content byte (RFC 5280's reasons are 0 to 10).
                    match value {
                        [0x0a, 0x01, code] => reason = *code,
                        _ => return Err("a reasonCode is not a one-byte ENUMERATED".into()),
                    }
                }
                INVALIDITY_DATE => {
                    let t =
                        der::asn1::GeneralizedTime::from_der(value).map_err(|e| format!("an invalidityDate: {e}"))?;
                    invalid_from = i64::try_from(t.to_unix_duration().as_secs()).ok();
                }
                other if ext.critical => {
                    return Err(format!("a CRL entry has an unsupported critical extension {other}"));
                }
                _ => {}
            }
        }
        if let (Some(signed), Some(from)) = (signing_time, invalid_from)
            && signed < from
        {
            return Ok(false);
        }
        match reason {
            CERTIFICATE_HOLD | REMOVE_FROM_CRL => {
                let at = secs(&entry.revocation_date);
                if temporary.is_none_or(|(t, _)| t < at) {
                    temporary = Some((at, reason));
                }
            }
            _ => return Ok(true),
        }
    }
    Ok(temporary.is_some_and(|(_, r)| r == CERTIFICATE_HOLD))
}

/// The revocation status of a verified chain (leaf first, root last) from what was fetched for it,
/// at `now`; `signing_time` is the authentic signing time of a signing authority's signature (an
/// `invalidityDate` after it leaves the signature good), `None` otherwise. As notation-go's
/// `revocationFinalResult`: a revoked certificate anywhere wins, then the one nearest the root whose
/// status is unknown.
pub fn check_chain(chain: &[Vec<u8>], fetched: &Fetched, now: i64, signing_time: Option<i64>) -> Status {
    let subject = |der: &[u8]| certs::facts(der).map(|f| f.subject).unwrap_or_default();
    let mut unknown = None;
    for i in (0..chain.len().saturating_sub(1)).rev() {
        let (der, issuer_der) = (&chain[i], &chain[i + 1]);
        let parsed = Certificate::from_der(der).and_then(|c| Ok((c, Certificate::from_der(issuer_der)?)));
        let (cert, issuer) = match parsed {
            Ok(p) => p,
            Err(e) => return Status::Unknown { subject: subject(der), reason: e.to_string() },
        };
        let responders = ocsp::responders(der).unwrap_or_default();
        let urls = match crl_urls(der) {
            Ok(u) => u,
            Err(e) => {
                unknown.get_or_insert(Status::Unknown { subject: subject(der), reason: e });
                continue;
            }
        };
        // OCSP first; what it cannot say falls back to the CRLs.
        let mut ocsp_said = None;
        if !responders.is_empty() {
            match ocsp_status(der, issuer_der, &responders, fetched, now, signing_time) {
                Ok((Answer::Good, _)) => continue,
                Ok((Answer::Revoked, url)) => {
                    return Status::Revoked { subject: subject(der), source: format!("OCSP {url}") };
                }
                Ok((Answer::Unknown, url)) => {
                    ocsp_said = Some(format!("OCSP {url}: the responder does not know the certificate"));
                }
                Err(reason) => ocsp_said = Some(reason),
            }
        }
        let after_ocsp = |reason: String| match &ocsp_said {
            Some(o) => format!("{o}; {reason}"),
            None => reason,
        };
        if urls.is_empty() {
            if let Some(reason) = ocsp_said.clone() {
                unknown.get_or_insert(Status::Unknown { subject: subject(der), reason });
            }
            continue;
        }
        if cert.tbs_certificate().extensions().is_some_and(|e| e.iter().any(|e| e.extn_id.to_string() == FRESHEST_CRL))
        {
            unknown.get_or_insert(Status::Unknown {
                subject: subject(der),
                reason: after_ocsp("it names a delta CRL (freshestCRL), and delta CRLs are not supported".into()),
            });
            continue;
        }
        for url in urls {
            let said = match fetched.get(&url) {
                None => Err("it was not fetched".to_owned()),
                Some(Err(e)) => Err(e.clone()),
                Some(Ok(crl)) => crl_says_revoked(&cert, &issuer, crl, now, signing_time),
            };
            match said {
                Ok(true) => return Status::Revoked { subject: subject(der), source: format!("CRL {url}") },
                Ok(false) => {}
                Err(reason) => {
                    unknown.get_or_insert(Status::Unknown {
                        subject: subject(der),
                        reason: after_ocsp(format!("CRL {url}: {reason}")),
                    });
                    break;
                }
            }
        }
    }
    unknown.unwrap_or(Status::Good)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint, DnType, IsCa,
        Issuer, KeyIdMethod, KeyPair, RevocationReason, RevokedCertParams, SerialNumber,
    };
    use time::OffsetDateTime;

    /// In 2052: rcgen writes times before 2050 as UTCTime, and an `invalidityDate` must be a
    /// GeneralizedTime (RFC 5280 5.3.2; Go refuses a UTCTime there, and so does this).
    const NOW: i64 = 2_600_000_000;
    const URL: &str = "http://127.0.0.1:9/ca.crl";

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    struct Ca {
        params: CertificateParams,
        key: KeyPair,
        der: Vec<u8>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Ca { params, key, der }
    }

    /// A certificate issued by `ca` with serial `serial`, naming `urls` as CRL distribution points.
    fn leaf(ca: &Ca, serial: u64, urls: &[&str]) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "signer");
        // (rcgen writes no extensions, CRL distribution points included, without one of a few.)
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
        params.serial_number = Some(SerialNumber::from(serial));
        if !urls.is_empty() {
            params.crl_distribution_points =
                vec![CrlDistributionPoint { uris: urls.iter().map(|u| (*u).to_owned()).collect() }];
        }
        params.signed_by(&key, &Issuer::from_params(&ca.params, &ca.key)).unwrap().der().to_vec()
    }

    fn entry(serial: u64, at_: i64, reason: Option<RevocationReason>, invalid: Option<i64>) -> RevokedCertParams {
        RevokedCertParams {
            serial_number: SerialNumber::from(serial),
            revocation_time: at(at_),
            reason_code: reason,
            invalidity_date: invalid.map(at),
        }
    }

    fn crl(ca: &Ca, revoked: Vec<RevokedCertParams>, next_update: i64) -> Vec<u8> {
        let params = CertificateRevocationListParams {
            this_update: at(NOW - 3600),
            next_update: at(next_update),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&Issuer::from_params(&ca.params, &ca.key)).unwrap().der().to_vec()
    }

    fn fetched(url: &str, body: Result<Vec<u8>, String>) -> Fetched {
        Fetched::from([(url.to_owned(), body)])
    }

    #[test]
    fn a_listed_serial_is_revoked_and_an_unlisted_one_is_good() {
        let root = ca("root");
        let chain = vec![leaf(&root, 7, &[URL]), root.der.clone()];
        let list = crl(&root, vec![entry(8, NOW - 60, Some(RevocationReason::KeyCompromise), None)], NOW + 3600);
        assert_eq!(check_chain(&chain, &fetched(URL, Ok(list)), NOW, None), Status::Good);
        let list = crl(&root, vec![entry(7, NOW - 60, None, None)], NOW + 3600);
        assert_eq!(
            check_chain(&chain, &fetched(URL, Ok(list)), NOW, None),
            Status::Revoked { subject: "CN=signer".into(), source: format!("CRL {URL}") }
        );
    }

    #[test]
    fn a_hold_revokes_until_a_later_remove_from_crl() {
        let root = ca("root");
        let chain = vec![leaf(&root, 7, &[URL]), root.der.clone()];
        let hold = entry(7, NOW - 600, Some(RevocationReason::CertificateHold), None);
        let list = crl(&root, vec![hold.clone()], NOW + 3600);
        assert!(matches!(check_chain(&chain, &fetched(URL, Ok(list)), NOW, None), Status::Revoked { .. }));
        let removed = entry(7, NOW - 60, Some(RevocationReason::RemoveFromCrl), None);
        let list = crl(&root, vec![hold, removed], NOW + 3600);
        assert_eq!(check_chain(&chain, &fetched(URL, Ok(list)), NOW, None), Status::Good);
    }

    #[test]
    fn a_signing_authority_signature_made_before_the_invalidity_date_stays_good() {
        let root = ca("root");
        let chain = vec![leaf(&root, 7, &[URL]), root.der.clone()];
        let list =
            crl(&root, vec![entry(7, NOW - 60, Some(RevocationReason::KeyCompromise), Some(NOW - 600))], NOW + 3600);
        let f = fetched(URL, Ok(list));
        assert_eq!(check_chain(&chain, &f, NOW, Some(NOW - 900)), Status::Good);
        assert!(matches!(check_chain(&chain, &f, NOW, Some(NOW - 300)), Status::Revoked { .. }));
        // notary.x509 has no authentic signing time: revoked whenever it was signed.
        assert!(matches!(check_chain(&chain, &f, NOW, None), Status::Revoked { .. }));
        // An invalidityDate written as a UTCTime (in 2040) is malformed.
        let list = crl(&root, vec![entry(7, NOW - 60, None, Some(2_220_000_000))], NOW + 3600);
        assert!(matches!(
            check_chain(&chain, &fetched(URL, Ok(list)), NOW, Some(NOW - 900)),
            Status::Unknown { reason, .. } if reason.contains("expected GeneralizedTime")
        ));
    }

    #[test]
    fn a_crl_that_cannot_be_trusted_leaves_the_status_unknown() {
        let (root, other) = (ca("root"), ca("other"));
        let chain = vec![leaf(&root, 7, &[URL]), root.der.clone()];
        let unknown = |f: Fetched| match check_chain(&chain, &f, NOW, None) {
            Status::Unknown { subject, reason } => {
                assert_eq!(subject, "CN=signer");
                reason
            }
            s => panic!("{s:?}"),
        };
        let expired = crl(&root, Vec::new(), NOW - 1);
        assert!(unknown(fetched(URL, Ok(expired))).contains("the CRL expired at"));
        let forged = crl(&other, vec![], NOW + 3600);
        assert!(unknown(fetched(URL, Ok(forged))).contains("the CRL's issuer is not CN=root"));
        assert!(unknown(fetched(URL, Ok(b"not a crl".to_vec()))).contains("not a DER CRL"));
        assert!(unknown(fetched(URL, Err("connection refused".into()))).contains("connection refused"));
        assert!(unknown(Fetched::new()).contains("it was not fetched"));
    }

    #[test]
    fn every_distribution_point_must_answer() {
        let root = ca("root");
        let second = "http://127.0.0.1:9/second.crl";
        let chain = vec![leaf(&root, 7, &[URL, second]), root.der.clone()];
        let good = crl(&root, Vec::new(), NOW + 3600);
        let mut f = fetched(URL, Ok(good.clone()));
        assert!(
            matches!(check_chain(&chain, &f, NOW, None), Status::Unknown { reason, .. } if reason.contains(second))
        );
        f.insert(second.into(), Ok(good));
        assert_eq!(check_chain(&chain, &f, NOW, None), Status::Good);
        assert_eq!(queries(&chain), vec![Query::Crl(URL.to_owned()), Query::Crl(second.to_owned())]);
    }

    #[test]
    fn a_revoked_intermediate_is_named_and_the_root_is_never_checked() {
        let root = ca("root");
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "intermediate");
        params.serial_number = Some(SerialNumber::from(3u64));
        params.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![URL.into()] }];
        let der = params.signed_by(&key, &Issuer::from_params(&root.params, &root.key)).unwrap().der().to_vec();
        let intermediate = Ca { params, key, der };
        let leaf_url = "http://127.0.0.1:9/intermediate.crl";
        let chain = vec![leaf(&intermediate, 7, &[leaf_url]), intermediate.der.clone(), root.der.clone()];
        assert_eq!(queries(&chain), vec![Query::Crl(leaf_url.to_owned()), Query::Crl(URL.to_owned())]);
        let mut f = fetched(URL, Ok(crl(&root, vec![entry(3, NOW - 60, None, None)], NOW + 3600)));
        f.insert(leaf_url.into(), Ok(crl(&intermediate, Vec::new(), NOW + 3600)));
        assert_eq!(
            check_chain(&chain, &f, NOW, None),
            Status::Revoked { subject: "CN=intermediate".into(), source: format!("CRL {URL}") }
        );
    }

    #[test]
    fn a_certificate_without_distribution_points_cannot_be_revoked() {
        let root = ca("root");
        let chain = vec![leaf(&root, 7, &[]), root.der.clone()];
        assert!(queries(&chain).is_empty());
        assert_eq!(check_chain(&chain, &Fetched::new(), NOW, None), Status::Good);
    }

    proptest::proptest! {
        #[test]
        fn any_crl_bytes_give_a_status_never_a_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let root = ca("root");
            let chain = vec![leaf(&root, 7, &[URL]), root.der.clone()];
            let _ = check_chain(&chain, &fetched(URL, Ok(body)), NOW, None);
        }
    }
}
