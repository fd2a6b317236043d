//! Verifying a JWS notation signature envelope (`application/jose+json`), as notation-go's verifier
//! does for OCI artifacts: the envelope's integrity (base64url, protected headers, the signature by the
//! leaf certificate, the certificate chain), its payload's target artifact, authenticity (a certificate
//! of the chain in the policy's trust stores, and a trusted identity), the authentic signing time,
//! expiry, and each failure enforced or logged as the trust policy's level says. Pure: the trust
//! stores' certificates and "now" are given.

use base64::Engine as _;
use der::{Decode as _, Encode as _};
use serde_json::Value;
use x509_cert::Certificate;

use crate::trustpolicy::{Action, Statement};
use crate::{certs, identity};

/// The JWS envelope media type.
pub const MEDIA_TYPE: &str = "application/jose+json";
/// The payload content type every notation signature has.
pub const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";

/// Largest envelope read (notation-go caps signature blobs at 4 MiB... envelopes are a few KiB).
pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;

/// One verification type that failed, and what the level did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `integrity`, `authenticity`, `authenticTimestamp`, `expiry`, `revocation`.
    pub kind: &'static str,
    /// Why.
    pub reason: String,
    /// Enforced (the verification fails) or logged.
    pub action: Action,
}

/// The outcome of one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the signature is accepted.
    pub verified: bool,
    /// The failures, enforced and logged.
    pub failures: Vec<Failure>,
    /// Said about checks not made (revocation, offline).
    pub notes: Vec<String>,
    /// The signing scheme (`notary.x509` or `notary.x509.signingAuthority`).
    pub scheme: String,
}

/// What the verifier is given besides the envelope.
pub struct Inputs<'a> {
    /// The envelope's media type.
    pub media_type: &'a str,
    /// The artifact's digest (`sha256:…`).
    pub digest: &'a str,
    /// The applicable trust policy statement.
    pub policy: &'a Statement,
    /// Certificates of its `ca:` stores.
    pub ca: &'a [Vec<u8>],
    /// Certificates of its `signingAuthority:` stores.
    pub signing_authority: &'a [Vec<u8>],
    /// Now, Unix seconds.
    pub now: i64,
    /// Annotations the signed payload must carry with these values (`notation verify --user-metadata`).
    pub user_metadata: &'a [(String, String)],
    /// Certificates of its `tsa:` stores: the roots a timestamp countersignature must chain to.
    pub tsa: &'a [Vec<u8>],
    /// The artifact's descriptor as the registry served it, when known: the payload's
    /// `targetArtifact` must then equal it in media type and size too, not only in digest (as
    /// notation-go compares descriptors). `None` when only a digest is given (`verify-notation`).
    pub target: Option<Target<'a>>,
    /// The CRLs fetched for the signing chain ([`crate::revocation::queries`]), when revocation is
    /// checked online; `None` offline, and the outcome then says revocation was not checked.
    pub revocation: Option<&'a crate::revocation::Fetched>,
}

/// The media type and size of the artifact a signature must be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// `application/vnd.oci.image.index.v1+json`, …
    pub media_type: &'a str,
    /// Its size in bytes.
    pub size: u64,
}

/// What an envelope says about its signature, whatever its format (JWS or COSE).
pub(crate) struct Signer {
    /// `notary.x509` or `notary.x509.signingAuthority`.
    pub(crate) scheme: String,
    /// The scheme's signing time (`signingTime`, or `authenticSigningTime`), Unix seconds.
    pub(crate) signing_time: i64,
    /// `io.cncf.notary.expiry`, Unix seconds.
    pub(crate) expiry: Option<i64>,
    /// The certificates, leaf first (verified: the signature and the chain hold).
    pub(crate) chain: Vec<Vec<u8>>,
    /// The raw signature: what a timestamp countersignature timestamps.
    pub(crate) signature: Vec<u8>,
    /// `io.cncf.notary.timestampSignature`: a DER RFC 3161 `TimeStampToken`.
    pub(crate) timestamp: Option<Vec<u8>>,
}

