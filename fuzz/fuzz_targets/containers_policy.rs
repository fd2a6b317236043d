//! containers-policy.json files: never panic, and accepted policies round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_policy::Policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Policy::parse(data, "fuzz") {
        let again = Policy::parse(p.to_json().as_bytes(), "again");
        assert_eq!(again.as_ref().ok(), Some(&p), "to_json must parse back equal");
    }
});
