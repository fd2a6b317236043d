//! RFC 3161 timestamp responses and bare tokens: never panic; anything that
//! verifies against the staging TSA's chain is a timestamp of the signature, at
//! the time it says.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_verify::tsa;

/// The signature the seed timestamp covers, and the TSA chain that signed it.
static MATERIAL: OnceLock<Option<(Vec<u8>, Vec<Vec<u8>>)>> = OnceLock::new();

fn material() -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance/sigstore/bundle-verify/rekor2-happy-path");
    let json = |f: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(format!("{dir}/{f}")).ok()?).ok()
    };
    let b64 = |v: &serde_json::Value| tollgate_verify::decode_base64(v.as_str()?).ok();
    let bundle = json("bundle.sigstore.json")?;
    let root = json("trusted_root.json")?;
    let sig = b64(&bundle["messageSignature"]["signature"])?;
    let chain = root["timestampAuthorities"][0]["certChain"]["certificates"]
        .as_array()?
        .iter()
        .map(|c| b64(&c["rawBytes"]))
        .collect::<Option<Vec<_>>>()?;
    Some((sig, chain))
}

fuzz_target!(|data: &[u8]| {
    let unverified = tsa::gen_time_unverified(data);
    if let Some((sig, chain)) = MATERIAL.get_or_init(material) {
        if let Ok(t) = tsa::verify(data, sig, chain) {
            assert_eq!(unverified, Ok(t), "a verified timestamp reports its own genTime");
        }
        assert!(tsa::verify(data, b"other bytes", chain).is_err(), "a timestamp covers one message");
        // The same bytes as a bare TimeStampToken (notation's countersignature), with the chain's
        // root as the only trusted one.
        if let Some(root) = chain.last() {
            let roots = std::slice::from_ref(root);
            if let Ok(stamp) = tsa::verify_token(data, sig, roots) {
                assert!(stamp.earliest() <= stamp.millis && stamp.millis <= stamp.latest());
            }
            assert!(tsa::verify_token(data, b"other bytes", roots).is_err(), "a token covers one message");
        }
    }
});
