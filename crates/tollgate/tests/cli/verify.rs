//! `tollgate verify` against a real registry, including the adversarial cases:
//! every one of them must deny, and a denial must never come out as an allow.

use std::path::PathBuf;

use tollgate_oci::{Digest, Reference};
use tollgate_testkit::sign::{Attached, TestKey, attach};
use tollgate_testkit::stub::{Reply, Stub};
use tollgate_testkit::{Registry, image};

use crate::util::{Run, tollgate};

pub(crate) struct Setup {
    pub(crate) reg: Registry,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) key: TestKey,
    pub(crate) repo: Reference,
    pub(crate) digest: Digest,
    pub(crate) rt: tokio::runtime::Runtime,
}

const KEY_POLICY: &str = r#"{"default":[{"type":"reject"}],"transports":{"docker":{
    "REG/team":[{"type":"sigstoreSigned","keyPath":"trusted.pub","signedIdentity":{"type":"matchRepository"}}],
    "REG/open":[{"type":"insecureAcceptAnything"}]}}}"#;

impl Setup {
    /// A registry with `REG/team/app:v1` (a two-platform index), a trusted key, and a policy.
    pub(crate) fn new() -> Setup {
        let reg = Registry::start();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let repo = Reference::parse_normalized(&format!("{}/team/app", reg.addr)).unwrap();
        let digest = rt.block_on(image::push_index(&reg.client(), &repo, "v1", b"app")).digest;
        let dir = tempfile::tempdir().unwrap();
        let key = TestKey::generate();
        std::fs::write(dir.path().join("trusted.pub"), key.public_pem()).unwrap();
        std::fs::write(dir.path().join("policy.json"), KEY_POLICY.replace("REG", &reg.addr)).unwrap();
        Setup { reg, dir, key, repo, digest, rt }
    }

    /// Stores `bytes` as a blob of the app's repository and returns its plain-HTTP URL: the registry
    /// serves CRLs for the revocation tests.
    pub(crate) fn blob_url(&self, bytes: &[u8]) -> String {
        let digest = self.rt.block_on(self.reg.client().put_blob(&self.repo, bytes)).unwrap();
        format!("http://{}/v2/{}/blobs/{digest}", self.reg.addr, self.repo.path())
    }

    pub(crate) fn policy(&self) -> PathBuf {
        self.dir.path().join("policy.json")
    }

    pub(crate) fn attach(&self, sigs: &[Attached]) {
        self.rt.block_on(attach(&self.reg.client(), &self.repo, &self.digest, sigs));
    }

    pub(crate) fn verify(&self, image: &str, extra: &[&str]) -> Run {
        let policy = self.policy();
        let mut args =
            vec!["verify", image, "--policy", policy.to_str().unwrap(), "--insecure-registry", &self.reg.addr];
        args.extend_from_slice(extra);
        tollgate(&args)
    }

    pub(crate) fn app(&self) -> String {
        format!("{}/team/app:v1", self.reg.addr)
    }

    pub(crate) fn repository(&self) -> String {
        self.repo.repository()
    }
}

fn assert_denied(r: &Run, code: i32, needle: &str) {
    assert_eq!(r.code, code, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.starts_with("ALLOWED"), "{}", r.stdout);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains(needle), "expected {needle:?} in:\n{all}");
}

#[test]
fn a_signed_image_is_allowed_and_the_decision_explains_why() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let r = s.verify(&s.app(), &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with(&format!("ALLOWED {}\n  digest {}\n", s.app(), s.digest)), "{}", r.stdout);
    let j = s.verify(&s.app(), &["-o", "json"]).json();
    assert_eq!(j["allowed"], true);
    assert_eq!(j["digest"], s.digest.to_string(), "the index digest is the one decided on");
    assert_eq!(j["scope"]["scope"], format!("{}/team", s.reg.addr));
    assert_eq!(j["requirements"][0]["signatures"][0]["accepted"], true);
    // The digest containerd passes is honoured too.
    let by_digest = s.verify(&s.app(), &["--digest", &s.digest.to_string()]);
    assert_eq!(by_digest.code, 0, "{}", by_digest.stdout);
}

/// `-vv` shows each registry request the way `skopeo --debug` does.
#[test]
fn very_verbose_output_shows_each_registry_request() {
    let s = Setup::new();
    let r = s.verify(&s.app(), &["-vv"]);
    let line =
        r.stderr.lines().find(|l| l.contains("/v2/team/app/manifests/v1")).unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(line.contains(&format!("GET http://{}/v2/team/app/manifests/v1 -> 200 in ", s.reg.addr)), "{line}");
    assert!(!r.stderr.contains("pooling idle connection"), "the HTTP stack's own lines need -vvv: {}", r.stderr);
    assert!(!r.stderr.contains('\u{1b}'), "no colour codes on a pipe");
}

#[test]
fn an_unsigned_image_is_denied() {
    let s = Setup::new();
    assert_denied(&s.verify(&s.app(), &[]), 1, "a signature was required, but no signature exists");
}

#[test]
fn the_wrong_key_is_denied() {
    let s = Setup::new();
    let other = TestKey::generate();
    s.attach(&[Attached::cosign(&other, &s.repository(), &s.digest)]);
    assert_denied(&s.verify(&s.app(), &[]), 1, "the signature does not verify with any of the 1 trusted key(s)");
}

#[test]
fn a_payload_altered_after_signing_is_denied() {
    let s = Setup::new();
    let mut sig = Attached::cosign(&s.key, &s.repository(), &s.digest);
    sig.payload = String::from_utf8(sig.payload).unwrap().replace("team/app", "team/evil").into_bytes();
    s.attach(&[sig]);
    assert_denied(&s.verify(&s.app(), &[]), 1, "does not verify");
}

#[test]
fn a_signature_of_another_digest_copied_here_is_denied() {
    let s = Setup::new();
    let other = Digest::sha256_of(b"some other manifest");
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &other)]);
    assert_denied(&s.verify(&s.app(), &[]), 1, &format!("signed for manifest {other}, not {}", s.digest));
}

#[test]
fn a_signed_identity_of_another_repository_is_denied() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &format!("{}/team/other", s.reg.addr), &s.digest)]);
    assert_denied(&s.verify(&s.app(), &[]), 1, "does not satisfy signedIdentity");
}

#[test]
fn a_signed_but_malformed_payload_is_denied() {
    let s = Setup::new();
    let payload = br#"{"critical":{"identity":{"docker-reference":"x"}},"optional":null"#.to_vec();
    let mut sig = Attached::cosign(&s.key, &s.repository(), &s.digest);
    sig.annotations.insert(
        tollgate_verify::cosign::SIGNATURE_ANNOTATION.into(),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s.key.sign(&payload)),
    );
    sig.payload = payload;
    s.attach(&[sig]);
    assert_denied(&s.verify(&s.app(), &[]), 1, "invalid signature payload");
}

#[test]
fn a_registry_serving_wrong_bytes_is_denied() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let hex = s.digest.hex();
    let blob = s.reg.storage_dir().join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    let original = std::fs::read(&blob).unwrap();
    let mut evil = b"{ ".to_vec();
    evil.extend_from_slice(&original[1..]);
    std::fs::write(&blob, evil).unwrap();
    let r = s.verify(&s.app(), &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.one_line_error(1).contains("that hashes to sha256:"), "{}", r.stderr);
}

#[test]
fn a_malformed_signature_manifest_is_denied() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    // Replace the .sig manifest's stored bytes with JSON of the wrong shape.
    let tag_link = s.reg.storage_dir().join(format!(
        "docker/registry/v2/repositories/team/app/_manifests/tags/{}/current/link",
        tollgate_oci::manifest::signature_tag(&s.digest)
    ));
    let link = std::fs::read_to_string(&tag_link).unwrap();
    let hex = link.trim().trim_start_matches("sha256:");
    let blob = s.reg.storage_dir().join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    std::fs::write(
        &blob,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":"nope"}"#,
    )
    .unwrap();
    let r = s.verify(&s.app(), &[]);
    assert!(r.code == 1 || r.code == 3, "must deny: {} {}", r.stdout, r.stderr);
    assert!(!r.stdout.starts_with("ALLOWED"));
}

