//! Rekor bundle annotations: any bytes give an error, never a panic or an acceptance without a valid SET.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_verify::PublicKey;
use tollgate_verify::rekor::{self, Signer};

const REKOR_PUB: &[u8] = b"-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwr
kBbmLSGtks4L3qX6yYY0zufBnhC8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw==
-----END PUBLIC KEY-----
";

fuzz_target!(|data: &[u8]| {
    let Ok(key) = PublicKey::from_pem(REKOR_PUB) else { return };
    let keys = [key.clone()];
    let r = rekor::verify_bundle(data, &keys, Signer::Key(&key), b"sig", b"payload");
    assert!(r.is_err(), "random bytes must never carry a valid SET");
});