pub(crate) struct Parsed {
    signer: Signer,
    target_digest: String,
    target_media_type: Option<String>,
    target_size: Option<u64>,
    annotations: serde_json::Map<String, Value>,
}

fn b64url(field: &str, s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| format!("{field} is not base64url without padding: {e}"))
}

fn time(header: &Value, key: &str) -> Result<Option<i64>, String> {
    match header.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => rfc3339(s).map(Some).ok_or_else(|| format!("{key} {s:?} is not an RFC 3339 time")),
        Some(_) => Err(format!("{key} is not a string")),
    }
}

/// An RFC 3339 time with `Z` or a `±HH:MM` offset, as Unix seconds.
fn rfc3339(s: &str) -> Option<i64> {
    if let Some(utc) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return tollgate_verify::tlog::rfc3339_millis(&format!("{utc}Z")).map(|ms| ms.div_euclid(1000));
    }
    let (base, offset) = s.split_at_checked(s.len().checked_sub(6)?)?;
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = offset.get(1..)?.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    let utc = tollgate_verify::tlog::rfc3339_millis(&format!("{base}Z"))?.div_euclid(1000);
    Some(utc - sign * (h * 3600 + m * 60))
}

/// The integrity part: everything about the envelope itself. An error is an integrity failure.
fn parse(envelope: &[u8]) -> Result<Parsed, String> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(format!("the envelope is larger than {MAX_ENVELOPE_BYTES} bytes"));
    }
    let env: Value = serde_json::from_slice(envelope).map_err(|e| format!("the envelope is not JSON: {e}"))?;
    let field = |k: &str| env.get(k).and_then(Value::as_str).ok_or_else(|| format!("the envelope has no {k}"));
    let (protected_b64, payload_b64, signature_b64) = (field("protected")?, field("payload")?, field("signature")?);
    let protected: Value = serde_json::from_slice(&b64url("protected", protected_b64)?)
        .map_err(|e| format!("the protected header is not JSON: {e}"))?;
    let payload = b64url("payload", payload_b64)?;
    let signature = b64url("signature", signature_b64)?;
    let alg = protected.get("alg").and_then(Value::as_str).ok_or("the protected header has no alg")?;
    if protected.get("cty").and_then(Value::as_str) != Some(PAYLOAD_TYPE) {
        return Err(format!("the protected header's cty is not {PAYLOAD_TYPE}"));
    }
    let scheme = protected
        .get("io.cncf.notary.signingScheme")
        .and_then(Value::as_str)
        .ok_or("the protected header has no io.cncf.notary.signingScheme")?
        .to_owned();
    // Before anything a plugin would have processed (its own crit headers, say): tollgate runs none.
    if let Some(plugin) = protected.get("io.cncf.notary.verificationPlugin") {
        return Err(format!(
            "the signature names the verification plugin {plugin}; tollgate runs no notation plugins, so it cannot verify it"
        ));
    }
    let crit: Vec<String> = protected
        .get("crit")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned)).collect())
        .unwrap_or_default();
    let (signing_time, expiry) =
        notary_headers(&scheme, &crit, &|k| protected.get(k).is_some(), &|k| time(&protected, k))?;
    let x5c = env.pointer("/header/x5c").and_then(Value::as_array).ok_or("the unprotected header has no x5c chain")?;
    let chain = x5c
        .iter()
        .map(|c| {
            let s = c.as_str().ok_or("an x5c entry is not a string")?;
            base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("an x5c entry is not base64: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = chain.first().ok_or("the x5c chain is empty")?;
    let timestamp = match env.pointer("/header/io.cncf.notary.timestampSignature") {
        None => None,
        Some(Value::String(t)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(|e| format!("io.cncf.notary.timestampSignature is not base64: {e}"))?,
        ),
        Some(_) => return Err("io.cncf.notary.timestampSignature is not a string".into()),
    };
    let input = format!("{protected_b64}.{payload_b64}");
    verify_signature(alg, leaf, input.as_bytes(), &signature)?;
    verify_chain(&chain)?;
    parsed_payload(Signer { scheme, signing_time, expiry, chain, signature, timestamp }, &payload)
}

/// The Notary Project's rules for the protected header, the same in JWS and COSE: `crit` lists the
/// signing scheme, names only headers notation knows and the header has, and lists the expiry and
/// the authentic signing time whenever they are set; the scheme's signing time is present. `has` and
/// `time` read the header; returns the signing time and the expiry.
pub(crate) fn notary_headers(
    scheme: &str,
    crit: &[String],
    has: &dyn Fn(&str) -> bool,
    time: &dyn Fn(&str) -> Result<Option<i64>, String>,
) -> Result<(i64, Option<i64>), String> {
    const KNOWN: [&str; 5] = [
        "io.cncf.notary.signingScheme",
        "io.cncf.notary.expiry",
        "io.cncf.notary.authenticSigningTime",
        "io.cncf.notary.verificationPlugin",
        "io.cncf.notary.verificationPluginMinVersion",
    ];
    let listed = |k: &str| crit.iter().any(|c| c == k);
    if !listed("io.cncf.notary.signingScheme") {
        return Err("crit does not list io.cncf.notary.signingScheme".into());
    }
    for c in crit {
        if !KNOWN.contains(&c.as_str()) || !has(c) {
            return Err(format!("crit lists {c:?}, which notation does not know or the header lacks"));
        }
    }
    for required in ["io.cncf.notary.expiry", "io.cncf.notary.authenticSigningTime"] {
        if has(required) && !listed(required) {
            return Err(format!("{required} is set but not listed in crit"));
        }
    }
    let signing_time = match scheme {
        "notary.x509" => time("io.cncf.notary.signingTime")?.ok_or("notary.x509 needs io.cncf.notary.signingTime")?,
        "notary.x509.signingAuthority" => time("io.cncf.notary.authenticSigningTime")?
            .ok_or("notary.x509.signingAuthority needs io.cncf.notary.authenticSigningTime")?,
        other => return Err(format!("unknown signing scheme {other:?}")),
    };
    Ok((signing_time, time("io.cncf.notary.expiry")?))
}

/// The rest of an envelope whose signature and chain verified: its payload's target artifact.
pub(crate) fn parsed_payload(signer: Signer, payload: &[u8]) -> Result<Parsed, String> {
    let payload: Value = serde_json::from_slice(payload).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let target_digest = payload
        .pointer("/targetArtifact/digest")
        .and_then(Value::as_str)
        .ok_or("the payload has no targetArtifact.digest")?
        .to_owned();
    let target_media_type = payload.pointer("/targetArtifact/mediaType").and_then(Value::as_str).map(str::to_owned);
    let target_size = payload.pointer("/targetArtifact/size").and_then(Value::as_u64);
    let annotations =
        payload.pointer("/targetArtifact/annotations").and_then(Value::as_object).cloned().unwrap_or_default();
    Ok(Parsed { signer, target_digest, target_media_type, target_size, annotations })
}

/// The public key of a certificate, as ring takes it, and the key's kind.
fn key_of(der: &[u8]) -> Result<(String, Vec<u8>), String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("the signing certificate: {e}"))?;
    let spki = cert.tbs_certificate().subject_public_key_info();
    let oid = spki.algorithm.oid.to_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
        .map(|o| o.to_string());
    let kind = match (oid.as_str(), curve.as_deref()) {
        ("1.2.840.113549.1.1.1", _) => "rsa",
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => "p256",
        ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => "p384",
        _ => return Err(format!("the signing key ({oid}) is not RSA, P-256 or P-384")),
    };
    Ok((kind.to_owned(), spki.subject_public_key.raw_bytes().to_vec()))
}