#[test]
fn an_oversize_manifest_is_denied() {
    // A real registry will neither store nor serve a manifest over 4 MiB, so a
    // hostile server stands in: once announcing the size, once streaming it.
    let s = Setup::new();
    let big = vec![b' '; (4 << 20) + 1];
    for reply in [Reply::Body(big.clone()), Reply::Stream(big)] {
        let evil = Stub::start(vec![reply]);
        let policy = s.policy();
        let r = tollgate(&[
            "verify",
            &format!("{}/team/app:v1", evil.addr),
            "--policy",
            policy.to_str().unwrap(),
            "--insecure-registry",
            &evil.addr,
        ]);
        assert!(r.one_line_error(1).contains("exceeds the 4194304-byte limit"), "{}", r.stderr);
    }
}

#[test]
fn an_unreachable_or_hanging_registry_is_undecidable() {
    let s = Setup::new();
    let dead = format!("127.0.0.1:{}", tollgate_testkit::DEAD_PORT);
    let policy = s.policy();
    let r = tollgate(&[
        "verify",
        &format!("{dead}/team/app:v1"),
        "--policy",
        policy.to_str().unwrap(),
        "--insecure-registry",
        &dead,
    ]);
    assert!(r.one_line_error(3).contains("is unreachable"), "{}", r.stderr);

    let hang = Stub::start(vec![Reply::Hang]);
    let r = tollgate(&[
        "verify",
        &format!("{}/team/app:v1", hang.addr),
        "--policy",
        policy.to_str().unwrap(),
        "--insecure-registry",
        &hang.addr,
        "--timeout",
        "1",
    ]);
    assert!(r.one_line_error(3).contains("timed out"), "{}", r.stderr);
}

#[test]
fn scopes_without_signature_requirements_do_not_fetch_signatures() {
    let s = Setup::new();
    let open = Reference::parse_normalized(&format!("{}/open/tool", s.reg.addr)).unwrap();
    s.rt.block_on(image::push_image(&s.reg.client(), &open, Some("1"), "amd64", b"tool"));
    let r = s.verify(&format!("{}:1", open.repository()), &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("insecureAcceptAnything accepts any image"));
    let elsewhere = Reference::parse_normalized(&format!("{}/elsewhere/x", s.reg.addr)).unwrap();
    s.rt.block_on(image::push_image(&s.reg.client(), &elsewhere, Some("1"), "amd64", b"x"));
    let r = s.verify(&format!("{}/elsewhere/x:1", s.reg.addr), &[]);
    assert_denied(&r, 1, "the policy rejects every image in this scope");
}

#[test]
fn policy_check_explains_and_refuses_broken_files() {
    let s = Setup::new();
    let r = tollgate(&["policy", "check", s.policy().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(&format!("docker[\"{}/team\"]: sigstoreSigned", s.reg.addr)), "{}", r.stdout);
    let bad = s.dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"default":[{"type":"sigstoreSigned","keyPath":"missing.pub"}]}"#).unwrap();
    let r = tollgate(&["policy", "check", bad.to_str().unwrap()]);
    assert!(r.one_line_error(2).contains("default[0]: cannot read key missing.pub"), "{}", r.stderr);
    std::fs::write(&bad, r#"{"default":[{"type":"reject"}],"transports":{"docker":{"busybox":[{"type":"reject"}]}}}"#)
        .unwrap();
    let r = tollgate(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(r.code, 0);
    assert!(r.stderr.contains("scope is not a fully expanded name"), "{}", r.stderr);
}

/// Pushes `REG/open/tool:1` and writes an accept-anything policy: (image, temp dir, policy path).
fn open_tool(reg: &Registry) -> (String, tempfile::TempDir, PathBuf) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let repo = Reference::parse_normalized(&format!("{}/open/tool", reg.addr)).unwrap();
    rt.block_on(image::push_image(&reg.client(), &repo, Some("1"), "amd64", b"tool"));
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    (format!("{}:1", repo.repository()), dir, policy)
}

#[test]
fn private_registries_need_credentials_from_an_auth_file() {
    let reg = Registry::start_with_basic_auth();
    let (image, dir, policy) = open_tool(&reg);
    let auth = dir.path().join("auth.json");
    std::fs::write(&auth, reg.auth_file().unwrap()).unwrap();
    let base =
        ["verify", image.as_str(), "--policy", policy.to_str().unwrap(), "--insecure-registry", reg.addr.as_str()];
    let empty_home = dir.path().join("home");
    let r = crate::util::tollgate_env(&base, &[("HOME", empty_home.to_str().unwrap())]);
    assert!(r.one_line_error(2).contains("refused access"), "{}", r.stderr);
    let mut with_auth = base.to_vec();
    with_auth.extend_from_slice(&["--authfile", auth.to_str().unwrap()]);
    let r = tollgate(&with_auth);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = crate::util::tollgate_env(&base, &[("REGISTRY_AUTH_FILE", auth.to_str().unwrap())]);
    assert_eq!(r.code, 0, "REGISTRY_AUTH_FILE is honoured: {}", r.stderr);
}

#[test]
fn tls_registries_are_trusted_through_ca_files_only() {
    let reg = Registry::start_with_tls();
    let (image, dir, policy) = open_tool(&reg);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, reg.tls_ca.clone().unwrap()).unwrap();
    let r = tollgate(&["verify", &image, "--policy", policy.to_str().unwrap(), "--ca-file", ca.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = tollgate(&["verify", &image, "--policy", policy.to_str().unwrap()]);
    let line = r.one_line_error(2);
    assert!(line.contains(&format!("TLS with registry {} failed", reg.addr)) && line.contains("--ca-file"), "{line}");
}

#[test]
fn native_policies_import_export_warn_and_exempt() {
    let s = Setup::new();
    // Import the containers policy, and check it decides the same.
    let native = s.dir.path().join("policy.yaml");
    let r = tollgate(&["policy", "import", s.policy().to_str().unwrap(), "--out", native.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let yaml = std::fs::read_to_string(&native).unwrap();
    assert!(yaml.contains("apiVersion: tollgate.dev/v1alpha1") && yaml.contains("trust-1:"), "{yaml}");
    let r = tollgate(&["policy", "export", native.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("\"keyPath\": \"trusted.pub\""), "{}", r.stdout);
    let verify = |policy: &std::path::Path| {
        let policy = policy.to_str().unwrap().to_owned();
        tollgate(&["verify", &s.app(), "--policy", &policy, "--insecure-registry", &s.reg.addr])
    };
    assert_eq!(verify(&native).code, 1, "unsigned: denied under the imported policy too");

    // Warn mode allows, loudly.
    let warn = s.dir.path().join("warn.yaml");
    std::fs::write(&warn, yaml.replace("mode: enforce", "mode: warn")).unwrap();
    let r = verify(&warn);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.starts_with("WARN "), "{}", r.stdout);
    assert!(r.stdout.contains("warn mode, allowed; would be denied by"), "{}", r.stdout);
    let r = tollgate(&["policy", "export", warn.to_str().unwrap()]);
    assert_eq!(
        r.one_line_error(2),
        format!(
            "tollgate: cannot convert {}: mode: warn; containers-policy.json cannot express these: keep the native \
             policy for tollgate, or remove them to export",
            warn.display()
        )
    );

    // An exemption by digest lets the control plane through whatever the scope says.
    let exempt = s.dir.path().join("exempt.yaml");
    let with = yaml.replacen(
        "default:",
        &format!("exemptions:\n- digest: {}\n  reason: pinned control plane\ndefault:", s.digest),
        1,
    );
    std::fs::write(&exempt, with).unwrap();
    let r = verify(&exempt);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("EXEMPT ") && r.stdout.contains("exempt: pinned control plane"), "{}", r.stdout);
    let r = tollgate(&["policy", "check", exempt.to_str().unwrap()]);
    assert!(r.stdout.contains("valid (enforce mode, 1 exemption(s))"), "{}", r.stdout);
}

#[test]
fn per_platform_signatures_are_opt_in() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let policy = s.dir.path().join("per-platform.yaml");
    let yaml = "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  team:\n    publicKeys: [{path: trusted.pub}]\ndefault:\n  - type: sigstoreSigned\n    trust: team\n    signedIdentity: {type: matchRepository}\n    perPlatform: true\n";
    std::fs::write(&policy, yaml).unwrap();
    let verify =
        || tollgate(&["verify", &s.app(), "--policy", policy.to_str().unwrap(), "--insecure-registry", &s.reg.addr]);
    // The index signature alone is enough by default, but not with perPlatform.
    assert_eq!(s.verify(&s.app(), &[]).code, 0, "by default, the index signature is enough");
    let r = verify();
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("platform linux/amd64 (sha256:"), "{}", r.stdout);
    assert!(r.stdout.contains("a signature was required, but no signature exists"), "{}", r.stdout);
    // Sign each platform manifest too.
    let index: serde_json::Value =
        s.rt.block_on(s.reg.client().get_manifest(&s.repo.clone().with_digest(s.digest.clone())))
            .map(|m| serde_json::from_slice(&m.bytes).unwrap())
            .unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let d = Digest::parse(m["digest"].as_str().unwrap()).unwrap();
        s.rt.block_on(attach(&s.reg.client(), &s.repo, &d, &[Attached::cosign(&s.key, &s.repository(), &d)]));
    }
    let r = verify();
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("and each of the 2 platform manifests is signed"), "{}", r.stdout);
}

