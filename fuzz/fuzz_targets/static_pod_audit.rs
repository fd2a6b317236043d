//! Static-pod manifests read by kubeadm audit.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_controlplane::{Catalog, audit};

static CATALOG: OnceLock<Catalog> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let catalog = CATALOG.get_or_init(Catalog::embedded);
    let _ = audit::audit(&[("fuzz.yaml".to_owned(), data.to_vec())], catalog, None);
});
