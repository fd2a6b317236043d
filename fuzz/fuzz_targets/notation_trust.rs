//! What notation's trust material reads: certificate files (PEM or DER, one or several), the facts a
//! trust store checks about each certificate, `x509.subject` distinguished names, and trust policy
//! documents with the statement lookup, and JWS and COSE signature envelopes (and the CBOR under
//! COSE), and CRLs and OCSP responses. The first byte picks the parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_notation::{certs, identity, jws, trustpolicy};

/// A u16 big-endian length-prefixed part, and the rest.
fn split(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, b) = b.split_first_chunk::<2>()?;
    let n = usize::from(u16::from_be_bytes(*len));
    (b.len() >= n).then(|| b.split_at(n))
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 5 {
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
        4 => {
            // A CRL or an OCSP response for a certificate and its issuer: u16 length-prefixed
            // certificate and issuer, then the CRL or the response.
            let Some((cert, rest)) = split(rest) else { return };
            let Some((issuer, crl)) = split(rest) else { return };
            let _ = tollgate_notation::revocation::listed(cert, issuer, crl, 1_767_225_600, Some(1_767_225_000));
            let _ = tollgate_notation::revocation::queries(&[cert.to_vec(), issuer.to_vec()]);
            let _ = tollgate_notation::ocsp::answer(cert, issuer, crl, 1_767_225_600, Some(1_767_225_000));
        }
        3 => {
            let policy = r#"{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],
                "signatureVerification":{"level":"strict"},"trustStores":["ca:s"],"trustedIdentities":["*"]}]}"#;
            let Ok(doc) = trustpolicy::parse(policy.as_bytes()) else { return };
            // A COSE_Sign1 message (tag 18) or a JWS envelope (JSON).
            let cose = rest.first() == Some(&0xd2);
            let _ = tollgate_notation::cbor::decode(rest);
            let inputs = jws::Inputs {
                media_type: if cose { tollgate_notation::cose::MEDIA_TYPE } else { jws::MEDIA_TYPE },
                digest: "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e",
                policy: &doc.trust_policies[0],
                ca: &[],
                signing_authority: &[],
                now: 1_767_225_600,
                user_metadata: &[],
                tsa: &[],
                target: None,
                revocation: None,
            };
            let _ = jws::verify(rest, &inputs);
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
