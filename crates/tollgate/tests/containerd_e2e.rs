//! tollgate inside a real containerd (2.3 with its default config version 4,
//! 2.4 with version 3), from `../shared/peers`: `tollgate containerd install`
//! edits the real config, `tollgate serve` runs, and pulls come from `ctr`
//! (the transfer service) and `crictl` (CRI: the kubelet's path). Signed
//! images pull and really run in a pod; unsigned, wrong-key and tampered ones
//! are refused with tollgate's reason; with the daemon stopped the verifier
//! decides in-process; `containerd doctor` passes on the installed config and
//! catches a silent fallback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tollgate_oci::{Digest, Reference};
use tollgate_testkit::containerd::{Containerd, Options};
use tollgate_testkit::hostile::{Action, Hostile, path};
use tollgate_testkit::sign::{Attached, TestKey, attach};
use tollgate_testkit::{Registry, image};

struct Images {
    sandbox: String,
    multi: String,
    multi_digest: Digest,
    signed: String,
    signed_digest: Digest,
    second: String,
    unsigned: String,
    wrong_key: String,
    tampered: String,
}

fn push(reg: &Registry, key: &TestKey) -> Images {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reg.client();
    let repo = |n: &str| Reference::parse_normalized(&format!("{}/e2e/{n}", reg.addr)).unwrap();
    let other = TestKey::generate();
    rt.block_on(async {
        let sandbox = image::push_runnable(&client, &repo("pause"), "1", b"pause").await;
        let multi = image::push_index(&client, &repo("multi"), "v1", b"multi").await;
        let m = repo("multi");
        attach(&client, &m, &multi.digest, &[Attached::cosign(key, &m.repository(), &multi.digest)]).await;
        let mut pushed = Vec::new();
        for name in ["signed", "second", "unsigned", "wrongkey", "tampered"] {
            let r = repo(name);
            let built = image::push_runnable(&client, &r, "v1", name.as_bytes()).await;
            let d = built.digest.clone();
            let sigs = match name {
                "signed" | "second" => vec![Attached::cosign(key, &r.repository(), &d)],
                "wrongkey" => vec![Attached::cosign(&other, &r.repository(), &d)],
                "tampered" => {
                    let mut s = Attached::cosign(key, &r.repository(), &d);
                    s.payload = String::from_utf8(s.payload).unwrap().replace("/e2e/", "/e3e/").into_bytes();
                    vec![s]
                }
                _ => Vec::new(),
            };
            if !sigs.is_empty() {
                attach(&client, &r, &d, &sigs).await;
            }
            pushed.push((format!("{}:v1", r.repository()), d));
        }
        let name = |i: usize| pushed[i].0.clone();
        Images {
            sandbox: format!("{}/e2e/pause:1@{}", reg.addr, sandbox.digest),
            multi: format!("{}:v1", m.repository()),
            multi_digest: multi.digest,
            signed: name(0),
            signed_digest: pushed[0].1.clone(),
            second: name(1),
            unsigned: name(2),
            wrong_key: name(3),
            tampered: name(4),
        }
    })
}

