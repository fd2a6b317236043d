//! What notation's trust material reads: certificate files (PEM or DER, one or several), the facts a
//! trust store checks about each certificate, and `x509.subject` distinguished names. The first byte
//! picks the parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_notation::{certs, identity};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 2 {
        0 => {
            if let Ok(ders) = certs::read_certificates(rest) {
                for der in &ders {
                    let _ = certs::facts(der);
                    let _ = identity::trusted(&["x509.subject:C=US,ST=WA,O=x".to_owned()], der);
                }
            }
        }
        _ => {
            if let Ok(s) = std::str::from_utf8(rest) {
                let _ = identity::parse_dn(s);
            }
        }
    }
});
