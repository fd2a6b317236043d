//! tollgate on Kubernetes: image trust declared once, as `tollgate.dev/v1alpha1` objects.
//!
//! - [`crd`]: `ClusterImagePolicy`, `ImagePolicy` and `TrustRoot`, with structural schemas and the
//!   CEL rules (`x-kubernetes-validations`) the API server enforces; `validate_cel` runs the same
//!   rules client-side.
//! - [`manifests`]: the YAML `tollgate manifests` writes (pure).
//! - [`compile`]: the objects compiled into the node's policy files (pure).
#![forbid(unsafe_code)]

pub mod admission;
pub mod compile;
pub mod crd;
pub mod import;
pub mod manifests;
