//! The real programs tollgate plugs into (`../shared/peers`): containerd,
//! crictl, upstream skopeo, kube-apiserver and etcd, unpacked by
//! `scripts/test` into `target/peers` (or `$TOLLGATE_PEERS`).
//!
//! A test that needs one calls [`require`]. Under `CI=true` a missing program
//! fails the test; elsewhere the test says loudly that it did not run and how
//! to make it run, and returns without asserting anything.

use std::path::PathBuf;

/// Where the peers are unpacked.
pub fn dir() -> PathBuf {
    match std::env::var_os("TOLLGATE_PEERS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/peers"),
    }
}

/// `dir()/rel` (`tools/skopeo`, `containerd-2.3/containerd`), if it is there.
pub fn find(rel: &str) -> Option<PathBuf> {
    let p = dir().join(rel);
    p.is_file().then_some(p)
}

/// `dir()/rel`, or `None` after a loud line naming `test` (outside CI).
/// Under `CI=true` a missing peer panics: CI must never pass by skipping.
pub fn require(rel: &str, test: &str) -> Option<PathBuf> {
    if let Some(p) = find(rel) {
        return Some(p);
    }
    let why = format!(
        "{} is missing: {test} did NOT run. Run scripts/test (it unpacks ../shared/peers), or set TOLLGATE_PEERS",
        dir().join(rel).display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("\n*** SKIPPED: {why} ***\n");
    None
}
