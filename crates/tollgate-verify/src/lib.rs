//! Signature checks for tollgate. Pure: bytes in, typed outcomes out, no I/O,
//! no clock (time is a parameter).
//!
//! - [`keys`]: PEM public keys (ECDSA P-256/P-384, RSA, Ed25519) and signature checks.
//! - [`payload`]: the cosign/containers-image "simple signing" payload, parsed as
//!   strictly as containers/image does.
//! - [`rekor`]: the Rekor bundle annotation (SET) and its consistency with the signature.
//! - [`cosign`]: one cosign signature layer checked end to end.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod cosign;
pub mod keys;
pub mod payload;
pub mod rekor;
pub mod sct;
mod strict;
pub mod tlog;
pub mod x509;

/// Decodes standard base64 the way Go's `base64.StdEncoding.DecodeString` does:
/// line breaks (`\r`, `\n`) are ignored, as cosign and containers/image write
/// wrapped base64 in some annotations.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine as _;
    let compact: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

pub use cosign::{SignatureLayer, SignatureRejection, VerifiedSignature};
pub use keys::{KeyError, PublicKey};
pub use payload::{Payload, PayloadError};
