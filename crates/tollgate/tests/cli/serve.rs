//! `tollgate serve`, the real process on a real socket, with the real registry:
//! verdicts, cache, single-flight, audit log, metrics, hot reload, break-glass,
//! warn mode, outages, load, and graceful shutdown.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tollgate_node::api::{Outcome, VerifyRequest, VerifyResponse};
use tollgate_node::client;
use tollgate_testkit::sign::Attached;

use crate::containerd::invoke_with;
use crate::verify::Setup;

/// Requires a signature by the test key for every image, so no decision is network-free.
pub(crate) const SIGNED_EVERYWHERE: &str =
    r#"{"default":[{"type":"sigstoreSigned","keyPath":"trusted.pub","signedIdentity":{"type":"matchRepository"}}]}"#;

/// A running `tollgate serve`, killed on drop.
pub(crate) struct Daemon {
    child: Child,
    pub(crate) socket: PathBuf,
    pub(crate) audit: PathBuf,
    log: PathBuf,
}

/// Writes a config in `dir` (socket, audit log and break-glass file inside it) plus `extra` lines.
pub(crate) fn write_config(dir: &Path, policy: &Path, registry: &str, extra: &str) -> PathBuf {
    let config = dir.join("config.yaml");
    for sub in ["run", "log"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let text = format!(
        "policy: {}\nsocket: {}\ninsecureRegistries: [\"{registry}\"]\nauditLog:\n  path: {}\nbreakGlassFile: {}\nreloadSeconds: 3600\nfallbackBinary: {}\nlastGoodPolicy: {}\n{extra}",
        policy.display(),
        dir.join("run/tollgate.sock").display(),
        dir.join("log/audit.log").display(),
        dir.join("break-glass").display(),
        env!("CARGO_BIN_EXE_tollgate"),
        dir.join("last-good.json").display(),
    );
    std::fs::write(&config, text).unwrap();
    config
}

impl Daemon {
    /// Starts the daemon on `config` and waits (at most 10 s) until it answers /healthz.
    pub(crate) fn start(config: &Path) -> Daemon {
        let dir = config.parent().unwrap();
        let log = dir.join(format!("serve-{}.log", tollgate_testkit::free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env("TOLLGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut d = Daemon { child, socket: dir.join("run/tollgate.sock"), audit: dir.join("log/audit.log"), log };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("tollgate serve exited with {status}:\n{}", d.logs());
            }
            if d.get("/healthz").0 == 200 {
                return d;
            }
            assert!(Instant::now() < deadline, "tollgate serve did not come up:\n{}", d.logs());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path`: (status, body); (0, error) when the daemon cannot be reached.
    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        client::get(&self.socket, path, Duration::from_secs(5)).unwrap_or_else(|e| (0, e.to_string()))
    }

    pub(crate) fn health(&self) -> serde_json::Value {
        let (code, body) = self.get("/healthz");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    pub(crate) fn verify(&self, name: &str, digest: &str) -> VerifyResponse {
        let req = VerifyRequest {
            name: name.into(),
            digest: digest.into(),
            namespace: Some("kube-system".into()),
            media_type: None,
        };
        client::verify(&self.socket, &req, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// The value of one metric line, e.g. `tollgate_cache_hits_total`.
    pub(crate) fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    pub(crate) fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub(crate) fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// Polls `cond` (at most 10 s).
    pub(crate) fn wait_until(&self, what: &str, mut cond: impl FnMut(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM, then the exit status (at most 15 s).
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signed_setup() -> Setup {
    let s = Setup::new();
    std::fs::write(s.dir.path().join("signed.json"), SIGNED_EVERYWHERE).unwrap();
    s
}

#[test]
fn answers_from_the_cache_after_the_first_decision_and_audits_every_answer() {
    let s = signed_setup();
    let cfg =
        write_config(s.dir.path(), &s.dir.path().join("signed.json"), &s.reg.addr, "cache: {denyTtlSeconds: 1}\n");
    let d = Daemon::start(&cfg);
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode");
    let digest = s.digest.to_string();

    let first = d.verify(&s.app(), &digest);
    assert!(!first.allowed);
    assert_eq!((first.outcome, first.cached), (Outcome::Denied, false));
    assert!(first.reason.contains("no signature exists"), "{}", first.reason);
    let again = d.verify(&s.app(), &digest);
    assert_eq!((again.allowed, again.cached), (false, true));

    // Denials are kept only denyTtlSeconds: a signature published afterwards is seen.
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    std::thread::sleep(Duration::from_millis(1100));
    let signed = d.verify(&s.app(), &digest);
    assert_eq!((signed.allowed, signed.outcome, signed.cached), (true, Outcome::Allowed, false), "{}", signed.reason);
    let cached = d.verify(&s.app(), &digest);
    assert_eq!((cached.allowed, cached.cached), (true, true));
    assert_eq!(cached.policy_hash, first.policy_hash);

    let audit = d.audit_lines();
    assert_eq!(audit.len(), 4, "one record per answer");
    let decisions: Vec<(&str, bool)> =
        audit.iter().map(|r| (r["decision"].as_str().unwrap(), r["cached"].as_bool().unwrap())).collect();
    assert_eq!(decisions, [("denied", false), ("denied", true), ("allowed", false), ("allowed", true)]);
    assert_eq!(audit[0]["name"], s.app());
    assert_eq!(audit[0]["digest"], digest);
    assert_eq!(audit[0]["namespace"], "kube-system");
    assert_eq!(audit[0]["rule"], "default");
    assert!(audit[2]["reasons"][0].as_str().unwrap().starts_with("allowed by default"), "{}", audit[2]);
    assert!(audit[0]["latencyMicros"].as_u64().is_some() && audit[0]["time"].as_str().unwrap().ends_with('Z'));

    assert_eq!(d.metric("tollgate_decisions_total{outcome=\"denied\",rule=\"default\"}"), 2.0);
    assert_eq!(d.metric("tollgate_decisions_total{outcome=\"allowed\",rule=\"default\"}"), 2.0);
    assert_eq!(d.metric("tollgate_cache_hits_total"), 2.0);
    assert_eq!(d.metric("tollgate_decision_latency_seconds_count"), 4.0);
    let (code, _) = d.get("/nope");
    assert_eq!(code, 404);

    let socket = d.socket.clone();
    let status = d.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    assert!(!socket.exists(), "the socket is removed on shutdown");
}

#[test]
fn the_verifier_asks_the_daemon_and_decides_in_process_when_it_is_down() {
    let s = signed_setup();
    let cfg = write_config(s.dir.path(), &s.dir.path().join("signed.json"), &s.reg.addr, "");
    let digest = s.digest.to_string();
    let manifest_type = "application/vnd.oci.image.index.v1+json";

    // Daemon down: in-process, and the reason says so.
    let r = invoke_with(&s.app(), &digest, &cfg, manifest_type);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("(in-process; daemon unavailable at "), "{}", r.stdout);

    let d = Daemon::start(&cfg);
    let r = invoke_with(&s.app(), &digest, &cfg, manifest_type);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.starts_with(&format!("tollgate: denied {}@{digest} (daemon): ", s.app())), "{}", r.stdout);
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    // The denial is cached (denyTtlSeconds 30): still denied, from the cache.
    let r = invoke_with(&s.app(), &digest, &cfg, manifest_type);
    assert!(r.stdout.contains("(daemon, cached)"), "{}", r.stdout);
    // Another name for the same digest is another cache entry, decided afresh.
    let by_digest = format!("{}/team/app@{digest}", s.reg.addr);
    let r = invoke_with(&by_digest, &digest, &cfg, manifest_type);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.starts_with(&format!("tollgate: allowed {by_digest} (daemon): ")), "{}", r.stdout);
    // The in-process decision before the daemon started is audited too, in the same format.
    let lines = d.audit_lines();
    let by: Vec<&str> = lines.iter().map(|l| l["decidedBy"].as_str().unwrap_or("?")).collect();
    assert_eq!(by, ["in-process", "daemon", "daemon", "daemon"], "{lines:?}");
}

#[test]
fn with_the_registry_down_cached_verdicts_are_answered_and_new_digests_fail_closed() {
    let mut s = signed_setup();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let cfg = write_config(s.dir.path(), &s.dir.path().join("signed.json"), &s.reg.addr, "deadlineSeconds: 3\n");
    let d = Daemon::start(&cfg);
    let digest = s.digest.to_string();
    assert!(d.verify(&s.app(), &digest).allowed);
    s.reg.stop();
    let cached = d.verify(&s.app(), &digest);
    assert_eq!((cached.allowed, cached.cached), (true, true));
    let unknown = tollgate_oci::Digest::sha256_of(b"never seen").to_string();
    let r = invoke_with(&s.app(), &unknown, &cfg, "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.starts_with("tollgate: rejected, failing closed: "), "{}", r.stdout);
    assert!(r.stdout.contains("unreachable"), "{}", r.stdout);
    let audit = d.audit_lines();
    assert_eq!(audit.last().unwrap()["decision"], "undecidable");
    assert_eq!(d.metric("tollgate_registry_errors_total"), 1.0);
    // Undecidable verdicts are not cached: the next ask tries again.
    let again = d.verify(&s.app(), &unknown);
    assert_eq!((again.outcome, again.cached), (Outcome::Undecidable, false));
}

#[test]
fn a_broken_policy_on_reload_is_reported_and_the_last_good_one_stays_in_force() {
    let s = Setup::new();
    let policy = s.dir.path().join("live.yaml");
    let reject = "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault: [{type: reject}]\n";
    std::fs::write(&policy, reject).unwrap();
    let cfg = write_config(s.dir.path(), &policy, &s.reg.addr, "");
    let d = Daemon::start(&cfg);
    let digest = s.digest.to_string();
    let before = d.verify(&s.app(), &digest);
    assert_eq!(before.outcome, Outcome::Denied);
    let good_hash = d.health()["policy"]["hash"].clone();

    std::fs::write(&policy, "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault: [{type: accept}]\n")
        .unwrap();
    d.signal(rustix::process::Signal::HUP);
    d.wait_until("the reload error on /healthz", |d| d.health()["reloadError"].is_string());
    let h = d.health();
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["policy"]["hash"], good_hash, "the last good policy stays");
    assert!(h["reloadError"].as_str().unwrap().contains("accept"), "{h}");
    let during = d.verify(&s.app(), &digest);
    assert_eq!((during.outcome, during.policy_hash.as_str()), (Outcome::Denied, good_hash.as_str().unwrap()));
    assert!(d.logs().contains("policy reload failed, keeping the last good policy"), "{}", d.logs());
    assert_eq!(d.metric("tollgate_policy_reloads_total{result=\"failed\"}"), 1.0);

    std::fs::write(
        &policy,
        "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault: [{type: insecureAcceptAnything}]\n",
    )
    .unwrap();
    d.signal(rustix::process::Signal::HUP);
    d.wait_until("the new policy", |d| d.health()["policy"]["hash"] != good_hash);
    assert_eq!(d.health()["status"], "ok");
    let after = d.verify(&s.app(), &digest);
    assert_eq!((after.outcome, after.cached), (Outcome::Allowed, false), "a new policy is a new cache");
}

#[test]
fn break_glass_allows_loudly_and_warn_only_allows_what_would_be_denied() {
    let s = signed_setup();
    let cfg = write_config(s.dir.path(), &s.dir.path().join("signed.json"), &s.reg.addr, "");
    let d = Daemon::start(&cfg);
    let digest = s.digest.to_string();
    assert!(!d.verify(&s.app(), &digest).allowed);

    std::fs::write(s.dir.path().join("break-glass"), "INC-4711 registry signing outage\n").unwrap();
    let r = invoke_with(&s.app(), &digest, &cfg, "application/vnd.oci.image.index.v1+json");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("BREAK-GLASS") && r.stdout.contains("INC-4711"), "{}", r.stdout);
    let last = d.audit_lines().pop().unwrap();
    assert_eq!((last["decision"].as_str(), last["allowed"].as_bool()), (Some("break-glass"), Some(true)));
    assert!(d.logs().contains("BREAK-GLASS"), "logged loudly");
    let h = d.health();
    assert_eq!((h["status"].as_str(), h["breakGlass"].as_bool()), (Some("degraded"), Some(true)));
    assert_eq!(d.metric("tollgate_break_glass"), 1.0);

    // A file with no reason inside still allows, and says a reason is missing.
    std::fs::write(s.dir.path().join("break-glass"), "").unwrap();
    let r = invoke_with(&s.app(), &digest, &cfg, "application/vnd.oci.image.index.v1+json");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("(no reason given: write who and why into the file"), "{}", r.stdout);
    std::fs::remove_file(s.dir.path().join("break-glass")).unwrap();
    let back = d.verify(&s.app(), &digest);
    assert_eq!((back.allowed, back.outcome), (false, Outcome::Denied));
    drop(d);

    let warn = write_config(s.dir.path(), &s.dir.path().join("signed.json"), &s.reg.addr, "warnOnly: true\n");
    let d = Daemon::start(&warn);
    let w = d.verify(&s.app(), &digest);
    assert_eq!((w.allowed, w.outcome), (true, Outcome::Warned));
    assert!(w.reason.contains("would be denied"), "{}", w.reason);
    assert_eq!(d.audit_lines().pop().unwrap()["decision"], "warned");
}

#[test]
fn identical_concurrent_requests_share_one_decision_and_a_10k_load_has_no_errors_and_flat_memory() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    // The team scope needs the signature (network); 200 allowlisted digests elsewhere need nothing.
    let digests: Vec<String> =
        (0..200).map(|i| tollgate_oci::Digest::sha256_of(format!("img{i}").as_bytes()).to_string()).collect();
    let allowlisted = &digests[..100];
    let policy = s.dir.path().join("load.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  team: {{publicKeys: [{{path: trusted.pub}}]}}\ndefault: [{{type: digestAllowlist, digests: [{}]}}]\ntransports:\n  docker:\n    {}/team: [{{type: sigstoreSigned, trust: team, signedIdentity: {{type: matchRepository}}}}]\n",
            allowlisted.join(", "),
            s.reg.addr
        ),
    )
    .unwrap();
    let cfg = write_config(s.dir.path(), &policy, &s.reg.addr, "");
    let d = Daemon::start(&cfg);
    let digest = s.digest.to_string();

    let ask = |n: usize| {
        let (name, dg) = if n % 10 == 0 {
            (s.app(), digest.clone())
        } else {
            (format!("example.com/load/app{}:v1", n % 200), digests[n % 200].clone())
        };
        client::verify(
            &d.socket,
            &VerifyRequest { name, digest: dg, namespace: None, media_type: None },
            Duration::from_secs(10),
        )
    };
    // 50 identical requests at once for the signed image: one evaluation.
    let burst: Vec<_> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..50).map(|_| sc.spawn(|| ask(0))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(burst.iter().all(|r| r.as_ref().is_ok_and(|r| r.allowed)), "{:?}", burst.first());
    assert_eq!(d.metric("tollgate_evaluations_total"), 1.0, "single-flight");

    // 32 clients, one connection per request, as containerd's verifier processes do.
    let run = |range: std::ops::Range<usize>| {
        let next = std::sync::atomic::AtomicUsize::new(range.start);
        let errors = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|sc| {
            for _ in 0..32 {
                sc.spawn(|| {
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n >= range.end {
                            break;
                        }
                        match ask(n) {
                            Ok(r) if r.allowed == (n % 10 == 0 || n % 200 < 100) => {}
                            other => errors.lock().unwrap().push(format!("request {n}: {other:?}")),
                        }
                    }
                });
            }
        });
        errors.into_inner().unwrap()
    };
    let errors = run(0..1000);
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(3)]);
    let warm = d.rss_kib();
    let errors = run(1000..10_000);
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(3)]);
    let after = d.rss_kib();
    assert!(after < warm + 16 * 1024, "memory grew from {warm} KiB to {after} KiB over 9k cached requests");
    assert_eq!(d.audit_lines().len(), 10_050);
    // The signed image, and the 180 load images whose index is not a multiple of 10.
    assert_eq!(d.metric("tollgate_evaluations_total"), 181.0, "every distinct (name, digest) decided once");
}

#[test]
fn exemptions_are_answered_as_exempt_and_metrics_are_also_served_on_loopback_tcp() {
    let s = Setup::new();
    let policy = s.dir.path().join("exempt.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nexemptions:\n  - digest: {}\n    reason: pinned control plane\ndefault: [{{type: reject}}]\n",
            s.digest
        ),
    )
    .unwrap();
    let port = tollgate_testkit::free_port();
    let cfg = write_config(s.dir.path(), &policy, &s.reg.addr, &format!("metricsAddress: 127.0.0.1:{port}\n"));
    let d = Daemon::start(&cfg);
    let v = d.verify(&s.app(), &s.digest.to_string());
    assert_eq!((v.allowed, v.outcome, v.rule.as_str()), (true, Outcome::Exempt, "exemptions"), "{}", v.reason);
    assert_eq!(v.reason, "exempt: pinned control plane");
    let other = d.verify(&s.app(), &tollgate_oci::Digest::sha256_of(b"x").to_string());
    assert_eq!(other.outcome, Outcome::Denied);

    let http = |path: &str| {
        use std::io::{Read as _, Write as _};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    };
    let metrics = http("/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("tollgate_decisions_total{outcome=\"exempt\",rule=\"exemptions\"} 1"), "{metrics}");
    assert!(http("/healthz").starts_with("HTTP/1.1 404"), "only metrics on TCP");
    let bad = d.get("/v1/verify");
    assert_eq!(bad.0, 405);
}

#[test]
fn startup_errors_are_one_line_and_a_live_socket_is_not_stolen() {
    let s = Setup::new();
    let cfg = write_config(s.dir.path(), &s.policy(), &s.reg.addr, "");
    let d = Daemon::start(&cfg);
    let r = crate::util::tollgate(&["serve", "--config", cfg.to_str().unwrap()]);
    assert!(r.one_line_error(2).contains("another daemon is listening there"), "{}", r.stderr);
    assert_eq!(d.health()["status"], "ok", "the first daemon is untouched");
    // A typo creates nothing: a socket or audit log in a missing directory is refused, by name.
    let typo = write_config(s.dir.path(), &s.policy(), &s.reg.addr, "");
    let text = std::fs::read_to_string(&typo).unwrap().replace("run/tollgate.sock", "nonexistent/tollgate.sock");
    std::fs::write(&typo, text).unwrap();
    let r = crate::util::tollgate(&["serve", "--config", typo.to_str().unwrap()]);
    assert!(r.one_line_error(2).contains("nonexistent does not exist"), "{}", r.stderr);
    assert!(!s.dir.path().join("nonexistent").exists());
    // The metrics address is checked before the socket is made, and nothing is left behind.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg2 = write_config(
        s.dir.path(),
        &s.policy(),
        &s.reg.addr,
        &format!("metricsAddress: {}\n", busy.local_addr().unwrap()),
    );
    let text = std::fs::read_to_string(&cfg2).unwrap().replace("run/tollgate.sock", "run/second.sock");
    std::fs::write(&cfg2, text).unwrap();
    let r = crate::util::tollgate(&["serve", "--config", cfg2.to_str().unwrap()]);
    assert!(r.one_line_error(2).contains("cannot listen on 127.0.0.1:"), "{}", r.stderr);
    assert!(!s.dir.path().join("run/second.sock").exists(), "no socket left behind");
    let r = crate::util::tollgate(&["serve", "--config", "/nonexistent/config.yaml"]);
    assert_eq!(
        r.one_line_error(2),
        "tollgate: cannot read /nonexistent/config.yaml: No such file or directory (os error 2)"
    );
}

/// The likeliest outage: a bad policy push, then a restart (or a reboot).
/// The daemon keeps enforcing the last policy that loaded, and says so.
#[test]
fn a_restart_with_a_broken_policy_enforces_the_last_good_one_loudly() {
    let s = signed_setup();
    let policy = s.dir.path().join("live.json");
    std::fs::write(&policy, SIGNED_EVERYWHERE).unwrap();
    let cfg = write_config(s.dir.path(), &policy, &s.reg.addr, "");
    let digest = s.digest.to_string();
    let d = Daemon::start(&cfg);
    let good = d.health()["policy"]["hash"].clone();
    assert_eq!(d.verify(&s.app(), &digest).outcome, Outcome::Denied, "unsigned");
    assert!(s.dir.path().join("last-good.json").exists(), "a copy was kept");
    drop(d);

    std::fs::write(&policy, "{\"default\": [{\"type\": \"accept\"}]}").unwrap();
    let d = Daemon::start(&cfg);
    let h = d.health();
    assert_eq!((h["status"].as_str(), h["enforcing"].as_str()), (Some("degraded"), Some("last-good")), "{h}");
    assert_eq!(h["policy"]["hash"], good);
    assert!(h["reloadError"].as_str().unwrap().contains("accept"), "{h}");
    assert_eq!(d.metric("tollgate_policy_source"), 2.0);
    assert!(d.logs().contains("ENFORCING THE LAST GOOD POLICY"), "{}", d.logs());
    assert!(!d.logs().contains('\u{1b}'), "no colour codes when stderr is not a terminal (journald)");
    let answer = d.verify(&s.app(), &digest);
    assert_eq!((answer.outcome, answer.policy_hash.as_str()), (Outcome::Denied, good.as_str().unwrap()));

    // Fixed: the configured policy is enforced again on reload.
    std::fs::write(&policy, SIGNED_EVERYWHERE).unwrap();
    d.signal(rustix::process::Signal::HUP);
    d.wait_until("the configured policy", |d| d.health()["enforcing"] == "configured");
    assert_eq!(d.metric("tollgate_policy_source"), 1.0);
}

/// With no policy at all (none loads, no copy), decisions are undecidable
/// with the load error, never "denied", and break-glass still works; the
/// in-process fallback says and does the same, and audits in the same format.
#[test]
fn with_no_policy_decisions_are_undecidable_and_break_glass_still_works() {
    let s = signed_setup();
    let policy = s.dir.path().join("typo.yaml");
    std::fs::write(&policy, "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault: [{type: rejekt}]\n")
        .unwrap();
    let cfg = write_config(s.dir.path(), &policy, &s.reg.addr, "");
    let digest = s.digest.to_string();
    let d = Daemon::start(&cfg);
    assert_eq!(d.health()["enforcing"], "none");
    assert_eq!(d.metric("tollgate_policy_source"), 0.0);
    let answer = d.verify(&s.app(), &digest);
    assert_eq!((answer.outcome, answer.allowed), (Outcome::Undecidable, false));
    assert!(answer.reason.starts_with("no policy is in force: ") && answer.reason.contains("rejekt"), "{answer:?}");
    std::fs::write(s.dir.path().join("break-glass"), "incident 7\n").unwrap();
    let answer = d.verify(&s.app(), &digest);
    assert_eq!((answer.outcome, answer.allowed), (Outcome::BreakGlass, true));
    std::fs::remove_file(s.dir.path().join("break-glass")).unwrap();
    drop(d);

    // The fallback, with the daemon down: the same answers, exit 3 and 0, and audit lines.
    let invoke = || {
        let stdin = format!(
            "{{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"{digest}\",\"size\":1}}\n"
        );
        crate::util::tollgate_stdin(
            &["-name", &s.app(), "-digest", &digest, "-stdin-media-type", "application/vnd.oci.descriptor.v1+json"],
            &[("TOLLGATE_CONFIG", cfg.to_str().unwrap())],
            stdin.as_bytes(),
        )
    };
    let r = invoke();
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("tollgate: rejected, failing closed: no policy is in force"), "{}", r.stdout);
    std::fs::write(s.dir.path().join("break-glass"), "incident 7\n").unwrap();
    let r = invoke();
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("BREAK-GLASS"), "{}", r.stdout);
    let audit = std::fs::read_to_string(s.dir.path().join("log/audit.log")).unwrap();
    let fallback: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["decidedBy"] == "in-process")
        .collect();
    assert_eq!(fallback.len(), 2, "{audit}");
    assert_eq!(
        (fallback[0]["decision"].as_str(), fallback[1]["decision"].as_str()),
        (Some("undecidable"), Some("break-glass"))
    );
}

/// `namespacePolicies`: a namespace's policy adds to the cluster's and never relaxes it. A namespace with
/// none gets the cluster's verdict; one whose policy does not load is undecidable; a fixed file is
/// picked up on reload (SIGHUP).
#[test]
fn namespace_policies_only_add_requirements() {
    let s = signed_setup();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let namespaces = s.dir.path().join("namespaces");
    std::fs::create_dir(&namespaces).unwrap();
    // strict: also wants a signature by another key; open: accepts anything (it cannot relax the cluster).
    std::fs::write(namespaces.join("other.pub"), tollgate_testkit::sign::TestKey::generate().public_pem()).unwrap();
    std::fs::write(
        namespaces.join("strict.json"),
        r#"{"default":[{"type":"sigstoreSigned","keyPath":"other.pub","signedIdentity":{"type":"matchRepository"}}]}"#,
    )
    .unwrap();
    std::fs::write(namespaces.join("open.json"), r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    std::fs::write(namespaces.join("broken.yaml"), "default: [").unwrap();
    let cfg = write_config(
        s.dir.path(),
        &s.dir.path().join("signed.json"),
        &s.reg.addr,
        &format!("namespacePolicies: {}\n", namespaces.display()),
    );
    let d = Daemon::start(&cfg);
    let ask = |ns: &str, name: &str| {
        let req = VerifyRequest {
            name: name.into(),
            digest: s.digest.to_string(),
            namespace: Some(ns.into()),
            media_type: None,
        };
        client::verify(&d.socket, &req, Duration::from_secs(10)).unwrap()
    };
    let allowed = ask("shop", &s.app());
    assert!(allowed.allowed, "no namespace policy: the cluster's verdict: {}", allowed.reason);
    let strict = ask("strict", &s.app());
    assert_eq!((strict.allowed, strict.outcome), (false, Outcome::Denied), "{}", strict.reason);
    assert!(strict.reason.starts_with("the policy of namespace strict: denied by default"), "{}", strict.reason);
    assert_eq!(strict.rule, "namespace strict: default");
    let both = ask("open", &s.app());
    assert!(both.allowed, "{}", both.reason);
    // The cluster denies an unsigned image: a namespace that accepts anything cannot allow it.
    let unsigned = format!("{}/team/unsigned:v1", s.reg.addr);
    let digest = s.rt.block_on(tollgate_testkit::image::push_index(
        &s.reg.client(),
        &tollgate_oci::Reference::parse_normalized(&format!("{}/team/unsigned", s.reg.addr)).unwrap(),
        "v1",
        b"unsigned",
    ));
    let req = VerifyRequest {
        name: unsigned,
        digest: digest.digest.to_string(),
        namespace: Some("open".into()),
        media_type: None,
    };
    let r = client::verify(&d.socket, &req, Duration::from_secs(10)).unwrap();
    assert_eq!((r.allowed, r.outcome), (false, Outcome::Denied), "{}", r.reason);
    let broken = ask("broken", &s.app());
    assert_eq!((broken.allowed, broken.outcome), (false, Outcome::Undecidable), "{}", broken.reason);
    assert!(broken.reason.starts_with("the policy of namespace broken does not load:"), "{}", broken.reason);
    assert!(d.logs().contains("the policy of namespace broken"), "{}", d.logs());
    // Fixed, then reloaded: it applies.
    std::fs::write(
        namespaces.join("broken.yaml"),
        "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault: [{type: insecureAcceptAnything}]\n",
    )
    .unwrap();
    d.signal(rustix::process::Signal::HUP);
    d.wait_until("the fixed namespace policy", |_| ask("broken", &s.app()).allowed);
    let audit = d.audit_lines();
    assert!(audit.iter().any(|r| r["namespace"] == "strict" && r["rule"] == "namespace strict: default"), "{audit:?}");
}

/// The daemon decides `notationSigned` as `tollgate verify` does: denied with the reason while no
/// signature is attached, allowed once a trusted one is, JWS or COSE.
#[test]
fn the_daemon_verifies_notation_signatures() {
    use crate::verify::{attach_app_notation, notation_policy};
    let s = Setup::new();
    let notary = tollgate_testkit::notation::TestNotary::generate("tollgate test notary CA", "signer");
    let policy = notation_policy(&s, &notary, "x509.subject: CN=signer, O=tollgate, ST=WA, C=US");
    let cfg = write_config(s.dir.path(), &policy, &s.reg.addr, "cache: {denyTtlSeconds: 1}\n");
    let d = Daemon::start(&cfg);
    let digest = s.digest.to_string();
    let unsigned = d.verify(&s.app(), &digest);
    assert_eq!((unsigned.allowed, unsigned.outcome), (false, Outcome::Denied), "{}", unsigned.reason);
    assert!(unsigned.reason.contains("a notation signature was required, but none is attached"), "{}", unsigned.reason);

    let now = i64::try_from(tollgate_node::engine::now_unix()).unwrap() - 60;
    attach_app_notation(&s, |t, n| notary.jws(t, &s.digest, n, now, None));
    std::thread::sleep(Duration::from_millis(1100));
    let signed = d.verify(&s.app(), &digest);
    assert_eq!((signed.allowed, signed.outcome), (true, Outcome::Allowed), "{}", signed.reason);
    assert!(signed.reason.contains("notation signature verified"), "{}", signed.reason);
    let audit = d.audit_lines();
    assert_eq!(audit.last().unwrap()["decision"], "allowed");

    // Another image of the repository the trust policy scopes, signed with a COSE_Sign1 envelope.
    let repo = s.repo.clone();
    let built = s.rt.block_on(tollgate_testkit::image::push_index(&s.reg.client(), &repo, "cose", b"cose"));
    let envelope = notary.cose(&built.media_type, &built.digest, built.manifest.len(), now);
    s.rt.block_on(tollgate_testkit::notation::attach_signature(
        &s.reg.client(),
        &repo,
        &built.digest,
        &built.media_type,
        built.manifest.len(),
        &envelope,
    ));
    let cose = d.verify(&format!("{}/team/app:cose", s.reg.addr), &built.digest.to_string());
    assert_eq!((cose.allowed, cose.outcome), (true, Outcome::Allowed), "{}", cose.reason);
}

/// The daemon checks notation revocation online as `tollgate verify` does: a signing certificate
/// its CRL lists (served by the registry) is refused with the CRL named, and the audit line says so.
#[test]
fn the_daemon_checks_notation_revocation_online() {
    use crate::verify::{attach_app_notation, notation_policy, online_policy};
    let s = Setup::new();
    let notary = tollgate_testkit::notation::TestNotary::generate("tollgate test notary CA", "signer");
    let policy = online_policy(&s, &notation_policy(&s, &notary, "x509.subject: CN=signer, O=tollgate, ST=WA, C=US"));
    let cfg = write_config(s.dir.path(), &policy, &s.reg.addr, "");
    let d = Daemon::start(&cfg);
    let now = i64::try_from(tollgate_node::engine::now_unix()).unwrap();
    let listed = s.blob_url(&notary.crl(&[4242], now + 3600));
    let leaf = notary.revocable("signer", &listed, 4242);
    attach_app_notation(&s, |t, n| leaf.jws(t, &s.digest, n, now - 60, None));
    let r = d.verify(&s.app(), &s.digest.to_string());
    assert_eq!((r.allowed, r.outcome), (false, Outcome::Denied), "{}", r.reason);
    assert!(r.reason.contains(&format!("is revoked (CRL {listed})")), "{}", r.reason);
    assert_eq!(d.audit_lines().last().unwrap()["decision"], "denied");
}

/// A volume laid out as kubelet mounts a ConfigMap: the data in a versioned directory, `..data`
/// pointing at it, and each key a link through `..data`. `swap` moves `..data` to a new version
/// atomically (a rename over the link), as kubelet does.
struct ConfigMapVolume {
    dir: PathBuf,
    version: usize,
}

impl ConfigMapVolume {
    fn new(dir: PathBuf) -> ConfigMapVolume {
        std::fs::create_dir(&dir).unwrap();
        ConfigMapVolume { dir, version: 0 }
    }

    fn swap(&mut self, data: &serde_json::Map<String, serde_json::Value>) {
        self.version += 1;
        let versioned = format!("..2026_12_01_00_00_0{}.000000001", self.version);
        std::fs::create_dir(self.dir.join(&versioned)).unwrap();
        for (k, v) in data {
            std::fs::write(self.dir.join(&versioned).join(k), v.as_str().unwrap()).unwrap();
            let link = self.dir.join(k);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(format!("..data/{k}"), &link).unwrap();
            }
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&versioned, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

/// The node agent reads the bundle from its mounted ConfigMap (`policyBundle`): the cluster policy
/// and the namespace parts of one version, with the bundle's hash in /healthz and every audit line;
/// a new version is picked up on reload, a broken one keeps the last good bundle.
#[test]
fn the_policy_bundle_is_read_from_a_mounted_configmap_and_a_broken_version_keeps_the_last_good() {
    let s = signed_setup();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    let pem = |k: &tollgate_testkit::sign::TestKey| serde_json::to_string(&k.public_pem()).unwrap();
    let cluster = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: team}}\nspec:\n  images: [{}/team]\n  authorities:\n    - key: {{data: {}}}\n",
        s.reg.addr,
        pem(&s.key)
    );
    let strict = format!(
        "---\napiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: vault, namespace: strict}}\nspec:\n  images: [{}/team]\n  authorities:\n    - key: {{data: {}}}\n",
        s.reg.addr,
        pem(&tollgate_testkit::sign::TestKey::generate())
    );
    let configmap = |objects: &str| -> (serde_json::Map<String, serde_json::Value>, String) {
        let file = s.dir.path().join("objects.yaml");
        std::fs::write(&file, objects).unwrap();
        let r = crate::util::tollgate(&["policy", "compile", file.to_str().unwrap(), "--configmap"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let cm: serde_json::Value = serde_yaml_ng::from_str(&r.stdout).unwrap();
        assert_eq!(
            (cm["kind"].as_str(), cm["metadata"]["name"].as_str()),
            (Some("ConfigMap"), Some("tollgate-policy"))
        );
        let hash = cm["metadata"]["annotations"]["tollgate.dev/bundle-hash"].as_str().unwrap().to_owned();
        (cm["data"].as_object().unwrap().clone(), hash)
    };
    let mut volume = ConfigMapVolume::new(s.dir.path().join("bundle"));
    let (data, first_hash) = configmap(&format!("{cluster}{strict}"));
    assert!(data.contains_key("policy.yaml") && data.contains_key("namespace.strict.yaml"), "{data:?}");
    volume.swap(&data);
    let cfg = write_config(
        s.dir.path(),
        &s.dir.path().join("unused.json"),
        &s.reg.addr,
        &format!("policyBundle: {}\n", volume.dir.display()),
    );
    let d = Daemon::start(&cfg);
    let ask = |ns: &str| {
        let req =
            VerifyRequest { name: s.app(), digest: s.digest.to_string(), namespace: Some(ns.into()), media_type: None };
        client::verify(&d.socket, &req, Duration::from_secs(10)).unwrap()
    };
    assert!(ask("shop").allowed, "the cluster policy allows what its key signed");
    let refused = ask("strict");
    assert_eq!((refused.allowed, refused.outcome), (false, Outcome::Denied), "{}", refused.reason);
    assert_eq!(d.health()["bundleHash"], first_hash.as_str(), "{}", d.health());
    let info = |hash: &str| d.metric(&format!("tollgate_policy_bundle_info{{hash=\"{hash}\"}}"));
    assert_eq!(info(&first_hash), 1.0, "the bundle in force is a metric too");
    assert!(d.audit_lines().iter().all(|l| l["bundleHash"] == first_hash.as_str()), "{:?}", d.audit_lines());

    // A broken version: the last good bundle stays in force, and /healthz says why.
    let mut broken = data.clone();
    broken.insert("policy.yaml".into(), serde_json::json!("apiVersion: [\n"));
    volume.swap(&broken);
    d.signal(rustix::process::Signal::HUP);
    d.wait_until("the broken version is reported", |d| d.health()["reloadError"].is_string());
    assert_eq!(d.health()["bundleHash"], first_hash.as_str());
    assert_eq!(ask("strict").outcome, Outcome::Denied, "the last good bundle's namespace part still applies");

    // The ImagePolicy deleted: the new version has no part for strict.
    let (data, second_hash) = configmap(&cluster);
    assert_ne!(second_hash, first_hash);
    volume.swap(&data);
    std::fs::remove_file(volume.dir.join("namespace.strict.yaml")).unwrap();
    d.signal(rustix::process::Signal::HUP);
    d.wait_until("the new version is in force", |d| d.health()["bundleHash"] == second_hash.as_str());
    assert!(d.health()["reloadError"].is_null(), "{}", d.health());
    assert_eq!((info(&first_hash), info(&second_hash)), (0.0, 1.0), "only the bundle in force is shown");
    let now = ask("strict");
    assert!(now.allowed, "{}", now.reason);
}
