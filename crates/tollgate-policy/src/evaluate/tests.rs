//! containers/image conformance rows (shared/conformance/containers-image/cases.tsv)
//! for public-key and Rekor requirements, run through the real evaluation.

use std::path::PathBuf;

use base64::Engine as _;
use tollgate_verify::cosign::parse_dir_signature;

use tollgate_oci::Reference;

use super::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/containers-image/signature/fixtures")
}

fn read(p: &str) -> Result<Vec<u8>, String> {
    std::fs::read(fixtures().join(p)).map_err(|e| e.to_string())
}

fn policy(requirement: &str) -> Result<LoadedPolicy, PolicyError> {
    let text = format!(r#"{{"default":[{requirement}]}}"#);
    let p = Policy::parse(text.as_bytes(), "case")?;
    LoadedPolicy::load(p, "case", &read)
}

/// Loads an image directory; signature files that are not sigstore (GPG) are skipped, as
/// sigstoreSigned ignores them.
fn image_dir(dir: &str, sigs: &[&str]) -> (Option<Vec<u8>>, Vec<SignatureLayer>) {
    let manifest = std::fs::read(fixtures().join(dir).join("manifest.json")).ok();
    let layers = sigs
        .iter()
        .filter_map(|s| {
            let p = fixtures().join(dir).join(s);
            parse_dir_signature(&std::fs::read(p).unwrap_or_else(|e| panic!("{s}: {e}"))).ok()
        })
        .collect();
    (manifest, layers)
}

/// An image directory as a decision sees it: its manifest, digest, reference and signatures.
struct Fixture {
    manifest: Vec<u8>,
    digest: Digest,
    reference: Reference,
    layers: Vec<SignatureLayer>,
}

impl Fixture {
    fn load(dir: &str, reference: &str, sigs: &[&str]) -> Fixture {
        let (manifest, layers) = image_dir(dir, sigs);
        let manifest = manifest.unwrap_or_else(|| panic!("{dir} has a manifest"));
        let digest = Digest::sha256_of(&manifest);
        let reference = Reference::parse_normalized(reference).unwrap_or_else(|e| panic!("{e}"));
        Fixture { manifest, digest, reference, layers }
    }

    fn image(&self) -> Image<'_> {
        Image {
            subject: Subject::Docker(&self.reference),
            digest: &self.digest,
            manifest: Some(&self.manifest),
            platforms: &[],
        }
    }
}

fn decide(req: &str, reference: &str, dir: &str, sigs: &[&str], mutate: impl Fn(&mut Vec<SignatureLayer>)) -> bool {
    let (manifest, mut layers) = image_dir(dir, sigs);
    mutate(&mut layers);
    // No manifest: nothing to decide on, which is a denial (K13).
    let Some(manifest) = manifest else { return false };
    let digest = Digest::sha256_of(&manifest);
    let reference = Reference::parse_normalized(reference).unwrap_or_else(|e| panic!("{e}"));
    let p = policy(req).unwrap_or_else(|e| panic!("{e}"));
    let image =
        Image { subject: Subject::Docker(&reference), digest: &digest, manifest: Some(&manifest), platforms: &[] };
    let d = evaluate(&p, &image, &Signatures::Found(layers), NOW);
    assert_eq!(d.allowed, d.failure.is_none());
    if !d.allowed {
        eprintln!("{reference}: {}: {:?}", d.reason, d.requirements.first().map(|r| &r.signatures));
    }
    d.allowed
}

/// 2026-11-22, inside the PKI fixtures' validity (2024-10-01 to 2052-02-16).
const NOW: u64 = 1_795_392_000;

const KEY: &str = r#"{"type":"sigstoreSigned","keyPath":"cosign.pub","signedIdentity":{"type":"matchRepository"}}"#;
const VALID: &str = "dir-img-cosign-valid";
const SAMPLE: &str = "192.168.64.2:5000/cosign-signed-single-sample";
fn none(_: &mut Vec<SignatureLayer>) {}