pub(crate) fn verify_signature(alg: &str, leaf: &[u8], message: &[u8], signature: &[u8]) -> Result<(), String> {
    use ring::signature as s;
    let (kind, key) = key_of(leaf)?;
    let algorithm: &'static dyn s::VerificationAlgorithm = match (alg, kind.as_str()) {
        ("PS256", "rsa") => &s::RSA_PSS_2048_8192_SHA256,
        ("PS384", "rsa") => &s::RSA_PSS_2048_8192_SHA384,
        ("PS512", "rsa") => &s::RSA_PSS_2048_8192_SHA512,
        ("ES256", "p256") => &s::ECDSA_P256_SHA256_FIXED,
        ("ES384", "p384") => &s::ECDSA_P384_SHA384_FIXED,
        (alg, kind) => {
            return Err(format!("signature algorithm {alg} does not go with a {kind} key, or is not supported"));
        }
    };
    s::UnparsedPublicKey::new(algorithm, &key)
        .verify(message, signature)
        .map_err(|_| "the signature does not verify with the signing certificate's key".to_owned())
}

/// Each certificate is issued and signed by the next; the last is self-signed; all but the leaf are
/// CAs; an empty chain is none.
pub fn verify_chain(chain: &[Vec<u8>]) -> Result<(), String> {
    if chain.is_empty() {
        return Err("the certificate chain is empty".into());
    }
    for (i, der) in chain.iter().enumerate() {
        let facts = certs::facts(der).map_err(|e| format!("certificate {i} of the chain: {e}"))?;
        if i > 0 && !facts.is_ca {
            return Err(format!(
                "certificate {i} of the chain ({}) issues certificates but is not a CA",
                facts.subject
            ));
        }
        match chain.get(i + 1) {
            Some(issuer) => issued_by(der, issuer).map_err(|e| format!("certificate {i} of the chain: {e}"))?,
            None if !(facts.self_issued && facts.self_signed) => {
                return Err(format!("the chain does not end in a self-signed root ({})", facts.subject));
            }
            None => {}
        }
    }
    Ok(())
}

