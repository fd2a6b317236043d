//! Benchmark: what `tollgate nri` adds to a container create. Real containerd 2.4 (NRI v0.12.2)
//! from ../shared/peers, one small signed runnable image already in its store, a host-network
//! pod sandbox, and `crictl create` timed end to end (the container is removed between creates,
//! outside the timing). Medians of RUNS creates with NRI on and no plugin connected (the
//! same-run baseline), then with `tollgate nri` registered and the daemon's verdict cached.
//!   bench-nri RUNS TOLLGATE
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};
use tollgate_testkit::KillOnDrop;

use tollgate_oci::Reference;
use tollgate_testkit::containerd::{Containerd, Options};
use tollgate_testkit::sign::{Attached, TestKey, attach};
use tollgate_testkit::{Registry, image};

fn start(tollgate: &Path, args: &[&str], log: &Path) -> KillOnDrop {
    let file = std::fs::File::create(log).unwrap();
    KillOnDrop(
        Command::new(tollgate).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(file).spawn().unwrap(),
    )
}

/// The median time of `runs` calls of `method` (after one to warm up).
async fn timed(conn: &mut tollgate_testkit::nri::RuntimeConn, runs: usize, method: &str, payload: Vec<u8>) -> Duration {
    let mut times = Vec::with_capacity(runs);
    for i in 0..=runs {
        let t = Instant::now();
        let r = conn.call(method, payload.clone()).await;
        let elapsed = t.elapsed();
        assert!(r.status.is_none(), "{method}: {:?}", r.status);
        if i > 0 {
            times.push(elapsed);
        }
    }
    times.sort();
    times[times.len() / 2]
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "{what} did not happen within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(30);
    let tollgate = PathBuf::from(args.get(2).expect("usage: bench-nri RUNS TOLLGATE"));
    let reg = Registry::start();
    let key = TestKey::generate();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let repo = |n: &str| Reference::parse_normalized(&format!("{}/bench/{n}", reg.addr)).unwrap();
    let (sandbox, digest) = rt.block_on(async {
        let pause = image::push_runnable(&reg.client(), &repo("pause"), "1", b"pause").await.digest;
        let r = repo("app");
        let d = image::push_runnable(&reg.client(), &r, "v1", b"app").await.digest;
        attach(&reg.client(), &r, &d, &[Attached::cosign(&key, &r.repository(), &d)]).await;
        (format!("{}/bench/pause:1@{pause}", reg.addr), d)
    });
    let image = format!("{}/bench/app:v1", reg.addr);
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = work.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    w("key.pub", &key.public_pem());
    let config_path = work.path().join("config.yaml");
    let opts = Options {
        line: "2.4",
        config_version: 3,
        registries: vec![reg.addr.clone()],
        sandbox_image: sandbox.clone(),
        env: vec![("TOLLGATE_CONFIG".into(), config_path.display().to_string())],
        nri: true,
    };
    let Some(ctrd) = Containerd::start(opts, "bench-nri") else { std::process::exit(2) };
    for i in [&sandbox, &image] {
        let out = ctrd.crictl(&["pull", i]);
        assert!(out.status.success(), "pull {i}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let policy = w(
        "policy.yaml",
        &format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  team:\n    publicKeys: [{{path: key.pub}}]\ndefault: [{{type: reject}}]\ntransports:\n  docker:\n    {}/bench:\n      - type: sigstoreSigned\n        trust: team\n        signedIdentity: {{type: matchRepository}}\n",
            reg.addr
        ),
    );
    let socket = work.path().join("t.sock");
    std::fs::write(
        &config_path,
        format!(
            "policy: {}\nsocket: {}\ninsecureRegistries: [\"{}\"]\nauditLog:\n  path: {}\nbreakGlassFile: {}\nlastGoodPolicy: null\nfallbackBinary: {}\ncache: {{allowTtlSeconds: 3600}}\nnri:\n  socket: {}\n",
            policy.display(),
            socket.display(),
            reg.addr,
            work.path().join("audit.log").display(),
            work.path().join("break-glass").display(),
            tollgate.display(),
            ctrd.nri_socket().display()
        ),
    )
    .unwrap();
    let pod = w(
        "pod.json",
        &format!(
            r#"{{"metadata":{{"name":"bench","namespace":"default","uid":"bench-uid","attempt":1}},"log_directory":"{}","linux":{{"security_context":{{"namespace_options":{{"network":2}}}}}}}}"#,
            work.path().display()
        ),
    );
    let container = w(
        "container.json",
        &format!(r#"{{"metadata":{{"name":"app"}},"image":{{"image":"{image}"}},"log_path":"app.log","linux":{{}}}}"#),
    );
    let runp = ctrd.crictl(&["runp", pod.to_str().unwrap()]);
    assert!(runp.status.success(), "runp: {}", String::from_utf8_lossy(&runp.stderr));
    let pod_id = String::from_utf8_lossy(&runp.stdout).trim().to_owned();
    let create = |label: &str| {
        let mut times = Vec::with_capacity(runs);
        for i in 0..=runs {
            let t = Instant::now();
            let out = ctrd.crictl(&["create", &pod_id, container.to_str().unwrap(), pod.to_str().unwrap()]);
            let elapsed = t.elapsed();
            assert!(out.status.success(), "{label}: create failed: {}", String::from_utf8_lossy(&out.stderr));
            let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let rm = ctrd.crictl(&["rm", &id]);
            assert!(rm.status.success(), "rm: {}", String::from_utf8_lossy(&rm.stderr));
            if i > 0 {
                times.push(elapsed); // the first create warms up (and, with the plugin, fills the cache)
            }
        }
        times.sort();
        let median = times[times.len() / 2];
        println!("{label:<52} median {:7.2} ms over {runs} creates", median.as_secs_f64() * 1000.0);
        median
    };
    println!("containerd: {}; image {image} ({digest})", ctrd.version());
    let none = create("crictl create, NRI on, no plugin");
    let daemon =
        start(&tollgate, &["serve", "--config", config_path.to_str().unwrap()], &work.path().join("serve.log"));
    wait_until("tollgate serve", || socket.exists());
    let nri_log = work.path().join("nri.log");
    let plugin = start(&tollgate, &["nri", "--config", config_path.to_str().unwrap()], &nri_log);
    wait_until("registration", || std::fs::read_to_string(&nri_log).unwrap_or_default().contains("registered"));
    let with = create("crictl create, tollgate nri, cached verdict");
    // Every create was decided by the daemon (an audit line each, for CreateContainer and the validator).
    let audited = std::fs::read_to_string(work.path().join("audit.log")).unwrap_or_default().lines().count();
    assert!(audited >= runs, "only {audited} decisions were audited for {runs} creates");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "added to a container create: {:+.2} ms (x{:.2} of the baseline)",
        ms(with) - ms(none),
        ms(with) / ms(none)
    );
    drop(plugin);

    // crictl's create is timed in 10 ms steps (containerd and crictl poll), which hides a smaller
    // cost; so the plugin's own answer is timed too: a second `tollgate nri` registers with a fake
    // runtime (tollgate_testkit::nri), which times CreateContainer calls for the same image.
    let fake = {
        let _in_runtime = rt.enter();
        tollgate_testkit::nri::FakeRuntime::bind()
    };
    let fake_config = w(
        "fake.yaml",
        &std::fs::read_to_string(&config_path)
            .unwrap()
            .replace(&ctrd.nri_socket().display().to_string(), &fake.socket.display().to_string()),
    );
    let _plugin = start(&tollgate, &["nri", "--config", fake_config.to_str().unwrap()], &work.path().join("fake.log"));
    let call = {
        use prost::Message as _;
        tollgate_nri::api::CreateContainerRequest {
            pod: Some(tollgate_nri::api::PodSandbox {
                name: "bench".into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            container: Some(tollgate_nri::api::Container {
                name: "app".into(),
                image: Some(tollgate_nri::api::Image {
                    name: image.clone(),
                    digest: digest.to_string(),
                    config_digest: String::new(),
                }),
                ..Default::default()
            }),
        }
        .encode_to_vec()
    };
    let (configure, decide) = rt.block_on(async {
        let mut conn = fake.accept().await;
        conn.registration(None).await;
        // The baseline: a ttrpc round trip through the mux that decides nothing.
        let configure = timed(&mut conn, runs, "Configure", Vec::new()).await;
        let decide = timed(&mut conn, runs, "CreateContainer", call.clone()).await;
        (configure, decide)
    });
    println!("{:<52} median {:7.3} ms over {runs} calls", "Configure answer (round trip, no decision)", ms(configure));
    println!(
        "{:<52} median {:7.3} ms over {runs} calls",
        "CreateContainer answer (plugin + daemon, cached)",
        ms(decide)
    );
    println!(
        "the decision adds {:+.3} ms to an NRI round trip (x{:.1})",
        ms(decide) - ms(configure),
        ms(decide) / ms(configure)
    );
    drop(daemon);
}
