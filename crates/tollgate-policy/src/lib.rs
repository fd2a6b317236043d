//! Image trust policy with the semantics of `containers-policy.json(5)`.
//!
//! - [`containers`]: the strict parser for `containers-policy.json` files
//!   (unknown or duplicate fields reject the whole file, as in containers/image).
//! - [`scope`]: which scope applies to an image: the most specific of
//!   `host[:port]/ns/repo:tag|@digest`, `repo`, parent namespaces, `host[:port]`,
//!   `*.domain` wildcards, the transport default and the global default.
//! - [`identity`]: `signedIdentity` matching (`matchExact`,
//!   `matchRepoDigestOrExact`, `matchRepository`, `exactReference`,
//!   `exactRepository`, `remapIdentity`).
//! - [`lint`]: warnings about valid policies that likely surprise their authors.
//!
//! Everything here is pure: bytes and values in, values out.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod containers;
pub mod evaluate;
pub mod identity;
pub mod lint;
pub mod native;
pub mod scope;

pub use containers::{KeySource, Policy, PolicyError, Requirement, SignedIdentity};
pub use evaluate::{Decision, Failure, Image, LoadedPolicy, Signatures, evaluate};
