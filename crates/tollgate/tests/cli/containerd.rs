//! `tollgate-verifier` invoked exactly as containerd's bindir image verifier
//! invokes it (argv, descriptor on stdin, systemd's environment), handing over
//! to the full `tollgate` binary when the daemon is down; and `containerd
//! doctor | install`.

use tollgate_testkit::sign::Attached;
use tollgate_testkit::stub::{Reply, Stub};

use crate::util::{Run, tollgate_stdin, verifier_stdin};
use crate::verify::Setup;

const MEDIA: &str = "application/vnd.oci.descriptor.v1+json";

fn invoke(name: &str, digest: &str, config: &std::path::Path, descriptor_media_type: &str, size: usize) -> Run {
    let stdin = format!("{{\"mediaType\":\"{descriptor_media_type}\",\"digest\":\"{digest}\",\"size\":{size}}}\n");
    verifier_stdin(
        &["-name", name, "-digest", digest, "-stdin-media-type", MEDIA],
        &[("TOLLGATE_CONFIG", config.to_str().unwrap())],
        stdin.as_bytes(),
    )
}

/// Invokes the verifier as containerd does, with a descriptor of `media_type` for `digest`.
pub(crate) fn invoke_with(name: &str, digest: &str, config: &std::path::Path, media_type: &str) -> Run {
    invoke(name, digest, config, media_type, 1000)
}

/// A config whose daemon socket does not exist: every decision is in-process.
fn config(s: &Setup, extra: &str) -> std::path::PathBuf {
    let path = s.dir.path().join("config.yaml");
    let text = format!(
        "policy: {}\ninsecureRegistries: [\"{}\"]\nsocket: {}\nfallbackBinary: {}\n{}{extra}",
        s.policy().display(),
        s.reg.addr,
        s.dir.path().join("no-daemon.sock").display(),
        env!("CARGO_BIN_EXE_tollgate"),
        crate::util::private_paths(s.dir.path()),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Like [`config`], with a policy requiring a signature everywhere, and the registry at `registry`.
fn signed_config(s: &Setup, name: &str, registry: &str, extra: &str) -> std::path::PathBuf {
    let policy = s.dir.path().join("signed.json");
    std::fs::write(&policy, crate::serve::SIGNED_EVERYWHERE).unwrap();
    let path = s.dir.path().join(name);
    let text = format!(
        "policy: {}\ninsecureRegistries: [\"{registry}\"]\nsocket: {}\nfallbackBinary: {}\n{}{extra}",
        policy.display(),
        s.dir.path().join("no-daemon.sock").display(),
        env!("CARGO_BIN_EXE_tollgate"),
        crate::util::private_paths(s.dir.path()),
    );
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
    assert!(
        r.stdout.starts_with(&format!("tollgate: denied {}@{digest} (in-process; daemon unavailable at ", s.app())),
        "{}",
        r.stdout
    );
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
    let port = tollgate_testkit::DEAD_PORT;
    let dead = format!("127.0.0.1:{port}/team/app:v1");
    let digest = s.digest.to_string();
    let cfg = signed_config(&s, "dead.yaml", &format!("127.0.0.1:{port}"), "");
    let r = invoke(&dead, &digest, &cfg, "application/vnd.oci.image.manifest.v1+json", 10);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.starts_with("tollgate: rejected, failing closed: "), "{}", r.stdout);
    let cfg = signed_config(&s, "dead.yaml", &format!("127.0.0.1:{port}"), "failOpen: true\n");
    let r = invoke(&dead, &digest, &cfg, "application/vnd.oci.image.manifest.v1+json", 10);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.starts_with("tollgate: allowed by failOpen although undecidable"), "{}", r.stdout);
}