fn issued_by(der: &[u8], issuer: &[u8]) -> Result<(), String> {
    let m = |e: der::Error| e.to_string();
    let cert = Certificate::from_der(der).map_err(m)?;
    let parent = Certificate::from_der(issuer).map_err(m)?;
    if cert.tbs_certificate().issuer().to_der().map_err(m)? != parent.tbs_certificate().subject().to_der().map_err(m)? {
        return Err("its issuer is not the next certificate's subject".into());
    }
    let parent_spki = parent.tbs_certificate().subject_public_key_info().to_der().map_err(m)?;
    if certs::signed_by(&cert, &parent_spki)? {
        Ok(())
    } else {
        Err("its signature does not verify with the next certificate's key".into())
    }
}

fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let c = Certificate::from_der(der).ok()?;
    let v = c.tbs_certificate().validity();
    let secs = |t: x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs()).ok();
    Some((secs(v.not_before)?, secs(v.not_after)?))
}

/// The authentic-timestamp step, as notation-go's `verifyTimestamp`: a signing authority's own
/// signing time must fall inside its chain's validity. For `notary.x509`, when the statement names a
/// `tsa:` store (and `verifyTimestamp` is `always`, or `afterCertExpiry` and a certificate has
/// expired), the envelope must carry a timestamp countersignature over its signature that verifies
/// and chains to the store, and that timestamp, with its accuracy, must fall inside every chain
/// certificate's validity; otherwise the chain must be valid now. `Ok(Some(note))` says what a
/// timestamp vouched for.
fn authentic_timestamp(p: &Parsed, inputs: &Inputs<'_>) -> Result<Option<String>, String> {
    let subject = |c: &[u8]| certs::facts(c).map(|f| f.subject).unwrap_or_default();
    if p.signer.scheme != "notary.x509" {
        let at = p.signer.signing_time;
        return match p.signer.chain.iter().find(|c| validity(c).is_none_or(|(from, to)| at < from || at > to)) {
            Some(bad) => Err(format!("the certificate {:?} is not valid at the signing time", subject(bad))),
            None => Ok(None),
        };
    }
    let tsa_configured =
        inputs.policy.trust_stores.iter().any(|s| s.split_once(':').is_some_and(|(kind, _)| kind == "tsa"));
    let expired = p.signer.chain.iter().any(|c| validity(c).is_none_or(|(_, to)| inputs.now > to));
    let after_expiry_only = inputs.policy.signature_verification.verify_timestamp == "afterCertExpiry";
    if !tsa_configured || (after_expiry_only && !expired) {
        return match p
            .signer
            .chain
            .iter()
            .find(|c| validity(c).is_none_or(|(from, to)| inputs.now < from || inputs.now > to))
        {
            Some(bad) => Err(format!("the certificate {:?} is not valid now", subject(bad))),
            None => Ok(None),
        };
    }
    let token =
        p.signer.timestamp.as_deref().ok_or("no timestamp countersignature was found in the signature envelope")?;
    let stamp = tollgate_verify::tsa::verify_token(token, &p.signer.signature, inputs.tsa)
        .map_err(|e| format!("the timestamp countersignature does not verify: {e}"))?;
    for c in &p.signer.chain {
        let (from, to) =
            validity(c).ok_or_else(|| format!("the certificate {:?} has no readable validity", subject(c)))?;
        if stamp.earliest() < from.saturating_mul(1000) {
            return Err(format!(
                "the timestamp ({}) can be before the validity of the certificate {:?}, which starts at {}",
                tollgate_verify::tlog::format_rfc3339(stamp.millis.div_euclid(1000)),
                subject(c),
                tollgate_verify::tlog::format_rfc3339(from)
            ));
        }
        if stamp.latest() > to.saturating_mul(1000) {
            return Err(format!(
                "the timestamp ({}) can be after the validity of the certificate {:?}, which ended at {}",
                tollgate_verify::tlog::format_rfc3339(stamp.millis.div_euclid(1000)),
                subject(c),
                tollgate_verify::tlog::format_rfc3339(to)
            ));
        }
    }
    Ok(Some(format!(
        "timestamped at {} by a trusted timestamp authority{}",
        tollgate_verify::tlog::format_rfc3339(stamp.millis.div_euclid(1000)),
        if expired { "; the signing certificate has expired since, which the timestamp forgives" } else { "" }
    )))
}

