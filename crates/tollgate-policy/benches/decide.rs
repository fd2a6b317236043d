//! In-process cost of one decision from recorded material (containers/image fixtures):
//! a public-key signature, a public key plus Rekor SET, and a keyless Fulcio signature.
//! Run: `cargo bench -p tollgate-policy --bench decide`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use tollgate_oci::{Digest, Reference};
use tollgate_policy::Policy;
use tollgate_policy::evaluate::{Image, LoadedPolicy, Signatures, evaluate};
use tollgate_policy::scope::Subject;
use tollgate_verify::cosign::parse_dir_signature;

fn main() {
    divan::main();
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/containers-image/signature/fixtures")
}

struct Case {
    policy: LoadedPolicy,
    reference: Reference,
    manifest: Vec<u8>,
    digest: Digest,
    signatures: Signatures,
}

fn case(requirement: &str, reference: &str, dir: &str) -> Case {
    let p = Policy::parse(format!(r#"{{"default":[{requirement}]}}"#).as_bytes(), "bench").unwrap();
    let read = |f: &str| std::fs::read(fixtures().join(f)).map_err(|e| e.to_string());
    let policy = LoadedPolicy::load(p, "bench", &read).unwrap();
    let manifest = std::fs::read(fixtures().join(dir).join("manifest.json")).unwrap();
    let sig = parse_dir_signature(&std::fs::read(fixtures().join(dir).join("signature-1")).unwrap()).unwrap();
    Case {
        policy,
        reference: Reference::parse_normalized(reference).unwrap(),
        digest: Digest::sha256_of(&manifest),
        manifest,
        signatures: Signatures::Found(vec![sig]),
    }
}

fn decide(c: &Case) -> bool {
    let image = Image {
        subject: Subject::Docker(&c.reference),
        digest: &c.digest,
        manifest: Some(&c.manifest),
        platforms: &[],
    };
    evaluate(&c.policy, &image, &c.signatures, 1_795_392_000).allowed
}

#[divan::bench]
fn public_key(b: divan::Bencher) {
    let c = case(
        r#"{"type":"sigstoreSigned","keyPath":"cosign.pub","signedIdentity":{"type":"matchRepository"}}"#,
        "192.168.64.2:5000/cosign-signed-single-sample",
        "dir-img-cosign-valid",
    );
    assert!(decide(&c));
    b.bench(|| decide(divan::black_box(&c)));
}

#[divan::bench]
fn public_key_and_rekor_set(b: divan::Bencher) {
    let c = case(
        r#"{"type":"sigstoreSigned","keyPath":"cosign2.pub","rekorPublicKeyPath":"rekor.pub","signedIdentity":{"type":"matchRepository"}}"#,
        "192.168.64.2:5000/cosign-signed/key-1",
        "dir-img-cosign-key-rekor-valid",
    );
    assert!(decide(&c));
    b.bench(|| decide(divan::black_box(&c)));
}

#[divan::bench]
fn keyless_fulcio_and_rekor(b: divan::Bencher) {
    let c = case(
        r#"{"type":"sigstoreSigned","fulcio":{"caPath":"fulcio_v1.crt.pem","oidcIssuer":"https://github.com/login/oauth","subjectEmail":"mitr@redhat.com"},"rekorPublicKeyPath":"rekor.pub","signedIdentity":{"type":"matchRepository"}}"#,
        "192.168.64.2:5000/cosign-signed/fulcio-rekor-1",
        "dir-img-cosign-fulcio-rekor-valid",
    );
    assert!(decide(&c));
    b.bench(|| decide(divan::black_box(&c)));
}

#[divan::bench]
fn policy_load_with_keys() -> LoadedPolicy {
    let p = Policy::parse(
        br#"{"default":[{"type":"sigstoreSigned","keyPaths":["cosign.pub","cosign2.pub"],"rekorPublicKeyPath":"rekor.pub"}]}"#,
        "bench",
    )
    .unwrap();
    let read = |f: &str| std::fs::read(fixtures().join(f)).map_err(|e| e.to_string());
    LoadedPolicy::load(p, "bench", &read).unwrap()
}
