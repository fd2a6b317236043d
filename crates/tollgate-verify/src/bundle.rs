//! Sigstore bundles (v0.1–v0.3) for blobs, verified against a trusted root.
//!
//! Supported: Rekor v1 entries (`hashedrekord` 0.0.1, `dsse` 0.0.1, `intoto`
//! 0.0.2) with their signed entry timestamp, Merkle inclusion proof and signed
//! checkpoint; Rekor v2 entries (`hashedrekord` 0.0.2, `dsse` 0.0.2) with
//! their inclusion proof and signed-note checkpoint; RFC 3161 timestamps from
//! the trusted root's timestamp authorities; Fulcio certificates (chain to a
//! trusted CA at every verified time, SAN and issuer checked exactly) and
//! managed keys; message signatures and DSSE envelopes with in-toto subjects;
//! embedded SCTs checked against the trusted CT logs.
//!
//! Time: a signature counts as made at a *verified* time only — a Rekor v1
//! integration time covered by a signed entry timestamp, or an RFC 3161
//! timestamp of the signature. An integration time without a signed entry
//! timestamp is not signed by anyone and counts for nothing (as in
//! sigstore-go). At least one verified time is required, none may be in the
//! future, and the certificate must be valid at each. Every timestamp a
//! bundle carries must verify; tollgate does not skip evidence it cannot check.

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::keys::{HashAlgorithm, KeyAlgorithm, PublicKey};
use crate::tlog::{self, rfc3339_millis};
use crate::x509;

/// A bundle was refused. Every variant says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not a well-formed bundle or trusted root.
    #[error("malformed {0}")]
    Malformed(String),
    /// Well-formed, but uses something tollgate does not verify yet.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A transparency-log check failed.
    #[error("transparency log: {0}")]
    Log(String),
    /// The certificate is not trusted, or not for the expected identity.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The signature or the log entry does not match the artifact.
    #[error("signature: {0}")]
    Signature(String),
    /// An RFC 3161 timestamp does not verify, or no verified time exists.
    #[error("timestamp: {0}")]
    Timestamp(String),
}

/// At most this many log entries and this many timestamps per bundle (as sigstore-go).
const MAX_EVIDENCE: usize = 32;

fn malformed(what: impl Into<String>) -> BundleError {
    BundleError::Malformed(what.into())
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>, BundleError> {
    crate::decode_base64(s).map_err(|_| malformed(format!("{what}: invalid base64")))
}

/// A parsed trusted root (`trusted_root.json`).
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    tlogs: Vec<LogKey>,
    ctlogs: Vec<LogKey>,
    cas: Vec<Authority>,
    tsas: Vec<Authority>,
}

#[derive(Debug, Clone)]
struct LogKey {
    key: PublicKey,
    key_id: Vec<u8>,
    start_ms: i64,
    end_ms: Option<i64>,
}

#[derive(Debug, Clone)]
struct Authority {
    chain: Vec<Vec<u8>>,
    start_ms: i64,
    end_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawCa>,
    #[serde(default)]
    timestamp_authorities: Vec<RawCa>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    public_key: RawKey,
    log_id: RawLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    raw_bytes: Option<String>,
    valid_for: Option<RawValidity>,
}

#[derive(Deserialize)]
struct RawValidity {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    cert_chain: RawChain,
    valid_for: Option<RawValidity>,
}

#[derive(Deserialize)]
struct RawChain {
    #[serde(default)]
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

fn validity(v: Option<&RawValidity>, what: &str) -> Result<(i64, Option<i64>), BundleError> {
    let v = v.ok_or_else(|| malformed(format!("trusted root: {what} has no validFor")))?;
    let start = v
        .start
        .as_deref()
        .and_then(rfc3339_millis)
        .ok_or_else(|| malformed(format!("trusted root: {what} has no valid validFor.start")))?;
    let end = match &v.end {
        Some(e) => Some(rfc3339_millis(e).ok_or_else(|| malformed(format!("trusted root: {what}: bad validFor.end")))?),
        None => None,
    };
    Ok((start, end))
}

fn within(t_ms: i64, start: i64, end: Option<i64>) -> bool {
    t_ms >= start && end.is_none_or(|e| t_ms <= e)
}

impl TrustedRoot {
    /// Every certificate of the Fulcio CAs' chains (DER), to trust as roots for
    /// cosign keyless `.sig` signatures (containers/image's `fulcio.caPath` has the same role).
    pub fn fulcio_certificates(&self) -> Vec<Vec<u8>> {
        self.cas.iter().flat_map(|a| a.chain.iter().cloned()).collect()
    }

