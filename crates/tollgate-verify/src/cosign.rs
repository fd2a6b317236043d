//! One cosign signature (a layer of the `sha256-<hex>.sig` manifest) checked
//! with public keys, as containers/image's `sigstoreSigned` requirement does.
//! Identity and manifest digest are checked by the policy, which knows the image.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::keys::PublicKey;
use crate::payload::{Payload, PayloadError};
use crate::rekor::{self, RekorError, Signer};
use crate::x509::{self, CertError};

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

/// The largest value accepted in any of the cosign annotations a signature uses
/// (signature, certificate, chain, Rekor bundle). Real ones are a few KiB; the
/// annotations are unsigned, so they are capped before anything parses them.
pub const MAX_ANNOTATION_BYTES: usize = 64 * 1024;

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
    /// For certificates: the identity that was checked (`email via issuer`, or the PKI subject).
    pub certificate_identity: Option<String>,
    /// For certificates checked at "now" (private PKI): the earliest `notAfter`
    /// of the leaf and the intermediates (Unix seconds). The signature is
    /// acceptable only until then.
    pub valid_until: Option<u64>,
}

/// Trust for keyless (Fulcio) signatures, as containers/image's `fulcio` requirement.
#[derive(Debug, Clone, Copy)]
pub struct FulcioTrust<'a> {
    /// Trusted Fulcio CA certificates (DER).
    pub roots: &'a [Vec<u8>],
    /// Required OIDC issuer.
    pub issuer: &'a str,
    /// Required SAN (email or URI).
    pub subject: crate::x509::San<'a>,
    /// Rekor keys; a verified SET is mandatory.
    pub rekor_keys: &'a [PublicKey],
}

/// Trust for signatures by certificates of a private CA, as containers/image's `pki` requirement.
#[derive(Debug, Clone, Copy)]
pub struct PkiTrust<'a> {
    /// Trusted root certificates (DER).
    pub roots: &'a [Vec<u8>],
    /// Configured intermediate certificates (DER).
    pub intermediates: &'a [Vec<u8>],
    /// Required SAN email, if any.
    pub email: Option<&'a str>,
    /// Required hostname, if any.
    pub hostname: Option<&'a str>,
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
    /// A certificate annotation is missing.
    #[error("the layer has no {0} annotation")]
    MissingAnnotation(&'static str),
    /// The certificate or its chain was refused.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// An annotation is larger than [`MAX_ANNOTATION_BYTES`]; it is not parsed.
    #[error("the {name} annotation has {len} bytes, more than the {max} accepted")]
    AnnotationTooLarge {
        /// The annotation.
        name: &'static str,
        /// Its size.
        len: usize,
        /// The cap.
        max: usize,
    },
}

fn signature_bytes(layer: &SignatureLayer) -> Result<Vec<u8>, SignatureRejection> {
    if layer.media_type != SIMPLE_SIGNING {
        return Err(SignatureRejection::NotASignature(layer.media_type.clone()));
    }
    for name in [SIGNATURE_ANNOTATION, BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION] {
        if let Some(len) = layer.annotations.get(name).map(String::len).filter(|&l| l > MAX_ANNOTATION_BYTES) {
            return Err(SignatureRejection::AnnotationTooLarge { name, len, max: MAX_ANNOTATION_BYTES });
        }
    }
    let b64 = layer.annotations.get(SIGNATURE_ANNOTATION).ok_or(SignatureRejection::MissingSignature)?;
    crate::decode_base64(b64).map_err(|_| SignatureRejection::BadBase64)
}

/// The leaf from the certificate annotation (exactly one certificate) and the
/// intermediates from the chain annotation (all but its last element, the root,
/// which must come from the trusted roots instead).
fn certificates(layer: &SignatureLayer) -> Result<(Vec<u8>, Vec<Vec<u8>>), SignatureRejection> {
    let cert = layer
        .annotations
        .get(CERTIFICATE_ANNOTATION)
        .ok_or(SignatureRejection::MissingAnnotation(CERTIFICATE_ANNOTATION))?;
    let mut leaf = x509::certs_from_pem(cert.as_bytes())?;
    if leaf.len() != 1 {
        return Err(CertError::Pem(format!("expected one certificate, found {}", leaf.len())).into());
    }
    let leaf = leaf.remove(0);
    let mut chain = match layer.annotations.get(CHAIN_ANNOTATION) {
        Some(c) => x509::certs_from_pem(c.as_bytes())?,
        None => Vec::new(),
    };
    chain.pop();
    Ok((leaf, chain))
}

