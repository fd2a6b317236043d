//! The binary invoked exactly as containerd's bindir image verifier invokes it.

use tollgate_testkit::sign::Attached;
use tollgate_testkit::stub::{Reply, Stub};

use crate::util::{Run, tollgate_stdin};
use crate::verify::Setup;

const MEDIA: &str = "application/vnd.oci.descriptor.v1+json";

fn invoke(name: &str, digest: &str, config: &std::path::Path, descriptor_media_type: &str, size: usize) -> Run {
    let stdin = format!("{{\"mediaType\":\"{descriptor_media_type}\",\"digest\":\"{digest}\",\"size\":{size}}}\n");
    tollgate_stdin(
        &["-name", name, "-digest", digest, "-stdin-media-type", MEDIA],
        &[("TOLLGATE_CONFIG", config.to_str().unwrap())],
        stdin.as_bytes(),
    )
}

fn config(s: &Setup, extra: &str) -> std::path::PathBuf {
    let path = s.dir.path().join("config.yaml");
    let text = format!("policy: {}\ninsecureRegistries: [\"{}\"]\n{extra}", s.policy().display(), s.reg.addr);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn allows_a_signed_image_and_rejects_an_unsigned_one_with_a_reason() {
    let s = Setup::new();
    let cfg = config(&s, "");
    let digest = s.digest.to_string();
    let r = invoke(&s.app(), &digest, &cfg, "application/vnd.oci.image.index.v1+json", 1000);
    assert_eq!(r.code, 1, "unsigned: {}", r.stdout);
    assert!(r.stdout.starts_with(&format!("tollgate: denied {}@{digest}: ", s.app())), "{}", r.stdout);
    assert!(r.stdout.contains("a signature was required, but no signature exists"));
    assert_eq!(r.stdout.lines().count(), 1, "one reason line");

    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let r = invoke(&s.app(), &digest, &cfg, "application/vnd.oci.image.index.v1+json", 1000);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("tollgate: allowed "), "{}", r.stdout);
}

#[test]
fn fails_closed_when_undecidable_unless_fail_open() {
    let s = Setup::new();
    let port = tollgate_testkit::free_port();
    let dead = format!("127.0.0.1:{port}/team/app:v1");
    let digest = s.digest.to_string();
    let cfg = s.dir.path().join("dead.yaml");
    std::fs::write(&cfg, format!("policy: {}\ninsecureRegistries: [\"127.0.0.1:{port}\"]\n", s.policy().display()))
        .unwrap();
    let r = invoke(&dead, &digest, &cfg, "application/vnd.oci.image.manifest.v1+json", 10);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.starts_with("tollgate: rejected, failing closed: "), "{}", r.stdout);
    std::fs::write(
        &cfg,
        format!("policy: {}\ninsecureRegistries: [\"127.0.0.1:{port}\"]\nfailOpen: true\n", s.policy().display()),
    )
    .unwrap();
    let r = invoke(&dead, &digest, &cfg, "application/vnd.oci.image.manifest.v1+json", 10);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.starts_with("tollgate: allowed by failOpen although undecidable"), "{}", r.stdout);
}

#[test]
fn a_hanging_registry_is_cut_off_by_the_deadline() {
    let s = Setup::new();
    let hang = Stub::start(vec![Reply::Hang]);
    let cfg = s.dir.path().join("hang.yaml");
    std::fs::write(
        &cfg,
        format!("policy: {}\ninsecureRegistries: [\"{}\"]\ndeadlineSeconds: 2\n", s.policy().display(), hang.addr),
    )
    .unwrap();
    let r = invoke(
        &format!("{}/team/app:v1", hang.addr),
        &s.digest.to_string(),
        &cfg,
        "application/vnd.oci.image.manifest.v1+json",
        10,
    );
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.starts_with("tollgate: rejected, failing closed: "), "{}", r.stdout);
}

#[test]
fn bad_invocations_and_mismatched_descriptors_are_rejected() {
    let s = Setup::new();
    let cfg = config(&s, "");
    let r = tollgate_stdin(&["-name", "x"], &[("TOLLGATE_CONFIG", cfg.to_str().unwrap())], b"");
    assert_ne!(r.code, 0);
    assert_eq!(r.stdout.trim(), "tollgate: rejected, failing closed: bad invocation: missing -digest");
    let other = tollgate_oci::Digest::sha256_of(b"other").to_string();
    let stdin = format!("{{\"mediaType\":\"{MEDIA}\",\"digest\":\"{other}\",\"size\":1}}\n");
    let r = tollgate_stdin(
        &["-name", &s.app(), "-digest", &s.digest.to_string(), "-operation", "pull"],
        &[("TOLLGATE_CONFIG", cfg.to_str().unwrap())],
        stdin.as_bytes(),
    );
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("the descriptor on stdin is for"), "{}", r.stdout);
    assert!(r.stderr.contains("ignoring unknown flags: operation"), "{}", r.stderr);
}

#[test]
fn doctor_reports_silent_fallbacks_and_empty_bin_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cfg = dir.path().join("config.toml");
    let good =
        format!("version = 3\n[plugins.'io.containerd.image-verifier.v1.bindir']\n  bin_dir = '{}'\n", bin.display());
    std::fs::write(&cfg, &good).unwrap();
    let r = crate::util::tollgate(&["containerd", "doctor", "--config", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 1, "an empty bin_dir allows every pull: {}", r.stdout);
    assert!(r.stdout.contains("CRITICAL  bin_dir:"), "{}", r.stdout);
    std::fs::write(bin.join("tollgate"), b"").unwrap();
    let r = crate::util::tollgate(&["containerd", "doctor", "--config", cfg.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.json()["verifiers"][0], "tollgate");
    std::fs::write(&cfg, format!("{good}[plugins.'io.containerd.cri.v1.images']\n  use_local_image_pull = true\n"))
        .unwrap();
    let r = crate::util::tollgate(&["containerd", "doctor", "--config", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("use_local_image_pull = true: kubelet pulls silently fall back"), "{}", r.stdout);
    let r = crate::util::tollgate(&["containerd", "doctor", "--config", "/nonexistent/config.toml"]);
    assert_eq!(
        r.one_line_error(2),
        "tollgate: cannot read /nonexistent/config.toml: No such file or directory (os error 2)"
    );
}
