//! Catalog files (user-supplied with --catalog, written by images lock).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_controlplane::Catalog;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Catalog::parse(data, "fuzz") {
        let again = Catalog::parse(c.to_json().as_bytes(), "again");
        assert_eq!(again.ok().as_ref(), Some(&c), "serialized catalog must parse back equal");
    }
});