/// Writes a native policy that requires, for the app's repository, a sigstore
/// bundle by the setup's key against `trusted_root.json` in the setup's
/// directory; returns a `tollgate verify` of the app under it.
fn bundle_policy(s: &Setup) -> impl Fn() -> Run + '_ {
    let policy = s.dir.path().join("bundles.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault: [{{type: reject}}]\ntransports:\n  docker:\n    {}/team:\n      - type: sigstoreBundle\n        trustedRoot: {{path: trusted_root.json}}\n        publicKey: {{path: trusted.pub}}\n",
            s.reg.addr
        ),
    )
    .unwrap();
    move || tollgate(&["verify", &s.app(), "--policy", policy.to_str().unwrap(), "--insecure-registry", &s.reg.addr])
}

/// Attaches `bundle` to the app's index as cosign v3 does (a referrer).
fn attach_app_bundle(s: &Setup, bundle: &[u8]) {
    let index = s.rt.block_on(s.reg.client().get_manifest(&s.repo.clone().with_digest(s.digest.clone()))).unwrap();
    s.rt.block_on(tollgate_testkit::bundle::attach_bundle(
        &s.reg.client(),
        &s.repo,
        &s.digest,
        &index.media_type,
        index.bytes.len(),
        bundle,
    ));
}

#[test]
fn sigstore_bundles_attached_as_referrers_verify_against_a_trusted_root() {
    use tollgate_testkit::bundle::TestLog;
    let s = Setup::new();
    let log = TestLog::generate();
    std::fs::write(s.dir.path().join("trusted_root.json"), log.trusted_root()).unwrap();
    let verify = bundle_policy(&s);
    assert_denied(&verify(), 1, "a sigstore bundle was required, but none is attached");

    let now = i64::try_from(tollgate_node::engine::now_unix()).unwrap() - 60;
    let attach = |bundle: Vec<u8>| attach_app_bundle(&s, &bundle);
    // Signed by another key, then for another digest: both refused.
    let stranger = TestKey::generate();
    attach(log.dsse_bundle(&stranger, &s.repository(), &s.digest, now));
    assert_denied(&verify(), 1, "bundle rejected: ");
    let other = tollgate_oci::Digest::sha256_of(b"another image");
    attach(log.dsse_bundle(&s.key, &s.repository(), &other, now));
    assert_denied(&verify(), 1, "the artifact is not a subject of the in-toto statement");
    // The right key, this digest: allowed, and the decision says how.
    attach(log.dsse_bundle(&s.key, &s.repository(), &s.digest, now));
    let r = verify();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("bundle verified: signed by key "), "{}", r.stdout);
    // A log the trusted root does not list is refused.
    let rogue = TestLog::generate();
    attach(rogue.dsse_bundle(&s.key, &s.repository(), &s.digest, now));
    assert_denied(&verify(), 1, "from a log the trusted root does not list");

    let policy = s.dir.path().join("bundles.yaml");
    let export = tollgate(&["policy", "export", policy.to_str().unwrap()]);
    assert!(export.one_line_error(2).contains("sigstoreBundle"), "{}", export.stderr);
}

