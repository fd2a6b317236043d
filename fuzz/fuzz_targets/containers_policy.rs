//! containers-policy.json and native policies: never panic, and accepted policies round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_policy::Policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Policy::parse(data, "fuzz") {
        let again = Policy::parse(p.to_json().as_bytes(), "again");
        assert_eq!(again.as_ref().ok(), Some(&p), "to_json must parse back equal");
    }
    if let Ok(p) = tollgate_policy::native::parse(data, "fuzz") {
        if let Ok(json) = tollgate_policy::native::export(&p, "fuzz") {
            assert!(Policy::parse(json.as_bytes(), "exported").is_ok(), "an export must load");
        }
    }
});
