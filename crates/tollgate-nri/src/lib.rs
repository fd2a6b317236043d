//! An NRI (Node Resource Interface) plugin in Rust, so that every container containerd creates is
//! decided by tollgate's policy, the images already on the node included.
//!
//! No Rust NRI crate exists. This one is written from containerd/nri v0.12 (`pkg/api/api.proto`,
//! `pkg/net/multiplex`, `pkg/stub`):
//! - [`mux`]: the 8-byte connection multiplexer NRI runs over its one unix socket (pure);
//! - [`ttrpc`]: ttrpc's 10-byte message framing and its `Request`/`Response` messages (pure);
//! - [`api`]: the NRI messages tollgate reads and writes, as prost structs with api.proto's tags;
//! - [`launched`]: the connection containerd hands a plugin it starts from its plugin path;
//! - [`plugin`]: the imperative shell: connect, register, answer `Configure`, `Synchronize`,
//!   `CreateContainer` and `ValidateContainerAdjustment`, reconnect with a bounded backoff.
//!
//! The decision itself is the caller's ([`plugin::Decide`]): tollgate asks its node daemon, so the
//! verdict cache, audit log and metrics are the ones every pull uses.
// `unsafe` is denied everywhere but the one adoption of the descriptor containerd passes a plugin
// it launches (launched.rs says why it is sound).
#![deny(unsafe_code)]

pub mod api;
pub mod launched;
pub mod mux;
pub mod plugin;
pub mod ttrpc;
