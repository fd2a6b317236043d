//! tollgate against the reference implementation of containers-policy.json:
//! upstream skopeo 1.20 (containers/image 5.36) from `../shared/peers`.
//!
//! One real docker-registry holds an image per case, signed as the case says
//! (cosign-style key and keyless signatures made in Rust, and signatures made
//! by containers/image itself with `skopeo copy --sign-by-sigstore-private-key`).
//! Each case asks both programs for a verdict under the same policy:
//! `tollgate verify` (exit 0 allow, 1 deny) and `skopeo copy docker://… dir:…`,
//! which decides before it copies. Every disagreement fails the test with a
//! reproducer, unless it is listed in [`KNOWN`] with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

use tollgate_oci::{Digest, Reference};
use tollgate_testkit::fulcio::TestFulcio;
use tollgate_testkit::sign::{Attached, TestKey, attach};
use tollgate_testkit::{Registry, image};

/// Deliberate differences, by case name prefix, with the reason.
const KNOWN: &[(&str, &str)] = &[
    (
        "multi-arch index signed at its index digest only",
        "tollgate decides on the digest containerd pulls, the index; containers/image verifies the per-platform \
         manifest it copies. perPlatform: true asks tollgate for the same (docs/policy.md)",
    ),
    (
        "tag+digest",
        "containers/image refuses references with both a tag and a digest; tollgate decides on the digest, as \
         containerd pulls it",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allow,
    Deny,
}

struct World {
    reg: Registry,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    skopeo: PathBuf,
    key: TestKey,
    fulcio: TestFulcio,
}

struct Case {
    name: String,
    /// The docker-transport scopes of the policy (JSON object members), default reject.
    scopes: String,
    image: String,
}

const EMAIL: &str = "release@example.com";
const ISSUER: &str = "https://issuer.example.com";

impl World {
    fn repo(&self, name: &str) -> Reference {
        Reference::parse_normalized(&format!("{}/diff/{name}", self.reg.addr)).unwrap()
    }

    /// Pushes a one-platform image unique to `name` and attaches `signatures` (claims made by `claims`).
    fn image(&self, name: &str, signatures: impl Fn(&str, &Digest) -> Vec<Attached>) -> (Reference, Digest) {
        let repo = self.repo(name);
        let client = self.reg.client();
        let pushed = self.rt.block_on(image::push_image(&client, &repo, Some("v1"), "amd64", name.as_bytes()));
        let sigs = signatures(&repo.repository(), &pushed.digest);
        if !sigs.is_empty() {
            self.rt.block_on(attach(&client, &repo, &pushed.digest, &sigs));
        }
        (repo, pushed.digest)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn policy(&self, case: &Case, n: usize) -> PathBuf {
        let text = format!(r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{{}}}}}}}"#, case.scopes);
        self.write(&format!("policy-{n}.json"), &text)
    }

    fn tollgate(&self, case: &Case, policy: &Path) -> (Verdict, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["verify", &case.image, "--policy", policy.to_str().unwrap(), "--insecure-registry", &self.reg.addr])
            .env_remove("REGISTRY_AUTH_FILE")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        match out.status.code() {
            Some(0) => (Verdict::Allow, text),
            Some(1) => (Verdict::Deny, text),
            other => panic!("{}: tollgate verify exited {other:?}:\n{text}", case.name),
        }
    }

    /// `None` when skopeo could not decide (an error other than a policy rejection).
    fn skopeo(&self, case: &Case, policy: &Path, n: usize) -> (Option<Verdict>, String) {
        let out_dir = self.dir.path().join(format!("copy-{n}"));
        let out = Command::new(&self.skopeo)
            .args([
                "--policy",
                policy.to_str().unwrap(),
                "--registries.d",
                self.dir.path().join("registries.d").to_str().unwrap(),
            ])
            .args(["copy", "--src-tls-verify=false", "--quiet", &format!("docker://{}", case.image)])
            .arg(format!("dir:{}", out_dir.display()))
            .env("HOME", self.dir.path())
            .env("CONTAINERS_REGISTRIES_CONF", self.dir.path().join("registries.conf"))
            .env("TMPDIR", self.dir.path())
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&out_dir);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            (Some(Verdict::Allow), text)
        } else if text.contains("Source image rejected") {
            (Some(Verdict::Deny), text)
        } else {
            (None, text)
        }
    }
}