#[test]
fn k01_valid_signature_with_any_key_form() {
    let pem = |f: &str| base64::engine::general_purpose::STANDARD.encode(read(f).unwrap_or_default());
    let forms = [
        KEY.to_owned(),
        r#"{"type":"sigstoreSigned","keyPaths":["cosign.pub","cosign2.pub"],"signedIdentity":{"type":"matchRepository"}}"#.to_owned(),
        r#"{"type":"sigstoreSigned","keyPaths":["cosign2.pub","cosign.pub"],"signedIdentity":{"type":"matchRepository"}}"#.to_owned(),
        format!(r#"{{"type":"sigstoreSigned","keyDatas":["{}","{}"],"signedIdentity":{{"type":"matchRepository"}}}}"#, pem("cosign2.pub"), pem("cosign.pub")),
    ];
    for req in forms {
        assert!(decide(&req, SAMPLE, VALID, &["signature-1"], none), "{req}");
    }
}

#[test]
fn k02_to_k06_rejections() {
    assert!(!decide(KEY, "testing/manifest:notlatest", VALID, &["signature-1"], none), "K02 repository differs");
    let exact = r#"{"type":"sigstoreSigned","keyPath":"cosign.pub","signedIdentity":{"type":"exactReference","dockerReference":"this/does-not:match"}}"#;
    assert!(!decide(exact, SAMPLE, VALID, &["signature-1"], none), "K03 identity");
    let bad_sig = |l: &mut Vec<SignatureLayer>| {
        l[0].annotations.insert(
            cosign::SIGNATURE_ANNOTATION.into(),
            base64::engine::general_purpose::STANDARD.encode("invalid signature"),
        );
    };
    assert!(!decide(KEY, SAMPLE, VALID, &["signature-1"], bad_sig), "K04 bad signature");
    assert!(!decide(KEY, SAMPLE, VALID, &["signature-1"], |l| l[0].annotations.clear()), "K05 no annotations");
    assert!(!decide(KEY, SAMPLE, VALID, &["../unknown-cosign-key.signature"], none), "K06 unknown key");
}

#[test]
fn k07_to_k12_multiple_and_odd_signatures() {
    assert!(decide(KEY, SAMPLE, "dir-img-cosign-valid-2", &["signature-1", "signature-2"], none), "K07");
    assert!(
        !decide(KEY, "this/does-not:match", "dir-img-cosign-valid-2", &["signature-1", "signature-2"], none),
        "K08"
    );
    assert!(
        decide(KEY, SAMPLE, "dir-img-cosign-mixed", &["signature-1", "signature-2"], none),
        "K09 one good signature is enough"
    );
    assert!(!decide(KEY, "testing/manifest:latest", "dir-img-unsigned", &[], none), "K10 unsigned");
    assert!(
        !decide(KEY, "testing/manifest:latest", "dir-img-valid", &["signature-1"], none),
        "K11 GPG signature is not sigstore"
    );
    assert!(
        !decide(KEY, "testing/manifest:latest", "dir-img-cosign-other-attachment", &["signature-1"], none),
        "K12 other attachment"
    );
}

#[test]
fn k13_to_k18_manifest_and_exact_identity() {
    assert!(!decide(KEY, SAMPLE, "dir-img-cosign-no-manifest", &["signature-1"], none), "K13");
    assert!(!decide(KEY, SAMPLE, "dir-img-cosign-manifest-digest-error", &["signature-1"], none), "K14");
    assert!(!decide(KEY, SAMPLE, "dir-img-cosign-modified-manifest", &["signature-1"], none), "K15");
    let exact = r#"{"type":"sigstoreSigned","keyPath":"cosign.pub","signedIdentity":{"type":"matchExact"}}"#;
    assert!(
        decide(exact, "192.168.64.2:5000/skopeo-signed:tag", "dir-img-cosign-valid-with-tag", &["signature-1"], none),
        "K16"
    );
    assert!(
        !decide(
            exact,
            "192.168.64.2:5000/skopeo-signed:othertag",
            "dir-img-cosign-valid-with-tag",
            &["signature-1"],
            none
        ),
        "K17"
    );
    assert!(!decide(exact, SAMPLE, VALID, &["signature-1"], none), "K18 repository-only claim is not exact");
}

const REKOR: &str = r#"{"type":"sigstoreSigned","keyPath":"cosign2.pub","rekorPublicKeyPath":"rekor.pub","signedIdentity":{"type":"matchRepository"}}"#;
const KEY_REKOR: &str = "dir-img-cosign-key-rekor-valid";
const KEY1: &str = "192.168.64.2:5000/cosign-signed/key-1";

#[test]
fn r01_rekor_set_verifies() {
    let both = r#"{"type":"sigstoreSigned","keyPaths":["cosign2.pub","cosign.pub"],"rekorPublicKeyPaths":["cosign.pub","rekor.pub"],"signedIdentity":{"type":"matchRepository"}}"#;
    assert!(decide(REKOR, KEY1, KEY_REKOR, &["signature-1"], none));
    assert!(decide(both, KEY1, KEY_REKOR, &["signature-1"], none));
}

#[test]
fn r02_to_r05_rekor_rejections() {
    let drop_bundle = |l: &mut Vec<SignatureLayer>| {
        l[0].annotations.remove(cosign::BUNDLE_ANNOTATION);
    };
    assert!(!decide(REKOR, KEY1, KEY_REKOR, &["signature-1"], drop_bundle), "R02");
    let bad_bundle = |l: &mut Vec<SignatureLayer>| {
        l[0].annotations.insert(cosign::BUNDLE_ANNOTATION.into(), "this is not a valid SET".into());
    };
    assert!(!decide(REKOR, KEY1, KEY_REKOR, &["signature-1"], bad_bundle), "R03");
    let wrong_rekor = r#"{"type":"sigstoreSigned","keyPaths":["cosign2.pub","cosign.pub"],"rekorPublicKeyPath":"cosign.pub","signedIdentity":{"type":"matchRepository"}}"#;
    assert!(!decide(wrong_rekor, KEY1, KEY_REKOR, &["signature-1"], none), "R04");
    let (_, other) = image_dir(KEY_REKOR, &["signature-1"]);
    let foreign_bundle = other[0].annotations.get(cosign::BUNDLE_ANNOTATION).cloned().unwrap_or_default();
    let swap = move |l: &mut Vec<SignatureLayer>| {
        l[0].annotations.insert(cosign::BUNDLE_ANNOTATION.into(), foreign_bundle.clone());
    };
    let both_keys = r#"{"type":"sigstoreSigned","keyPaths":["cosign.pub","cosign2.pub"],"rekorPublicKeyPath":"rekor.pub","signedIdentity":{"type":"matchRepository"}}"#;
    assert!(!decide(both_keys, SAMPLE, VALID, &["signature-1"], swap), "R05 a SET for another signature");
}

#[test]
fn x05_rsa_rekor_key_is_a_configuration_error() {
    let err = policy(r#"{"type":"sigstoreSigned","keyPath":"cosign.pub","rekorPublicKeyPath":"some-rsa-key.pub"}"#)
        .err()
        .map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("policy case: default[0]: Rekor public keys must be ECDSA, found Rsa"));
}

#[test]
fn decisions_explain_themselves() {
    let (manifest, layers) = image_dir(VALID, &["signature-1", "../unknown-cosign-key.signature"]);
    let manifest = manifest.unwrap_or_default();
    let digest = Digest::sha256_of(&manifest);
    let reference = Reference::parse_normalized(SAMPLE).unwrap_or_else(|e| panic!("{e}"));
    let p = policy(KEY).unwrap_or_else(|e| panic!("{e}"));
    let image =
        Image { subject: Subject::Docker(&reference), digest: &digest, manifest: Some(&manifest), platforms: &[] };
    let d = evaluate(&p, &image, &Signatures::Found(layers.clone()), NOW);
    assert!(d.allowed);
    assert_eq!(d.scope.name, "default");
    assert!(d.reason.starts_with("allowed by default: signature 0 verified with key "), "{}", d.reason);
    // One valid signature satisfies the requirement: the ones after it are not checked.
    assert_eq!(d.requirements[0].signatures.len(), 1);
    // In the other order, the invalid one is checked first, and reported.
    let reversed: Vec<_> = layers.iter().rev().cloned().collect();
    let d = evaluate(&p, &image, &Signatures::Found(reversed), NOW);
    assert!(d.allowed);
    assert_eq!(d.requirements[0].signatures.len(), 2);
    assert_eq!(
        d.requirements[0].signatures[0].reason,
        "the signature does not verify with any of the 1 trusted key(s)"
    );
    assert_eq!(d.reason, format!("allowed by default: signature 1 {}", d.requirements[0].signatures[1].reason));

    let unavailable = Signatures::Unavailable { transient: true, reason: "registry unreachable".into() };
    let d = evaluate(&p, &image, &unavailable, NOW);
    assert_eq!((d.allowed, d.failure), (false, Some(Failure::Transient)));
    assert_eq!(d.reason, "denied by default: signatures could not be fetched: registry unreachable");

    let gpg = br#"{"default":[{"type":"reject"}],"transports":{"docker":{
        "example.com/playground":[{"type":"insecureAcceptAnything"}],
        "example.com/production":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/keys/employee-gpg-keyring"}]}}}"#;
    let gpg = Policy::parse(gpg, "policy.json").unwrap_or_else(|e| panic!("{e}"));
    let gpg = LoadedPolicy::load(gpg, "policy.json", &|_| Ok(Vec::new())).unwrap_or_else(|e| panic!("{e}"));
    let prod = Reference::parse_normalized("example.com/production/app:1").unwrap_or_else(|e| panic!("{e}"));
    let d = evaluate(
        &gpg,
        &Image { subject: Subject::Docker(&prod), digest: &digest, manifest: None, platforms: &[] },
        &Signatures::Found(vec![]),
        NOW,
    );
    assert_eq!((d.allowed, d.failure), (false, Some(Failure::Fatal)));
    assert_eq!(
        d.reason,
        "denied by transports.docker[\"example.com/production\"]: signedBy (GPG simple signing) is not supported by tollgate; use sigstoreSigned"
    );
    let play = Reference::parse_normalized("example.com/playground/app:1").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        evaluate(
            &gpg,
            &Image { subject: Subject::Docker(&play), digest: &digest, manifest: None, platforms: &[] },
            &Signatures::Found(vec![]),
            NOW
        )
        .allowed
    );
}

