//! `../shared/conformance/notation`'s trust-store, identity and certificate-file cases (cases.tsv
//! S01–S08, I01–I02, X01), run against this crate. The verify, timestamp and encoding cases need
//! envelopes, which are not in this release.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use tollgate_notation::truststore::{StoreType, load_dir};
use tollgate_notation::{certs, identity};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/notation")
}

fn present() -> bool {
    let here = data().join("cases.tsv").exists();
    assert!(here || std::env::var("CI").as_deref() != Ok("true"), "CI=true and {} is missing", data().display());
    if !here {
        eprintln!("SKIPPED: {} is missing", data().display());
    }
    here
}

#[test]
fn trust_stores_load_or_fail_as_notation_go_does() {
    if !present() {
        return;
    }
    let root = data().join("notation-go/verifier/testdata");
    let cases: [(&str, StoreType, &str, Result<usize, &str>); 8] = [
        ("S01", StoreType::Ca, "valid-trust-store", Ok(6)),
        ("S02", StoreType::Ca, "valid-trust-store-self-signed", Ok(1)),
        ("S03", StoreType::Ca, "trust-store-with-invalid-certs", Err("cannot read the certificate file invalid")),
        (
            "S04",
            StoreType::Ca,
            "trust-store-with-leaf-certs",
            Err("is not a CA certificate or self-signed signing certificate"),
        ),
        (
            "S05",
            StoreType::Ca,
            "trust-store-with-leaf-certs-in-single-file",
            Err("is not a CA certificate or self-signed signing certificate"),
        ),
        ("S06", StoreType::Tsa, "test-timestamp", Ok(1)),
        ("S07", StoreType::Tsa, "test-nonCA", Err("is not a root CA certificate")),
        ("S08", StoreType::Tsa, "test-nonSelfIssued", Err("its issuer and subject are not the same")),
    ];
    let mut passed = 0;
    for (id, kind, name, want) in cases {
        let got = load_dir(&root, kind, name);
        match (&got, want) {
            (Ok(certs), Ok(n)) => assert_eq!(certs.len(), n, "{id}: {name}"),
            (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{id}: {e}"),
            _ => panic!("{id} {name}: got {got:?}, want {want:?}"),
        }
        passed += 1;
    }
    assert_eq!(passed, 8);
}

#[test]
fn trusted_identities_match_as_notation_go_does() {
    if !present() {
        return;
    }
    let dir = data().join("notation-go/verifier/testdata/verifier");
    let leaf = certs::read_certificates(&std::fs::read(dir.join("signing-cert.pem")).unwrap()).unwrap().remove(0);
    let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    // I01: matches, does not match, errors.
    for yes in [
        &["x509.subject:C=US,O=SomeOrg,ST=WA"][..],
        &["*"],
        &["x509.subject:C=IND,O=SomeOrg,ST=TS", "x509.subject:C=US,O=SomeOrg,ST=WA", "nonX509Prefix:x"],
    ] {
        assert_eq!(identity::trusted(&ids(yes), &leaf), Ok(true), "{yes:?}");
    }
    assert_eq!(identity::trusted(&ids(&["x509.subject:C=IND,O=SomeOrg,ST=TS"]), &leaf), Ok(false));
    assert!(identity::trusted(&ids(&["nonX509Prefix:my-custom-identity"]), &leaf).is_err(), "only other prefixes");
    assert!(identity::trusted(&ids(&["x509.subject:C=bad=#identity,O=SomeOrg,ST=WA"]), &leaf).is_err());
    // I02: a certificate whose subject notation cannot parse.
    let bad = certs::read_certificates(&std::fs::read(dir.join("bad-cert.pem")).unwrap()).unwrap().remove(0);
    let e = identity::trusted(&ids(&["x509.subject:C=US,O=SomeOrg,ST=WA", "nonX509Prefix:my-custom-identity"]), &bad);
    assert!(e.as_ref().is_err_and(|e| e.0.contains("certificate subject")), "{e:?}");
}

#[test]
fn certificate_files_are_read_as_notation_core_go_does() {
    if !present() {
        return;
    }
    let dir = data().join("notation-core-go/x509/testdata");
    for (file, n) in [("pem.crt", 1), ("multi-pem.crt", 2), ("der.der", 1), ("multi-der.der", 2)] {
        assert_eq!(certs::read_certificates(&std::fs::read(dir.join(file)).unwrap()).unwrap().len(), n, "X01 {file}");
    }
    assert!(certs::read_certificates(&std::fs::read(dir.join("invalid")).unwrap()).is_err(), "X01 invalid");
}

/// The authored trust policies load; V11 (no applicable statement), V12 (bad artifact references)
/// and V13 (invalid documents) fail as notation-go does.
#[test]
fn trust_policies_load_and_apply_as_notation_go_does() {
    use tollgate_notation::trustpolicy;
    if !present() {
        return;
    }
    let policies = data().join("policies");
    for file in ["oci-acme-strict.json", "timestamp-always.json", "wabbit-plugin.json"] {
        let bytes = std::fs::read(policies.join(file)).unwrap();
        assert!(trustpolicy::parse(&bytes).is_ok(), "{file}: {:?}", trustpolicy::parse(&bytes));
    }
    let strict_text = std::fs::read_to_string(policies.join("oci-acme-strict.json")).unwrap();
    let strict = trustpolicy::parse(strict_text.as_bytes()).unwrap();
    let digest = "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e";
    assert_eq!(
        strict.applicable(&format!("registry.acme-rockets.io/software/net-monitor@{digest}")).unwrap().name,
        "test-statement-name"
    );
    // V11
    let e = strict
        .applicable(
            "non-existent-domain.com/repo@sha256:73c803930ea3ba1e54bc25c2bdc53edd0284c62ed651fe7b00369da519a3c333",
        )
        .unwrap_err();
    assert!(e.0.contains("has no applicable oci trust policy statement"), "V11: {e}");
    // V12
    for bad in [
        "",
        "invaliduri",
        "domain.com/repository",
        "domain.com/repository@",
        "domain.com/repository@sha256",
        "domain.com/repository@sha256:",
        "domain.com/repositorysha256:digest",
        "repository@sha256:digest",
    ] {
        assert!(strict.applicable(bad).is_err(), "V12: {bad:?} was accepted");
    }
    // V13
    for (from, to) in [
        ("\"signingAuthority:valid-trust-store\"", "\"signingAuthority\""),
        ("\"x509.subject:CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US\"", "\"x509.subject\""),
        ("\"x509.subject:CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US\"", "\"x509.subject:\""),
    ] {
        assert!(strict_text.contains(from), "{from}");
        let changed = strict_text.replace(from, to);
        assert!(trustpolicy::parse(changed.as_bytes()).is_err(), "V13: {to} was accepted");
    }
}