/// An SBOM or provenance attestation by the trusted key, about this very
/// image, is not a signature: `cosign verify` refuses it, and so does
/// `sigstoreBundle` unless the policy names that predicate type.
#[test]
fn an_attestation_bundle_does_not_count_as_a_signature_unless_its_predicate_is_listed() {
    use tollgate_testkit::bundle::TestLog;
    let s = Setup::new();
    let log = TestLog::generate();
    std::fs::write(s.dir.path().join("trusted_root.json"), log.trusted_root()).unwrap();
    let verify = bundle_policy(&s);
    let now = i64::try_from(tollgate_node::engine::now_unix()).unwrap() - 60;
    let spdx = "https://spdx.dev/Document";
    attach_app_bundle(&s, &log.attestation_bundle(&s.key, &s.repository(), &s.digest, now, spdx));
    assert_denied(
        &verify(),
        1,
        "bundle rejected: an attestation with predicateType \"https://spdx.dev/Document\", not a signature \
         (accepted: https://sigstore.dev/cosign/sign/v1)",
    );
    let listed = s.dir.path().join("sbom.yaml");
    let text = std::fs::read_to_string(s.dir.path().join("bundles.yaml")).unwrap()
        + &format!("        predicateTypes: [\"{spdx}\"]\n");
    std::fs::write(&listed, text).unwrap();
    let r = tollgate(&["verify", &s.app(), "--policy", listed.to_str().unwrap(), "--insecure-registry", &s.reg.addr]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn rekor_v2_bundles_are_timed_by_a_trusted_timestamp_authority() {
    use tollgate_testkit::bundle::TestLog;
    let s = Setup::new();
    let log = TestLog::with_tsa();
    let root_path = s.dir.path().join("trusted_root.json");
    let verify = bundle_policy(&s);
    let attach = |bundle: Vec<u8>| attach_app_bundle(&s, &bundle);
    // A dsse 0.0.2 entry: no integration time, no signed entry timestamp; the
    // time is the TSA's (2026-01-01T00:00:00.5Z).
    attach(log.dsse_bundle_v2(&s.key, &s.repository(), &s.digest, "20260101000000.5Z"));

    // The same log, but a trusted root that lists no timestamp authority: no verified time.
    let mut without_tsa: serde_json::Value = serde_json::from_str(&log.trusted_root()).unwrap();
    without_tsa["timestampAuthorities"] = serde_json::json!([]);
    std::fs::write(&root_path, without_tsa.to_string()).unwrap();
    assert_denied(&verify(), 1, "the trusted root lists no timestamp authority");

    // With the authority listed: allowed, and the decision says what vouches for the time.
    std::fs::write(&root_path, log.trusted_root()).unwrap();
    let r = verify();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("bundle verified: signed by key ")
            && r.stdout.contains("timestamped at 2026-01-01T00:00:00Z"),
        "{}",
        r.stdout
    );

    // A timestamp from another authority (another log's TSA) is refused.
    let other = TestLog::with_tsa();
    let mut mixed: serde_json::Value = serde_json::from_str(&log.trusted_root()).unwrap();
    mixed["timestampAuthorities"] =
        serde_json::from_str::<serde_json::Value>(&other.trusted_root()).unwrap()["timestampAuthorities"].clone();
    std::fs::write(&root_path, mixed.to_string()).unwrap();
    assert_denied(&verify(), 1, "signed by a timestamp authority the trusted root does not list");
}

/// `policy default`'s shape, end to end, with stand-in Fulcio and Rekor
/// material carrying Kubernetes' exact release identity: the registry is the
/// test's (for registry.k8s.io), and the kubernetes-release trust is redefined
/// with the stand-in trusted root, as an operator replaces the embedded one.
#[test]
fn the_default_policy_accepts_release_signatures_and_only_catalog_digests() {
    use tollgate_testkit::fulcio::TestFulcio;
    let reg = Registry::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let fulcio = TestFulcio::generate();
    let now = i64::try_from(tollgate_node::engine::now_unix()).unwrap();
    let (signer, issuer) = ("krel-trust@k8s-releng-prod.iam.gserviceaccount.com", "https://accounts.google.com");
    let push = |name: &str, email: Option<&str>| {
        let repo = Reference::parse_normalized(&format!("{}/{name}", reg.addr)).unwrap();
        rt.block_on(async {
            let d = image::push_image(&reg.client(), &repo, Some("v1"), "amd64", name.as_bytes()).await.digest;
            if let Some(e) = email {
                attach(&reg.client(), &repo, &d, &[fulcio.cosign(e, issuer, &repo.repository(), &d, now - 30)]).await;
            }
        });
        format!("{}:v1", repo.repository())
    };
    let released = push("release/tool", Some(signer));
    let impostor = push("release/other", Some("someone@example.com"));
    let unsigned = push("release/plain", None);
    let apiserver = push("kube-apiserver", Some(signer));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("standin-root.json"), fulcio.trusted_root()).unwrap();
    let generated = tollgate(&["policy", "default"]);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let builtin = dir.path().join("builtin.yaml");
    std::fs::write(&builtin, generated.stdout.replace("registry.k8s.io", &reg.addr)).unwrap();
    let standin = dir.path().join("standin.yaml");
    let trust = format!(
        "kind: ImagePolicy\ntrust:\n  kubernetes-release:\n    sigstore:\n      trustedRoot: {{path: standin-root.json}}\n      oidcIssuer: {issuer}\n      subjectEmail: {signer}\n"
    );
    std::fs::write(&standin, std::fs::read_to_string(&builtin).unwrap().replace("kind: ImagePolicy\n", &trust))
        .unwrap();
    let verify = |policy: &std::path::Path, image: &str| {
        tollgate(&["verify", image, "--policy", policy.to_str().unwrap(), "--insecure-registry", &reg.addr])
    };
    let r = verify(&standin, &released);
    assert_eq!(r.code, 0, "the release identity is accepted: {}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("({signer} via {issuer})")), "{}", r.stdout);
    assert_denied(&verify(&standin, &impostor), 1, "the certificate is for [\"someone@example.com\"]");
    assert_denied(&verify(&standin, &unsigned), 1, "a signature was required, but no signature exists");
    // The control plane takes exactly the catalog's digests, signed or not.
    assert_denied(&verify(&standin, &apiserver), 1, "is not on the allowlist");
    // The built-in trust (the embedded public-good root) does not know the stand-in CA.
    assert_denied(&verify(&builtin, &released), 1, "none of the 1 signature(s) is acceptable");
    let check = tollgate(&["policy", "check", builtin.to_str().unwrap()]);
    assert_eq!(check.code, 0, "the embedded trusted root loads: {}", check.stderr);
}

/// Registry flags and references as users type them (skopeo's habits).
#[test]
fn a_scheme_in_insecure_registry_is_refused_with_the_fix_and_docker_transport_is_accepted() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let url = format!("http://{}", s.reg.addr);
    let r = tollgate(&["verify", &s.app(), "--policy", s.policy().to_str().unwrap(), "--insecure-registry", &url]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("without the scheme: --insecure-registry {}", s.reg.addr)), "{}", r.stderr);
    let r = s.verify(&format!("docker://{}", s.app()), &[]);
    assert_eq!(r.code, 0, "docker:// is the same registry image: {}{}", r.stdout, r.stderr);
}

/// `--out` of a command that writes one file: a typo in the directory is an
/// error, and nothing is created (kubeadm patches --out creates its directory, as documented).
#[test]
fn a_missing_out_directory_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexistent/dir");
    let policy = dir.path().join("p.json");
    std::fs::write(&policy, r#"{"default":[{"type":"reject"}]}"#).unwrap();
    for args in [
        vec!["policy", "export", policy.to_str().unwrap(), "--out"],
        vec!["kubeadm", "config", "--kubernetes-version", "v1.36.2", "--out"],
    ] {
        let out = missing.join("x.yaml");
        let mut a = args.clone();
        a.push(out.to_str().unwrap());
        let r = tollgate(&a);
        let line = r.one_line_error(2);
        assert!(
            line.contains(&format!("the directory {} does not exist; create it first", missing.display())),
            "{line}"
        );
        assert!(!dir.path().join("nonexistent").exists(), "{args:?} created a directory");
    }
}

/// Errors say each cause once.
#[test]
fn an_invalid_reference_is_named_once() {
    let s = Setup::new();
    let r = s.verify("Bad Ref", &[]);
    assert_eq!(r.one_line_error(2), "tollgate: invalid image reference \"Bad Ref\": repository name must be lowercase");
}

/// `-o json` means JSON everywhere: a failure prints `{"error", "exitCode"}`
/// on stdout too, and `policy import` prints the native document as JSON.
#[test]
fn json_output_holds_for_errors_and_policy_import() {
    let r = tollgate(&["verify", "busybox", "--policy", "/nonexistent.json", "-o", "json"]);
    assert_eq!(r.code, 2);
    let j = r.json();
    assert_eq!(j["exitCode"], 2);
    assert!(j["error"].as_str().unwrap().starts_with("cannot read /nonexistent.json"), "{j}");
    assert!(r.stderr.starts_with("tollgate: cannot read /nonexistent.json"), "and the usual line on stderr");
    let policy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.json");
    let j = tollgate(&["policy", "import", policy.to_str().unwrap(), "-o", "json"]).json();
    assert_eq!(j["kind"], "ImagePolicy");
}