const FULCIO: &str = r#"{"type":"sigstoreSigned","fulcio":{"caPath":"fulcio_v1.crt.pem","oidcIssuer":"https://github.com/login/oauth","subjectEmail":"mitr@redhat.com"},"rekorPublicKeyPath":"rekor.pub","signedIdentity":{"type":"matchRepository"}}"#;
const FULCIO_DIR: &str = "dir-img-cosign-fulcio-rekor-valid";
const FULCIO_REF: &str = "192.168.64.2:5000/cosign-signed/fulcio-rekor-1";

fn without(key: &'static str) -> impl Fn(&mut Vec<SignatureLayer>) {
    move |l: &mut Vec<SignatureLayer>| {
        l[0].annotations.remove(key);
    }
}

fn replace(key: &'static str, value: &'static str) -> impl Fn(&mut Vec<SignatureLayer>) {
    move |l: &mut Vec<SignatureLayer>| {
        l[0].annotations.insert(key.into(), value.into());
    }
}

#[test]
fn f01_keyless_signature_verifies_at_the_rekor_time() {
    assert!(decide(FULCIO, FULCIO_REF, FULCIO_DIR, &["signature-1"], none));
    let two_rekor =
        FULCIO.replace(r#""rekorPublicKeyPath":"rekor.pub""#, r#""rekorPublicKeyPaths":["cosign.pub","rekor.pub"]"#);
    assert!(decide(&two_rekor, FULCIO_REF, FULCIO_DIR, &["signature-1"], none));
}

#[test]
fn f02_to_f10_keyless_rejections() {
    let no_rekor = FULCIO.replace(r#","rekorPublicKeyPath":"rekor.pub""#, "");
    assert!(policy(&no_rekor).is_err(), "F02 fulcio without a Rekor key is a configuration error");
    assert!(!decide(FULCIO, FULCIO_REF, FULCIO_DIR, &["signature-1"], without(cosign::BUNDLE_ANNOTATION)), "F03");
    assert!(!decide(FULCIO, FULCIO_REF, FULCIO_DIR, &["signature-1"], without(cosign::CERTIFICATE_ANNOTATION)), "F04");
    assert!(!decide(FULCIO, FULCIO_REF, FULCIO_DIR, &["signature-1"], without(cosign::CHAIN_ANNOTATION)), "F05");
    let bad_cert = replace(cosign::CERTIFICATE_ANNOTATION, "this is not a valid certificate");
    assert!(!decide(FULCIO, FULCIO_REF, FULCIO_DIR, &["signature-1"], bad_cert), "F07");
    let other_email = FULCIO.replace("mitr@redhat.com", "this-does-not-match@example.com");
    assert!(!decide(&other_email, FULCIO_REF, FULCIO_DIR, &["signature-1"], none), "F08");
    let bad_set = replace(cosign::BUNDLE_ANNOTATION, "this is not a valid SET");
    assert!(!decide(FULCIO, FULCIO_REF, FULCIO_DIR, &["signature-1"], bad_set), "F09");
    let wrong_rekor = FULCIO.replace(r#""rekorPublicKeyPath":"rekor.pub""#, r#""rekorPublicKeyPath":"cosign.pub""#);
    assert!(!decide(&wrong_rekor, FULCIO_REF, FULCIO_DIR, &["signature-1"], none), "F10");
    let other_issuer = FULCIO.replace("https://github.com/login/oauth", "https://accounts.google.com");
    assert!(!decide(&other_issuer, FULCIO_REF, FULCIO_DIR, &["signature-1"], none), "issuer must match");
}

#[test]
fn f06_the_signatures_own_chain_as_trusted_ca() {
    let (_, layers) = image_dir(FULCIO_DIR, &["signature-1"]);
    let chain = layers[0].annotations.get(cosign::CHAIN_ANNOTATION).cloned().unwrap_or_default();
    let req = FULCIO.replace(
        r#""caPath":"fulcio_v1.crt.pem""#,
        &format!(r#""caData":"{}""#, base64::engine::general_purpose::STANDARD.encode(chain)),
    );
    assert!(decide(&req, FULCIO_REF, FULCIO_DIR, &["signature-1"], without(cosign::CHAIN_ANNOTATION)));
}

const PKI: &str = r#"{"type":"sigstoreSigned","pki":{"caRootsPath":"pki_root_crts.pem","caIntermediatesPath":"pki_intermediate_crts.pem","subjectEmail":"qiwan@redhat.com","subjectHostname":"myhost.example.com"},"signedIdentity":{"type":"matchRepository"}}"#;
const PKI_DIR: &str = "dir-img-cosign-pki-valid";
const PKI_REF: &str = "localhost:5000/test";

#[test]
fn p01_to_p04_private_pki() {
    assert!(decide(PKI, PKI_REF, PKI_DIR, &["signature-1"], none), "P01");
    assert!(!decide(PKI, PKI_REF, PKI_DIR, &["signature-1"], without(cosign::CERTIFICATE_ANNOTATION)), "P02");
    assert!(
        decide(PKI, PKI_REF, PKI_DIR, &["signature-1"], without(cosign::CHAIN_ANNOTATION)),
        "P03 configured intermediates"
    );
    let no_inter = PKI.replace(r#","caIntermediatesPath":"pki_intermediate_crts.pem""#, "");
    assert!(!decide(&no_inter, PKI_REF, PKI_DIR, &["signature-1"], without(cosign::CHAIN_ANNOTATION)), "P04");
    let wrong_host = PKI.replace("myhost.example.com", "otherhost.example.com");
    assert!(!decide(&wrong_host, PKI_REF, PKI_DIR, &["signature-1"], none), "hostname must match");
    let wrong_email = PKI.replace("qiwan@redhat.com", "someone@example.com");
    assert!(!decide(&wrong_email, PKI_REF, PKI_DIR, &["signature-1"], none), "email must match");
}

#[test]
fn exemptions_warn_mode_and_digest_allowlists() {
    let (manifest, layers) = image_dir(VALID, &["signature-1"]);
    let manifest = manifest.unwrap_or_default();
    let digest = Digest::sha256_of(&manifest);
    let reference = Reference::parse_normalized(SAMPLE).unwrap_or_else(|e| panic!("{e}"));
    let image =
        Image { subject: Subject::Docker(&reference), digest: &digest, manifest: Some(&manifest), platforms: &[] };
    let load = |yaml: String| {
        let p = crate::native::parse(yaml.as_bytes(), "n.yaml").unwrap_or_else(|e| panic!("{e}"));
        LoadedPolicy::load(p, "n.yaml", &read).unwrap_or_else(|e| panic!("{e}"))
    };
    let head = "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\n";

    let exempt = load(format!(
        "{head}exemptions:\n  - digest: {digest}\n    reason: control plane\ndefault:\n  - type: reject\n"
    ));
    let d = evaluate(&exempt, &image, &Signatures::Found(vec![]), NOW);
    assert!(d.allowed && d.exempt);
    assert_eq!(d.reason, "exempt: control plane");

    let warn = load(format!("{head}mode: warn\ndefault:\n  - type: reject\n"));
    let d = evaluate(&warn, &image, &Signatures::Found(vec![]), NOW);
    assert!(d.allowed && d.would_deny && d.failure.is_none());
    assert_eq!(
        d.reason,
        "warn mode, allowed; would be denied by default: the policy rejects every image in this scope"
    );

    let listed = load(format!("{head}default:\n  - type: digestAllowlist\n    digests: [{digest}]\n"));
    assert!(evaluate(&listed, &image, &Signatures::Found(vec![]), NOW).allowed);
    let other = Digest::sha256_of(b"x");
    let unlisted = load(format!("{head}default:\n  - type: digestAllowlist\n    digests: [{other}]\n"));
    let d = evaluate(&unlisted, &image, &Signatures::Found(vec![]), NOW);
    assert!(!d.allowed);
    assert_eq!(d.reason, format!("denied by default: digest {digest} is not on the allowlist"));

    // Both must hold: an allowlisted digest still needs its signature when the scope requires one.
    let both = load(format!(
        "{head}trust:\n  k:\n    publicKeys: [{{path: cosign.pub}}]\ndefault:\n  - type: digestAllowlist\n    digests: [{digest}]\n  - type: sigstoreSigned\n    trust: k\n    signedIdentity: {{type: matchRepository}}\n"
    ));
    assert!(evaluate(&both, &image, &Signatures::Found(layers), NOW).allowed);
    assert!(!evaluate(&both, &image, &Signatures::Found(vec![]), NOW).allowed);
}

/// Reproduced by a review: with "default accept, but docker.io and
/// registry.example.com must be signed", other spellings of those hosts fell
/// to the default. containerd reaches the same registry under each.
#[test]
fn another_spelling_of_a_registry_host_is_denied_and_names_the_canonical_one() {
    let text = r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{
        "docker.io":[{"type":"reject"}],"registry.example.com":[{"type":"reject"}]}}}"#;
    let p = LoadedPolicy::load(Policy::parse(text.as_bytes(), "case").unwrap_or_else(|e| panic!("{e}")), "case", &read)
        .unwrap_or_else(|e| panic!("{e}"));
    let digest = Digest::sha256_of(b"m");
    let decide = |name: &str| {
        let reference = Reference::parse_normalized(name).unwrap_or_else(|e| panic!("{e}"));
        let image = Image { subject: Subject::Docker(&reference), digest: &digest, manifest: None, platforms: &[] };
        evaluate(&p, &image, &Signatures::Found(Vec::new()), NOW)
    };
    for name in [
        "DOCKER.IO/library/busybox:1",
        "registry-1.docker.io/library/busybox:1",
        "REGISTRY.EXAMPLE.COM/app:1",
        "registry.example.com:443/app:1",
    ] {
        let d = decide(name);
        assert!(!d.allowed, "{name}: {}", d.reason);
        assert_eq!(d.failure, Some(Failure::Fatal));
        assert!(d.reason.contains("is another spelling of"), "{}", d.reason);
    }
    assert_eq!(
        decide("registry-1.docker.io/library/busybox:1").reason,
        "denied: registry host \"registry-1.docker.io\" is another spelling of \"docker.io\", the host policy scopes \
         name; refer to the image as docker.io/library/busybox:1"
    );
    assert!(decide("quay.io/app:1").allowed, "other hosts get the default");
}

/// A PKI chain is checked at "now", so an allow lasts only as long as its
/// certificates; caches bound allows by `validUntil`. Keys give no bound.
#[test]
fn a_pki_allow_carries_the_earliest_certificate_expiry() {
    let (manifest, layers) = image_dir(PKI_DIR, &["signature-1"]);
    let manifest = manifest.unwrap_or_else(|| panic!("fixture manifest"));
    let digest = Digest::sha256_of(&manifest);
    let reference = Reference::parse_normalized(PKI_REF).unwrap_or_else(|e| panic!("{e}"));
    let image =
        Image { subject: Subject::Docker(&reference), digest: &digest, manifest: Some(&manifest), platforms: &[] };
    let p = policy(PKI).unwrap_or_else(|e| panic!("{e}"));
    let d = evaluate(&p, &image, &Signatures::Found(layers), NOW);
    assert!(d.allowed, "{}", d.reason);
    let until = d.valid_until.unwrap_or_else(|| panic!("a PKI allow must be bounded"));
    // The fixtures' certificates end between now and 2052-02-16.
    assert!(until > NOW && until <= 2_591_740_800, "{until}");
    let json = serde_json::to_value(&d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["validUntil"], until);
    // Past that time the same signature is refused.
    let later = evaluate(&p, &image, &Signatures::Found(image_dir(PKI_DIR, &["signature-1"]).1), until + 1);
    assert!(!later.allowed, "{}", later.reason);
}

/// anyOf: one alternative that holds is enough; when none does, the denial names each; when one
/// could not be checked for now, the decision is undecidable rather than denied.
#[test]
fn any_of_holds_when_one_alternative_does() {
    let f = Fixture::load(VALID, SAMPLE, &["signature-1"]);
    let (image, digest, layers) = (f.image(), &f.digest, f.layers.clone());
    let head =
        "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  k:\n    publicKeys: [{path: cosign.pub}]\n";
    let other = Digest::sha256_of(b"x");
    let text = |digests: &Digest| {
        format!(
            "{head}default:\n  - type: anyOf\n    requirements:\n      - type: digestAllowlist\n        digests: [{digests}]\n      - type: sigstoreSigned\n        trust: k\n        signedIdentity: {{type: matchRepository}}\n"
        )
    };
    let load = |yaml: String| {
        let p = crate::native::parse(yaml.as_bytes(), "n.yaml").unwrap_or_else(|e| panic!("{e}"));
        LoadedPolicy::load(p, "n.yaml", &read).unwrap_or_else(|e| panic!("{e}"))
    };
    let either = load(text(&other));
    assert!(either.needs(&image.subject).cosign, "an alternative's signatures are fetched");
    let d = evaluate(&either, &image, &Signatures::Found(layers), NOW);
    assert!(d.allowed, "{}", d.reason);
    assert!(d.reason.contains("one of 2 alternatives holds"), "{}", d.reason);
    let d = evaluate(&either, &image, &Signatures::Found(vec![]), NOW);
    assert!(!d.allowed && d.failure == Some(Failure::Fatal));
    assert!(
        d.reason.starts_with(&format!(
            "denied by default: none of 2 alternatives holds: digest {digest} is not on the allowlist; nor "
        )),
        "{}",
        d.reason
    );
    let away = Signatures::Unavailable { transient: true, reason: "registry unreachable".into() };
    let d = evaluate(&either, &image, &away, NOW);
    assert_eq!((d.allowed, d.failure), (false, Some(Failure::Transient)), "{}", d.reason);
    let listed = load(text(digest));
    assert!(evaluate(&listed, &image, &away, NOW).allowed, "the allowlist alone holds without signatures");
    // Exported, it is refused by name; nested or single, it is a mistake.
    let p = crate::native::parse(text(&other).as_bytes(), "n.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        crate::native::export(&p, "n.yaml")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("default[0]: anyOf")
    );
    let back = crate::native::import(&p, "n.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(crate::native::parse(back.as_bytes(), "back").ok().as_ref(), Some(&p), "{back}");
    for (yaml, want) in [
        (
            format!("{head}default:\n  - type: anyOf\n    requirements: [{{type: reject}}]\n"),
            "anyOf lists at least two requirements",
        ),
        (
            format!(
                "{head}default:\n  - type: anyOf\n    requirements: [{{type: reject}}, {{type: anyOf, requirements: []}}]\n"
            ),
            "default[0].requirements[1]: anyOf cannot hold another anyOf",
        ),
    ] {
        let e = crate::native::parse(yaml.as_bytes(), "n.yaml").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains(want), "{e}\n  wanted {want}");
    }
}

/// A native keyless trust may give the subject as a regular expression, matched against the whole
/// SAN; a pattern that does not compile is a configuration error, and exactly one of the two forms.
#[test]
fn a_keyless_subject_may_be_a_pattern_over_the_whole_san() {
    let f = Fixture::load(FULCIO_DIR, FULCIO_REF, &["signature-1"]);
    let (image, layers) = (f.image(), &f.layers);
    let native = |subject: &str| {
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  ci:\n    fulcio: {{ca: {{path: fulcio_v1.crt.pem}}, oidcIssuer: \"https://github.com/login/oauth\", {subject}}}\n    rekorPublicKeys: [{{path: rekor.pub}}]\ndefault:\n  - {{type: sigstoreSigned, trust: ci, signedIdentity: {{type: matchRepository}}}}\n"
        )
    };
    let load = |subject: &str| {
        crate::native::parse(native(subject).as_bytes(), "n.yaml")
            .and_then(|p| LoadedPolicy::load(p, "n.yaml", &read))
            .map_err(|e| e.to_string())
    };
    for (subject, allowed) in [
        (r#"subjectRegExp: '.*@redhat\.com'"#, true),
        (r#"subjectRegExp: 'mitr@redhat'"#, false),
        (r#"subjectRegExp: '.*@example\.com'"#, false),
        ("subjectEmail: mitr@redhat.com", true),
    ] {
        let p = load(subject).unwrap_or_else(|e| panic!("{subject}: {e}"));
        let d = evaluate(&p, &image, &Signatures::Found(layers.clone()), NOW);
        assert_eq!(d.allowed, allowed, "{subject}: {}", d.reason);
    }
    let bad = load("subjectRegExp: '('").err().unwrap_or_default();
    assert!(bad.contains("subject regular expression \"(\""), "{bad}");
    let both = load("subjectEmail: a@b.c, subjectRegExp: '.*'").err().unwrap_or_default();
    assert!(both.contains("exactly one of subjectEmail and subjectRegExp"), "{both}");
    let p = crate::native::parse(native("subjectRegExp: '.*'").as_bytes(), "n.yaml").unwrap_or_else(|e| panic!("{e}"));
    let refused = crate::native::export(&p, "n.yaml").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("fulcio subjectRegExp"), "{refused}");
}
