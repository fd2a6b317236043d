//! Image references and content digests, as the container ecosystem defines them.
//!
//! This crate is the pure core under every other tollgate crate: it parses and
//! normalizes docker/OCI image references exactly like `distribution/reference`
//! (`busybox` → `docker.io/library/busybox:latest`), and parses, computes and
//! checks content digests (`sha256`, `sha512`). It performs no I/O and never
//! panics on input; every parse failure is a typed error that names the input.
//!
//! ```
//! use tollgate_oci::{Digest, Reference};
//!
//! let r = Reference::parse_normalized("busybox")?.with_default_tag();
//! assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
//!
//! let d = Digest::sha256_of(b"hello");
//! assert!(d.verify(b"hello").is_ok());
//! assert!(d.verify(b"tampered").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod digest;
pub mod manifest;
pub mod media_types;
mod reference;

pub use digest::{Algorithm, Digest, DigestError, DigestMismatch, Hasher};
pub use reference::{DEFAULT_DOMAIN, DEFAULT_TAG, NAME_TOTAL_LENGTH_MAX, Reference, ReferenceError, canonical_domain};
