//! In-process cost of verifying one sigstore bundle from recorded material
//! (sigstore-conformance cases): a Rekor v1 bundle (SET, inclusion proof,
//! checkpoint, Fulcio chain, SCT) and a Rekor v2 bundle, whose time comes from
//! an RFC 3161 timestamp (CMS signature and TSA chain on top). The trusted
//! root is parsed once, outside the measured loop.
//! Run: `cargo bench -p tollgate-verify --bench bundle`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use tollgate_verify::bundle::{self, Artifact, Expected, TrustedRoot};

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const NOW: u64 = 1_795_392_000;

fn main() {
    divan::main();
}

fn read(p: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/sigstore").join(p))
        .unwrap()
}

fn run(bencher: divan::Bencher, case: &str, root: &str) {
    let bundle_bytes = read(&format!("bundle-verify/{case}/bundle.sigstore.json"));
    let root = TrustedRoot::parse(&read(root)).unwrap();
    let artifact = read("bundle-verify/a.txt");
    let expected = Expected::Identity { san: tollgate_verify::x509::San::Exact(IDENTITY), issuer: ISSUER };
    bundle::verify(&bundle_bytes, &root, Artifact::Bytes(&artifact), expected, NOW).unwrap();
    bencher.bench(|| bundle::verify(&bundle_bytes, &root, Artifact::Bytes(&artifact), expected, NOW));
}

#[divan::bench(sample_count = 100)]
fn rekor_v1_keyless(bencher: divan::Bencher) {
    run(bencher, "happy-path-v0.3", "public-good/trusted_root.json");
}

#[divan::bench(sample_count = 100)]
fn rekor_v2_keyless_with_rfc3161_timestamp(bencher: divan::Bencher) {
    run(bencher, "rekor2-happy-path", "bundle-verify/rekor2-happy-path/trusted_root.json");
}
