//! Node enforcement: the containerd image-verifier protocol and the node daemon.
//!
//! containerd ≥ 2.1 runs every executable in its image-verifier `bin_dir` for
//! each pull as `BIN -name REF -digest DIGEST -stdin-media-type
//! application/vnd.oci.descriptor.v1+json`, writes the descriptor as JSON on
//! stdin, reads up to 32 KiB of stdout as the reason, and allows the pull only
//! on exit 0.
//!
//! The pure parts ([`doctor`], [`install`], [`cache`], and the wire formats
//! re-exported from `tollgate-node-api`) take bytes and values; the shell parts
//! ([`engine`], [`daemon`], [`audit`]) do the network and file I/O around them.
#![forbid(unsafe_code)]

pub mod audit;
pub mod cache;
pub mod containerd_images;
pub mod daemon;
pub mod diff;
pub mod doctor;
pub mod dropin;
pub mod engine;
pub mod hosts;
pub mod install;
pub mod metrics;

pub use tollgate_node_api::{api, client, config, verifier};