/// Verifies one envelope for an artifact under a trust policy statement.
pub fn verify(envelope: &[u8], inputs: &Inputs<'_>) -> Outcome {
    let level = match inputs.policy.signature_verification.level() {
        Ok(l) => l,
        Err(e) => {
            let failures = vec![Failure { kind: "integrity", reason: e.0, action: Action::Enforce }];
            return Outcome { verified: false, failures, notes: Vec::new(), scheme: String::new() };
        }
    };
    let mut out = Outcome { verified: true, failures: Vec::new(), notes: Vec::new(), scheme: String::new() };
    if level.integrity == Action::Skip {
        out.notes.push("signature verification is skipped by the trust policy".into());
        return out;
    }
    let fail = |out: &mut Outcome, kind: &'static str, reason: String, action: Action| {
        if action == Action::Skip {
            return;
        }
        if action == Action::Enforce {
            out.verified = false;
        }
        out.failures.push(Failure { kind, reason, action });
    };
    let parsed = match inputs.media_type {
        MEDIA_TYPE => parse(envelope),
        crate::cose::MEDIA_TYPE => crate::cose::parse(envelope),
        other => Err(format!(
            "envelope media type {other:?} is not a notation signature envelope ({MEDIA_TYPE} or {})",
            crate::cose::MEDIA_TYPE
        )),
    };
    let p = match parsed {
        Ok(p) => p,
        Err(e) => {
            fail(&mut out, "integrity", e, Action::Enforce);
            return out;
        }
    };
    out.scheme = p.signer.scheme.clone();
    if p.target_digest != inputs.digest {
        fail(
            &mut out,
            "integrity",
            format!("the signature is for {}, not {}", p.target_digest, inputs.digest),
            Action::Enforce,
        );
        return out;
    }
    if let Some(t) = inputs.target {
        let (media_type, size) = (p.target_media_type.as_deref(), p.target_size);
        if media_type != Some(t.media_type) || size != Some(t.size) {
            fail(
                &mut out,
                "integrity",
                format!(
                    "the signature's target is a {} of {} bytes; the artifact is a {} of {} bytes",
                    media_type.unwrap_or("(no media type)"),
                    size.map_or_else(|| "(no size)".to_owned(), |s| s.to_string()),
                    t.media_type,
                    t.size
                ),
                Action::Enforce,
            );
            return out;
        }
    }
    // User metadata the verifier asked for: enforced whatever the level (as notation's).
    for (key, want) in inputs.user_metadata {
        match p.annotations.get(key).and_then(Value::as_str) {
            Some(got) if got == want => {}
            got => {
                let had = got.map_or_else(|| "does not carry it".to_owned(), |g| format!("has {g:?}"));
                fail(
                    &mut out,
                    "userMetadata",
                    format!("the signed payload must carry {key}={want:?}; it {had}"),
                    Action::Enforce,
                );
            }
        }
    }
    // Authenticity: a chain certificate is trusted, and the leaf is a trusted identity.
    let stores = if p.signer.scheme == "notary.x509" { inputs.ca } else { inputs.signing_authority };
    let trusted_cert = p.signer.chain.iter().any(|c| stores.iter().any(|t| t == c));
    if !trusted_cert {
        fail(
            &mut out,
            "authenticity",
            "no certificate of the signature's chain is in the trust policy's trust stores".into(),
            level.authenticity,
        );
    } else {
        match identity::trusted(&inputs.policy.trusted_identities, &p.signer.chain[0]) {
            Ok(true) => {}
            Ok(false) => fail(
                &mut out,
                "authenticity",
                "the signing certificate does not match the trust policy's trusted identities".into(),
                level.authenticity,
            ),
            Err(e) => fail(&mut out, "authenticity", e.0, level.authenticity),
        }
    }
    // The signing time: for a signing authority, its own time must fall inside the chain's validity;
    // a notary.x509 chain must be valid now, or at the time of a trusted timestamp countersignature.
    match authentic_timestamp(&p, inputs) {
        Ok(Some(note)) => out.notes.push(note),
        Ok(None) => {}
        Err(why) => fail(&mut out, "authenticTimestamp", why, level.authentic_timestamp),
    }
    if let Some(expiry) = p.signer.expiry.filter(|e| inputs.now > *e) {
        fail(
            &mut out,
            "expiry",
            format!("the signature expired at {}", tollgate_verify::tlog::format_rfc3339(expiry)),
            level.expiry,
        );
    }
    match inputs.revocation {
        _ if level.revocation == Action::Skip => {}
        None => out.notes.push("revocation was not checked (offline; OCSP and CRL checks are not enabled)".into()),
        Some(fetched) => {
            use crate::revocation::{Status, check_chain};
            let authentic = (p.signer.scheme != "notary.x509").then_some(p.signer.signing_time);
            match check_chain(&p.signer.chain, fetched, inputs.now, authentic) {
                Status::Good => out.notes.push("revocation checked: no certificate of the chain is revoked".into()),
                Status::Revoked { subject, source } => fail(
                    &mut out,
                    "revocation",
                    format!("certificate with subject {subject:?} is revoked ({source})"),
                    level.revocation,
                ),
                Status::Unknown { subject, reason } => fail(
                    &mut out,
                    "revocation",
                    format!("certificate with subject {subject:?}: revocation status is unknown ({reason})"),
                    level.revocation,
                ),
            }
        }
    }
    out
}

/// What to fetch to check the revocation of an envelope's signing chain: nothing unless the
/// envelope's signature and chain verify and the chain holds one of `anchors` (the trust stores'
/// certificates), so that an untrusted signature never makes the verifier fetch what it names.
pub fn revocation_queries(envelope: &[u8], media_type: &str, anchors: &[Vec<u8>]) -> Vec<crate::revocation::Query> {
    let parsed = match media_type {
        MEDIA_TYPE => parse(envelope),
        crate::cose::MEDIA_TYPE => crate::cose::parse(envelope),
        _ => return Vec::new(),
    };
    match parsed {
        Ok(p) if p.signer.chain.iter().any(|c| anchors.contains(c)) => crate::revocation::queries(&p.signer.chain),
        _ => Vec::new(),
    }
}
