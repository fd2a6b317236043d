//! What notation's trust material reads: certificate files (PEM or DER, one or several), the facts a
//! trust store checks about each certificate, `x509.subject` distinguished names, and trust policy
//! documents with the statement lookup. The first byte picks the parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_notation::{certs, identity, trustpolicy};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 3 {
        0 => {
            if let Ok(ders) = certs::read_certificates(rest) {
                for der in &ders {
                    let _ = certs::facts(der);
                    let _ = identity::trusted(&["x509.subject:C=US,ST=WA,O=x".to_owned()], der);
                }
            }
        }
        1 => {
            if let Ok(s) = std::str::from_utf8(rest) {
                let _ = identity::parse_dn(s);
            }
        }
        _ => {
            if let Ok(doc) = trustpolicy::parse(rest) {
                for s in &doc.trust_policies {
                    let _ = s.signature_verification.level();
                    for scope in &s.registry_scopes {
                        let _ = doc.applicable(&format!("{scope}@sha256:{}", "0".repeat(64)));
                    }
                }
            }
        }
    }
});
