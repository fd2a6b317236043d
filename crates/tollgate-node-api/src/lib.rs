//! The node's wire formats, and nothing heavier: the containerd image-verifier
//! (bindir) invocation, the node config file, the daemon's JSON API, and a
//! blocking client for that API over a unix socket.
//!
//! The `tollgate-verifier` binary links only this crate, so the process
//! containerd starts on every pull stays small and starts fast; the daemon
//! (`tollgate_node::daemon`) serves the same API.
#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod config;
pub mod verifier;
