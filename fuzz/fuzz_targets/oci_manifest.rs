//! OCI manifests and indexes from registries and layouts.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_oci::manifest::{ImageIndex, ImageManifest};

fuzz_target!(|data: &[u8]| {
    let _ = ImageManifest::parse(data);
    let _ = ImageIndex::parse(data);
});
