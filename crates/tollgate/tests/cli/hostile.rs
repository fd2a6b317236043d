//! A hostile registry in front of a real one (testkit `Hostile`): each test is
//! a bypass or fail-open a security review reproduced, and must stay closed.

use tollgate_testkit::hostile::{Action, Hostile, path};
use tollgate_testkit::sign::Attached;
use tollgate_testkit::stub::{Reply, Stub};

use crate::util::{Run, tollgate, verifier_stdin};
use crate::verify::Setup;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn per_platform_policy(s: &Setup) -> std::path::PathBuf {
    let policy = s.dir.path().join("per-platform.yaml");
    let yaml = "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  team:\n    publicKeys: [{path: trusted.pub}]\ndefault:\n  - type: sigstoreSigned\n    trust: team\n    signedIdentity: {type: matchRepository}\n    perPlatform: true\n";
    std::fs::write(&policy, yaml).unwrap();
    policy
}

fn verify_via(addr: &str, policy: &std::path::Path, extra: &[&str]) -> Run {
    let image = format!("{addr}/team/app:v1");
    let mut args = vec!["verify", &image, "--policy", policy.to_str().unwrap(), "--insecure-registry", addr];
    args.extend_from_slice(extra);
    tollgate(&args)
}

/// The index is served (digest-correct) with an image-manifest Content-Type, so
/// that per-platform checks find "0 platform manifests". The body decides.
#[test]
fn a_spoofed_content_type_cannot_skip_per_platform_signatures() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let index_path = format!("/v2/team/app/manifests/{}", s.digest);
    let hostile = Hostile::start(&s.reg.addr, move |head| {
        let p = path(head);
        if p == "/v2/team/app/manifests/v1" || p == index_path {
            Action::ForwardSetting("Content-Type".into(), MANIFEST.into())
        } else {
            Action::Forward
        }
    });
    let policy = per_platform_policy(&s);
    let r = verify_via(&hostile.addr, &policy, &[]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("each of the 0 platform manifests"), "{}", r.stdout);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(&format!("the registry's Content-Type {MANIFEST} disagrees with the manifest itself ({INDEX})")),
        "{all}"
    );
    // Through the node path too, with the digest containerd passes.
    let r = verify_via(&hostile.addr, &policy, &["--digest", &s.digest.to_string()]);
    assert_ne!(r.code, 0, "{}", r.stdout);
}

/// containerd's descriptor says what it pulls; bytes of the other kind are refused.
#[test]
fn a_manifest_of_another_kind_than_containerds_descriptor_is_refused() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let cfg = s.dir.path().join("node.yaml");
    std::fs::write(
        &cfg,
        format!(
            "policy: {}\ninsecureRegistries: [\"{}\"]\nsocket: {}\nfallbackBinary: {}\n{}",
            s.policy().display(),
            s.reg.addr,
            s.dir.path().join("no-daemon.sock").display(),
            env!("CARGO_BIN_EXE_tollgate"),
            crate::util::private_paths(s.dir.path()),
        ),
    )
    .unwrap();
    let invoke = |media_type: &str| {
        let digest = s.digest.to_string();
        let stdin = format!("{{\"mediaType\":\"{media_type}\",\"digest\":\"{digest}\",\"size\":1000}}\n");
        verifier_stdin(
            &["-name", &s.app(), "-digest", &digest, "-stdin-media-type", "application/vnd.oci.descriptor.v1+json"],
            &[("TOLLGATE_CONFIG", cfg.to_str().unwrap())],
            stdin.as_bytes(),
        )
    };
    assert_eq!(invoke(INDEX).code, 0, "the descriptor agrees with the index");
    let r = invoke(MANIFEST);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains(&format!("containerd pulls {} as {MANIFEST}", s.digest)), "{}", r.stdout);
}

/// A registry that serves the manifest but answers 503 for its own signature
/// tag must not turn its unsigned image into a failOpen allow.
#[test]
fn signature_fetch_failures_after_the_manifest_are_never_failed_open() {
    let s = Setup::new();
    let hostile =
        Hostile::start(
            &s.reg.addr,
            |head| if path(head).contains(".sig") { Action::Status(503) } else { Action::Forward },
        );
    let policy = s.dir.path().join("signed.json");
    std::fs::write(&policy, crate::serve::SIGNED_EVERYWHERE).unwrap();
    let cfg = s.dir.path().join("open.yaml");
    std::fs::write(
        &cfg,
        format!(
            "policy: {}\ninsecureRegistries: [\"{}\"]\nsocket: {}\nfallbackBinary: {}\nfailOpen: true\n{}",
            policy.display(),
            hostile.addr,
            s.dir.path().join("no-daemon.sock").display(),
            env!("CARGO_BIN_EXE_tollgate"),
            crate::util::private_paths(s.dir.path()),
        ),
    )
    .unwrap();
    let digest = s.digest.to_string();
    let stdin = format!("{{\"mediaType\":\"{INDEX}\",\"digest\":\"{digest}\",\"size\":1000}}\n");
    let r = verifier_stdin(
        &[
            "-name",
            &format!("{}/team/app:v1", hostile.addr),
            "-digest",
            &digest,
            "-stdin-media-type",
            "application/vnd.oci.descriptor.v1+json",
        ],
        &[("TOLLGATE_CONFIG", cfg.to_str().unwrap())],
        stdin.as_bytes(),
    );
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.starts_with("tollgate: rejected, failing closed: "), "{}", r.stdout);
    assert!(r.stdout.contains("503"), "{}", r.stdout);
    assert!(hostile.heads().iter().any(|h| path(h).contains(".sig")), "the signature tag was asked for");
}

