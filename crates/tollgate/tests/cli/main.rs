//! One integration-test binary that runs the real `tollgate` program.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

#[macro_use]
mod util;

mod bundles;
mod components;
mod containerd;
mod examples;
mod fuzz_corpus;
mod harden;
mod hostile;
mod images;
mod kubeadm;
mod lock;
mod outage;
mod serve;
mod verify;