/// Relative key paths are read from the policy's directory, so a policy
/// converted into another directory has them rewritten to reach the same
/// files, and a conversion whose keys would not load writes nothing.
#[test]
fn policy_conversion_to_another_directory_keeps_relative_keys_loading() {
    let dir = tempfile::tempdir().unwrap();
    let at = |p: &str| dir.path().join(p);
    std::fs::create_dir_all(at("src/keys")).unwrap();
    std::fs::create_dir_all(at("out/deep")).unwrap();
    let key = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/node/keys/team.pub");
    std::fs::copy(key, at("src/keys/k.pub")).unwrap();
    std::fs::write(
        at("src/policy.json"),
        r#"{"default":[{"type":"reject"}],"transports":{"docker":{"registry.local/app":[
            {"type":"sigstoreSigned","keyPath":"keys/k.pub","signedIdentity":{"type":"matchRepository"}}]}}}"#,
    )
    .unwrap();
    let s = |p: &str| at(p).display().to_string();
    let r = tollgate(&["policy", "import", &s("src/policy.json"), "--out", &s("out/deep/x.yaml")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let native = std::fs::read_to_string(at("out/deep/x.yaml")).unwrap();
    assert!(native.contains("path: ../../src/keys/k.pub"), "{native}");
    let check = tollgate(&["policy", "check", &s("out/deep/x.yaml")]);
    assert_eq!(check.code, 0, "the converted policy loads where it was written: {}", check.stderr);
    // Back next to the keys, the path is the original one again.
    assert_eq!(tollgate(&["policy", "export", &s("out/deep/x.yaml"), "--out", &s("src/back.json")]).code, 0);
    assert!(std::fs::read_to_string(at("src/back.json")).unwrap().contains(r#""keyPath": "keys/k.pub""#));
    // To stdout, paths stay relative to the source, as they are.
    let stdout = tollgate(&["policy", "import", &s("src/policy.json")]);
    assert!(stdout.stdout.contains("path: keys/k.pub"), "{}", stdout.stdout);
    // A key that does not load fails the conversion, and nothing is written.
    std::fs::write(at("src/keys/k.pub"), "not a key\n").unwrap();
    let r = tollgate(&["policy", "import", &s("src/policy.json"), "--out", &s("out/y.yaml")]);
    let line = r.one_line_error(2);
    assert!(line.contains("../src/keys/k.pub"), "names the key: {line}");
    assert!(!at("out/y.yaml").exists(), "nothing is written");
}

/// `tollgate policy compile`: tollgate.dev objects become the node's policy files, which then decide
/// as the objects say: the cluster policy allows what its key signed, and the namespace's file,
/// which wants another key, refuses it. A stale namespace file is removed on the next compile.
#[test]
fn compiled_objects_decide_as_the_cluster_and_namespace_policies() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let pem = |k: &TestKey| serde_json::to_string(&k.public_pem()).unwrap();
    let objects = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: team}}\nspec:\n  images: [{reg}/team]\n  authorities:\n    - key: {{data: {key}}}\n---\napiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: vault, namespace: strict}}\nspec:\n  images: [{reg}/team]\n  authorities:\n    - key: {{data: {other}}}\n",
        reg = s.reg.addr,
        key = pem(&s.key),
        other = pem(&TestKey::generate()),
    );
    let file = s.dir.path().join("objects.yaml");
    std::fs::write(&file, &objects).unwrap();
    let out = s.dir.path().join("compiled");
    let r = tollgate(&["policy", "compile", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}\n{objects}", r.stderr);
    assert_eq!(r.json()["namespaces"][0], out.join("namespace.strict.yaml").display().to_string());
    let verify = |policy: &std::path::Path| {
        tollgate(&["verify", &s.app(), "--policy", policy.to_str().unwrap(), "--insecure-registry", &s.reg.addr])
    };
    let r = verify(&out.join("policy.yaml"));
    assert_eq!(r.code, 0, "the cluster policy allows what its key signed: {}{}", r.stdout, r.stderr);
    assert_denied(&verify(&out.join("namespace.strict.yaml")), 1, "does not verify with any of the 1 trusted key(s)");
    let check = tollgate(&["policy", "check", out.join("policy.yaml").to_str().unwrap()]);
    assert_eq!(check.code, 0, "{}", check.stderr);

    // The namespace's ImagePolicy deleted: its file goes on the next compile.
    std::fs::write(&file, objects.split("\n---\n").next().unwrap()).unwrap();
    let r = tollgate(&["policy", "compile", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!out.join("namespace.strict.yaml").exists(), "a stale namespace policy would keep refusing");

    // An object it cannot compile is named, and nothing changes.
    let before = std::fs::read(out.join("policy.yaml")).unwrap();
    std::fs::write(
        &file,
        format!("apiVersion: tollgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: k}}\nspec: {{images: [{}/team], authorities: [{{keyless: {{issuer: \"https://i\", subject: s, trustRootRef: r}}}}]}}\n", s.reg.addr),
    )
    .unwrap();
    let r = tollgate(&["policy", "compile", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let e = r.one_line_error(2);
    assert!(
        e.contains(
            "cannot compile 1 object(s), nothing was written: ClusterImagePolicy/k: trustRootRef \"r\" names no TrustRoot"
        ),
        "{e}"
    );
    assert_eq!(std::fs::read(out.join("policy.yaml")).unwrap(), before);
}

/// `tollgate verify-notation` on notation-go's own fixtures: a valid JWS envelope is VERIFIED (exit 0), a
/// tampered one REFUSED for integrity (exit 1), an identity the policy does not trust REFUSED for
/// authenticity; revocation is said not to be checked.
#[test]
fn verify_notation_checks_one_envelope_offline() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/notation");
    if !data.join("cases.tsv").exists() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI=true and {} is missing", data.display());
        eprintln!("SKIPPED: {} is missing", data.display());
        return;
    }
    let env = |n: &str| data.join("notation-go/internal/mock/testdata").join(n).display().to_string();
    let policy = data.join("policies/oci-acme-strict.json");
    let store = data.join("notation-go/verifier/testdata");
    let artifact = "registry.acme-rockets.io/software/net-monitor@sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e";
    let run = |envelope: &str, policy: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "verify-notation",
            "--signature",
            envelope,
            "--media-type",
            "application/jose+json",
            "--artifact",
            artifact,
            "--trust-policy",
            policy.to_str().unwrap(),
            "--trust-store",
            store.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        tollgate(&args)
    };
    let r = run(&env("ca_valid_sig_env.json"), &policy, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with(&format!(
            "VERIFIED {artifact}\n  trust policy \"test-statement-name\", signing scheme notary.x509\n"
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("note: revocation was not checked"), "{}", r.stdout);
    let r = run(&env("ca_valid_sig_env.json"), &policy, &["--user-metadata", "buildId=7"]);
    assert_eq!(r.code, 1, "required user metadata the payload lacks refuses it: {}", r.stdout);
    assert!(
        r.stdout.contains("FAIL userMetadata: the signed payload must carry buildId=\"7\"; it does not carry it"),
        "{}",
        r.stdout
    );
    let r = run(&env("ca_invalid_sig_env.json"), &policy, &["-o", "json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.json()["failures"][0]["type"], "integrity");
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("policy.json");
    std::fs::write(
        &other,
        std::fs::read_to_string(&policy)
            .unwrap()
            .replace("CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US", "C=IN,ST=TG,O=DummyOrg"),
    )
    .unwrap();
    let r = run(&env("sa_valid_sig_env.json"), &other, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "FAIL authenticity: the signing certificate does not match the trust policy's trusted identities"
        ),
        "{}",
        r.stdout
    );
    let r = tollgate(&[
        "verify-notation",
        "--signature",
        &env("ca_valid_sig_env.json"),
        "--media-type",
        "application/jose+json",
        "--artifact",
        "other.io/x@sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e",
        "--trust-policy",
        policy.to_str().unwrap(),
        "--trust-store",
        store.to_str().unwrap(),
    ]);
    assert!(r.one_line_error(2).contains("has no applicable oci trust policy statement"), "{}", r.stderr);
    // A COSE envelope with an RFC 3161 countersignature, under a policy with a tsa store.
    let ts = data.join("notation-go/verifier/testdata/timestamp/sigEnv/coseWithTimestamp.sig");
    let r = tollgate(&[
        "verify-notation",
        "--signature",
        ts.to_str().unwrap(),
        "--media-type",
        "application/cose",
        "--artifact",
        "localhost:5000/app@sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda",
        "--trust-policy",
        data.join("policies/timestamp-always.json").to_str().unwrap(),
        "--trust-store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("note: timestamped at 2024-06-18T06:27:16Z by a trusted timestamp authority"),
        "{}",
        r.stdout
    );
}

/// A `notationSigned` policy for `REG/team` in the setup's directory (trust policy, CA file) for the
/// trusted identity `identity`; returns the policy's path.
pub(crate) fn notation_policy(s: &Setup, notary: &tollgate_testkit::notation::TestNotary, identity: &str) -> PathBuf {
    use tollgate_testkit::notation::trust_policy;
    let dir = s.dir.path();
    std::fs::write(dir.join("notary-ca.pem"), notary.ca_pem()).unwrap();
    std::fs::write(dir.join("trustpolicy.json"), trust_policy(&s.repository(), "strict", "acme", identity)).unwrap();
    let policy = dir.join("notation.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault: [{{type: reject}}]\ntransports:\n  docker:\n    {}/team:\n      - type: notationSigned\n        trustPolicy: {{path: trustpolicy.json}}\n        trustStores:\n          ca:acme: [{{path: notary-ca.pem}}]\n",
            s.reg.addr
        ),
    )
    .unwrap();
    policy
}

/// Attaches a notation signature to the app's index (the fallback tag then lists only it); `sign` is
/// given the index's media type and size.
pub(crate) fn attach_app_notation(s: &Setup, sign: impl Fn(&str, usize) -> Vec<u8>) {
    let index = s.rt.block_on(s.reg.client().get_manifest(&s.repo.clone().with_digest(s.digest.clone()))).unwrap();
    let envelope = sign(&index.media_type, index.bytes.len());
    s.rt.block_on(tollgate_testkit::notation::attach_signature(
        &s.reg.client(),
        &s.repo,
        &s.digest,
        &index.media_type,
        index.bytes.len(),
        &envelope,
    ));
}

/// With `checkRevocation`, the CRL that a trusted signing certificate names is fetched (here from
/// the registry, as a blob) and decides: a listed serial is refused under `strict` and only logged
/// under `permissive`, a CRL that cannot be fetched or has expired leaves the status unknown (refused
/// under `strict`), and a chain from an untrusted CA never makes tollgate fetch what it names.
#[test]
fn notation_revocation_is_checked_online_against_the_crls_a_trusted_chain_names() {
    use tollgate_testkit::notation::{TestNotary, trust_policy};
    let s = Setup::new();
    let notary = TestNotary::generate("tollgate test notary CA", "tollgate test signer");
    let identity = "x509.subject: CN=tollgate test signer, O=tollgate, ST=WA, C=US";
    let offline = notation_policy(&s, &notary, identity);
    let policy = online_policy(&s, &offline);
    let now = i64::try_from(tollgate_node::engine::now_unix()).unwrap();
    let serve = |crl: Vec<u8>| s.blob_url(&crl);
    let (good, revoked, expired) =
        (serve(notary.crl(&[], now + 3600)), serve(notary.crl(&[4242], now + 3600)), serve(notary.crl(&[], now - 5)));
    let app = s.app();
    let verify = |p: &std::path::Path| {
        tollgate(&["verify", &app, "--policy", p.to_str().unwrap(), "--insecure-registry", &s.reg.addr])
    };
    let sign_with = |n: &TestNotary| attach_app_notation(&s, |t, size| n.jws(t, &s.digest, size, now - 60, None));
    let signer = "tollgate test signer";

    sign_with(&notary.revocable(signer, &good, 4242));
    let r = verify(&policy);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("revocation checked: no certificate of the chain is revoked"), "{}", r.stdout);
    // Offline (no checkRevocation), nothing is fetched, and the decision says revocation was not checked.
    let r = verify(&offline);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("revocation was not checked"), "{}", r.stdout);

    sign_with(&notary.revocable(signer, &revoked, 4242));
    assert_denied(
        &verify(&policy),
        1,
        &format!(
            "revocation: certificate with subject \"{}\" is revoked (CRL {revoked})",
            "CN=tollgate test signer,O=tollgate,ST=WA,C=US"
        ),
    );
    assert_eq!(verify(&offline).code, 0, "offline, a revoked certificate is not known to be revoked");

    sign_with(&notary.revocable(signer, &expired, 4242));
    assert_denied(&verify(&policy), 1, "revocation status is unknown (CRL http://");
    assert_denied(&verify(&policy), 1, "the CRL expired at");

    let closed = Stub::start(vec![Reply::Status(503)]);
    let down = format!("http://{}/ca.crl", closed.addr);
    sign_with(&notary.revocable(signer, &down, 4242));
    assert_denied(&verify(&policy), 1, &format!("revocation status is unknown (CRL {down}: HTTP 503)"));

    // A CRL server that never answers: unknown once the timeout (2 s here) has passed.
    let hung = Stub::start(vec![Reply::Hang]);
    let slow = format!("http://{}/ca.crl", hung.addr);
    sign_with(&notary.revocable(signer, &slow, 4242));
    assert_denied(&verify(&policy), 1, &format!("revocation status is unknown (CRL {slow}: no answer within 2 s)"));

    // permissive logs what strict enforces.
    std::fs::write(
        s.dir.path().join("trustpolicy.json"),
        trust_policy(&s.repository(), "permissive", "acme", identity),
    )
    .unwrap();
    sign_with(&notary.revocable(signer, &revoked, 4242));
    let r = verify(&policy);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("revocation (logged): certificate with subject"), "{}", r.stdout);

    // A chain the trust stores do not hold: its CRL distribution point is never asked.
    let watched = Stub::start(vec![Reply::Status(404)]);
    let stranger =
        TestNotary::generate("another CA", signer).revocable(signer, &format!("http://{}/x.crl", watched.addr), 1);
    sign_with(&stranger);
    assert_denied(&verify(&policy), 1, "no certificate of the signature's chain is in the trust policy's trust stores");
    assert_eq!(watched.requests(), 0, "an untrusted chain's CRL URL was fetched");
    assert!(closed.requests() > 0, "the stub that answered 503 was never asked: the test proves nothing");
}