/// Registry A (HTTPS) redirects to host B, whose 401 names a token realm on
/// host C: A's credentials must never reach C, nor B.
#[test]
fn credentials_never_follow_a_redirect_to_a_realm_another_host_chose() {
    let (realm, realm_ca) = Hostile::start_tls("127.0.0.1:9", |_| Action::Status(200));
    let realm_addr = realm.addr.clone();
    let (b, b_ca) = Hostile::start_tls("127.0.0.1:9", move |_| {
        Action::Challenge(format!("Bearer realm=\"https://{realm_addr}/token\",service=\"evil\""))
    });
    let b_addr = b.addr.clone();
    let (a, a_ca) = Hostile::start_tls("127.0.0.1:9", move |head| {
        if path(head).starts_with("/v2/team/app/manifests/") {
            Action::Redirect(format!("https://{b_addr}{}", path(head)))
        } else {
            Action::Status(404)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cas = dir.path().join("cas.pem");
    std::fs::write(&cas, format!("{a_ca}{b_ca}{realm_ca}")).unwrap();
    let auth = dir.path().join("auth.json");
    // user:secret, for registry A only.
    std::fs::write(&auth, format!("{{\"auths\":{{\"{}\":{{\"auth\":\"dXNlcjpzZWNyZXQ=\"}}}}}}", a.addr)).unwrap();
    let policy = dir.path().join("accept.json");
    std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    let image = format!("{}/team/app:v1", a.addr);
    let r = tollgate(&[
        "verify",
        &image,
        "--policy",
        policy.to_str().unwrap(),
        "--ca-file",
        cas.to_str().unwrap(),
        "--authfile",
        auth.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("401"), "refused as unauthorized: {}", r.stderr);
    assert!(!b.heads().is_empty(), "B was reached through the redirect");
    assert!(realm.heads().is_empty(), "the realm B named was asked: {:?}", realm.heads());
    for h in b.heads() {
        assert!(!h.to_ascii_lowercase().contains("authorization:"), "B got credentials: {h}");
    }
}

/// A plain-HTTP registry is trusted by its address only: its redirect to
/// another host (a metadata address, an internal service) is not followed.
#[test]
fn a_plain_http_registry_cannot_redirect_the_node_to_another_host() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let elsewhere = Stub::start(vec![Reply::Status(404)]);
    let target = elsewhere.addr.clone();
    let hostile = Hostile::start(&s.reg.addr, move |head| {
        if path(head).contains("/blobs/") {
            Action::Redirect(format!("http://{target}/latest/meta-data/"))
        } else {
            Action::Forward
        }
    });
    let policy = s.dir.path().join("signed.json");
    std::fs::write(&policy, crate::serve::SIGNED_EVERYWHERE).unwrap();
    let r = verify_via(&hostile.addr, &policy, &[]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("refusing a redirect from a plain-HTTP registry to another host"), "{all}");
    assert_eq!(elsewhere.requests(), 0, "the other host was contacted");
}

/// The daemon applies `failOpen` only to an unreachable registry: a dead
/// registry is allowed, signatures failing after the manifest are not.
#[test]
fn the_daemon_fails_open_only_when_the_manifest_is_unreachable() {
    let s = Setup::new();
    let hostile =
        Hostile::start(
            &s.reg.addr,
            |head| if path(head).contains(".sig") { Action::Status(503) } else { Action::Forward },
        );
    let policy = s.dir.path().join("signed.json");
    std::fs::write(&policy, crate::serve::SIGNED_EVERYWHERE).unwrap();
    let dead = format!("127.0.0.1:{}", tollgate_testkit::DEAD_PORT);
    // Both registries are plain HTTP: `write_config` quotes the list's one item.
    let both = format!("{}\", \"{dead}", hostile.addr);
    let cfg = crate::serve::write_config(s.dir.path(), &policy, &both, "failOpen: true\ndeadlineSeconds: 4\n");
    let d = crate::serve::Daemon::start(&cfg);
    let digest = s.digest.to_string();
    let answer = d.verify(&format!("{}/team/app:v1", hostile.addr), &digest);
    assert!(!answer.allowed, "signatures failing after the manifest: {answer:?}");
    assert!(answer.reason.contains("503"), "{answer:?}");
    let answer = d.verify(&format!("{dead}/team/app:v1"), &digest);
    assert!(answer.allowed, "the registry is down: failOpen applies: {answer:?}");
    assert!(answer.reason.starts_with("allowed by failOpen although undecidable: "), "{answer:?}");
}
