//! containers/image component conformance rows C01-C09
//! (shared/conformance/containers-image/cases.tsv), on the library API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use tollgate_verify::cosign::{self, FulcioTrust, SignatureLayer};
use tollgate_verify::rekor::{self, RekorError, Signer};
use tollgate_verify::x509::San;
use tollgate_verify::{PublicKey, decode_base64, x509};

fn sig_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/containers-image/signature")
}

fn fixture(p: &str) -> Vec<u8> {
    std::fs::read(sig_dir().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn key(p: &str) -> PublicKey {
    PublicKey::from_pem(&fixture(p)).unwrap()
}

fn certs(p: &str) -> Vec<Vec<u8>> {
    x509::certs_from_pem(&fixture(p)).unwrap()
}

const ISSUER: &str = "https://github.com/login/oauth";
const EMAIL: &str = "mitr@redhat.com";
const T: u64 = 1_670_870_899;

#[test]
fn c01_c02_fulcio_chain_inside_and_outside_the_leaf_validity() {
    let leaf = certs("fixtures/fulcio-cert").remove(0);
    let mut chain = certs("fixtures/fulcio-chain");
    chain.pop();
    let roots = certs("fixtures/fulcio_v1.crt.pem");
    assert_eq!(x509::verify_chain(&leaf, &chain, &roots, T), Ok(()));
    let info = x509::leaf_info(&leaf).unwrap();
    assert_eq!(info.issuer.as_deref(), Some(ISSUER));
    assert_eq!(info.emails, [EMAIL]);
    for outside in [T - 2, T + 600] {
        let err = x509::verify_chain(&leaf, &chain, &roots, outside).unwrap_err();
        assert!(matches!(err, x509::CertError::Untrusted { .. }), "{err}");
    }
}

#[test]
fn c03_a_missing_intermediate_is_untrusted_unless_it_is_a_root() {
    let leaf = certs("fixtures/fulcio-cert").remove(0);
    let roots = certs("fixtures/fulcio_v1.crt.pem");
    assert!(x509::verify_chain(&leaf, &[], &roots, T).is_err());
    assert_eq!(x509::verify_chain(&leaf, &[], &certs("fixtures/fulcio-chain"), T), Ok(()));
}

fn rekor_material() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let set = fixture("internal/testdata/rekor-set");
    let cert = certs("internal/testdata/rekor-cert").remove(0);
    let sig = decode_base64(std::str::from_utf8(&fixture("internal/testdata/rekor-sig")).unwrap().trim()).unwrap();
    let payload = fixture("internal/testdata/rekor-payload");
    (set, cert, sig, payload)
}

#[test]
fn c04_c05_rekor_set_with_the_right_and_wrong_keys() {
    let (set, cert, sig, payload) = rekor_material();
    let keys = [key("fixtures/cosign.pub"), key("internal/testdata/rekor.pub")];
    assert_eq!(rekor::verify_bundle(&set, &keys, Signer::Certificate(&cert), &sig, &payload), Ok(T as i64));
    let wrong = [key("fixtures/cosign.pub")];
    assert_eq!(
        rekor::verify_bundle(&set, &wrong, Signer::Certificate(&cert), &sig, &payload),
        Err(RekorError::BadSet(1))
    );
}

#[test]
fn c06_the_log_entry_must_match_the_presented_material() {
    let (set, cert, sig, payload) = rekor_material();
    let keys = [key("internal/testdata/rekor.pub")];
    let other_payload = b"{}".to_vec();
    assert!(matches!(
        rekor::verify_bundle(&set, &keys, Signer::Certificate(&cert), &sig, &other_payload),
        Err(RekorError::Mismatch(_))
    ));
    assert!(matches!(
        rekor::verify_bundle(&set, &keys, Signer::Certificate(&cert), &sig[..sig.len() - 1], &payload),
        Err(RekorError::Mismatch(_))
    ));
    let other_cert = certs("fixtures/pki-cert").remove(0);
    assert!(matches!(
        rekor::verify_bundle(&set, &keys, Signer::Certificate(&other_cert), &sig, &payload),
        Err(RekorError::Mismatch(_))
    ));
    assert!(x509::certs_from_pem(b"not PEM").is_err());
}

fn layer(cert: &str, chain: Option<&str>, with_set: bool) -> SignatureLayer {
    let (set, _, _, payload) = rekor_material();
    let mut annotations = BTreeMap::from([
        (
            cosign::SIGNATURE_ANNOTATION.to_owned(),
            String::from_utf8(fixture("internal/testdata/rekor-sig")).unwrap().trim().to_owned(),
        ),
        (cosign::CERTIFICATE_ANNOTATION.to_owned(), String::from_utf8(fixture(cert)).unwrap()),
    ]);
    if let Some(c) = chain {
        annotations.insert(cosign::CHAIN_ANNOTATION.to_owned(), String::from_utf8(fixture(c)).unwrap());
    }
    if with_set {
        annotations.insert(cosign::BUNDLE_ANNOTATION.to_owned(), String::from_utf8(set).unwrap());
    }
    SignatureLayer { media_type: cosign::SIMPLE_SIGNING.to_owned(), payload, annotations }
}

#[test]
fn c07_fulcio_and_rekor_combined() {
    let roots = certs("fixtures/fulcio_v1.crt.pem");
    let rekor_keys = [key("internal/testdata/rekor.pub")];
    let trust = FulcioTrust { roots: &roots, issuer: ISSUER, subject: San::Exact(EMAIL), rekor_keys: &rekor_keys };
    let l = layer("internal/testdata/rekor-cert", Some("fixtures/fulcio-chain"), true);
    let v = cosign::verify_with_fulcio(&l, &trust).unwrap();
    assert_eq!(v.integrated_time, Some(T as i64));
    assert_eq!(v.payload.docker_reference, "192.168.64.2:5000/test-repo-2100826901021538654/alpine");
    let wrong_email = FulcioTrust { subject: San::Exact("someone@example.com"), ..trust };
    assert!(cosign::verify_with_fulcio(&l, &wrong_email).is_err());
    // A pattern matches the whole SAN: anchored, so a prefix or a suffix alone is not enough.
    let domain = x509::san_pattern(r".*@redhat\.com").unwrap();
    assert!(cosign::verify_with_fulcio(&l, &FulcioTrust { subject: San::Matches(&domain), ..trust }).is_ok());
    let elsewhere = x509::san_pattern(r".*@example\.com").unwrap();
    assert!(cosign::verify_with_fulcio(&l, &FulcioTrust { subject: San::Matches(&elsewhere), ..trust }).is_err());
    let exact_pattern = x509::san_pattern(&regex::escape(EMAIL)).unwrap();
    let v = cosign::verify_with_fulcio(&l, &FulcioTrust { subject: San::Matches(&exact_pattern), ..trust }).unwrap();
    assert_eq!(v.certificate_identity.as_deref(), Some(format!("{EMAIL} via {ISSUER}").as_str()));
    let prefix = x509::san_pattern(&regex::escape(&EMAIL[..EMAIL.len() - 1])).unwrap();
    assert!(cosign::verify_with_fulcio(&l, &FulcioTrust { subject: San::Matches(&prefix), ..trust }).is_err());
    let mut tampered = l.clone();
    tampered.payload.push(b' ');
    assert!(cosign::verify_with_fulcio(&tampered, &trust).is_err());
}

#[test]
fn c08_pki_with_chain_or_configured_intermediates() {
    let roots = certs("fixtures/pki_root_crts.pem");
    let inter = certs("fixtures/pki_intermediate_crts.pem");
    let now = 1_795_392_000;
    let leaf = certs("fixtures/pki-cert").remove(0);
    let mut chain = certs("fixtures/pki-chain");
    chain.pop();
    assert_eq!(x509::verify_chain(&leaf, &chain, &roots, now), Ok(()));
    assert_eq!(x509::verify_chain(&leaf, &inter, &roots, now), Ok(()));
    assert!(x509::verify_chain(&leaf, &[], &roots, now).is_err());
    assert_eq!(x509::verify_hostname(&leaf, "myhost.example.com"), Ok(()));
    assert!(x509::verify_hostname(&leaf, "otherhost.example.com").is_err());
    let info = x509::leaf_info(&leaf).unwrap();
    assert_eq!(info.emails, ["qiwan@redhat.com"]);
}

#[test]
fn c09_public_key_signature_yields_its_claims() {
    let l = cosign::parse_dir_signature(&fixture("internal/testdata/valid.signature")).unwrap();
    for keys in [vec![key("fixtures/cosign.pub")], vec![key("fixtures/cosign2.pub"), key("fixtures/cosign.pub")]] {
        let v = cosign::verify_with_keys(&l, &keys, &[]).unwrap();
        assert_eq!(v.payload.docker_reference, "192.168.64.2:5000/cosign-signed-single-sample");
        assert!(v.payload.manifest_digest.to_string().starts_with("sha256:634a8f35"));
    }
    assert!(cosign::verify_with_keys(&l, &[key("fixtures/cosign2.pub")], &[]).is_err());
}
