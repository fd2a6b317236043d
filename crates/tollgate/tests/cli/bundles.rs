//! `tollgate verify-bundle` on sigstore-conformance cases (the full suite runs in
//! tollgate-verify's tests; this checks the command's interface and exit codes).

use std::path::PathBuf;

use crate::util::tollgate;

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn sig(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/sigstore").join(p).display().to_string()
}

fn run(case: &str, artifact: &str) -> crate::util::Run {
    run_with(case, &sig("public-good/trusted_root.json"), artifact, &[])
}

fn run_with(case: &str, trusted_root: &str, artifact: &str, extra: &[&str]) -> crate::util::Run {
    let bundle = sig(&format!("bundle-verify/{case}/bundle.sigstore.json"));
    let mut args = vec!["verify-bundle", "--bundle", &bundle, "--trusted-root", trusted_root];
    args.extend(["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]);
    args.extend(extra);
    args.push(artifact);
    tollgate(&args)
}

#[test]
fn verifies_a_bundle_for_a_file_and_refuses_a_bad_one() {
    let r = run("happy-path-v0.3", &sig("bundle-verify/a.txt"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("VERIFIED "), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("signed by {IDENTITY} via {ISSUER}")), "{}", r.stdout);
    let r = run("signature-mismatch_fail", &sig("bundle-verify/a.txt"));
    assert!(r.one_line_error(1).contains("the signature does not verify over the artifact"), "{}", r.stderr);
}

#[test]
fn dsse_bundles_verify_against_a_digest() {
    let artifact = std::fs::read(sig("bundle-verify/a.txt")).unwrap();
    let digest = format!("sha256:{}", tollgate_oci::Digest::sha256_of(&artifact).hex());
    let r = run("happy-path-intoto-in-dsse-v3", &digest);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A message signature is over the artifact's bytes: a digest cannot verify it,
    // and the error says what to pass instead.
    let r = run("happy-path-v0.3", &digest);
    assert!(r.one_line_error(1).contains("message signatures need the artifact itself"), "{}", r.stderr);
    // With the file, a bundle whose message digest is another file's is refused.
    let other = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other.path(), b"not a.txt").unwrap();
    let r = run("happy-path-v0.3", other.path().to_str().unwrap());
    assert!(r.one_line_error(1).contains("message digest is not the artifact's"), "{}", r.stderr);
}

#[test]
fn signer_is_required() {
    let r = tollgate(&["verify-bundle", "--bundle", "b.json", "--trusted-root", "r.json", "file"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--key") || r.stderr.contains("certificate-identity"), "{}", r.stderr);
}

#[test]
fn rekor_v2_bundles_are_timed_by_their_rfc3161_timestamp() {
    let root = |case: &str| sig(&format!("bundle-verify/{case}/trusted_root.json"));
    let a = sig("bundle-verify/a.txt");
    let r = run_with("rekor2-happy-path", &root("rekor2-happy-path"), &a, &["--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["timeSource"], "timestamp-authority", "{v}");
    // genTime 20250612120220Z in the bundle's timestamp.
    assert_eq!(v["signedAt"], 1_749_729_740, "{v}");

    let r = run_with("rekor2-happy-path", &root("rekor2-happy-path"), &a, &[]);
    assert!(r.stdout.contains("timestamped at 1749729740"), "{}", r.stdout);

    // The timestamp's authority is not in the trusted root: refused, with why.
    let case = "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail";
    let r = run_with(case, &root(case), &a, &[]);
    assert!(
        r.one_line_error(1).contains("signed by a timestamp authority the trusted root does not list"),
        "{}",
        r.stderr
    );
    // The public-good root lists no timestamp authority for Rekor v2's staging log.
    let r = run("rekor2-happy-path", &a);
    assert_eq!(r.code, 1, "{}", r.stderr);
}
