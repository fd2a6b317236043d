//! WWW-Authenticate headers from registries.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = tollgate_registry::auth::parse_challenge(s);
    }
});
