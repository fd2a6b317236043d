//! docker config.json / containers auth.json files.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_registry::credentials::CredentialStore;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = CredentialStore::parse(data, "fuzz") {
        let _ = s.lookup("docker.io/library/busybox");
        let _ = s.lookup("registry.example.com:5000/a/b/c");
    }
});