/// Whether the `openssl` command (the reference OCSP responder) is here; under `CI=true` its absence
/// fails the test that needs it.
fn openssl_available() -> bool {
    let found = std::process::Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    assert!(found || std::env::var("CI").as_deref() != Ok("true"), "CI needs openssl (Debian package openssl)");
    if !found {
        eprintln!("SKIPPED: openssl is not installed");
    }
    found
}

/// The policy of [`notation_policy`] with online revocation checks (2 s per fetch).
pub(crate) fn online_policy(s: &Setup, offline: &std::path::Path) -> PathBuf {
    let policy = s.dir.path().join("online.yaml");
    let online = std::fs::read_to_string(offline).unwrap() + "        checkRevocation: {timeoutSeconds: 2}\n";
    std::fs::write(&policy, online).unwrap();
    policy
}

/// OCSP: a trusted signing certificate that names a responder is decided by its answer, made here by
/// `openssl ocsp` (the reference responder) and served on 127.0.0.1. tollgate's request is the one
/// openssl makes, byte for byte, POSTed; "good" allows, "revoked" refuses naming the responder, and a
/// responder that does not know the certificate leaves the status unknown unless the certificate
/// names a CRL, which then decides (as notation-core-go falls back).
#[test]
fn notation_revocation_asks_the_ocsp_responder_a_trusted_chain_names() {
    use tollgate_notation::certs::read_certificates;
    use tollgate_testkit::notation::TestNotary;
    if !openssl_available() {
        return;
    }
    let s = Setup::new();
    let notary = TestNotary::generate("tollgate test notary CA", "tollgate test signer");
    let identity = "x509.subject: CN=tollgate test signer, O=tollgate, ST=WA, C=US";
    let policy = online_policy(&s, &notation_policy(&s, &notary, identity));
    let now = i64::try_from(tollgate_node::engine::now_unix()).unwrap();
    let app = s.app();
    let verify =
        || tollgate(&["verify", &app, "--policy", policy.to_str().unwrap(), "--insecure-registry", &s.reg.addr]);
    let sign_with = |n: &TestNotary| attach_app_notation(&s, |t, size| n.jws(t, &s.digest, size, now - 60, None));
    let signer = "tollgate test signer";
    // An OCSP answer is about an issuer and a serial: made for a stand-in certificate with serial 4242,
    // it answers for the one that then names the responder serving it.
    let responder = |status: Option<char>| {
        let stand_in = notary.with_ocsp(signer, "http://127.0.0.1:9/", None, 4242);
        let (request, response) = stand_in.openssl_ocsp(s.dir.path(), status);
        (Stub::start(vec![Reply::Body(response)]), request)
    };
    let der = |pem: String| read_certificates(pem.as_bytes()).unwrap().remove(0);

    let (good, openssl_request) = responder(Some('V'));
    let leaf = notary.with_ocsp(signer, &format!("http://{}/", good.addr), None, 4242);
    let ours = tollgate_notation::ocsp::request(&der(leaf.leaf_pem()), &der(notary.ca_pem())).unwrap();
    assert_eq!(ours, openssl_request, "tollgate's OCSP request differs from openssl's");
    sign_with(&leaf);
    let r = verify();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("revocation checked: no certificate of the chain is revoked"), "{}", r.stdout);
    let head = good.heads().first().cloned().unwrap_or_default();
    assert!(head.starts_with("POST / "), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/ocsp-request"), "{head}");

    let (revoked, _) = responder(Some('R'));
    sign_with(&notary.with_ocsp(signer, &format!("http://{}/", revoked.addr), None, 4242));
    assert_denied(&verify(), 1, &format!("is revoked (OCSP http://{}/)", revoked.addr));

    let (unknown, _) = responder(None);
    let unknown_url = format!("http://{}/", unknown.addr);
    sign_with(&notary.with_ocsp(signer, &unknown_url, None, 4242));
    assert_denied(
        &verify(),
        1,
        &format!("revocation status is unknown (OCSP {unknown_url}: the responder does not know the certificate)"),
    );
    let crl = |list: Vec<u8>| s.blob_url(&list);
    let listed = crl(notary.crl(&[4242], now + 3600));
    sign_with(&notary.with_ocsp(signer, &unknown_url, Some(&listed), 4242));
    assert_denied(&verify(), 1, &format!("is revoked (CRL {listed})"));
    let clean = crl(notary.crl(&[], now + 3600));
    sign_with(&notary.with_ocsp(signer, &unknown_url, Some(&clean), 4242));
    assert_eq!(verify().code, 0, "an unknown OCSP answer falls back to a CRL that does not list the certificate");
}

