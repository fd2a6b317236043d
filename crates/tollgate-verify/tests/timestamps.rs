//! RFC 3161 timestamps (`tollgate_verify::tsa`) on the real timestamps of the
//! sigstore-conformance Rekor v2 bundles: what verifies, what each kind of
//! tampering gives, and that no single-byte change yields another time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use tollgate_verify::tsa::{self, TimestampError};

fn case(name: &str, file: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/sigstore/bundle-verify")
        .join(name)
        .join(file);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn b64(v: &serde_json::Value) -> Vec<u8> {
    tollgate_verify::decode_base64(v.as_str().unwrap()).unwrap()
}

/// (timestamp response, the bundle's signature, the TSA chain of the case's trusted root)
fn material(name: &str) -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    let bundle = case(name, "bundle.sigstore.json");
    let root = case(name, "trusted_root.json");
    let stamp =
        b64(&bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"]);
    let sig = b64(&bundle["messageSignature"]["signature"]);
    let chain = root["timestampAuthorities"][0]["certChain"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| b64(&c["rawBytes"]))
        .collect();
    (stamp, sig, chain)
}

/// 2025-06-12T12:02:20Z, the genTime of the staging TSA's timestamp.
const GEN_TIME_MS: i64 = 1_749_729_740_000;

#[test]
fn a_timestamp_of_the_signature_by_the_listed_authority_verifies() {
    let (stamp, sig, chain) = material("rekor2-happy-path");
    assert_eq!(tsa::verify(&stamp, &sig, &chain), Ok(GEN_TIME_MS));
    assert_eq!(tsa::gen_time_unverified(&stamp), Ok(GEN_TIME_MS));
    // With and without the signing certificate embedded in the token.
    let (stamp, sig, chain) = material("rekor2-timestamp-without-embedded-cert");
    assert!(tsa::verify(&stamp, &sig, &chain).is_ok());
    let (stamp, sig, chain) = material("rekor2-timestamp-with-embedded-cert");
    assert!(tsa::verify(&stamp, &sig, &chain).is_ok());
}

#[test]
fn other_bytes_other_authorities_and_missing_roots_are_refused() {
    let (stamp, sig, chain) = material("rekor2-happy-path");
    assert_eq!(tsa::verify(&stamp, b"another signature", &chain), Err(TimestampError::Imprint));
    // A timestamp by an authority with its own (untrusted) certificate.
    let (foreign, foreign_sig, _) = material("rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail");
    assert_eq!(tsa::verify(&foreign, &foreign_sig, &chain), Err(TimestampError::OtherAuthority));
    // The leaf alone, without the root it chains to, is not trusted.
    assert!(matches!(tsa::verify(&stamp, &sig, &chain[..1]), Err(TimestampError::Untrusted(_))));
    assert!(matches!(tsa::verify(&stamp, &sig, &[]), Err(TimestampError::Untrusted(_))));
}

#[test]
fn the_authority_certificate_is_checked_at_the_time_of_the_timestamp() {
    // The leaf expired before genTime: refused though the chain is otherwise right.
    let (stamp, sig, chain) = material("rekor2-timestamp-outside-tsa-cert-validity_fail");
    let err = tsa::verify(&stamp, &sig, &chain).unwrap_err();
    assert!(err.to_string().contains("CertExpired"), "{err}");
    // The chain has expired since, but was valid at genTime: accepted.
    let (stamp, sig, chain) = material("rekor2-timestamp-with-expired-cert-chain");
    assert!(tsa::verify(&stamp, &sig, &chain).is_ok());
}

#[test]
fn no_single_byte_change_yields_an_accepted_different_timestamp() {
    let (stamp, sig, chain) = material("rekor2-happy-path");
    let mut accepted = 0;
    for i in 0..stamp.len() {
        let mut m = stamp.clone();
        m[i] ^= 0x01;
        // Only the status (granted → granted with modifications) is neither
        // signed nor checked; the time may never change.
        if let Ok(t) = tsa::verify(&m, &sig, &chain) {
            assert_eq!(t, GEN_TIME_MS, "byte {i}");
            accepted += 1;
        }
    }
    eprintln!("{accepted} of {} single-byte changes still verify, all with the same time", stamp.len());
    assert_eq!(accepted, 1, "{accepted} of {} mutations accepted", stamp.len());
}
