//! `tollgate nri` inside a real containerd 2.4 (NRI v0.12.2) from `../shared/peers`, driven by
//! crictl as the kubelet drives it. Images already in containerd's store (pulled while no verifier
//! was configured) are decided at container create: unsigned ones are refused with tollgate's
//! reason, signed ones run. `tollgate containerd install --nri` makes containerd refuse every
//! container while the plugin is away, except pods carrying the toleration; after a containerd
//! restart the plugin is back and enforcing within seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tollgate_oci::Reference;
use tollgate_testkit::containerd::{Containerd, Options};
use tollgate_testkit::sign::{Attached, TestKey, attach};
use tollgate_testkit::{Registry, image};

/// A child process (`tollgate serve`, `tollgate nri`), killed on drop, its stderr in a file.
struct Proc {
    child: Child,
    log: std::path::PathBuf,
}

impl Proc {
    fn start(args: &[&str], log: &Path) -> Proc {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Proc { child, log: log.to_owned() }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most 20 s) until the log has `n` lines containing `what`.
    fn wait_for(&self, what: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.log().matches(what).count() < n {
            assert!(Instant::now() < deadline, "no {n}× {what:?} in:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn containers_from_images_already_on_the_node_are_decided_at_create() {
    let test = "NRI end-to-end (containerd 2.4)";
    if tollgate_testkit::peers::require("containerd-2.4/containerd", test).is_none() {
        return;
    }
    let reg = Registry::start();
    let key = TestKey::generate();
    let repo = |n: &str| Reference::parse_normalized(&format!("{}/nri/{n}", reg.addr)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (sandbox, signed, unsigned) = rt.block_on(async {
        let client = reg.client();
        let sandbox = image::push_runnable(&client, &repo("pause"), "1", b"pause").await;
        let s = repo("signed");
        let built = image::push_runnable(&client, &s, "v1", b"signed").await;
        attach(&client, &s, &built.digest, &[Attached::cosign(&key, &s.repository(), &built.digest)]).await;
        image::push_runnable(&client, &repo("unsigned"), "v1", b"unsigned").await;
        (
            format!("{}/nri/pause:1@{}", reg.addr, sandbox.digest),
            format!("{}/nri/signed:v1", reg.addr),
            format!("{}/nri/unsigned:v1", reg.addr),
        )
    });
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = work.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    w("key.pub", &key.public_pem());
    let opts = Options {
        line: "2.4",
        config_version: 3,
        registries: vec![reg.addr.clone()],
        sandbox_image: sandbox.clone(),
        env: vec![("TOLLGATE_CONFIG".into(), work.path().join("config.yaml").display().to_string())],
        nri: true,
    };
    let mut ctrd = Containerd::start(opts, test).unwrap();

    // Pulled while no verifier was configured: both images are in containerd's store.
    for image in [&sandbox, &signed, &unsigned] {
        let r = ctrd.crictl(&["pull", image]);
        assert!(r.status.success(), "pull {image}: {}", text(&r));
    }

    let sandbox_digest = sandbox.rsplit('@').next().unwrap();
    let policy = w(
        "policy.yaml",
        &format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  team:\n    publicKeys: [{{path: key.pub}}]\ndefault: [{{type: reject}}]\ntransports:\n  docker:\n    {}/nri:\n      - type: sigstoreSigned\n        trust: team\n        signedIdentity: {{type: matchRepository}}\nexemptions:\n  - digest: {sandbox_digest}\n    reason: the pod sandbox image\n",
            reg.addr
        ),
    );
    // Namespace "strict" also wants the security team's signature, which no image here has.
    let namespaces = work.path().join("namespaces");
    std::fs::create_dir(&namespaces).unwrap();
    std::fs::write(namespaces.join("security.pub"), TestKey::generate().public_pem()).unwrap();
    std::fs::write(
        namespaces.join("strict.yaml"),
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  security:\n    publicKeys: [{{path: security.pub}}]\ndefault: [{{type: reject}}]\ntransports:\n  docker:\n    {}/nri:\n      - type: sigstoreSigned\n        trust: security\n        signedIdentity: {{type: matchRepository}}\n",
            reg.addr
        ),
    )
    .unwrap();
    let socket = work.path().join("tollgate.sock");
    let node_config = w(
        "config.yaml",
        &format!(
            "policy: {}\nsocket: {}\ninsecureRegistries: [\"{}\"]\nauditLog:\n  path: {}\nbreakGlassFile: {}\nlastGoodPolicy: null\nfallbackBinary: {}\nnamespacePolicies: {}\nnri:\n  socket: {}\n  metricsAddress: 127.0.0.1:0\n",
            policy.display(),
            socket.display(),
            reg.addr,
            work.path().join("audit.log").display(),
            work.path().join("break-glass").display(),
            env!("CARGO_BIN_EXE_tollgate"),
            namespaces.display(),
            ctrd.nri_socket().display(),
        ),
    );
    let config = node_config.to_str().unwrap();

    // Fail-closed NRI settings in the real config, then a restart to load them.
    let install = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["containerd", "install", "--nri", "--config", ctrd.config.to_str().unwrap()])
        .args(["--bin-dir", ctrd.bin_dir.to_str().unwrap(), "--tollgate-config", config])
        .output()
        .unwrap();
    assert!(install.status.success(), "install --nri: {}", text(&install));
    let installed = std::fs::read_to_string(&ctrd.config).unwrap();
    assert!(installed.contains("required_plugins = [\"tollgate\"]"), "{installed}");
    assert!(installed.contains(&format!("socket_path = \"{}\"", ctrd.nri_socket().display())), "{installed}");
    ctrd.restart();
    let doctor = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["containerd", "doctor", "--config", ctrd.config.to_str().unwrap()])
        .args(["--containerd", ctrd.bin.join("containerd").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(text(&doctor).contains("every container create needs NRI plugin(s) tollgate"), "{}", text(&doctor));
    let daemon = Proc::start(&["serve", "--config", config], &work.path().join("serve.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "tollgate serve did not start:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(20));
    }

    let pod_in = |namespace: &str, name: &str, annotations: &str| {
        w(
            &format!("{name}.json"),
            &format!(
                r#"{{"metadata":{{"name":"{name}","namespace":"{namespace}","uid":"{name}-uid","attempt":1}},"annotations":{{{annotations}}},"log_directory":"{}","linux":{{"security_context":{{"namespace_options":{{"network":2}}}}}}}}"#,
                work.path().display()
            ),
        )
    };
    let pod = |name: &str, annotations: &str| pod_in("shop", name, annotations);
    let container = |name: &str, image: &str| {
        w(
            &format!("{name}.json"),
            &format!(
                r#"{{"metadata":{{"name":"{name}"}},"image":{{"image":"{image}"}},"log_path":"{name}.log","linux":{{}}}}"#
            ),
        )
    };
    let web = pod("web", "");
    let runp = ctrd.crictl(&["runp", web.to_str().unwrap()]);
    assert!(runp.status.success(), "runp: {}\n{}", text(&runp), ctrd.log_tail(30));
    let web_id = String::from_utf8_lossy(&runp.stdout).trim().to_owned();
    let create = |ctrd: &Containerd, pod_id: &str, pod: &Path, c: &Path| {
        ctrd.crictl(&["create", pod_id, c.to_str().unwrap(), pod.to_str().unwrap()])
    };
    let signed_c = container("app", &signed);
    let unsigned_c = container("intruder", &unsigned);

    // The plugin is not running yet: containerd refuses containers, for it requires tollgate.
    let r = create(&ctrd, &web_id, &web, &signed_c);
    assert!(!r.status.success(), "a container was created with the required plugin missing: {}", text(&r));
    assert!(text(&r).contains("required plugin") && text(&r).contains("tollgate"), "{}", text(&r));
    // A static-pod-style pod carrying the toleration starts before the plugin does.
    let tolerated = pod("etcd-node", r#""nri.tollgate.dev/tolerate-missing-plugins":"true""#);
    let runp = ctrd.crictl(&["runp", tolerated.to_str().unwrap()]);
    assert!(runp.status.success(), "runp tolerated: {}", text(&runp));
    let tolerated_id = String::from_utf8_lossy(&runp.stdout).trim().to_owned();
    let r = create(&ctrd, &tolerated_id, &tolerated, &container("etcd", &signed));
    assert!(r.status.success(), "the tolerated static pod's container: {}\n{}", text(&r), ctrd.log_tail(20));

    let nri = Proc::start(&["nri", "--config", config], &work.path().join("nri.log"));
    nri.wait_for("registered with the runtime", 1);

    // Already on the node, unsigned: refused at create, with tollgate's reason in crictl's error.
    let r = create(&ctrd, &web_id, &web, &unsigned_c);
    assert!(!r.status.success(), "an unsigned image already on the node started: {}", text(&r));
    assert!(text(&r).contains("a signature was required, but no signature exists"), "{}", text(&r));
    assert!(text(&r).contains("tollgate:"), "{}", text(&r));
    // Imported with `ctr images import` (no pull, so no verifier ever ran): refused at create too.
    let archive = work.path().join("unsigned.tar");
    let ns = ["--namespace", "k8s.io"];
    let ctr = |args: &[&str]| {
        let all: Vec<&str> = ns.iter().chain(args).copied().collect();
        let out = ctrd.ctr(&all);
        assert!(out.status.success(), "ctr {args:?}: {}", text(&out));
    };
    // `--local`: through the transfer service, ctr copies the archive from a goroutine that
    // it does not wait for, so the file can come out short (seen in CI: "short read" on import).
    ctr(&["images", "export", "--local", archive.to_str().unwrap(), &unsigned]);
    ctr(&["images", "rm", &unsigned]);
    ctr(&["images", "import", archive.to_str().unwrap()]);
    let r = create(&ctrd, &web_id, &web, &container("imported", &unsigned));
    assert!(!r.status.success(), "an imported unsigned image started: {}", text(&r));
    assert!(text(&r).contains("no signature exists"), "{}", text(&r));
    // Signed: created and running.
    let r = create(&ctrd, &web_id, &web, &signed_c);
    assert!(r.status.success(), "the signed container: {}\n{}\n{}", text(&r), nri.log(), ctrd.log_tail(20));
    let cid = String::from_utf8_lossy(&r.stdout).trim().to_owned();
    let start = ctrd.crictl(&["start", &cid]);
    assert!(start.status.success(), "start: {}", text(&start));
    // A namespace with a stricter policy refuses what namespace shop admits, naming its own rule.
    let strict = pod_in("strict", "vault", "");
    let runp = ctrd.crictl(&["runp", strict.to_str().unwrap()]);
    assert!(runp.status.success(), "runp strict: {}", text(&runp));
    let strict_id = String::from_utf8_lossy(&runp.stdout).trim().to_owned();
    let r = create(&ctrd, &strict_id, &strict, &container("app-strict", &signed));
    assert!(!r.status.success(), "namespace strict admitted what only shop's policy allows: {}", text(&r));
    assert!(text(&r).contains("in strict/vault/app-strict: the policy of namespace strict: denied by"), "{}", text(&r));
    // Both decisions went through the daemon: its audit log has them, with the namespace.
    let audit = std::fs::read_to_string(work.path().join("audit.log")).unwrap();
    assert!(audit.contains(&unsigned) && audit.contains("\"namespace\":\"shop\""), "{audit}");

    // containerd restarted under the running plugin: it reconnects and enforces again within seconds.
    ctrd.restart();
    nri.wait_for("registered with the runtime", 2);
    assert!(nri.log().contains("reconnecting"), "{}", nri.log());
    // The pod sandbox survives the restart, as on a node.
    let r = create(&ctrd, &web_id, &web, &container("intruder2", &unsigned));
    assert!(!r.status.success(), "refused after the restart too: {}", text(&r));
    assert!(text(&r).contains("no signature exists"), "{}", text(&r));
    // The plugin's own metrics say it reconnected, and count its verdicts.
    let metrics = scrape(&nri.log());
    for line in [
        "tollgate_nri_registrations_total 2",
        "tollgate_nri_disconnects_total 1",
        "tollgate_nri_connected 1",
        "tollgate_nri_verdicts_total{verdict=\"allowed\"} 1",
        "tollgate_nri_verdicts_total{verdict=\"refused\"} 4",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line:?} in:\n{metrics}");
    }

    // The daemon down: undecidable, so refused, never allowed.
    drop(daemon);
    let r = create(&ctrd, &web_id, &web, &container("app2", &signed));
    assert!(!r.status.success(), "created with the daemon down: {}", text(&r));
    assert!(text(&r).contains("undecidable, refused"), "{}", text(&r));

    // The plugin stopped: containerd refuses again, first because the validator's connection is
    // closed, then (once containerd has dropped it) because a required plugin is missing.
    drop(nri);
    for (i, cause) in ["validator plugin 10-tollgate failed", "required plugin"].into_iter().enumerate() {
        let r = create(&ctrd, &web_id, &web, &container(&format!("app{}", i + 3), &signed));
        assert!(!r.status.success(), "created with the plugin stopped: {}", text(&r));
        let t = text(&r);
        assert!(t.contains(cause) || (i == 0 && t.contains("required plugin")), "{t}");
    }

    // Launched by containerd from its plugin path (no `tollgate nri` of ours running): it starts with
    // containerd, is handed its connection, and enforces the same.
    let daemon = Proc::start(&["serve", "--config", config], &work.path().join("serve2.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "tollgate serve did not start again:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let plugins = ctrd.dir.path().join("nri-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let launched_log = work.path().join("launched.log");
    let script = plugins.join("10-tollgate");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nTOLLGATE_LOG=info exec {} nri --config {config} 2>>{}\n",
            env!("CARGO_BIN_EXE_tollgate"),
            launched_log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    ctrd.restart();
    let launched = || std::fs::read_to_string(&launched_log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !launched().contains("registered with the runtime") {
        assert!(
            Instant::now() < deadline,
            "containerd did not launch the plugin:\n{}\n{}",
            launched(),
            ctrd.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(launched().contains("launched by the runtime"), "{}", launched());
    let r = create(&ctrd, &web_id, &web, &container("intruder3", &unsigned));
    assert!(!r.status.success(), "the launched plugin let an unsigned image start: {}", text(&r));
    assert!(text(&r).contains("tollgate:") && text(&r).contains("no signature exists"), "{}", text(&r));
    let r = create(&ctrd, &web_id, &web, &container("app5", &signed));
    assert!(r.status.success(), "the signed container, launched plugin: {}\n{}", text(&r), launched());
    drop(daemon);
}

/// containerd 2.3 gives NRI plugins no image identity. The plugin runs degraded, saying so: the CRI
/// image-name annotation names the image, containerd's own image store (its API) says which digest
/// that is, and the daemon decides that digest: unsigned images already on the node are refused at
/// create, signed ones start.
#[test]
fn on_containerd_2_3_images_are_looked_up_in_containerds_store_degraded() {
    let test = "NRI on containerd 2.3 (no image identity)";
    if tollgate_testkit::peers::require("containerd-2.3/containerd", test).is_none() {
        return;
    }
    let reg = Registry::start();
    let key = TestKey::generate();
    let repo = |n: &str| Reference::parse_normalized(&format!("{}/nri/{n}", reg.addr)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (sandbox, signed, unsigned) = rt.block_on(async {
        let client = reg.client();
        let d = image::push_runnable(&client, &repo("pause"), "1", b"pause").await.digest;
        let s = repo("signed");
        let built = image::push_runnable(&client, &s, "v1", b"signed-2.3").await;
        attach(&client, &s, &built.digest, &[Attached::cosign(&key, &s.repository(), &built.digest)]).await;
        image::push_runnable(&client, &repo("app"), "v1", b"app").await;
        (
            format!("{}/nri/pause:1@{d}", reg.addr),
            format!("{}/nri/signed:v1", reg.addr),
            format!("{}/nri/app:v1", reg.addr),
        )
    });
    let work = tempfile::tempdir().unwrap();
    let opts = Options {
        line: "2.3",
        config_version: 3,
        registries: vec![reg.addr.clone()],
        sandbox_image: sandbox.clone(),
        env: Vec::new(),
        nri: true,
    };
    let ctrd = Containerd::start(opts, test).unwrap();
    for image in [&sandbox, &signed, &unsigned] {
        let r = ctrd.crictl(&["pull", image]);
        assert!(r.status.success(), "pull {image}: {}", text(&r));
    }
    std::fs::write(work.path().join("key.pub"), key.public_pem()).unwrap();
    let policy = work.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  team:\n    publicKeys: [{{path: key.pub}}]\ndefault: [{{type: reject}}]\ntransports:\n  docker:\n    {}/nri:\n      - type: sigstoreSigned\n        trust: team\n        signedIdentity: {{type: matchRepository}}\n",
            reg.addr
        ),
    )
    .unwrap();
    let socket = work.path().join("tollgate.sock");
    let config = work.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "policy: {}\nsocket: {}\ninsecureRegistries: [\"{}\"]\nauditLog:\n  path: {}\nbreakGlassFile: {}\nlastGoodPolicy: null\nnri:\n  socket: {}\n  containerdSocket: {}\n",
            policy.display(),
            socket.display(),
            reg.addr,
            work.path().join("audit.log").display(),
            work.path().join("break-glass").display(),
            ctrd.nri_socket().display(),
            ctrd.socket.display(),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let daemon = Proc::start(&["serve", "--config", config], &work.path().join("serve.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "tollgate serve did not start:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let nri = Proc::start(&["nri", "--config", config], &work.path().join("nri.log"));
    nri.wait_for("registered with the runtime", 1);
    nri.wait_for("running degraded: containerd", 1);
    let pod = work.path().join("pod.json");
    std::fs::write(
        &pod,
        format!(
            r#"{{"metadata":{{"name":"old","namespace":"shop","uid":"old-uid","attempt":1}},"log_directory":"{}","linux":{{"security_context":{{"namespace_options":{{"network":2}}}}}}}}"#,
            work.path().display()
        ),
    )
    .unwrap();
    let container = |name: &str, image: &str| {
        let p = work.path().join(format!("{name}.json"));
        std::fs::write(
            &p,
            format!(r#"{{"metadata":{{"name":"{name}"}},"image":{{"image":"{image}"}},"log_path":"{name}.log","linux":{{}}}}"#),
        )
        .unwrap();
        p
    };
    let runp = ctrd.crictl(&["runp", pod.to_str().unwrap()]);
    assert!(runp.status.success(), "runp: {}", text(&runp));
    let pod_id = String::from_utf8_lossy(&runp.stdout).trim().to_owned();
    let create = |c: &Path| ctrd.crictl(&["create", &pod_id, c.to_str().unwrap(), pod.to_str().unwrap()]);
    let r = create(&container("app", &unsigned));
    assert!(!r.status.success(), "an unsigned image already on the node started: {}\n{}", text(&r), nri.log());
    assert!(text(&r).contains("tollgate:") && text(&r).contains("no signature exists"), "{}\n{}", text(&r), nri.log());
    let r = create(&container("signed", &signed));
    assert!(r.status.success(), "the signed container: {}\n{}\n{}", text(&r), nri.log(), daemon.log());
    // What was decided is the digest containerd's store has for the name: the audit log says so.
    let audit = std::fs::read_to_string(work.path().join("audit.log")).unwrap();
    assert!(audit.lines().any(|l| l.contains(&signed) && l.contains("\"decision\":\"allowed\"")), "{audit}");
}

/// `GET /metrics` from the address `tollgate nri` logged ("serving NRI plugin metrics address=…").
fn scrape(log: &str) -> String {
    use std::io::{Read as _, Write as _};
    let line = log.lines().find(|l| l.contains("serving NRI plugin metrics")).expect("no metrics address in the log");
    let address = line.split("address=").nth(1).unwrap().split_whitespace().next().unwrap();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"), "{response}");
    response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}
