//! `tollgate verify-bundle` on sigstore-conformance cases: the command's
//! interface and exit codes, and every case in both of upstream's modes (the
//! artifact file, and `sha256:<hex>`) through the real binary, as
//! sigstore-conformance's own harness calls a client.

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
    // An ECDSA message signature verifies over the digest too (as sigstore-go does)…
    let r = run("happy-path-v0.3", &digest);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // …but not over another file's digest.
    let wrong = format!("sha256:{}", tollgate_oci::Digest::sha256_of(b"not a.txt").hex());
    assert!(run("happy-path-v0.3", &wrong).one_line_error(1).contains("message digest is not the artifact's"));
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
    assert_eq!(v["signedAt"], "2025-06-12T12:02:20Z", "{v}");
    assert_eq!(v["signedAtUnix"], 1_749_729_740, "{v}");

    let r = run_with("rekor2-happy-path", &root("rekor2-happy-path"), &a, &[]);
    assert!(r.stdout.contains("timestamped at 2025-06-12T12:02:20Z"), "{}", r.stdout);

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

/// sigstore-conformance's 70 cases × its two modes, through the binary:
/// `_fail` cases exit 1, the others exit 0. The command line is upstream's
/// client protocol (docs/cli_protocol.md), so this is what its harness runs.
#[test]
fn all_140_conformance_runs_through_the_cli() {
    let tsv = std::fs::read_to_string(sig("cases.tsv")).unwrap();
    let mut results = Vec::new();
    for line in tsv.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let (case, pass) = (f[0], f[1] == "pass");
        let dir = PathBuf::from(sig(&format!("bundle-verify/{case}")));
        let root = if dir.join("trusted_root.json").exists() {
            dir.join("trusted_root.json").display().to_string()
        } else {
            sig("public-good/trusted_root.json")
        };
        let artifact = if dir.join("artifact").exists() {
            dir.join("artifact")
        } else {
            PathBuf::from(sig("bundle-verify/a.txt"))
        };
        let digest = format!("sha256:{}", tollgate_oci::Digest::sha256_of(&std::fs::read(&artifact).unwrap()).hex());
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok().map(|s| s.trim().to_owned());
        let (identity, issuer) = (read("identity").unwrap_or(IDENTITY.into()), read("issuer").unwrap_or(ISSUER.into()));
        let bundle = dir.join("bundle.sigstore.json").display().to_string();
        let key = dir.join("key.pub").display().to_string();
        for target in [artifact.display().to_string(), digest] {
            let mut args = vec!["verify-bundle", "--bundle", &bundle, "--trusted-root", &root];
            if dir.join("key.pub").exists() {
                args.extend(["--key", &key]);
            } else {
                args.extend(["--certificate-identity", &identity, "--certificate-oidc-issuer", &issuer]);
            }
            args.push(&target);
            let r = tollgate(&args);
            // A refused bundle exits 1; a refused key or trusted root is a configuration error, 2.
            let ok = if pass { r.code == 0 } else { r.code == 1 || r.code == 2 };
            results.push((
                format!("{case} {}", if target.starts_with("sha256:") { "DIGEST" } else { "PATH" }),
                ok,
                r.stderr,
            ));
        }
    }
    let failed: Vec<String> = results.iter().filter(|(_, ok, _)| !ok).map(|(n, _, e)| format!("{n}: {e}")).collect();
    assert_eq!(results.len(), 140);
    assert!(failed.is_empty(), "{} of 140 runs differ:\n{}", failed.len(), failed.join("\n"));
}
