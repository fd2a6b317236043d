//! PEM certificates and public keys from signature annotations and policies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_verify::{PublicKey, x509};

fuzz_target!(|data: &[u8]| {
    let _ = PublicKey::from_pem(data);
    let _ = PublicKey::from_spki_der(data);
    if let Ok(certs) = x509::certs_from_pem(data) {
        for c in &certs {
            let _ = x509::leaf_info(c);
            let _ = x509::verify_chain(c, &[], &certs, 1_700_000_000);
        }
    }
    let _ = x509::leaf_info(data);
});