#[test]
fn a_hanging_registry_is_cut_off_by_the_deadline() {
    let s = Setup::new();
    let hang = Stub::start(vec![Reply::Hang]);
    let cfg = signed_config(&s, "hang.yaml", &hang.addr, "deadlineSeconds: 2\n");
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
    type Runner = fn(&[&str], &[(&str, &str)], &[u8]) -> Run;
    for run in [tollgate_stdin as Runner, verifier_stdin as Runner] {
        let r = run(&["-name", "x"], &[("TOLLGATE_CONFIG", cfg.to_str().unwrap())], b"");
        assert_eq!(r.code, 3);
        assert_eq!(r.stdout.trim(), "tollgate: rejected, failing closed: bad invocation: missing -digest");
        let other = tollgate_oci::Digest::sha256_of(b"other").to_string();
        let stdin = format!("{{\"mediaType\":\"{MEDIA}\",\"digest\":\"{other}\",\"size\":1}}\n");
        let r = run(
            &["-name", &s.app(), "-digest", &s.digest.to_string(), "-operation", "pull"],
            &[("TOLLGATE_CONFIG", cfg.to_str().unwrap())],
            stdin.as_bytes(),
        );
        assert_eq!(r.code, 3);
        assert!(r.stdout.contains("the descriptor on stdin is for"), "{}", r.stdout);
        assert!(r.stderr.contains("ignoring unknown flags: operation"), "{}", r.stderr);
    }
}

#[test]
fn with_the_daemon_down_and_no_fallback_binary_the_verifier_fails_closed() {
    let s = Setup::new();
    let cfg = config(&s, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(env!("CARGO_BIN_EXE_tollgate"), "/nonexistent/tollgate");
    std::fs::write(&cfg, text).unwrap();
    let r = invoke_with(&s.app(), &s.digest.to_string(), &cfg, "application/vnd.oci.image.index.v1+json");
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.starts_with("tollgate: rejected, failing closed: daemon unavailable at "), "{}", r.stdout);
    assert!(r.stdout.contains("and the fallback /nonexistent/tollgate cannot run"), "{}", r.stdout);
}

/// A containerd config whose verifier bin_dir is an empty directory:
/// (temp dir, bin_dir, config path, config text).
fn doctor_setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cfg = dir.path().join("config.toml");
    let good =
        format!("version = 3\n[plugins.'io.containerd.image-verifier.v1.bindir']\n  bin_dir = '{}'\n", bin.display());
    std::fs::write(&cfg, &good).unwrap();
    (dir, bin, cfg, good)
}