/// Checks a keyless signature: Rekor SET (which gives the signing time), the
/// certificate chain to a Fulcio root at that time, the OIDC issuer and email,
/// then the signature with the certified key.
pub fn verify_with_fulcio(
    layer: &SignatureLayer,
    trust: &FulcioTrust<'_>,
) -> Result<VerifiedSignature, SignatureRejection> {
    let signature = signature_bytes(layer)?;
    let (leaf, intermediates) = certificates(layer)?;
    let bundle = layer.annotations.get(BUNDLE_ANNOTATION).ok_or(SignatureRejection::MissingBundle)?;
    let time = rekor::verify_bundle(
        bundle.as_bytes(),
        trust.rekor_keys,
        Signer::Certificate(&leaf),
        &signature,
        &layer.payload,
    )?;
    let t = u64::try_from(time).map_err(|_| RekorError::Malformed(format!("negative integratedTime {time}")))?;
    x509::verify_chain(&leaf, &intermediates, trust.roots, t)?;
    let info = x509::leaf_info(&leaf)?;
    match &info.issuer {
        Some(i) if i == trust.issuer => {}
        Some(i) => {
            return Err(CertError::Identity(format!("OIDC issuer {i:?} is not the required {:?}", trust.issuer)).into());
        }
        None => return Err(CertError::Identity("the certificate names no OIDC issuer".into()).into()),
    }
    let Some(subject) = trust.subject.find(&info) else {
        let sans: Vec<&String> = info.uris.iter().chain(&info.emails).collect();
        let msg = format!("the certificate is for {sans:?}, not the required {}", trust.subject);
        return Err(CertError::Identity(msg).into());
    };
    info.public_key.verify(&layer.payload, &signature).map_err(|_| SignatureRejection::NoKeyVerifies(1))?;
    let payload = Payload::parse(&layer.payload)?;
    Ok(VerifiedSignature {
        payload,
        key_fingerprint: info.public_key.fingerprint(),
        integrated_time: Some(time),
        certificate_identity: Some(format!("{subject} via {}", trust.issuer)),
        valid_until: None,
    })
}

/// Checks a signature by a private-PKI certificate at time `now` (Unix seconds).
pub fn verify_with_pki(
    layer: &SignatureLayer,
    trust: &PkiTrust<'_>,
    now: u64,
) -> Result<VerifiedSignature, SignatureRejection> {
    let signature = signature_bytes(layer)?;
    let (leaf, mut intermediates) = certificates(layer)?;
    intermediates.extend_from_slice(trust.intermediates);
    x509::verify_chain(&leaf, &intermediates, trust.roots, now)?;
    let info = x509::leaf_info(&leaf)?;
    if let Some(email) = trust.email {
        if !info.emails.iter().any(|e| e == email) {
            return Err(CertError::Identity(format!("the certificate is for {:?}, not {email:?}", info.emails)).into());
        }
    }
    if let Some(host) = trust.hostname {
        x509::verify_hostname(&leaf, host)?;
    }
    info.public_key.verify(&layer.payload, &signature).map_err(|_| SignatureRejection::NoKeyVerifies(1))?;
    let payload = Payload::parse(&layer.payload)?;
    let who = [trust.email, trust.hostname].into_iter().flatten().collect::<Vec<_>>().join(", ");
    let valid_until = std::iter::once(&leaf).chain(&intermediates).filter_map(|c| x509::not_after(c).ok()).min();
    Ok(VerifiedSignature {
        payload,
        key_fingerprint: info.public_key.fingerprint(),
        integrated_time: None,
        certificate_identity: Some(who),
        valid_until,
    })
}

/// Checks `layer` with `keys` (any one may verify) and, when `rekor_keys` is
/// not empty, its Rekor SET.
pub fn verify_with_keys(
    layer: &SignatureLayer,
    keys: &[PublicKey],
    rekor_keys: &[PublicKey],
) -> Result<VerifiedSignature, SignatureRejection> {
    let signature = signature_bytes(layer)?;
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
    Ok(VerifiedSignature {
        payload,
        key_fingerprint: key.fingerprint(),
        integrated_time,
        certificate_identity: None,
        valid_until: None,
    })
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
    let payload = crate::decode_base64(&f.payload).map_err(|e| e.to_string())?;
    Ok(SignatureLayer { media_type: f.mime_type, payload, annotations: f.annotations })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Annotations are unsigned and reach JSON and PEM parsers before any
    /// signature check: oversize ones are refused unparsed.
    #[test]
    fn oversize_annotations_are_refused_before_parsing() {
        for name in [SIGNATURE_ANNOTATION, BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION] {
            let mut annotations = BTreeMap::new();
            annotations.insert(SIGNATURE_ANNOTATION.to_owned(), "AAAA".to_owned());
            annotations.insert(name.to_owned(), "{".repeat(MAX_ANNOTATION_BYTES + 1));
            let layer = SignatureLayer { media_type: SIMPLE_SIGNING.into(), payload: b"{}".to_vec(), annotations };
            let err = verify_with_keys(&layer, &[], &[]).map(|_| ());
            assert_eq!(
                err,
                Err(SignatureRejection::AnnotationTooLarge {
                    name,
                    len: MAX_ANNOTATION_BYTES + 1,
                    max: MAX_ANNOTATION_BYTES
                })
            );
            assert_eq!(
                err.map_err(|e| e.to_string()),
                Err(format!("the {name} annotation has 65537 bytes, more than the 65536 accepted"))
            );
        }
    }
}
