//! One cosign signature (a layer of the `sha256-<hex>.sig` manifest) checked
//! with public keys, as containers/image's `sigstoreSigned` requirement does.
//! Identity and manifest digest are checked by the policy, which knows the image.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;

use crate::keys::PublicKey;
use crate::payload::{Payload, PayloadError};
use crate::rekor::{self, RekorError, Signer};

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation with the base64 signature over the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Annotation with the Rekor bundle.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// Annotation with the signing certificate (keyless).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Annotation with the certificate chain (keyless).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";

/// A signature as found: the payload bytes (digest-checked by the caller) and the layer annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    /// Layer media type.
    pub media_type: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Layer descriptor annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A signature that verified cryptographically. Its claims still have to match the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedSignature {
    /// The signed payload.
    pub payload: Payload,
    /// Fingerprint (hex SHA-256 of the SubjectPublicKeyInfo) of the key that verified.
    pub key_fingerprint: String,
    /// When Rekor logged it, if a SET was required and verified.
    pub integrated_time: Option<i64>,
}

/// Why one signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureRejection {
    /// Another kind of attachment; ignored like containers/image does.
    #[error("not a signature: layer media type is {0}")]
    NotASignature(String),
    /// No signature annotation.
    #[error("the layer has no {SIGNATURE_ANNOTATION} annotation")]
    MissingSignature,
    /// The annotation is not base64.
    #[error("the {SIGNATURE_ANNOTATION} annotation is not valid base64")]
    BadBase64,
    /// None of the keys verifies.
    #[error("the signature does not verify with any of the {0} trusted key(s)")]
    NoKeyVerifies(usize),
    /// Rekor keys are configured and there is no bundle.
    #[error("Rekor keys are configured but the signature has no {BUNDLE_ANNOTATION} annotation")]
    MissingBundle,
    /// The Rekor bundle was refused.
    #[error(transparent)]
    Rekor(#[from] RekorError),
    /// The payload was refused.
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// Checks `layer` with `keys` (any one may verify) and, when `rekor_keys` is
/// not empty, its Rekor SET.
pub fn verify_with_keys(
    layer: &SignatureLayer,
    keys: &[PublicKey],
    rekor_keys: &[PublicKey],
) -> Result<VerifiedSignature, SignatureRejection> {
    if layer.media_type != SIMPLE_SIGNING {
        return Err(SignatureRejection::NotASignature(layer.media_type.clone()));
    }
    let b64 = layer.annotations.get(SIGNATURE_ANNOTATION).ok_or(SignatureRejection::MissingSignature)?;
    let signature = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| SignatureRejection::BadBase64)?;
    let key = keys
        .iter()
        .find(|k| k.verify(&layer.payload, &signature).is_ok())
        .ok_or(SignatureRejection::NoKeyVerifies(keys.len()))?;
    let integrated_time = if rekor_keys.is_empty() {
        None
    } else {
        let bundle = layer.annotations.get(BUNDLE_ANNOTATION).ok_or(SignatureRejection::MissingBundle)?;
        Some(rekor::verify_bundle(bundle.as_bytes(), rekor_keys, Signer::Key(key), &signature, &layer.payload)?)
    };
    let payload = Payload::parse(&layer.payload)?;
    Ok(VerifiedSignature { payload, key_fingerprint: key.fingerprint(), integrated_time })
}

/// Reads containers/image's `dir:` signature file format:
/// `\0sigstore-json\n` + `{"mimeType", "payload" (base64), "annotations"}`.
pub fn parse_dir_signature(bytes: &[u8]) -> Result<SignatureLayer, String> {
    let body = bytes.strip_prefix(b"\0sigstore-json\n").ok_or("not a sigstore signature file")?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(rename = "mimeType")]
        mime_type: String,
        payload: String,
        annotations: BTreeMap<String, String>,
    }
    let f: File = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let payload = base64::engine::general_purpose::STANDARD.decode(&f.payload).map_err(|e| e.to_string())?;
    Ok(SignatureLayer { media_type: f.mime_type, payload, annotations: f.annotations })
}
