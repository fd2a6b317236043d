//! Signature checks for tollgate. Pure: bytes in, typed outcomes out, no I/O,
//! no clock (time is a parameter).
//!
//! - [`keys`]: PEM public keys (ECDSA P-256/P-384, RSA, Ed25519) and signature checks.
//! - [`payload`]: the cosign/containers-image "simple signing" payload, parsed as
//!   strictly as containers/image does.
//! - [`rekor`]: the Rekor bundle annotation (SET) and its consistency with the signature.
//! - [`cosign`]: one cosign signature layer checked end to end.
#![forbid(unsafe_code)]

pub mod cosign;
pub mod keys;
pub mod payload;
pub mod rekor;
mod strict;

pub use cosign::{SignatureLayer, SignatureRejection, VerifiedSignature};
pub use keys::{KeyError, PublicKey};
pub use payload::{Payload, PayloadError};
