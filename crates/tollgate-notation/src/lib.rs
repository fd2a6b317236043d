//! Notary Project (notation) signatures as a policy requirement, written from notation-go and
//! notation-core-go since no Rust implementation exists (Bottlerocket's shells out to the Go CLI).
//!
//! This release has the trust material, pure over bytes:
//! - [`certs`]: certificate files as notation reads them (PEM or DER, one or several);
//! - [`truststore`]: the `truststore/x509/{ca,signingAuthority,tsa}/NAME/` stores and their rules;
//! - [`identity`]: `x509.subject:` trusted identities, matched against a signing certificate as
//!   notation-go does (distinguished names, subset match);
//! - [`trustpolicy`]: `trustpolicy.json` validated as notation-go does, and the statement for an artifact;
//! - [`jws`]: JWS and COSE envelopes verified as notation-go verifies them (integrity, authenticity,
//!   signing time and RFC 3161 timestamp countersignatures, expiry), each failure enforced or logged
//!   as the level says;
//! - [`cose`] and [`cbor`]: COSE_Sign1 envelopes and the strict CBOR subset under them;
//! - [`revocation`] and [`ocsp`]: the signing chain's OCSP answers and CRLs, when the caller
//!   fetched them (online checking is opt-in; offline, the outcome says revocation was not checked).
//!
//! Fetching signatures as OCI referrers and the `notationSigned` requirement are in tollgate-registry
//! and tollgate-policy.
#![forbid(unsafe_code)]

pub mod cbor;
pub mod certs;
pub mod cose;
pub mod identity;
pub mod jws;
pub mod ocsp;
pub mod revocation;
pub mod trustpolicy;
pub mod truststore;