fn key_req(identity: &str) -> String {
    format!(r#"{{"type":"sigstoreSigned","keyPath":"KEY","signedIdentity":{identity}}}"#)
}

#[test]
fn tollgate_decides_as_containers_image_does() {
    let Some(skopeo) = tollgate_testkit::peers::require("tools/skopeo", "the skopeo differential test") else {
        return;
    };
    let reg = Registry::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let w = World { reg, rt, dir, skopeo, key: TestKey::generate(), fulcio: TestFulcio::generate() };
    std::fs::create_dir(w.dir.path().join("registries.d")).unwrap();
    w.write("registries.d/default.yaml", "default-docker:\n  use-sigstore-attachments: true\n");
    w.write("registries.conf", &format!("[[registry]]\nlocation = \"{}\"\ninsecure = true\n", w.reg.addr));
    let key = w.write("key.pub", &w.key.public_pem());
    let ca = w.write("fulcio.pem", &w.fulcio.ca_pem());
    let rekor = w.write("rekor.pub", &w.fulcio.rekor_pem());
    let other_key = TestKey::generate();
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap();

    let reg = w.reg.addr.clone();
    let mut cases: Vec<Case> = Vec::new();

    // 1. Every signedIdentity × reference form × signature identity form, key-signed.
    let identities = [
        ("matchExact", r#"{"type":"matchExact"}"#.to_owned()),
        ("matchRepoDigestOrExact", r#"{"type":"matchRepoDigestOrExact"}"#.to_owned()),
        ("matchRepository", r#"{"type":"matchRepository"}"#.to_owned()),
        ("exactReference", format!(r#"{{"type":"exactReference","dockerReference":"{reg}/diff/golden:v1"}}"#)),
        ("exactRepository", format!(r#"{{"type":"exactRepository","dockerRepository":"{reg}/diff/golden"}}"#)),
        ("remapIdentity", format!(r#"{{"type":"remapIdentity","prefix":"{reg}/diff","signedPrefix":"{reg}/signed"}}"#)),
    ];
    type Claim = fn(&str, &str, &Digest) -> String;
    let claims: [(&str, Claim); 9] = [
        ("repository-only", |repo, _, _| repo.to_owned()),
        ("exact tag", |repo, _, _| format!("{repo}:v1")),
        ("other tag", |repo, _, _| format!("{repo}:v2")),
        ("other repository", |_, reg, _| format!("{reg}/diff/other:v1")),
        ("digest", |repo, _, d| format!("{repo}@{d}")),
        ("golden tag", |_, reg, _| format!("{reg}/diff/golden:v1")),
        ("golden repository-only", |_, reg, _| format!("{reg}/diff/golden")),
        ("remapped tag", |repo, reg, _| {
            format!("{}:v1", repo.replace(&format!("{reg}/diff"), &format!("{reg}/signed")))
        }),
        ("remapped repository-only", |repo, reg, _| repo.replace(&format!("{reg}/diff"), &format!("{reg}/signed"))),
    ];
    let mut n = 0;
    for (claim_name, claim) in claims {
        n += 1;
        let name = format!("c{n}");
        let (repo, digest) = w.image(&name, |repo, d| vec![Attached::cosign(&w.key, &claim(repo, &reg, d), d)]);
        for (id_name, id) in &identities {
            let scopes = format!(r#""{reg}/diff":[{}]"#, key_req(id).replace("KEY", key.to_str().unwrap()));
            for (form, image) in [
                ("tag", format!("{}:v1", repo.repository())),
                ("digest", format!("{}@{digest}", repo.repository())),
                ("tag+digest", format!("{}:v1@{digest}", repo.repository())),
            ] {
                let name = format!("{form}: {id_name} with a {claim_name} claim");
                cases.push(Case { name, scopes: scopes.clone(), image });
            }
        }
    }

    // 2. Keyless (Fulcio + Rekor stand-ins): the right identity, another email, another issuer, another Rekor key.
    let fulcio_req = |email: &str, issuer: &str, rekor: &Path| {
        format!(
            r#""{reg}/diff":[{{"type":"sigstoreSigned","fulcio":{{"caPath":"{}","oidcIssuer":"{issuer}","subjectEmail":"{email}"}},"rekorPublicKeyPath":"{}","signedIdentity":{{"type":"matchRepository"}}}}]"#,
            ca.display(),
            rekor.display()
        )
    };
    let (k, _) = w.image("keyless", |repo, d| vec![w.fulcio.cosign(EMAIL, ISSUER, repo, d, now - 30)]);
    let other_rekor = w.write("other-rekor.pub", &TestKey::generate().public_pem());
    for (what, scopes) in [
        ("the signing identity", fulcio_req(EMAIL, ISSUER, &rekor)),
        ("another email", fulcio_req("someone@example.com", ISSUER, &rekor)),
        ("another issuer", fulcio_req(EMAIL, "https://other.example.com", &rekor)),
        ("another Rekor key", fulcio_req(EMAIL, ISSUER, &other_rekor)),
    ] {
        cases.push(Case { name: format!("keyless: {what}"), scopes, image: format!("{}:v1", k.repository()) });
    }

    // 3. Several signatures per image, some invalid.
    let repo_scope =
        format!(r#""{reg}/diff":[{}]"#, key_req(r#"{"type":"matchRepository"}"#).replace("KEY", key.to_str().unwrap()));
    type Several = fn(&TestKey, &TestKey, &str, &Digest) -> Vec<Attached>;
    let several: [(&str, Several); 4] = [
        ("a wrong-key signature, then a good one", |k, o, r, d| {
            vec![Attached::cosign(o, r, d), Attached::cosign(k, r, d)]
        }),
        ("two wrong-key signatures", |_, o, r, d| vec![Attached::cosign(o, r, d), Attached::cosign(o, r, d)]),
        ("a good signature for another digest, then a tampered one", |k, _, r, d| {
            let mut tampered = Attached::cosign(k, r, d);
            tampered.payload = String::from_utf8(tampered.payload).unwrap().replace("diff/", "diffx/").into_bytes();
            vec![Attached::cosign(k, r, &Digest::sha256_of(b"other")), tampered]
        }),
        ("a tampered signature, then a good one", |k, _, r, d| {
            let mut tampered = Attached::cosign(k, r, d);
            tampered.payload = String::from_utf8(tampered.payload).unwrap().replace("diff/", "diffx/").into_bytes();
            vec![tampered, Attached::cosign(k, r, d)]
        }),
    ];
    for (i, (what, sigs)) in several.into_iter().enumerate() {
        let (r, _) = w.image(&format!("multi{i}"), |repo, d| sigs(&w.key, &other_key, repo, d));
        cases.push(Case {
            name: format!("several: {what}"),
            scopes: repo_scope.clone(),
            image: format!("{}:v1", r.repository()),
        });
    }
    let (unsigned, unsigned_digest) = w.image("unsigned", |_, _| Vec::new());
    cases.push(Case {
        name: "unsigned".into(),
        scopes: repo_scope.clone(),
        image: format!("{}:v1", unsigned.repository()),
    });

    // 4. Scope precedence.
    let accept = r#"[{"type":"insecureAcceptAnything"}]"#;
    let reject = r#"[{"type":"reject"}]"#;
    let u = unsigned.repository();
    for (what, scopes, image) in [
        ("a namespace beats its host", format!(r#""{reg}":{reject},"{reg}/diff":{accept}"#), format!("{u}:v1")),
        ("a repository beats its namespace", format!(r#""{reg}/diff":{reject},"{u}":{accept}"#), format!("{u}:v1")),
        ("a tag beats its repository", format!(r#""{u}":{reject},"{u}:v1":{accept}"#), format!("{u}:v1")),
        (
            "a tag scope does not match by digest",
            format!(r#""{u}":{reject},"{u}:v1":{accept}"#),
            format!("{u}@{unsigned_digest}"),
        ),
        (
            "a digest scope",
            format!(r#""{u}":{reject},"{u}@{unsigned_digest}":{accept}"#),
            format!("{u}@{unsigned_digest}"),
        ),
        ("a wildcard of the host", format!(r#""*.0.0.1":{accept}"#), format!("{u}:v1")),
        ("the host beats a wildcard", format!(r#""*.0.0.1":{accept},"{reg}":{reject}"#), format!("{u}:v1")),
        ("the transport default beats the global one", format!(r#""":{accept}"#), format!("{u}:v1")),
        ("a scope of another repository does not apply", format!(r#""{reg}/diff/other":{accept}"#), format!("{u}:v1")),
    ] {
        cases.push(Case { name: format!("scope: {what}"), scopes, image });
    }

    // 5. Images signed by containers/image itself.
    let passphrase = w.write("passphrase", "tollgate-test\n");
    let prefix = w.dir.path().join("skopeo-key");
    let keygen = Command::new(&w.skopeo)
        .args(["generate-sigstore-key", "--output-prefix", prefix.to_str().unwrap(), "--passphrase-file"])
        .arg(&passphrase)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "skopeo generate-sigstore-key: {}", String::from_utf8_lossy(&keygen.stderr));
    let (src, _) = w.image("skopeo-src", |_, _| Vec::new());
    let signed = format!("{reg}/diff/by-skopeo:v1");
    let copy = Command::new(&w.skopeo)
        .args(["--registries.d", w.dir.path().join("registries.d").to_str().unwrap(), "--insecure-policy"])
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--quiet"])
        .args(["--sign-by-sigstore-private-key", &format!("{}.private", prefix.display()), "--sign-passphrase-file"])
        .arg(&passphrase)
        .arg(format!("docker://{}:v1", src.repository()))
        .arg(format!("docker://{signed}"))
        .env("HOME", w.dir.path())
        .env("CONTAINERS_REGISTRIES_CONF", w.dir.path().join("registries.conf"))
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "skopeo copy --sign-by-sigstore-private-key: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let skopeo_pub = format!("{}.pub", prefix.display());
    let signed_digest =
        w.rt.block_on(w.reg.client().get_manifest(&Reference::parse_normalized(&signed).unwrap())).unwrap().digest;
    for (id_name, id) in &identities {
        let scopes = format!(r#""{reg}/diff":[{}]"#, key_req(id).replace("KEY", &skopeo_pub));
        for (form, image) in [("tag", signed.clone()), ("digest", format!("{reg}/diff/by-skopeo@{signed_digest}"))] {
            cases.push(Case { name: format!("signed by skopeo, {form}: {id_name}"), scopes: scopes.clone(), image });
        }
    }

    // 6. The one deliberate difference: a multi-arch image signed at its index digest only.
    let multi = w.repo("multiarch");
    let index = w.rt.block_on(image::push_index(&w.reg.client(), &multi, "v1", b"multiarch"));
    w.rt.block_on(attach(
        &w.reg.client(),
        &multi,
        &index.digest,
        &[Attached::cosign(&w.key, &multi.repository(), &index.digest)],
    ));
    cases.push(Case {
        name: "multi-arch index signed at its index digest only".into(),
        scopes: repo_scope.clone(),
        image: format!("{}:v1", multi.repository()),
    });

    // Ask both, case by case.
    let mut failures = Vec::new();
    let (mut agreed, mut known) = (0, 0);
    for (n, case) in cases.iter().enumerate() {
        let policy = w.policy(case, n);
        let (ours, our_text) = w.tollgate(case, &policy);
        let (theirs, their_text) = w.skopeo(case, &policy, n);
        let listed = KNOWN.iter().find(|(prefix, _)| case.name.starts_with(prefix));
        match (theirs, listed) {
            (Some(t), None) if t == ours => agreed += 1,
            // A listed difference that no longer differs is stale: say so.
            (Some(t), Some((prefix, _))) if t == ours => {
                failures.push(format!("LISTED BUT AGREEING {}: remove {prefix:?} from KNOWN", case.name))
            }
            (_, Some(_)) => known += 1,
            (t, None) => failures.push(format!(
                "DISAGREE {}\n  tollgate: {ours:?}\n  skopeo:   {t:?}\n  image:    {}\n  policy:   {}\n  reproduce: tollgate verify {} --policy {} --insecure-registry {reg}\n  tollgate said: {}\n  skopeo said:   {}",
                case.name,
                case.image,
                std::fs::read_to_string(&policy).unwrap(),
                case.image,
                policy.display(),
                our_text.lines().take(6).collect::<Vec<_>>().join("\n                 "),
                their_text.trim(),
            )),
        }
    }
    eprintln!(
        "differential: {} cases, {agreed} agree, {known} listed differences ({}), {} disagreements",
        cases.len(),
        KNOWN.iter().map(|(k, _)| *k).collect::<Vec<_>>().join("; "),
        failures.len()
    );
    assert!(failures.is_empty(), "{} of {} cases:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
    assert_eq!(agreed + known, cases.len());
    // The tag+digest form of every identity case, and the one multi-arch case.
    assert_eq!(known, identities.len() * claims.len() + 1, "only the listed cases differ");
}
