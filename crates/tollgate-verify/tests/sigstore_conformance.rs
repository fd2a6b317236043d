//! sigstore-conformance `verify-bundle` cases (shared/conformance/sigstore), run on
//! the library API in both of upstream's modes: PATH (the artifact file) and
//! DIGEST (only `sha256:<hex>` of it). Every `_fail` case must be rejected and
//! every other accepted, 140 runs, except the gaps listed in KNOWN_GAPS (each
//! with its reason), which must still fail safe (never accept a `_fail` case).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use tollgate_verify::PublicKey;
use tollgate_verify::bundle::{self, Artifact, Expected, TrustedRoot};
use tollgate_verify::x509::San;

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";
/// 2026-11-22: the cases are checked at a fixed "now".
const NOW: u64 = 1_795_392_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/sigstore")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Digest,
}

fn run_case(name: &str, mode: Mode) -> Result<(), String> {
    let dir = root().join("bundle-verify").join(name);
    let read = |f: &str| std::fs::read(dir.join(f));
    let bundle = read("bundle.sigstore.json").map_err(|e| e.to_string())?;
    let trusted =
        read("trusted_root.json").or_else(|_| std::fs::read(root().join("public-good/trusted_root.json"))).unwrap();
    let artifact = read("artifact").unwrap_or_else(|_| std::fs::read(root().join("bundle-verify/a.txt")).unwrap());
    let identity =
        read("identity").map(|b| String::from_utf8(b).unwrap().trim().to_owned()).unwrap_or(IDENTITY.to_owned());
    let issuer = read("issuer").map(|b| String::from_utf8(b).unwrap().trim().to_owned()).unwrap_or(ISSUER.to_owned());
    let trusted = TrustedRoot::parse(&trusted).map_err(|e| e.to_string())?;
    let key = read("key.pub").ok().map(|k| PublicKey::from_pem(&k));
    let expected = match &key {
        Some(Ok(k)) => Expected::Key(k),
        Some(Err(e)) => return Err(e.to_string()),
        None => Expected::Identity { san: San::Exact(&identity), issuer: &issuer },
    };
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&artifact).into();
    let artifact = match mode {
        Mode::Path => Artifact::Bytes(&artifact),
        Mode::Digest => Artifact::Sha256(&digest),
    };
    bundle::verify(&bundle, &trusted, artifact, expected, NOW).map(|_| ()).map_err(|e| e.to_string())
}

fn cases() -> Vec<(String, bool)> {
    let tsv = std::fs::read_to_string(root().join("cases.tsv")).unwrap();
    tsv.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            let name = f.next()?.to_owned();
            let expected_pass = f.next()? == "pass";
            Some((name, expected_pass))
        })
        .collect()
}

/// Cases (and modes) tollgate does not get right yet, each with the reason.
/// Pass cases here must still be rejected as not supported (fail safe);
/// nothing outside this list may differ.
const KNOWN_GAPS: &[(&str, Mode, &str)] = &[];

#[test]
fn conformance_cases_match_expectations_outside_the_known_gaps() {
    let mut matched = 0;
    let mut report = Vec::new();
    let all = cases();
    for mode in [Mode::Path, Mode::Digest] {
        for (name, pass) in &all {
            let r = run_case(name, mode);
            let good = r.is_ok() == *pass;
            matched += usize::from(good);
            report.push(format!(
                "{} {mode:?} {name}: {}",
                if good { "ok  " } else { "MISS" },
                r.clone().err().unwrap_or_else(|| "accepted".into())
            ));
            match KNOWN_GAPS.iter().find(|(n, m, _)| n == name && *m == mode) {
                None => {
                    assert!(good, "{name} ({mode:?}): expected {}, got {r:?}", if *pass { "accept" } else { "reject" })
                }
                Some(_) if name.ends_with("_fail") => {}
                Some((_, _, why)) => {
                    let err = r.err().unwrap_or_default();
                    assert!(
                        err.starts_with("not supported"),
                        "{name} ({why}) must be refused as not supported, got {err:?}"
                    );
                }
            }
        }
    }
    eprintln!("{}\n{matched}/{} as expected", report.join("\n"), 2 * all.len());
    assert_eq!(all.len(), 70);
    assert_eq!(matched, 140 - KNOWN_GAPS.len(), "update KNOWN_GAPS and docs/conformance.md");
}

/// Integration times a log could not have signed are refused before any
/// arithmetic on them (a valid SET over such a time would otherwise overflow).
#[test]
fn out_of_range_integration_times_are_malformed() {
    let dir = root().join("bundle-verify");
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("happy-path-v0.3/bundle.sigstore.json")).unwrap()).unwrap();
    let trusted = TrustedRoot::parse(&std::fs::read(root().join("public-good/trusted_root.json")).unwrap()).unwrap();
    let artifact = std::fs::read(dir.join("a.txt")).unwrap();
    for (time, want) in [
        ("9223372036854775807", "integratedTime is out of range"),
        ("-5", "integratedTime is out of range"),
        ("0", "a signed entry timestamp without integratedTime"),
        ("1e9", "integratedTime is not an integer"),
    ] {
        let mut b = bundle.clone();
        b["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = time.into();
        let expected = Expected::Identity { san: San::Exact(IDENTITY), issuer: ISSUER };
        let r = bundle::verify(b.to_string().as_bytes(), &trusted, Artifact::Bytes(&artifact), expected, NOW);
        assert!(r.as_ref().is_err_and(|e| e.to_string().contains(want)), "{time}: {r:?}");
    }
}