/// `notationSigned` combines with `sigstoreSigned` like any two requirements of a scope: each must
/// hold. A notation signature alone, or a cosign signature alone, is refused naming the one missing;
/// both together allow, and the decision shows both.
#[test]
fn a_notation_requirement_combines_with_a_sigstore_requirement() {
    use tollgate_testkit::notation::TestNotary;
    let s = Setup::new();
    let notary = TestNotary::generate("tollgate test notary CA", "tollgate test signer");
    let notation_only = notation_policy(&s, &notary, "*");
    let both = s.dir.path().join("both.yaml");
    let text = std::fs::read_to_string(&notation_only)
        .unwrap()
        .replace("kind: ImagePolicy\n", "kind: ImagePolicy\ntrust:\n  team: {publicKeys: [{path: trusted.pub}]}\n")
        + "      - type: sigstoreSigned\n        trust: team\n        signedIdentity: {type: matchRepository}\n";
    std::fs::write(&both, text).unwrap();
    let app = s.app();
    let verify = || tollgate(&["verify", &app, "--policy", both.to_str().unwrap(), "--insecure-registry", &s.reg.addr]);
    let now = i64::try_from(tollgate_node::engine::now_unix()).unwrap() - 60;
    attach_app_notation(&s, |t, n| notary.jws(t, &s.digest, n, now, None));
    let r = verify();
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("ok   notationSigned"), "{}", r.stdout);
    assert!(r.stdout.contains("FAIL sigstoreSigned"), "{}", r.stdout);
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let r = verify();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("ok   notationSigned") && r.stdout.contains("ok   sigstoreSigned"), "{}", r.stdout);
    // The cosign signature alone does not do.
    attach_app_notation(&s, |t, n| notary.jws(t, &Digest::sha256_of(b"another image"), n, now, None));
    let r = verify();
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("FAIL notationSigned") && r.stdout.contains("ok   sigstoreSigned"), "{}", r.stdout);
}

/// Notary Project signatures are found as referrers (the fallback tag of a registry without the
/// referrers API) and decided under notation's own trust policy: another CA, another digest, another
/// media type, an expired signature and an untrusted identity are each refused with their reason; the
/// right one allows, and `policy export` refuses what containers-policy.json cannot say.
#[test]
fn notation_signatures_attached_as_referrers_verify_under_notations_trust_policy() {
    use tollgate_testkit::notation::TestNotary;
    let s = Setup::new();
    let notary = TestNotary::generate("tollgate test notary CA", "tollgate test signer");
    let trusted = "x509.subject: CN=tollgate test signer, O=tollgate, ST=WA, C=US";
    let policy = notation_policy(&s, &notary, trusted);
    let app = s.app();
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", &app, "--policy", policy.to_str().unwrap(), "--insecure-registry", &s.reg.addr];
        args.extend_from_slice(extra);
        tollgate(&args)
    };
    assert_denied(&verify(&[]), 1, "a notation signature was required, but none is attached");

    let now = i64::try_from(tollgate_node::engine::now_unix()).unwrap() - 60;
    let stranger = TestNotary::generate("another CA", "tollgate test signer");
    attach_app_notation(&s, |t, n| stranger.jws(t, &s.digest, n, now, None));
    assert_denied(
        &verify(&[]),
        1,
        "authenticity: no certificate of the signature's chain is in the trust policy's trust stores",
    );
    let other = Digest::sha256_of(b"another image");
    attach_app_notation(&s, |t, n| notary.jws(t, &other, n, now, None));
    assert_denied(&verify(&[]), 1, &format!("integrity: the signature is for {other}, not {}", s.digest));
    attach_app_notation(&s, |_, n| notary.jws("application/vnd.oci.image.manifest.v1+json", &s.digest, n, now, None));
    assert_denied(&verify(&[]), 1, "integrity: the signature's target is a application/vnd.oci.image.manifest.v1+json");
    attach_app_notation(&s, |t, n| notary.jws(t, &s.digest, n, now - 3600, Some(now - 10)));
    assert_denied(&verify(&[]), 1, "expiry: the signature expired at ");

    attach_app_notation(&s, |t, n| notary.jws(t, &s.digest, n, now, None));
    let r = verify(&[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("notation signature verified under trust policy \"tollgate-test\" (notary.x509)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("revocation was not checked"), "{}", r.stdout);
    let json = verify(&["-o", "json"]).json();
    assert_eq!(json["allowed"], true);
    assert_eq!(json["requirements"][0]["requirement"], "notationSigned (trust stores: ca:acme)");

    // A COSE_Sign1 envelope of the same descriptor verifies the same way; one for another digest does not.
    attach_app_notation(&s, |t, n| notary.cose(t, &other, n, now));
    assert_denied(&verify(&[]), 1, &format!("integrity: the signature is for {other}, not {}", s.digest));
    attach_app_notation(&s, |t, n| notary.cose(t, &s.digest, n, now));
    let r = verify(&[]);
    assert_eq!(r.code, 0, "COSE: {}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("notation signature verified under trust policy \"tollgate-test\" (notary.x509)"),
        "{}",
        r.stdout
    );

    // The same signature, by an identity the trust policy does not name.
    let policy = notation_policy(&s, &notary, "x509.subject: CN=someone else, O=tollgate, ST=WA, C=US");
    let r = tollgate(&["verify", &s.app(), "--policy", policy.to_str().unwrap(), "--insecure-registry", &s.reg.addr]);
    assert_denied(&r, 1, "the signing certificate does not match the trust policy's trusted identities");

    let export = tollgate(&["policy", "export", policy.to_str().unwrap()]);
    assert!(export.one_line_error(2).contains("notationSigned"), "{}", export.stderr);

    // A statement at level skip accepts without looking at signatures, as notation's does, and says so.
    let skip = r#"{"version":"1.0","trustPolicies":[{"name":"sandbox","registryScopes":["*"],"signatureVerification":{"level":"skip"},"trustStores":[],"trustedIdentities":[]}]}"#;
    let policy = s.dir.path().join("skip.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault: [{{type: notationSigned, trustPolicy: {{inline: {}}}}}]\n",
            serde_json::to_string(skip).unwrap()
        ),
    )
    .unwrap();
    let r = tollgate(&["verify", &s.app(), "--policy", policy.to_str().unwrap(), "--insecure-registry", &s.reg.addr]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("notation trust policy \"sandbox\" skips signature verification (level skip)"),
        "{}",
        r.stdout
    );
}

