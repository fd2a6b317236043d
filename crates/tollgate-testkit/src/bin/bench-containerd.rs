//! Benchmark: what a verifier adds to a containerd pull. Real containerd (2.3
//! from ../shared/peers), one small signed image in a Debian docker-registry
//! on 127.0.0.1, `ctr images pull` timed end to end (the image is removed
//! between pulls, outside the timing), medians of RUNS pulls for:
//! no verifier (empty bin_dir), a no-op verifier (`exit 0` script),
//! tollgate-verifier with the daemon's verdict cached, and with the daemon's
//! caches off (a cold decision against the registry each pull).
//!   bench-containerd RUNS TOLLGATE TOLLGATE_VERIFIER
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tollgate_oci::Reference;
use tollgate_testkit::containerd::{Containerd, Options};
use tollgate_testkit::sign::{Attached, TestKey, attach};
use tollgate_testkit::{Registry, image};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(30);
    let tollgate = PathBuf::from(args.get(2).expect("usage: bench-containerd RUNS TOLLGATE TOLLGATE_VERIFIER"));
    let verifier = PathBuf::from(args.get(3).expect("usage: bench-containerd RUNS TOLLGATE TOLLGATE_VERIFIER"));
    let reg = Registry::start();
    let key = TestKey::generate();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let repo = Reference::parse_normalized(&format!("{}/bench/pull", reg.addr)).unwrap();
    let digest = rt.block_on(async {
        let d = image::push_image(&reg.client(), &repo, Some("v1"), "amd64", b"pull").await.digest;
        attach(&reg.client(), &repo, &d, &[Attached::cosign(&key, &repo.repository(), &d)]).await;
        d
    });
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = work.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    w("key.pub", &key.public_pem());
    let policy = w(
        "policy.json",
        &format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{}/bench":[{{"type":"sigstoreSigned","keyPath":"key.pub","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
            reg.addr
        ),
    );
    let node = |name: &str, extra: &str| {
        w(
            &format!("{name}.yaml"),
            &format!(
                "policy: {}\nsocket: {}\ninsecureRegistries: [\"{}\"]\nauditLog:\n  path: {}\nbreakGlassFile: {}\nlastGoodPolicy: {}\nfallbackBinary: {}\n{extra}",
                policy.display(),
                work.path().join(format!("{name}.sock")).display(),
                reg.addr,
                work.path().join(format!("{name}-audit.log")).display(),
                work.path().join("break-glass").display(),
                work.path().join(format!("{name}-last-good.json")).display(),
                tollgate.display(),
            ),
        )
    };
    let warm = node("warm", "cache: {allowTtlSeconds: 3600}\n");
    let cold = node("cold", "cache: {allowTtlSeconds: 0, denyTtlSeconds: 0, signatureTtlSeconds: 0}\n");
    // containerd passes its environment to verifiers: the config is chosen per variant through a link.
    let current = work.path().join("current.yaml");
    let opts = Options {
        line: "2.3",
        config_version: 3,
        registries: vec![reg.addr.clone()],
        sandbox_image: format!("{}/bench/pull:v1", reg.addr),
        env: vec![("TOLLGATE_CONFIG".into(), current.display().to_string())],
        nri: false,
    };
    let Some(ctrd) = Containerd::start(opts, "bench-containerd") else { std::process::exit(2) };
    let daemons: Vec<Daemon> = [&warm, &cold].iter().map(|c| Daemon::start(&tollgate, c)).collect();
    let image = format!("{}:v1", repo.repository());
    let pull = |label: &str| {
        let mut times = Vec::with_capacity(runs);
        for i in 0..=runs {
            let _ = ctrd.ctr(&["images", "rm", &image]);
            let t = Instant::now();
            let out = ctrd.ctr(&["images", "pull", "--plain-http", &image]);
            let elapsed = t.elapsed();
            assert!(out.status.success(), "{label}: pull failed: {}", String::from_utf8_lossy(&out.stderr));
            if i > 0 {
                times.push(elapsed); // the first pull warms up
            }
        }
        times.sort();
        let median = times[times.len() / 2];
        println!("{label:<52} median {:7.2} ms over {runs} pulls", median.as_secs_f64() * 1000.0);
        median
    };
    let bin_dir = &ctrd.bin_dir;
    let clear = || {
        for e in std::fs::read_dir(bin_dir).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    };
    let link = |config: &Path| {
        let _ = std::fs::remove_file(&current);
        std::os::unix::fs::symlink(config, &current).unwrap();
    };
    println!("containerd: {}; image {image} ({digest})", ctrd.version());
    clear();
    let none = pull("no verifier (empty bin_dir)");
    let noop = bin_dir.join("noop");
    std::fs::write(&noop, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&noop, std::fs::Permissions::from_mode(0o755)).unwrap();
    let noop_t = pull("no-op verifier (an `exit 0` script)");
    clear();
    std::fs::copy(&verifier, bin_dir.join("tollgate-verifier")).unwrap();
    link(&warm);
    let cached = pull("tollgate-verifier, daemon, cached verdict");
    link(&cold);
    let cold_t = pull("tollgate-verifier, daemon, caches off (cold decision)");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "added to a pull: no-op {:+.2} ms, tollgate cached {:+.2} ms ({:+.2} ms over the no-op), cold {:+.2} ms",
        ms(noop_t) - ms(none),
        ms(cached) - ms(none),
        ms(cached) - ms(noop_t),
        ms(cold_t) - ms(none)
    );
    drop(daemons);
}

/// A `tollgate serve`, killed on drop.
struct Daemon(Child);

impl Daemon {
    fn start(tollgate: &Path, config: &Path) -> Daemon {
        let child = Command::new(tollgate)
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let socket = config.with_extension("sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "tollgate serve did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
