//! The pinned kubeadm control plane.
//!
//! - [`catalog`]: which images each Kubernetes version uses, pinned by digest.
//! - [`patches`]: kubeadm patch files (RFC 6902) that pin the static pods.
//! - [`kubeadm_config`]: Init/Join/Cluster/UpgradeConfiguration that use them.
//! - [`audit`]: checks static-pod manifests against the catalog.
//! - [`components`]: installs files from `data:`, `file://` and `https://` URLs with hash checks.
//! - [`fsutil`]: atomic file writes with explicit modes.
//!
//! Everything except `components::install` and `fsutil` is pure: values in, values out.
#![forbid(unsafe_code)]

pub mod audit;
pub mod bootstrap;
pub mod catalog;
pub mod components;
pub mod confined;
pub mod fsutil;
pub mod kubeadm_config;
pub mod patchdir;
pub mod patches;
pub mod version;

pub use catalog::{Catalog, CatalogError, Component, ImagePin, ResolvedImage, VersionImages};
pub use version::KubernetesVersion;