#[test]
fn doctor_reports_silent_fallbacks_and_empty_bin_dirs() {
    let (dir, bin, cfg, good) = doctor_setup();
    let r = crate::util::tollgate(&["containerd", "doctor", "--config", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 1, "an empty bin_dir allows every pull: {}", r.stdout);
    assert!(r.stdout.contains("CRITICAL  bin_dir:"), "{}", r.stdout);
    std::fs::write(bin.join("tollgate"), b"").unwrap();
    let r = crate::util::tollgate(&["containerd", "doctor", "--config", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 1, "containerd fails every pull on a non-executable entry: {}", r.stdout);
    assert!(r.stdout.contains("tollgate in ") && r.stdout.contains("is not an executable file"), "{}", r.stdout);
    std::fs::set_permissions(bin.join("tollgate"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // A containerd that reports 2.1 is fine; 2.0 does not verify kubelet pulls.
    let fake = dir.path().join("containerd");
    std::fs::write(&fake, "#!/bin/sh\necho containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let doctor = |extra: &[&str]| {
        let mut a =
            vec!["containerd", "doctor", "--config", cfg.to_str().unwrap(), "--containerd", fake.to_str().unwrap()];
        a.extend_from_slice(extra);
        crate::util::tollgate(&a)
    };
    let r = doctor(&["-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.json()["verifiers"][0], "tollgate");
    assert!(r.stdout.contains("containerd v2.1.4 sends kubelet (CRI) pulls through the verifiers"), "{}", r.stdout);
    std::fs::write(&fake, "#!/bin/sh\necho containerd github.com/containerd/containerd/v2 v2.0.5 fb4c30d\n").unwrap();
    let r = doctor(&[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("CRITICAL  containerd version: containerd v2.0.5 verifies only"), "{}", r.stdout);
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

#[test]
fn install_copies_the_verifier_and_merges_the_config_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("etc/containerd/config.toml");
    let bin = dir.path().join("opt/verifiers");
    let tollgate_cfg = dir.path().join("tollgate.yaml");
    std::fs::write(&tollgate_cfg, format!("fallbackBinary: {}\n", env!("CARGO_BIN_EXE_tollgate"))).unwrap();
    let args = |extra: &[&str]| {
        let mut a =
            vec!["containerd", "install", "--config", cfg.to_str().unwrap(), "--bin-dir", bin.to_str().unwrap()];
        if !extra.contains(&"--tollgate-config") {
            a.extend(["--tollgate-config", tollgate_cfg.to_str().unwrap()]);
        }
        a.extend_from_slice(extra);
        a.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        crate::util::tollgate(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let r = run(&["--dry-run"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("would copy") && r.stdout.contains("would create"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("--- /dev/null\n+++ {}\n@@ -0,0 +1,", cfg.display()))
            && r.stdout.contains("\n+version = 3\n"),
        "a dry run on a missing config shows it as a new file: {}",
        r.stdout
    );
    assert!(!cfg.exists() && !bin.exists(), "a dry run writes nothing");

    let r = run(&[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("restart containerd"), "{}", r.stdout);
    let installed = bin.join("tollgate-verifier");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&installed).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(env!("CARGO_BIN_EXE_tollgate-verifier")).unwrap());
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(
        text,
        format!(
            "version = 3\n\n[plugins.\"io.containerd.image-verifier.v1.bindir\"]\nbin_dir = \"{}\"\n",
            bin.display()
        )
    );
    // The installed copy answers as a verifier.
    let out = (0..20)
        .find_map(|_| match std::process::Command::new(&installed).args(["-name", "x"]).output() {
            // Another test thread may have forked while the copy was open for writing.
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                None
            }
            other => Some(other.unwrap()),
        })
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "tollgate: rejected, failing closed: bad invocation: missing -digest"
    );

    let r = run(&["-o", "json"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.json()["changed"], false);
    assert!(r.json()["actions"][0].as_str().unwrap().starts_with("unchanged"), "{}", r.stdout);

    // A version 2 config keeps its other settings and comments.
    let v2 = "# managed by hand\nversion = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.10\"\n";
    std::fs::write(&cfg, v2).unwrap();
    // A dry run shows the change as a diff: the added lines with context, not the whole file.
    let r = run(&["--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let c = cfg.display();
    assert!(
        r.stdout.contains(&format!(
            "would change {c} (bin_dir = {b}):\n--- {c}\n+++ {c}\n@@ -2,3 +2,6 @@\n version = 2\n [plugins.\"io.containerd.grpc.v1.cri\"]\n",
            b = bin.display()
        )) && r.stdout.contains(&format!("+bin_dir = \"{}\"\n", bin.display())),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("# managed by hand"), "lines far from the change are not shown: {}", r.stdout);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), v2, "a dry run writes nothing");
    let j = run(&["--dry-run", "-o", "json"]).json();
    assert!(j["diff"].as_str().unwrap().starts_with(&format!("--- {c}\n+++ {c}\n@@ ")), "{j}");
    let r = run(&[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.starts_with(v2), "{text}");
    assert!(text.contains("[plugins.\"io.containerd.image-verifier.v1.bindir\"]\nbin_dir = "), "{text}");

    // Installing beside settings that bypass verification reports them (exit 1).
    std::fs::write(&cfg, format!("{v2}  [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n    endpoint = [\"https://m\"]\n")).unwrap();
    let r = run(&[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("CRITICAL  registry.mirrors"), "{}", r.stdout);

    std::fs::write(&cfg, "[plugins.cri]\n").unwrap();
    assert!(run(&[]).one_line_error(2).contains("containerd 1.x"));
    // Without a runnable fallback binary, pulls fail closed while the daemon is down: reported.
    std::fs::write(&cfg, "version = 3\n").unwrap();
    std::fs::write(&tollgate_cfg, "fallbackBinary: /nonexistent/tollgate\n").unwrap();
    let r = run(&[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("CRITICAL  fallbackBinary: /nonexistent/tollgate (fallbackBinary) is not an executable"),
        "{}",
        r.stdout
    );
    let r = run(&["--socket", "/elsewhere.sock", "--tollgate-config", "/nonexistent/config.yaml"]);
    assert!(r.one_line_error(2).contains("set `socket: /elsewhere.sock` there"), "{}", r.stderr);
}

/// Only the bindir invocation fails closed: a person asking gets an answer.
#[test]
fn the_verifier_answers_help_and_version() {
    let r = verifier_stdin(&["--version"], &[], b"");
    assert_eq!((r.code, r.stdout.trim()), (0, format!("tollgate-verifier {}", env!("CARGO_PKG_VERSION")).as_str()));
    let r = verifier_stdin(&["--help"], &[], b"");
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("-name REF -digest sha256:") && r.stdout.contains("fails closed"), "{}", r.stdout);
    let r = crate::util::tollgate(&["containerd", "install", "--help"]);
    assert!(r.stdout.contains("BIN_DIR/tollgate-verifier"), "the help names the binary it installs: {}", r.stdout);
}

/// The doctor's details: an unknown containerd version is a warning, not ok;
/// the summary row has a name; an empty bin_dir says so; a TOML error is one
/// line with its position; every fallback finding gives its fix.
#[test]
fn doctor_warns_on_an_unknown_version_and_says_each_finding_plainly() {
    let (_dir, bin, cfg, good) = doctor_setup();
    let doctor_with = |containerd: &str, extra: &[&str]| {
        let mut a = vec!["containerd", "doctor", "--config", cfg.to_str().unwrap(), "--containerd", containerd];
        a.extend_from_slice(extra);
        crate::util::tollgate(&a)
    };
    let doctor = |containerd: &str| doctor_with(containerd, &[]);
    let r = doctor("/bin/true");
    assert!(r.stdout.starts_with(&format!("{} (no verifiers in {})\n", cfg.display(), bin.display())), "{}", r.stdout);
    std::fs::write(bin.join("tollgate"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(bin.join("tollgate"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for unknown in ["/bin/true", "/bin/echo", "/nonexistent/containerd"] {
        let r = doctor(unknown);
        assert_eq!(r.code, 0, "a warning alone does not fail: {}", r.stdout);
        assert!(r.stdout.contains("\nWARNING   containerd version: "), "{unknown}: {}", r.stdout);
        assert!(r.stdout.contains("before 2.1 kubelet pulls are not verified"), "{unknown}: {}", r.stdout);
        assert!(r.stdout.contains("\nok        summary: no setting that disables"), "{unknown}: {}", r.stdout);
        assert!(!r.stdout.contains(" -: "), "{}", r.stdout);
    }
    let j = doctor_with("/bin/true", &["-o", "json"]).json();
    let version = j["findings"].as_array().unwrap().iter().find(|f| f["key"] == "containerd version").unwrap().clone();
    assert_eq!(version["severity"], "warning");
    for (setting, fix) in [
        ("discard_unpacked_layers = true", "set it to false"),
        ("image_pull_with_sync_fs = true", "set it to false"),
        ("disable_snapshot_annotations = false", "remove it (true is the default)"),
    ] {
        std::fs::write(&cfg, format!("{good}[plugins.'io.containerd.cri.v1.images']\n  {setting}\n")).unwrap();
        let r = doctor("/bin/true");
        assert_eq!(r.code, 1);
        let line = r.stdout.lines().find(|l| l.contains(setting)).unwrap_or_default();
        assert!(line.starts_with("CRITICAL") && line.ends_with(fix), "{setting}: {}", r.stdout);
    }
    std::fs::write(&cfg, "version = 3\n[plugins\n").unwrap();
    assert_eq!(
        doctor("/bin/true").one_line_error(2),
        format!("tollgate: {}: containerd config: line 2, column 9: unclosed table, expected `]`", cfg.display())
    );
}
