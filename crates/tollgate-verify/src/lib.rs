//! Signature checks for tollgate. Pure: bytes in, typed outcomes out, no I/O,
//! no clock (time is a parameter).
//!
//! - [`keys`]: PEM public keys (ECDSA P-256/P-384, RSA, Ed25519) and signature checks.
//! - [`payload`]: the cosign/containers-image "simple signing" payload, parsed as
//!   strictly as containers/image does.
//! - [`rekor`]: the Rekor bundle annotation (SET) and its consistency with the signature.
//! - [`cosign`]: one cosign signature layer checked end to end.
//! - [`bundle`]: sigstore bundles against a trusted root; [`tlog`] and [`tsa`]
//!   check their log proofs and RFC 3161 timestamps.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod cosign;
pub mod keys;
pub mod payload;
pub mod rekor;
pub mod sct;
mod strict;
pub mod tlog;
pub mod tsa;
pub mod x509;

/// Decodes standard base64 the way Go's `base64.StdEncoding.DecodeString` does:
/// line breaks (`\r`, `\n`) are ignored, as cosign and containers/image write
/// wrapped base64 in some annotations.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine as _;
    let compact: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

/// Decodes the first PEM block of `pem` to its label and DER bytes, as
/// leniently as Go's `pem.Decode`: base64 lines of any length (Rekor logs
/// certificates unwrapped), surrounding text ignored; strict RFC 7468 PEM is
/// a special case. The label must match between BEGIN and END.
pub fn decode_pem(pem: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----")?;
    let end_marker = format!("-----END {label}-----");
    let (body, _) = rest.split_once(end_marker.as_str())?;
    if body.contains(':') {
        return None; // RFC 1421 headers (encrypted PEM) are not public material
    }
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = decode_base64(&compact).ok()?;
    Some((label.to_owned(), der))
}

pub use cosign::{SignatureLayer, SignatureRejection, VerifiedSignature};
pub use keys::{KeyError, PublicKey};
pub use payload::{Payload, PayloadError};

#[cfg(test)]
mod tests {
    use super::decode_pem;

    #[test]
    fn pem_is_read_as_leniently_as_go_reads_it() {
        // Strict RFC 7468 wrapping.
        assert_eq!(decode_pem(b"-----BEGIN X-----\nAAEC\n-----END X-----\n"), Some(("X".into(), vec![0, 1, 2])));
        // One long line (as Rekor logs certificates), CRLF, text around the block.
        let long =
            format!("junk\r\n-----BEGIN CERTIFICATE-----\r\n{}\r\n-----END CERTIFICATE-----\r\n", "AAAA".repeat(40));
        assert_eq!(decode_pem(long.as_bytes()).map(|(l, d)| (l, d.len())), Some(("CERTIFICATE".into(), 120)));
        // Labels must match; headers (encrypted PEM) and bad base64 are refused.
        assert_eq!(decode_pem(b"-----BEGIN A-----\nAAEC\n-----END B-----\n"), None);
        assert_eq!(decode_pem(b"-----BEGIN A-----\nProc-Type: 4,ENCRYPTED\n\nAAEC\n-----END A-----\n"), None);
        assert_eq!(decode_pem(b"-----BEGIN A-----\n!!!!\n-----END A-----\n"), None);
        assert_eq!(decode_pem(b"no pem here"), None);
    }
}
