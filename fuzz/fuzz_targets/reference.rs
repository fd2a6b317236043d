//! Image references and digests: no panics, and accepted references round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_oci::{Digest, Reference};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(r) = Reference::parse_normalized(s) {
            let again = Reference::parse_normalized(&r.to_string());
            assert_eq!(again.as_ref(), Ok(&r), "printed form must parse back to the same reference");
            let canonical = tollgate_oci::canonical_domain(r.domain());
            assert_eq!(tollgate_oci::canonical_domain(&canonical), canonical, "canonical is a fixed point");
        }
        if let Ok(d) = Digest::parse(s) {
            assert_eq!(d.to_string(), s);
        }
    }
});
