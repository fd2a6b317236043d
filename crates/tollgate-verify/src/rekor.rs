//! The Rekor bundle a cosign signature carries in `dev.sigstore.cosign/bundle`:
//! a signed entry timestamp (SET) over the log entry, which proves that the
//! signature was in the transparency log at `integratedTime`.
//!
//! As containers/image `signature/internal/rekor_set.go` and cosign `VerifySET`:
//! the SET is an ECDSA signature by a Rekor key over the RFC 8785 canonical
//! JSON of `{body, integratedTime, logID, logIndex}`; the logged `hashedrekord`
//! entry must name this very signature, this key or certificate, and the
//! SHA-256 of this payload.

use sha2::Digest as _;

use crate::keys::{KeyAlgorithm, PublicKey};
use crate::strict::Strict;

/// Why a Rekor bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RekorError {
    /// The annotation is not a well-formed bundle.
    #[error("malformed Rekor bundle: {0}")]
    Malformed(String),
    /// No configured Rekor key verifies the SET.
    #[error("the Rekor SET does not verify with any of the {0} configured Rekor key(s)")]
    BadSet(usize),
    /// The log entry is about another signature, key or payload.
    #[error("the Rekor entry does not match this signature: {0}")]
    Mismatch(String),
}

/// The signed entry timestamp's payload: RFC 8785 canonical JSON (keys
/// sorted, no whitespace) of `{body, integratedTime, logID, logIndex}`.
pub fn set_payload(body_b64: &str, integrated_time: i64, log_id_hex: &str, log_index: i64) -> String {
    format!(
        "{{\"body\":{},\"integratedTime\":{integrated_time},\"logID\":{},\"logIndex\":{log_index}}}",
        serde_json::Value::String(body_b64.to_owned()),
        serde_json::Value::String(log_id_hex.to_owned())
    )
}

/// A Rekor key must be ECDSA (as containers/image requires).
pub fn check_rekor_key(key: &PublicKey) -> Result<(), String> {
    match key.algorithm() {
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => Ok(()),
        other => Err(format!("Rekor public keys must be ECDSA, found {other:?}")),
    }
}

/// What signed the payload, as the log entry must record it.
#[derive(Debug, Clone, Copy)]
pub enum Signer<'a> {
    /// A public key.
    Key(&'a PublicKey),
    /// A certificate (DER).
    Certificate(&'a [u8]),
}

/// Verifies the bundle and its consistency; returns the integrated time (Unix seconds).
pub fn verify_bundle(
    bundle: &[u8],
    rekor_keys: &[PublicKey],
    signer: Signer<'_>,
    signature: &[u8],
    payload: &[u8],
) -> Result<i64, RekorError> {
    let m = RekorError::Malformed;
    let b64 = |s: &str, what: &str| crate::decode_base64(s).map_err(|e| RekorError::Malformed(format!("{what}: {e}")));
    let top = Strict::parse(bundle).map_err(m)?;
    let [set, body_payload] = top.exact_fields("bundle", &["SignedEntryTimestamp", "Payload"]).map_err(m)?[..] else {
        return Err(RekorError::Malformed("bundle".into()));
    };
    let set = b64(set.str("SignedEntryTimestamp").map_err(m)?, "SignedEntryTimestamp")?;
    let [body, integrated_time, log_index, log_id] =
        body_payload.exact_fields("Payload", &["body", "integratedTime", "logIndex", "logID"]).map_err(m)?[..]
    else {
        return Err(RekorError::Malformed("Payload".into()));
    };
    let body = body.str("Payload.body").map_err(m)?;
    let integrated_time = integrated_time.i64("Payload.integratedTime").map_err(m)?;
    let log_index = log_index.i64("Payload.logIndex").map_err(m)?;
    let log_id = log_id.str("Payload.logID").map_err(m)?;

    let canonical = set_payload(body, integrated_time, log_id, log_index);
    if !rekor_keys.iter().any(|k| k.verify(canonical.as_bytes(), &set).is_ok()) {
        return Err(RekorError::BadSet(rekor_keys.len()));
    }

    let entry = b64(body, "Payload.body")?;
    check_entry(&entry, signer, signature, payload)?;
    Ok(integrated_time)
}

fn check_entry(entry: &[u8], signer: Signer<'_>, signature: &[u8], payload: &[u8]) -> Result<(), RekorError> {
    let m = RekorError::Malformed;
    let mm = |s: &str| RekorError::Mismatch(s.to_owned());
    let entry = Strict::parse(entry).map_err(|e| RekorError::Malformed(format!("log entry: {e}")))?;
    let [api, kind, spec] = entry.exact_fields("log entry", &["apiVersion", "kind", "spec"]).map_err(m)?[..] else {
        return Err(RekorError::Malformed("log entry".into()));
    };
    let (api, kind) = (api.str("apiVersion").map_err(m)?, kind.str("kind").map_err(m)?);
    if kind != "hashedrekord" || api != "0.0.1" {
        return Err(RekorError::Mismatch(format!("log entry is {kind} {api}, expected hashedrekord 0.0.1")));
    }
    let [data, sig] = spec.exact_fields("spec", &["data", "signature"]).map_err(m)?[..] else {
        return Err(RekorError::Malformed("spec".into()));
    };
    let [hash] = data.exact_fields("spec.data", &["hash"]).map_err(m)?[..] else {
        return Err(RekorError::Malformed("spec.data".into()));
    };
    let [alg, value] = hash.exact_fields("spec.data.hash", &["algorithm", "value"]).map_err(m)?[..] else {
        return Err(RekorError::Malformed("spec.data.hash".into()));
    };
    if alg.str("algorithm").map_err(m)? != "sha256" {
        return Err(mm("the logged hash is not sha256"));
    }
    if value.str("value").map_err(m)? != hex::encode(sha2::Sha256::digest(payload)) {
        return Err(mm("the logged payload hash differs from this payload"));
    }
    let [content, public_key] = sig.exact_fields("spec.signature", &["content", "publicKey"]).map_err(m)?[..] else {
        return Err(RekorError::Malformed("spec.signature".into()));
    };
    let logged_sig = crate::decode_base64(content.str("content").map_err(m)?)
        .map_err(|e| RekorError::Malformed(format!("logged signature: {e}")))?;
    if logged_sig != signature {
        return Err(mm("the logged signature differs from this signature"));
    }
    let [pk] = public_key.exact_fields("spec.signature.publicKey", &["content"]).map_err(m)?[..] else {
        return Err(RekorError::Malformed("publicKey".into()));
    };
    let pem = crate::decode_base64(pk.str("publicKey.content").map_err(m)?)
        .map_err(|e| RekorError::Malformed(format!("logged key: {e}")))?;
    let (label, der) =
        crate::decode_pem(&pem).ok_or_else(|| RekorError::Malformed("logged key: not a PEM block".into()))?;
    let same = match signer {
        Signer::Key(k) => label == "PUBLIC KEY" && der == k.spki_der(),
        Signer::Certificate(cert) => label == "CERTIFICATE" && der == cert,
    };
    if !same {
        return Err(mm("the logged key or certificate is not the one that signed"));
    }
    Ok(())
}