    /// The transparency logs' ECDSA keys: what signs a cosign signature's Rekor SET.
    pub fn rekor_set_keys(&self) -> Vec<PublicKey> {
        self.tlogs
            .iter()
            .filter(|l| matches!(l.key.algorithm(), KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384))
            .map(|l| l.key.clone())
            .collect()
    }

    /// Parses `trusted_root.json`. Every log key must have a validity start.
    pub fn parse(bytes: &[u8]) -> Result<TrustedRoot, BundleError> {
        let raw: RawRoot = serde_json::from_slice(bytes).map_err(|e| malformed(format!("trusted root: {e}")))?;
        // Transparency-log keys must all parse; a CT-log key tollgate cannot read
        // (e.g. PKCS#1 RSA) is skipped: it can only fail to verify an SCT.
        let logs = |list: &[RawLog], name: &str, strict: bool| -> Result<Vec<LogKey>, BundleError> {
            let mut out = Vec::new();
            for (i, l) in list.iter().enumerate() {
                let what = format!("{name}[{i}]");
                let (start_ms, end_ms) = validity(l.public_key.valid_for.as_ref(), &what)?;
                let der = b64(l.public_key.raw_bytes.as_deref().unwrap_or_default(), &what)?;
                let key = match PublicKey::from_spki_der(&der) {
                    Ok(k) => k,
                    Err(_) if !strict => continue,
                    Err(e) => return Err(malformed(format!("{what}: {e}"))),
                };
                out.push(LogKey { key, key_id: b64(&l.log_id.key_id, &what)?, start_ms, end_ms });
            }
            Ok(out)
        };
        let tlogs = logs(&raw.tlogs, "tlogs", true)?;
        let ctlogs = logs(&raw.ctlogs, "ctlogs", false)?;
        let authorities = |list: &[RawCa], name: &str| -> Result<Vec<Authority>, BundleError> {
            let mut out = Vec::new();
            for (i, c) in list.iter().enumerate() {
                let what = format!("{name}[{i}]");
                let (start_ms, end_ms) = validity(c.valid_for.as_ref(), &what)?;
                let chain = c
                    .cert_chain
                    .certificates
                    .iter()
                    .map(|r| b64(&r.raw_bytes, &what))
                    .collect::<Result<Vec<_>, _>>()?;
                if chain.is_empty() {
                    return Err(malformed(format!("{what} has no certificates")));
                }
                out.push(Authority { chain, start_ms, end_ms });
            }
            Ok(out)
        };
        let cas = authorities(&raw.certificate_authorities, "certificateAuthorities")?;
        let tsas = authorities(&raw.timestamp_authorities, "timestampAuthorities")?;
        Ok(TrustedRoot { tlogs, ctlogs, cas, tsas })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: String,
    verification_material: RawMaterial,
    message_signature: Option<RawMessageSignature>,
    dsse_envelope: Option<RawDsse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    x509_certificate_chain: Option<RawChain>,
    certificate: Option<RawCert>,
    public_key: Option<serde_json::Value>,
    #[serde(default)]
    tlog_entries: Vec<RawEntry>,
    timestamp_verification_data: Option<RawTimestampData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimestampData {
    #[serde(default)]
    rfc3161_timestamps: Vec<RawTimestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimestamp {
    signed_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    log_index: String,
    log_id: RawLogId,
    kind_version: RawKindVersion,
    integrated_time: Option<String>,
    inclusion_promise: Option<RawPromise>,
    inclusion_proof: Option<RawProof>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
struct RawKindVersion {
    kind: String,
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPromise {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProof {
    log_index: String,
    root_hash: String,
    tree_size: String,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Option<RawCheckpoint>,
}

#[derive(Deserialize)]
struct RawCheckpoint {
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessageSignature {
    message_digest: Option<RawDigest>,
    signature: String,
}

#[derive(Deserialize)]
struct RawDigest {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDsse {
    payload: String,
    payload_type: String,
    signatures: Vec<RawDsseSig>,
}

#[derive(Deserialize)]
struct RawDsseSig {
    sig: String,
}

/// What the signer must be.
#[derive(Debug, Clone, Copy)]
pub enum Expected<'a> {
    /// A Fulcio certificate for this SAN (URI or email) and OIDC issuer.
    Identity {
        /// Expected SAN.
        san: crate::x509::San<'a>,
        /// Expected OIDC issuer.
        issuer: &'a str,
    },
    /// A managed key.
    Key(&'a PublicKey),
}

/// The artifact: its bytes, or only its SHA-256 (DSSE bundles only).
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    /// The artifact itself.
    Bytes(&'a [u8]),
    /// Its SHA-256.
    Sha256(&'a [u8; 32]),
}

/// A verified bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The earliest verified time the signature existed (Unix seconds).
    pub signed_at: i64,
    /// What vouches for `signed_at`.
    pub time_source: TimeSource,
    /// Who signed (SAN via issuer, or the key fingerprint).
    pub signer: String,
    /// For a DSSE bundle: what the signed statement says it is. `None` for a
    /// message signature.
    pub statement: Option<Statement>,
}

/// What a DSSE bundle's signed in-toto statement says it is, for policies
/// that must tell a signature from an attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The envelope's `payloadType` (covered by the signature).
    pub payload_type: String,
    /// The statement's `_type`, or empty.
    pub statement_type: String,
    /// The statement's `predicateType`, or empty.
    pub predicate_type: String,
}

/// What vouches for a signature's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSource {
    /// A Rekor v1 integration time under a signed entry timestamp.
    TransparencyLog,
    /// An RFC 3161 timestamp from a trusted timestamp authority.
    TimestampAuthority,
}

impl std::fmt::Display for TimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeSource::TransparencyLog => "logged at",
            TimeSource::TimestampAuthority => "timestamped at",
        })
    }
}

enum Signer {
    Cert { leaf: Vec<u8>, info: x509::LeafInfo },
    Key(PublicKey),
}

impl Signer {
    fn key(&self) -> &PublicKey {
        match self {
            Signer::Cert { info, .. } => &info.public_key,
            Signer::Key(key) => key,
        }
    }
}

/// Verifies `bundle` for `artifact` at time `now` (Unix seconds).
pub fn verify(
    bundle: &[u8],
    root: &TrustedRoot,
    artifact: Artifact<'_>,
    expected: Expected<'_>,
    now: u64,
) -> Result<Verified, BundleError> {
    let raw: RawBundle = serde_json::from_slice(bundle).map_err(|e| malformed(format!("bundle: {e}")))?;
    let version = match raw.media_type.as_str() {
        "application/vnd.dev.sigstore.bundle+json;version=0.1" => 1,
        "application/vnd.dev.sigstore.bundle+json;version=0.2" => 2,
        "application/vnd.dev.sigstore.bundle+json;version=0.3" | "application/vnd.dev.sigstore.bundle.v0.3+json" => 3,
        other => return Err(BundleError::Unsupported(format!("bundle media type {other:?}"))),
    };
    let vm = &raw.verification_material;
    let signer = match expected {
        Expected::Key(k) => {
            if vm.public_key.is_none() {
                return Err(BundleError::Certificate("a key was given, but the bundle carries a certificate".into()));
            }
            Signer::Key(k.clone())
        }
        Expected::Identity { .. } => {
            let leaf = match (version, &vm.x509_certificate_chain, &vm.certificate) {
                (1 | 2, Some(chain), _) => {
                    let certs = chain
                        .certificates
                        .iter()
                        .map(|c| b64(&c.raw_bytes, "certificate"))
                        .collect::<Result<Vec<_>, _>>()?;
                    if certs.iter().any(|c| x509::is_self_issued(c).unwrap_or(false)) {
                        return Err(BundleError::Certificate("the bundle's chain contains a root certificate".into()));
                    }
                    certs.into_iter().next().ok_or_else(|| malformed("bundle: empty certificate chain"))?
                }
                (3, _, Some(c)) => b64(&c.raw_bytes, "certificate")?,
                _ => return Err(BundleError::Certificate("the bundle carries no signing certificate".into())),
            };
            let info = x509::leaf_info(&leaf).map_err(|e| BundleError::Certificate(e.to_string()))?;
            Signer::Cert { leaf, info }
        }
    };

    // The signed content, and what the log entry must record about it.
    let artifact_sha = match artifact {
        Artifact::Bytes(b) => <[u8; 32]>::from(Sha256::digest(b)),
        Artifact::Sha256(d) => *d,
    };
    let mut statement_info = None;
    let content = match (&raw.message_signature, &raw.dsse_envelope) {
        (Some(m), None) => {
            let sig = b64(&m.signature, "messageSignature.signature")?;
            match artifact {
                Artifact::Bytes(bytes) => {
                    if let Some(d) = &m.message_digest {
                        let logged = b64(&d.digest, "messageDigest")?;
                        if hash_named(&d.algorithm).map(|h| h.digest(bytes)).as_deref() != Some(logged.as_slice()) {
                            return Err(BundleError::Signature(
                                "the bundle's message digest is not the artifact's".into(),
                            ));
                        }
                    }
                    signer.key().verify(bytes, &sig).map_err(|_| {
                        BundleError::Signature("the signature does not verify over the artifact".into())
                    })?;
                    Content::Message { sig, artifact: Some(bytes) }
                }
                // Only the digest is known: the message digest, if given, must be
                // it, and the signature is checked over it (ECDSA; see
                // `PublicKey::verify_sha256_prehash` for what cannot be).
                Artifact::Sha256(d) => {
                    if let Some(md) = &m.message_digest {
                        if hash_named(&md.algorithm) != Some(HashAlgorithm::Sha256) {
                            return Err(BundleError::Unsupported(format!(
                                "the bundle's message digest is {}, and only the artifact's SHA-256 is known: \
                                 give the artifact",
                                md.algorithm
                            )));
                        }
                        if b64(&md.digest, "messageDigest")? != d.as_slice() {
                            return Err(BundleError::Signature(
                                "the bundle's message digest is not the artifact's".into(),
                            ));
                        }
                    }
                    signer.key().verify_sha256_prehash(d, &sig).map_err(|e| match e {
                        crate::keys::PrehashError::Unsupported(why) => BundleError::Unsupported(why.into()),
                        _ => BundleError::Signature("the signature does not verify over the artifact's digest".into()),
                    })?;
                    Content::Message { sig, artifact: None }
                }
            }
        }
        (None, Some(d)) => {
            let payload = b64(&d.payload, "dsseEnvelope.payload")?;
            let pae = pae(&d.payload_type, &payload);
            let sigs = d.signatures.iter().map(|s| b64(&s.sig, "dsse signature")).collect::<Result<Vec<_>, _>>()?;
            if !sigs.iter().any(|s| signer.key().verify(&pae, s).is_ok()) {
                return Err(BundleError::Signature("no DSSE signature verifies".into()));
            }
            let statement: serde_json::Value =
                serde_json::from_slice(&payload).map_err(|e| malformed(format!("in-toto statement: {e}")))?;
            let want = hex::encode(artifact_sha);
            let subjects = statement.get("subject").and_then(|s| s.as_array()).cloned().unwrap_or_default();
            if !subjects.iter().any(|s| s.pointer("/digest/sha256").and_then(|v| v.as_str()) == Some(want.as_str())) {
                return Err(BundleError::Signature("the artifact is not a subject of the in-toto statement".into()));
            }
            let field = |k: &str| statement.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            statement_info = Some(Statement {
                payload_type: d.payload_type.clone(),
                statement_type: field("_type"),
                predicate_type: field("predicateType"),
            });
            Content::Dsse { payload_type: d.payload_type.clone(), payload, pae, sigs }
        }
        _ => return Err(malformed("bundle: needs exactly one of messageSignature and dsseEnvelope")),
    };

    // RFC 3161 timestamps: each must verify.
    let stamps = vm.timestamp_verification_data.as_ref().map(|d| d.rfc3161_timestamps.as_slice()).unwrap_or_default();
    if stamps.len() > MAX_EVIDENCE {
        return Err(malformed(format!("bundle carries {} timestamps, at most {MAX_EVIDENCE}", stamps.len())));
    }
    let mut times: Vec<(i64, TimeSource)> = Vec::new();
    let mut seen = Vec::new();
    for (i, stamp) in stamps.iter().enumerate() {
        let der = b64(&stamp.signed_timestamp, "signedTimestamp")?;
        if seen.contains(&der) {
            return Err(malformed("the bundle carries the same timestamp twice"));
        }
        let t = timestamp_time(&der, content.timestamped(), root)
            .map_err(|e| BundleError::Timestamp(format!("RFC 3161 timestamp {}: {e}", i + 1)))?;
        times.push((t, TimeSource::TimestampAuthority));
        seen.push(der);
    }
    let stamped: Vec<i64> = times.iter().map(|(t, _)| *t).collect();

    // The transparency log.
    if vm.tlog_entries.is_empty() {
        return Err(BundleError::Log("the bundle has no transparency-log entry".into()));
    }
    if vm.tlog_entries.len() > MAX_EVIDENCE {
        return Err(malformed(format!("bundle carries {} log entries, at most {MAX_EVIDENCE}", vm.tlog_entries.len())));
    }
    for (i, a) in vm.tlog_entries.iter().enumerate() {
        if vm.tlog_entries[..i].iter().any(|b| b.log_id.key_id == a.log_id.key_id && b.log_index == a.log_index) {
            return Err(malformed("the bundle carries the same log entry twice"));
        }
    }
    for e in &vm.tlog_entries {
        if let Some(t_ms) = check_entry(e, version, root, &signer, &content, &artifact_sha, &stamped)? {
            times.push((t_ms, TimeSource::TransparencyLog));
        }
    }
    let Some(&(first_ms, first_source)) = times.iter().min_by_key(|(t, _)| *t) else {
        return Err(BundleError::Timestamp(
            "no verified time: the bundle needs a signed entry timestamp (Rekor v1) or an RFC 3161 timestamp".into(),
        ));
    };
    let now_ms = i64::try_from(now).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
    for (t, source) in &times {
        if *t > now_ms {
            return Err(match source {
                TimeSource::TransparencyLog => {
                    BundleError::Log(format!("integrated time {} is in the future", t / 1000))
                }
                TimeSource::TimestampAuthority => {
                    BundleError::Timestamp(format!("timestamp {} is in the future", t.div_euclid(1000)))
                }
            });
        }
    }

    // The signer, at every verified time.
    let who = match (&signer, expected) {
        (Signer::Cert { leaf, info }, Expected::Identity { san, issuer }) => {
            let ca = root
                .cas
                .iter()
                .find(|ca| {
                    let (inter, top) = ca.chain.split_at(ca.chain.len() - 1);
                    times.iter().all(|(t_ms, _)| {
                        within(*t_ms, ca.start_ms, ca.end_ms)
                            && crate::tsa::whole_seconds_around(*t_ms)
                                .all(|t| x509::verify_chain(leaf, inter, top, t).is_ok())
                    })
                })
                .ok_or_else(|| {
                    let at: Vec<i64> = times.iter().map(|(t, _)| t.div_euclid(1000)).collect();
                    BundleError::Certificate(format!("the certificate does not chain to a trusted CA at {at:?}"))
                })?;
            // The certificate must have been logged in a trusted CT log.
            let issuer_spki = x509::issuer_spki(leaf, &ca.chain).ok_or_else(|| {
                BundleError::Certificate("the certificate's issuer is not in the trusted chain".into())
            })?;
            let logs: Vec<([u8; 32], &PublicKey)> = root
                .ctlogs
                .iter()
                .filter_map(|l| <[u8; 32]>::try_from(l.key_id.as_slice()).ok().map(|id| (id, &l.key)))
                .collect();
            crate::sct::verify_embedded(leaf, &issuer_spki, &logs).map_err(BundleError::Certificate)?;
            let Some(found) = san.find(info) else {
                return Err(BundleError::Certificate(format!(
                    "the certificate is for {:?}, not {san}",
                    info.uris.iter().chain(&info.emails).collect::<Vec<_>>()
                )));
            };
            if info.issuer.as_deref() != Some(issuer) {
                return Err(BundleError::Certificate(format!("OIDC issuer {:?} is not {issuer:?}", info.issuer)));
            }
            format!("{found} via {issuer}")
        }
        (s, _) => format!("key {}", s.key().fingerprint()),
    };
    Ok(Verified {
        signed_at: first_ms.div_euclid(1000),
        time_source: first_source,
        signer: who,
        statement: statement_info,
    })
}

/// The time of an RFC 3161 timestamp of `signature` by one of the trusted
/// root's timestamp authorities, valid for that authority at that time
/// (both ends of `validFor` inclusive).
fn timestamp_time(der: &[u8], signature: &[u8], root: &TrustedRoot) -> Result<i64, String> {
    use crate::tsa::TimestampError;
    if root.tsas.is_empty() {
        return Err("the trusted root lists no timestamp authority".into());
    }
    let mut why = None;
    for a in &root.tsas {
        match crate::tsa::verify(der, signature, &a.chain) {
            Ok(t) if within(t, a.start_ms, a.end_ms) => return Ok(t),
            Ok(t) => {
                why = Some(format!(
                    "made at {}, outside the authority's validity in the trusted root",
                    t.div_euclid(1000)
                ))
            }
            Err(e @ TimestampError::Malformed(_)) => return Err(e.to_string()),
            Err(TimestampError::OtherAuthority) => {}
            Err(e) => why = Some(e.to_string()),
        }
    }
    Err(why.unwrap_or_else(|| TimestampError::OtherAuthority.to_string()))
}

enum Content<'a> {
    /// The artifact's bytes, unless only its digest was given.
    Message {
        sig: Vec<u8>,
        artifact: Option<&'a [u8]>,
    },
    Dsse {
        payload_type: String,
        payload: Vec<u8>,
        pae: Vec<u8>,
        sigs: Vec<Vec<u8>>,
    },
}

/// A sigstore `HashAlgorithm` name (`SHA2_256`, as bundles and Rekor v2 write it).
fn hash_named(name: &str) -> Option<HashAlgorithm> {
    match name {
        "SHA2_256" => Some(HashAlgorithm::Sha256),
        "SHA2_384" => Some(HashAlgorithm::Sha384),
        "SHA2_512" => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}

impl Content<'_> {
    /// The bytes a timestamp authority timestamps: the signature (the first
    /// DSSE signature, as sigstore clients request it).
    fn timestamped(&self) -> &[u8] {
        match self {
            Content::Message { sig, .. } => sig,
            Content::Dsse { sigs, .. } => sigs.first().map(Vec::as_slice).unwrap_or_default(),
        }
    }
}

/// DSSE pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

fn num(s: &str, what: &str) -> Result<i64, BundleError> {
    s.parse::<i64>().map_err(|_| malformed(format!("{what} is not an integer")))
}

/// The entry kinds tollgate checks against the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HashedRekordV1,
    DsseV1,
    IntotoV2,
    HashedRekordV2,
    DsseV2,
}

/// Checks one log entry. Returns its integration time (Unix milliseconds)
/// when a signed entry timestamp vouches for it; an unsigned entry (Rekor v2, or v1 without a
/// promise) relies on the timestamps in `stamped` (Unix milliseconds).
fn check_entry(
    e: &RawEntry,
    version: u8,
    root: &TrustedRoot,
    signer: &Signer,
    content: &Content,
    artifact_sha: &[u8; 32],
    stamped: &[i64],
) -> Result<Option<i64>, BundleError> {
    let log_index = num(&e.log_index, "logIndex")?;
    if log_index < 0 {
        return Err(malformed("logIndex is negative"));
    }
    let key_id = b64(&e.log_id.key_id, "logId")?;
    let log = root
        .tlogs
        .iter()
        .find(|l| l.key_id == key_id)
        .ok_or_else(|| BundleError::Log("the entry is from a log the trusted root does not list".into()))?;
    let kind = match (e.kind_version.kind.as_str(), e.kind_version.version.as_str()) {
        ("hashedrekord", "0.0.1") => Kind::HashedRekordV1,
        ("dsse", "0.0.1") => Kind::DsseV1,
        ("intoto", "0.0.2") => Kind::IntotoV2,
        ("hashedrekord", "0.0.2") => Kind::HashedRekordV2,
        ("dsse", "0.0.2") => Kind::DsseV2,
        (kind, v) => return Err(BundleError::Unsupported(format!("{kind} {v} log entries"))),
    };
    let body = b64(&e.canonicalized_body, "canonicalizedBody")?;
    let integrated = match e.integrated_time.as_deref() {
        Some(t) => Some(num(t, "integratedTime")?).filter(|t| *t != 0),
        None => None,
    };
    // In milliseconds, as every time is compared; before 1970 or past the
    // year 292 million is not a time a log can have integrated anything at.
    let integrated_ms = integrated
        .map(|t| t.checked_mul(1000).filter(|_| t > 0).ok_or_else(|| malformed("integratedTime is out of range")))
        .transpose()?;
    let signed_time = match (&e.inclusion_promise, integrated.zip(integrated_ms), version) {
        (Some(p), Some((t, t_ms)), _) => {
            let set = b64(&p.signed_entry_timestamp, "signedEntryTimestamp")?;
            let payload = crate::rekor::set_payload(&e.canonicalized_body, t, &hex::encode(&key_id), log_index);
            log.key
                .verify(payload.as_bytes(), &set)
                .map_err(|_| BundleError::Log("the signed entry timestamp does not verify".into()))?;
            if !within(t_ms, log.start_ms, log.end_ms) {
                return Err(BundleError::Log(format!("integrated time {t} is outside the log key's validity")));
            }
            Some(t_ms)
        }
        (Some(_), None, _) => return Err(malformed("a signed entry timestamp without integratedTime")),
        (None, _, 1) => return Err(BundleError::Log("a v0.1 bundle needs a signed entry timestamp".into())),
        (None, _, _) => {
            if let Some(t) = stamped.iter().find(|t| !within(**t, log.start_ms, log.end_ms)) {
                return Err(BundleError::Log(format!(
                    "timestamp {} is outside the log key's validity",
                    t.div_euclid(1000)
                )));
            }
            None
        }
    };
    match &e.inclusion_proof {
        Some(p) => {
            let index = u64::try_from(num(&p.log_index, "inclusionProof.logIndex")?)
                .map_err(|_| malformed("negative proof index"))?;
            let size = u64::try_from(num(&p.tree_size, "treeSize")?).map_err(|_| malformed("negative tree size"))?;
            let hashes = p.hashes.iter().map(|h| b64(h, "inclusion proof hash")).collect::<Result<Vec<_>, _>>()?;
            let computed = tlog::root_from_inclusion_proof(index, size, tlog::leaf_hash(&body), &hashes)
                .map_err(BundleError::Log)?;
            let root_hash = b64(&p.root_hash, "rootHash")?;
            if computed[..] != root_hash[..] {
                return Err(BundleError::Log("the inclusion proof does not lead to the root hash".into()));
            }
            let cp = p
                .checkpoint
                .as_ref()
                .ok_or_else(|| BundleError::Log("the inclusion proof has no checkpoint".into()))?;
            let cp = tlog::parse_checkpoint(&cp.envelope).map_err(BundleError::Log)?;
            if cp.size != size || cp.root != root_hash {
                return Err(BundleError::Log("the checkpoint is for another tree".into()));
            }
            let mut hint = [0u8; 4];
            hint.copy_from_slice(key_id.get(..4).ok_or_else(|| malformed("short logId"))?);
            tlog::verify_checkpoint(&cp, hint, &log.key).map_err(BundleError::Log)?;
        }
        None if version >= 2 => return Err(BundleError::Log("the bundle needs an inclusion proof".into())),
        None => {}
    }
    check_body(&body, kind, signer, content, artifact_sha)?;
    Ok(signed_time)
}

/// The logged entry must be about this signature, this signer and this content.
fn check_body(
    body: &[u8],
    kind: Kind,
    signer: &Signer,
    content: &Content,
    artifact_sha: &[u8; 32],
) -> Result<(), BundleError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| malformed(format!("log entry body: {e}")))?;
    let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_owned);
    let bytes = |p: &str| s(p).and_then(|x| crate::decode_base64(&x).ok());
    let mismatch = |what: &str| BundleError::Log(format!("the log entry does not match the bundle: {what}"));
    // Rekor v1 records the signer as base64 PEM.
    let same_signer_pem = |pem_b64: Option<String>| -> bool {
        let Some(pem) = pem_b64.and_then(|p| crate::decode_base64(&p).ok()) else { return false };
        let Some((label, der)) = crate::decode_pem(&pem) else { return false };
        match signer {
            Signer::Cert { leaf, .. } => label == "CERTIFICATE" && der == *leaf,
            Signer::Key(k) => label == "PUBLIC KEY" && der == k.spki_der(),
        }
    };
    // Rekor v2 records it as a `verifier` with base64 DER.
    let same_verifier = |verifier: Option<&serde_json::Value>| -> bool {
        let der = |p: &str| {
            verifier.and_then(|x| x.pointer(p)).and_then(|x| x.as_str()).and_then(|x| crate::decode_base64(x).ok())
        };
        match signer {
            Signer::Cert { leaf, .. } => der("/x509Certificate/rawBytes").is_some_and(|d| d == *leaf),
            Signer::Key(k) => der("/publicKey/rawBytes").is_some_and(|d| d == k.spki_der()),
        }
    };
    match (kind, content) {
        (Kind::HashedRekordV1, Content::Message { sig, .. }) => {
            if s("/spec/data/hash/algorithm").as_deref() != Some("sha256")
                || s("/spec/data/hash/value") != Some(hex::encode(artifact_sha))
            {
                return Err(mismatch("artifact hash"));
            }
            if bytes("/spec/signature/content").as_deref() != Some(sig.as_slice()) {
                return Err(mismatch("signature"));
            }
            if !same_signer_pem(s("/spec/signature/publicKey/content")) {
                return Err(mismatch("certificate or key"));
            }
        }
        (Kind::HashedRekordV2, content) => {
            // A message signature logs the artifact's hash; a DSSE envelope
            // logs the hash of its pre-authentication encoding (Rekor v2
            // §6.1.4). The hash is the one the key signs with (SHA2_384 for
            // P-384 keys, say), so any of the three is computed here.
            let spec = "/spec/hashedRekordV002";
            let (signed, sig): (Option<&[u8]>, &[u8]) = match content {
                Content::Message { sig, artifact } => (*artifact, sig),
                Content::Dsse { pae, sigs, .. } => match sigs.as_slice() {
                    [only] => (Some(pae.as_slice()), only),
                    _ => return Err(mismatch("a hashedrekord entry records exactly one DSSE signature")),
                },
            };
            let hashed = match s(&format!("{spec}/data/algorithm")).as_deref().and_then(hash_named) {
                // Already computed: do not hash a large artifact twice.
                Some(HashAlgorithm::Sha256) if matches!(content, Content::Message { .. }) => {
                    Some(artifact_sha.to_vec())
                }
                Some(h) => match signed {
                    Some(signed) => Some(h.digest(signed)),
                    None => {
                        return Err(BundleError::Unsupported(
                            "the log entry hashes the artifact with another algorithm than SHA-256: give the artifact"
                                .into(),
                        ));
                    }
                },
                None => None,
            };
            if hashed.is_none() || hashed != bytes(&format!("{spec}/data/digest")) {
                return Err(mismatch("artifact hash"));
            }
            if bytes(&format!("{spec}/signature/content")).as_deref() != Some(sig) {
                return Err(mismatch("signature"));
            }
            if !same_verifier(v.pointer(&format!("{spec}/signature/verifier"))) {
                return Err(mismatch("certificate or key"));
            }
        }
        (Kind::DsseV1, Content::Dsse { payload, sigs, .. }) => {
            if s("/spec/payloadHash/algorithm").as_deref() != Some("sha256")
                || s("/spec/payloadHash/value") != Some(hex::encode(Sha256::digest(payload)))
            {
                return Err(mismatch("payload hash"));
            }
            let logged = v.pointer("/spec/signatures").and_then(|x| x.as_array()).cloned().unwrap_or_default();
            let found = logged.iter().any(|l| {
                let sig = l.get("signature").and_then(|x| x.as_str()).and_then(|x| crate::decode_base64(x).ok());
                sig.is_some_and(|sig| sigs.contains(&sig))
                    && same_signer_pem(l.get("verifier").and_then(|x| x.as_str()).map(str::to_owned))
            });
            if !found || logged.len() != sigs.len() {
                return Err(mismatch("DSSE signatures"));
            }
        }
        (Kind::DsseV2, Content::Dsse { payload, sigs, .. }) => {
            let logged = bytes("/spec/dsseV002/payloadHash/digest");
            let ours =
                s("/spec/dsseV002/payloadHash/algorithm").as_deref().and_then(hash_named).map(|h| h.digest(payload));
            if ours.is_none() || ours != logged {
                return Err(mismatch("payload hash"));
            }
            let logged = v.pointer("/spec/dsseV002/signatures").and_then(|x| x.as_array()).cloned().unwrap_or_default();
            let found = logged.iter().any(|l| {
                let sig = l.get("content").and_then(|x| x.as_str()).and_then(|x| crate::decode_base64(x).ok());
                sig.is_some_and(|sig| sigs.contains(&sig)) && same_verifier(l.get("verifier"))
            });
            if !found || logged.len() != sigs.len() {
                return Err(mismatch("DSSE signatures"));
            }
        }
        (Kind::IntotoV2, Content::Dsse { payload_type, payload, sigs, .. }) => {
            // Rekor v1 `intoto` 0.0.2 stores the envelope with its payload and
            // signatures base64-encoded once more.
            let twice = |x: &serde_json::Value| {
                x.as_str()
                    .and_then(|x| crate::decode_base64(x).ok())
                    .and_then(|x| String::from_utf8(x).ok())
                    .and_then(|x| crate::decode_base64(&x).ok())
            };
            let content = "/spec/content";
            if s(&format!("{content}/payloadHash/algorithm")).as_deref() != Some("sha256")
                || s(&format!("{content}/payloadHash/value")) != Some(hex::encode(Sha256::digest(payload)))
            {
                return Err(mismatch("payload hash"));
            }
            let envelope = v.pointer(&format!("{content}/envelope"));
            let field = |name: &str| envelope.and_then(|e| e.get(name));
            if field("payloadType").and_then(|x| x.as_str()) != Some(payload_type.as_str())
                || field("payload").and_then(twice).as_deref() != Some(payload.as_slice())
            {
                return Err(mismatch("envelope payload"));
            }
            let logged = field("signatures").and_then(|x| x.as_array()).cloned().unwrap_or_default();
            let all_ours = logged.iter().all(|l| {
                l.get("sig").and_then(twice).is_some_and(|sig| sigs.contains(&sig))
                    && same_signer_pem(l.get("publicKey").and_then(|x| x.as_str()).map(str::to_owned))
            });
            if logged.is_empty() || !all_ours || logged.len() != sigs.len() {
                return Err(mismatch("DSSE signatures"));
            }
        }
        _ => return Err(mismatch("entry kind does not fit the bundle content")),
    }
    Ok(())
}