/// A broken `notationSigned` requirement fails `policy check` with the reason, not at pull time.
#[test]
fn a_notation_requirement_that_cannot_load_is_refused_by_policy_check() {
    use tollgate_testkit::notation::TestNotary;
    let s = Setup::new();
    let notary = TestNotary::generate("tollgate test notary CA", "tollgate test signer");
    let policy = notation_policy(&s, &notary, "*");
    let check = || tollgate(&["policy", "check", policy.to_str().unwrap()]);
    let r = check();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, text.replace("ca:acme:", "ca:other:")).unwrap();
    let r = check();
    let e = r.one_line_error(2);
    assert!(e.contains("names the trust store \"ca:acme\", which trustStores does not give"), "{e}");
    std::fs::write(&policy, text.clone() + "        checkRevocation: {timeoutSeconds: 0}\n").unwrap();
    let r = check();
    let e = r.one_line_error(2);
    assert!(e.contains("checkRevocation.timeoutSeconds is 0; give 1 to 30 (default 5)"), "{e}");
    std::fs::write(&policy, text.clone() + "        checkRevocation: {timeout: 5}\n").unwrap();
    let r = check();
    let e = r.one_line_error(2);
    assert!(e.contains("unknown field `timeout`"), "{e}");
    std::fs::write(&policy, text).unwrap();
    std::fs::write(s.dir.path().join("notary-ca.pem"), "not a certificate").unwrap();
    let r = check();
    let e = r.one_line_error(2);
    assert!(e.contains("trust store ca:acme: cannot read the certificate file"), "{e}");
    assert!(e.contains("notary-ca.pem"), "{e}");
}

/// A ClusterImagePolicy with a notation authority compiles to a `notationSigned` requirement with
/// everything inline, which then decides as the file policy does; one whose trust policy names a
/// store it does not give is refused by name at compile time.
#[test]
fn a_notation_authority_compiles_and_decides() {
    use tollgate_testkit::notation::{TestNotary, trust_policy};
    let s = Setup::new();
    let notary = TestNotary::generate("tollgate test notary CA", "signer");
    let now = i64::try_from(tollgate_node::engine::now_unix()).unwrap() - 60;
    let q = |t: &str| serde_json::to_string(t).unwrap();
    let object = |store: &str| {
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: notary}}\nspec:\n  images: [{reg}/team]\n  authorities:\n    - notation:\n        trustPolicy: {policy}\n        trustStores:\n          - name: {store}\n            certificates: [{ca}]\n        checkRevocation: {{timeoutSeconds: 3}}\n",
            reg = s.reg.addr,
            policy =
                q(&trust_policy(&s.repository(), "strict", "acme", "x509.subject: CN=signer, O=tollgate, ST=WA, C=US")),
            ca = q(&notary.ca_pem()),
        )
    };
    let file = s.dir.path().join("objects.yaml");
    let out = s.dir.path().join("compiled");
    std::fs::write(&file, object("ca:acme")).unwrap();
    let r = tollgate(&["policy", "compile", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let policy = out.join("policy.yaml");
    let compiled = std::fs::read_to_string(&policy).unwrap();
    assert!(compiled.contains("checkRevocation:\n") && compiled.contains("timeoutSeconds: 3"), "{compiled}");
    let verify =
        || tollgate(&["verify", &s.app(), "--policy", policy.to_str().unwrap(), "--insecure-registry", &s.reg.addr]);
    assert_denied(&verify(), 1, "a notation signature was required, but none is attached");
    attach_app_notation(&s, |t, n| notary.jws(t, &s.digest, n, now, None));
    let r = verify();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    std::fs::write(&file, object("ca:other")).unwrap();
    let r = tollgate(&["policy", "compile", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let e = r.one_line_error(2);
    assert!(e.contains("ClusterImagePolicy/notary: its notation authority does not load"), "{e}");
    assert!(e.contains("names the trust store \"ca:acme\", which trustStores does not give"), "{e}");
}

/// `policy import --to crd`: a containers-policy.json becomes ClusterImagePolicies (keys inlined) that,
/// compiled, make the same decisions as the file on signed, unsigned, open and uncovered images; what
/// the CRDs cannot mean the same way is refused, each rule named, and nothing is written.
#[test]
fn a_containers_policy_imported_as_crds_decides_as_the_file_does() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    for (repo, tag) in [("team/unsigned", "v1"), ("open/tool", "v1"), ("elsewhere/app", "v1")] {
        let r = Reference::parse_normalized(&format!("{}/{repo}", s.reg.addr)).unwrap();
        s.rt.block_on(image::push_index(&s.reg.client(), &r, tag, repo.as_bytes()));
    }
    let crds = s.dir.path().join("crds.yaml");
    let policy = s.policy();
    let r = tollgate(&["policy", "import", "--to", "crd", policy.to_str().unwrap(), "--out", crds.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&crds).unwrap();
    assert_eq!(text.matches("kind: ClusterImagePolicy").count(), 2, "{text}");
    assert!(text.contains("BEGIN PUBLIC KEY") && text.contains("type: matchRepository"), "the key is inlined: {text}");
    let compiled = s.dir.path().join("compiled");
    let r = tollgate(&["policy", "compile", crds.to_str().unwrap(), "--out", compiled.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let decide = |policy: &std::path::Path, image: &str| {
        tollgate(&["verify", image, "--policy", policy.to_str().unwrap(), "--insecure-registry", &s.reg.addr]).code
    };
    for (image, want) in [
        (s.app(), 0),
        (format!("{}/team/unsigned:v1", s.reg.addr), 1),
        (format!("{}/open/tool:v1", s.reg.addr), 0),
        (format!("{}/elsewhere/app:v1", s.reg.addr), 1),
    ] {
        assert_eq!(decide(&policy, &image), want, "the file on {image}");
        assert_eq!(decide(&compiled.join("policy.yaml"), &image), want, "the imported objects on {image}");
    }

    let lossy = s.dir.path().join("lossy.json");
    std::fs::write(
        &lossy,
        r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{
            "r.example":[{"type":"reject"}],
            "r.example/team":[{"type":"insecureAcceptAnything"}],
            "q.example":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"k.gpg"}]}}}"#,
    )
    .unwrap();
    let out = s.dir.path().join("lossy.yaml");
    let r = tollgate(&["policy", "import", "--to", "crd", lossy.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let e = r.one_line_error(2);
    assert!(e.contains("cannot convert 3 rule(s)"), "{e}");
    assert!(e.contains("default: the cluster refuses every image no ClusterImagePolicy covers"), "{e}");
    assert!(
        e.contains("transports.docker[\"r.example/team\"]: containers-policy.json applies only its requirements"),
        "{e}"
    );
    assert!(e.contains("signedBy has no CRD form"), "{e}");
    assert!(!out.exists(), "nothing is written");
}
