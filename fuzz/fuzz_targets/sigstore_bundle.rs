//! Sigstore bundles, trusted roots and checkpoints: never panic; random bytes never verify.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_verify::bundle::{self, Artifact, Expected, TrustedRoot};
use tollgate_verify::tlog;

static ROOT: OnceLock<Option<TrustedRoot>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let root = ROOT.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance/sigstore/public-good/trusted_root.json");
        std::fs::read(path).ok().and_then(|b| TrustedRoot::parse(&b).ok())
    });
    let _ = TrustedRoot::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tlog::parse_checkpoint(text);
    }
    if let Some(root) = root {
        let expected = Expected::Identity { san: "x", issuer: "y" };
        let r = bundle::verify(data, root, Artifact::Bytes(b"artifact"), expected, 1_795_392_000);
        assert!(r.is_err(), "fuzzed bytes must not verify");
    }
});
