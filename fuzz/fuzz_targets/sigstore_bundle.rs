//! Sigstore bundles, trusted roots and checkpoints: never panic; random bytes never verify.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_verify::bundle::{self, Artifact, Expected, TrustedRoot};
use tollgate_verify::tlog;

static ROOTS: OnceLock<Vec<TrustedRoot>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // The public-good root, and the staging root of the Rekor v2 cases, which
    // also lists a timestamp authority and a Rekor v2 log.
    let roots = ROOTS.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance/sigstore");
        ["public-good/trusted_root.json", "bundle-verify/rekor2-happy-path/trusted_root.json"]
            .iter()
            .filter_map(|p| std::fs::read(format!("{dir}/{p}")).ok())
            .filter_map(|b| TrustedRoot::parse(&b).ok())
            .collect()
    });
    let _ = TrustedRoot::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tlog::parse_checkpoint(text);
    }
    for root in roots {
        let expected = Expected::Identity { san: tollgate_verify::x509::San::Exact("x"), issuer: "y" };
        let r = bundle::verify(data, root, Artifact::Bytes(b"artifact"), expected, 1_795_392_000);
        assert!(r.is_err(), "fuzzed bytes must not verify");
    }
});
