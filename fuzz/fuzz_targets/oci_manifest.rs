//! OCI manifests and indexes from registries and layouts, and their
//! classification from the bytes: a body parsed as an index is never
//! classified as an image manifest, whatever Content-Type is claimed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_oci::manifest::{ImageIndex, ImageManifest};
use tollgate_oci::media_types::{self, OCI_INDEX, OCI_MANIFEST, of_manifest};

fuzz_target!(|data: &[u8]| {
    let manifest = ImageManifest::parse(data).is_ok();
    let index = ImageIndex::parse(data).is_ok();
    for header in [None, Some(OCI_MANIFEST), Some(OCI_INDEX)] {
        if let Ok(t) = of_manifest(data, header) {
            if media_types::is_manifest(&t) && index && !manifest {
                assert!(media_types::is_index(&t), "an index classified as {t} under {header:?}");
            }
        }
    }
});
