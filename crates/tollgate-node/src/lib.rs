//! Node enforcement: the containerd image-verifier protocol.
//!
//! containerd ≥ 2.1 runs every executable in its image-verifier `bin_dir` for
//! each pull as `BIN -name REF -digest DIGEST -stdin-media-type
//! application/vnd.oci.descriptor.v1+json`, writes the descriptor as JSON on
//! stdin, reads up to 32 KiB of stdout as the reason, and allows the pull only
//! on exit 0. This crate holds the pure parts: argument and descriptor parsing
//! and reason formatting.
#![forbid(unsafe_code)]

pub mod doctor;
pub mod verifier;
