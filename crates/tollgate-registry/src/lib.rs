//! OCI distribution client for tollgate.
//!
//! A thin network edge: it fetches manifests and blobs and checks every byte
//! against its digest before handing it on. Plain HTTP is used only for
//! registries listed as insecure; bodies are size-capped; only transient
//! failures (network, 408/425/429/5xx) are retried, with exponential backoff
//! and a bounded number of attempts; bearer tokens are fetched from the
//! registry's `WWW-Authenticate` challenge.
#![forbid(unsafe_code)]

pub mod auth;
mod client;
pub mod credentials;
mod error;
pub mod layout;
pub mod mirror;

pub use client::{
    Client, ClientConfig, FetchError, MAX_MANIFEST_BYTES, MAX_REFERRERS, MAX_SIGNATURE_BYTES, MAX_SIGNATURES, Manifest,
};
pub use error::{RegistryError, is_transient_status};