/// A `tollgate serve`, killed on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &Path, socket: &Path) -> Serve {
    let log = std::fs::File::create(config.with_extension("log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "tollgate serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Serve(child)
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn tollgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate")).args(args).output().unwrap()
}

/// The whole node path on one containerd line.
fn node_enforcement(line: &'static str, config_version: u8) {
    let test = format!("containerd {line} end-to-end");
    if tollgate_testkit::peers::require(&format!("containerd-{line}/containerd"), &test).is_none() {
        return;
    }
    let reg = Registry::start();
    let key = TestKey::generate();
    let images = push(&reg, &key);
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = work.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    w("key.pub", &key.public_pem());
    let sandbox_digest = images.sandbox.rsplit('@').next().unwrap().to_owned();
    // The same registry behind a proxy that never answers for signature
    // tags: a decision through it stays in flight until its deadline.
    let stall =
        Hostile::start(&reg.addr, |head| if path(head).contains(".sig") { Action::Hang } else { Action::Forward });
    let policy = w(
        "policy.yaml",
        &format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  team:\n    publicKeys: [{{path: key.pub}}]\ndefault: [{{type: reject}}]\ntransports:\n  docker:\n    {}/e2e:\n      - type: sigstoreSigned\n        trust: team\n        signedIdentity: {{type: matchRepository}}\n    {}/e2e:\n      - type: sigstoreSigned\n        trust: team\n        signedIdentity: {{type: exactRepository, dockerRepository: {}/e2e/second}}\nexemptions:\n  - digest: {sandbox_digest}\n    reason: the pod sandbox image\n",
            reg.addr, stall.addr, reg.addr
        ),
    );
    let socket = work.path().join("tollgate.sock");
    let node_config = w(
        "config.yaml",
        &format!(
            "policy: {}\nsocket: {}\ninsecureRegistries: [\"{}\", \"{}\"]\ndeadlineSeconds: 3\nauditLog:\n  path: {}\nbreakGlassFile: {}\nfallbackBinary: {}\nlastGoodPolicy: {}\n",
            policy.display(),
            socket.display(),
            reg.addr,
            stall.addr,
            work.path().join("audit.log").display(),
            work.path().join("break-glass").display(),
            env!("CARGO_BIN_EXE_tollgate"),
            work.path().join("last-good.json").display(),
        ),
    );
    let opts = Options {
        line,
        config_version,
        registries: vec![reg.addr.clone(), stall.addr.clone()],
        sandbox_image: images.sandbox.clone(),
        env: vec![("TOLLGATE_CONFIG".into(), node_config.display().to_string())],
        nri: false,
    };
    let mut ctrd = Containerd::start(opts, &test).unwrap();

    // Before install: the verifier directory is empty, and the doctor says that every pull is allowed.
    let doctor = |c: &Containerd| {
        let bin = c.bin.join("containerd");
        tollgate(&[
            "containerd",
            "doctor",
            "--config",
            c.config.to_str().unwrap(),
            "--containerd",
            bin.to_str().unwrap(),
        ])
    };
    let before = doctor(&ctrd);
    assert_eq!(before.status.code(), Some(1), "{}", text(&before));
    assert!(text(&before).contains("is empty: containerd allows every pull"), "{}", text(&before));

    // Install into the real config (version 3 or 4), then restart containerd.
    let install = tollgate(&[
        "containerd",
        "install",
        "--config",
        ctrd.config.to_str().unwrap(),
        "--bin-dir",
        ctrd.bin_dir.to_str().unwrap(),
        "--tollgate-config",
        node_config.to_str().unwrap(),
    ]);
    assert!(install.status.success(), "{line}: install: {}", text(&install));
    let installed = std::fs::read_to_string(&ctrd.config).unwrap();
    assert!(installed.starts_with(&format!("version = {config_version}\n")), "{installed}");
    assert!(ctrd.bin_dir.join("tollgate-verifier").exists());
    ctrd.restart();
    let after = doctor(&ctrd);
    assert!(after.status.success(), "{line}: doctor after install: {}", text(&after));
    let version = ctrd.version();
    assert!(text(&after).contains(version.split_whitespace().nth(2).unwrap_or("?")), "{}\n{version}", text(&after));

    let daemon = serve(&node_config, &socket);
    let ctr_pull = |image: &str| ctrd.ctr(&["images", "pull", "--plain-http", image]);
    let crictl_pull = |image: &str| ctrd.crictl(&["pull", image]);

    // ctr (transfer service) and crictl (CRI) pulls: signed allowed, the others refused with tollgate's reason.
    let r = ctr_pull(&images.signed);
    assert!(r.status.success(), "{line}: ctr pull signed: {}\n{}", text(&r), ctrd.log_tail(30));
    // CRI keeps its images in its own namespace (k8s.io): the kubelet's pull.
    let r = crictl_pull(&images.signed);
    assert!(r.status.success(), "{line}: crictl pull signed: {}\n{}", text(&r), ctrd.log_tail(30));
    for (what, image, reason) in [
        ("unsigned", &images.unsigned, "a signature was required, but no signature exists"),
        ("wrong key", &images.wrong_key, "does not verify with any of the 1 trusted key(s)"),
        ("tampered", &images.tampered, "does not verify"),
    ] {
        let r = ctr_pull(image);
        assert!(!r.status.success(), "{line}: ctr pull {what} was allowed");
        assert!(text(&r).contains("tollgate: denied"), "{line}: ctr {what}: {}", text(&r));
        let r = crictl_pull(image);
        assert!(!r.status.success(), "{line}: crictl pull {what} was allowed");
        let t = text(&r);
        assert!(t.contains("image verifier bindir blocked pull") && t.contains(reason), "{line}: crictl {what}: {t}");
    }

    // A pod sandbox and a container from the verified image really run (CRI, host network).
    let pod = w(
        "pod.json",
        &format!(
            r#"{{"metadata":{{"name":"e2e","namespace":"default","uid":"e2e-uid","attempt":1}},"log_directory":"{}","linux":{{"security_context":{{"namespace_options":{{"network":2}}}}}}}}"#,
            work.path().display()
        ),
    );
    let container = w(
        "container.json",
        &format!(
            r#"{{"metadata":{{"name":"app"}},"image":{{"image":"{}"}},"log_path":"app.log","linux":{{}}}}"#,
            images.signed
        ),
    );
    let runp = ctrd.crictl(&["runp", pod.to_str().unwrap()]);
    assert!(runp.status.success(), "{line}: runp: {}\n{}", text(&runp), ctrd.logs());
    let pod_id = String::from_utf8_lossy(&runp.stdout).trim().to_owned();
    let create = ctrd.crictl(&["create", &pod_id, container.to_str().unwrap(), pod.to_str().unwrap()]);
    assert!(create.status.success(), "{line}: create: {}", text(&create));
    let cid = String::from_utf8_lossy(&create.stdout).trim().to_owned();
    let start = ctrd.crictl(&["start", &cid]);
    assert!(start.status.success(), "{line}: start: {}", text(&start));
    let state = ctrd.crictl(&["inspect", "-o", "go-template", "--template", "{{.status.state}}", &cid]);
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "CONTAINER_RUNNING", "{}", text(&state));

    // The daemon answered those decisions and audited them.
    let audit = || std::fs::read_to_string(work.path().join("audit.log")).unwrap();
    assert!(audit().contains(&images.signed_digest.to_string()), "{}", audit());

    // A multi-platform image is decided once, at its index digest (what containerd pins).
    let r = ctr_pull(&images.multi);
    assert!(r.status.success(), "{line}: multi-arch pull: {}", text(&r));
    let records: Vec<serde_json::Value> = audit().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let multi: Vec<_> = records.iter().filter(|r| r["name"].as_str() == Some(images.multi.as_str())).collect();
    assert_eq!(multi.len(), 1, "{multi:?}");
    assert_eq!(multi[0]["digest"], images.multi_digest.to_string());

    // Break-glass: allowed, loudly, and audited as such.
    std::fs::write(work.path().join("break-glass"), "incident 42\n").unwrap();
    let r = crictl_pull(&images.unsigned);
    assert!(r.status.success(), "{line}: break-glass: {}", text(&r));
    assert!(audit().lines().last().unwrap().contains("\"decision\":\"break-glass\""), "{}", audit());
    std::fs::remove_file(work.path().join("break-glass")).unwrap();

    // The daemon killed in the middle of a decision: the pull fails closed.
    let stalled = format!("{}/e2e/second:v1", stall.addr);
    let pulling = {
        let mut crictl = ctrd.crictl_command();
        crictl.arg("pull").arg(&stalled);
        std::thread::spawn(move || crictl.output().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stall.heads().iter().any(|h| path(h).contains(".sig")) {
        assert!(Instant::now() < deadline, "{line}: the decision through the stalling proxy never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut daemon = daemon;
    daemon.0.kill().unwrap();
    let r = pulling.join().unwrap();
    assert!(!r.status.success(), "{line}: a pull whose daemon died mid-decision was allowed: {}", text(&r));
    assert!(text(&r).contains("failing closed"), "{line}: {}", text(&r));
    let daemon = daemon;

    // With the daemon stopped, the verifier decides in-process.
    drop(daemon);
    let r = crictl_pull(&images.second);
    assert!(r.status.success(), "{line}: in-process allow: {}", text(&r));
    let r = crictl_pull(&images.unsigned);
    assert!(text(&r).contains("in-process"), "{line}: in-process deny: {}", text(&r));

    // The doctor catches the fallback that skips verifiers for kubelet pulls.
    let local = installed.replace("use_local_image_pull = false", "use_local_image_pull = true");
    assert_ne!(local, installed);
    std::fs::write(&ctrd.config, local).unwrap();
    let r = doctor(&ctrd);
    assert_eq!(r.status.code(), Some(1), "{}", text(&r));
    assert!(text(&r).contains("use_local_image_pull = true"), "{}", text(&r));
}

#[test]
fn containerd_2_3_with_a_version_4_config() {
    node_enforcement("2.3", 4);
}

#[test]
fn containerd_2_4_with_a_version_3_config() {
    node_enforcement("2.4", 3);
}

/// The README's node section, line by line, on a fresh node: a real
/// containerd 2.3, its paths under a temporary root. Each line of the block
/// must be one this test knows how to run, so the README cannot drift.
#[test]
fn the_readme_node_section_works_as_written() {
    let test = "the README node section";
    if tollgate_testkit::peers::require("containerd-2.3/containerd", test).is_none() {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let block = readme.split("And on a containerd node").nth(1).unwrap();
    let block = block.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    let reg = Registry::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let busybox = Reference::parse_normalized(&format!("{}/library/busybox", reg.addr)).unwrap();
    rt.block_on(image::push_image(&reg.client(), &busybox, Some("latest"), "amd64", b"busybox"));
    let root = tempfile::tempdir().unwrap();
    let r = |p: &str| root.path().join(p.trim_start_matches('/'));
    let rooted = |line: &str| {
        let mut out = line.to_owned();
        for prefix in ["/etc/", "/usr/local/bin/", "/var/", "/run/"] {
            out = out.replace(&format!(" {prefix}"), &format!(" {}/", r(prefix).display()));
        }
        out
    };
    let opts = Options {
        line: "2.3",
        config_version: 4,
        registries: vec![reg.addr.clone()],
        sandbox_image: format!("{}/library/busybox:latest", reg.addr),
        env: vec![("TOLLGATE_CONFIG".into(), r("/etc/tollgate/config.yaml").display().to_string())],
        nri: false,
    };
    let mut ctrd = Containerd::start(opts, test).unwrap();
    let mut daemon = None;
    let sh = |cmd: &str| {
        let out = Command::new("sh").arg("-c").arg(cmd).current_dir(&repo).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", text(&out));
    };
    let mut ran = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let cmd = line.split("  #").next().unwrap().trim();
        match cmd {
            // Built by cargo for the test; the release script is exercised in CI's release job.
            "scripts/build-release" => {}
            c if c.starts_with("install -m 0755 dist/tollgate dist/tollgate-verifier ") => {
                std::fs::create_dir_all(r("/usr/local/bin")).unwrap();
                for b in [env!("CARGO_BIN_EXE_tollgate"), env!("CARGO_BIN_EXE_tollgate-verifier")] {
                    sh(&format!("install -m 0755 {b} {}/", r("/usr/local/bin").display()));
                }
            }
            c if c.starts_with("install -m 0644 examples/node/tollgate.service ") => {
                // systemd's part: the unit's RuntimeDirectory=, LogsDirectory= and StateDirectory=, then ExecStart=.
                let unit = std::fs::read_to_string(repo.join("examples/node/tollgate.service")).unwrap();
                for (key, dir) in
                    [("RuntimeDirectory", "/run/"), ("LogsDirectory", "/var/log/"), ("StateDirectory", "/var/lib/")]
                {
                    let name = unit.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap();
                    std::fs::create_dir_all(r(&format!("{dir}{name}"))).unwrap();
                }
                let config = r("/etc/tollgate/config.yaml");
                let text = std::fs::read_to_string(&config).unwrap();
                // The example's absolute paths, moved under the root; the test registry is plain HTTP.
                let text = rooted(&text) + &format!("insecureRegistries: [\"{}\"]\n", reg.addr);
                std::fs::write(&config, text).unwrap();
                let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
                assert_eq!(exec, "/usr/local/bin/tollgate serve --config /etc/tollgate/config.yaml");
                let socket = r("/run/tollgate/tollgate.sock");
                daemon = Some(serve(&config, &socket));
            }
            "tollgate containerd install && systemctl restart containerd" => {
                let bin = r("/usr/local/bin/tollgate");
                let out = Command::new(&bin)
                    .args(["containerd", "install", "--config", ctrd.config.to_str().unwrap()])
                    .args(["--bin-dir", ctrd.bin_dir.to_str().unwrap()])
                    .args(["--tollgate-config", r("/etc/tollgate/config.yaml").to_str().unwrap()])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", text(&out));
                ctrd.restart();
            }
            "tollgate containerd doctor" => {
                let out = tollgate(&[
                    "containerd",
                    "doctor",
                    "--config",
                    ctrd.config.to_str().unwrap(),
                    "--containerd",
                    ctrd.bin.join("containerd").to_str().unwrap(),
                ]);
                assert!(out.status.success(), "{}", text(&out));
            }
            c if c.starts_with("ctr image pull docker.io/library/busybox:latest") => {
                let out = ctrd.ctr(&["image", "pull", "--plain-http", &format!("{}/library/busybox:latest", reg.addr)]);
                assert!(!out.status.success(), "an unsigned image was pulled");
                assert!(text(&out).contains("rejected image (exit code 1): tollgate: denied"), "{}", text(&out));
            }
            // What build-release puts in dist/share, made by the binary under test, then copied as written.
            "cp -r dist/share/. /usr/local/share/" => {
                let dist = root.path().join("dist/share");
                std::fs::create_dir_all(dist.join("man/man1")).unwrap();
                std::fs::create_dir_all(dist.join("bash-completion/completions")).unwrap();
                let man = tollgate(&["man", "--out", dist.join("man/man1").to_str().unwrap()]);
                assert!(man.status.success(), "{}", text(&man));
                let bash = tollgate(&["completions", "bash"]);
                std::fs::write(dist.join("bash-completion/completions/tollgate"), &bash.stdout).unwrap();
                std::fs::create_dir_all(r("/usr/local/share")).unwrap();
                sh(&format!("cp -r {}/. {}/", dist.display(), r("/usr/local/share").display()));
                assert!(r("/usr/local/share/man/man1/tollgate-serve.1").is_file());
            }
            c if c.starts_with("install ") => sh(&rooted(c)),
            other => panic!("the README's node section has a line this test does not know: {other:?}"),
        }
        ran.push(cmd.to_owned());
    }
    assert!(ran.len() >= 7, "{ran:?}");
    assert!(daemon.is_some(), "the daemon was started");
}
