//! Benchmark: the admission round trip of `tollgate webhook`. A real kube-apiserver 1.36 with etcd
//! from ../shared/peers, a real docker-registry with signed images, and the webhook on 127.0.0.1
//! over TLS. Timed, RUNS each, p50 and p99:
//! - directly: `POST /validate` with one keep-alive HTTPS client, for a cached verdict (the same
//!   image again) and a cold one (an image never seen: its tag resolved, signatures fetched and
//!   verified);
//! - through the API server: a pod create with no webhook configured (the same-run baseline), then
//!   with the ValidatingWebhookConfiguration `tollgate manifests --webhook-url` writes, cached and
//!   cold.
//!
//!   bench-webhook RUNS TOLLGATE
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};
use tollgate_testkit::KillOnDrop;

use tollgate_oci::Reference;
use tollgate_testkit::kube::{ADMIN_TOKEN, KubeApi};
use tollgate_testkit::sign::{Attached, TestKey, attach};
use tollgate_testkit::{Registry, image};

/// p50 and p99 of `times`, milliseconds.
fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times[i].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.99))
}

fn review(uid: usize, image: &str) -> String {
    serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("bench-{uid}"), "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "namespace": "bench", "operation": "CREATE", "userInfo": {"username": "bench"},
        "object": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    .to_string()
}

fn pod(name: &str, image: &str) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "bench"},
        "spec": {"automountServiceAccountToken": false, "containers": [{"name": "c", "image": image}]}})
    .to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(30).max(1);
    let tollgate = PathBuf::from(args.get(2).expect("usage: bench-webhook RUNS TOLLGATE"));
    let Some(api) = KubeApi::start("bench-webhook") else { std::process::exit(2) };
    let reg = Registry::start();
    let key = TestKey::generate();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // One image for cached decisions, and one per cold decision, direct and through the API server.
    let names: Vec<String> = (0..=2 * runs + 1).map(|i| format!("app{i}")).collect();
    let digests = rt.block_on(async {
        let mut digests = Vec::new();
        for n in &names {
            let r = Reference::parse_normalized(&format!("{}/bench/{n}", reg.addr)).unwrap();
            let d = image::push_index(&reg.client(), &r, "v1", n.as_bytes()).await.digest;
            attach(&reg.client(), &r, &d, &[Attached::cosign(&key, &r.repository(), &d)]).await;
            digests.push(d);
        }
        digests
    });
    let image = |i: usize| format!("{}/bench/{}:v1", reg.addr, names[i]);
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    std::fs::write(d.join("key.pub"), key.public_pem()).unwrap();
    std::fs::write(
        d.join("policy.yaml"),
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  team:\n    publicKeys: [{{path: key.pub}}]\ndefault: [{{type: reject}}]\ntransports:\n  docker:\n    {}/bench:\n      - type: sigstoreSigned\n        trust: team\n        signedIdentity: {{type: matchRepository}}\n",
            reg.addr
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("config.yaml"),
        format!(
            "policy: {}\nsocket: {}\ninsecureRegistries: [\"{}\"]\nauditLog:\n  path: {}\nbreakGlassFile: {}\nlastGoodPolicy: null\ncache: {{allowTtlSeconds: 3600}}\n",
            d.join("policy.yaml").display(),
            d.join("t.sock").display(),
            reg.addr,
            d.join("audit.log").display(),
            d.join("break-glass").display(),
        ),
    )
    .unwrap();
    let ca = tollgate_testkit::serving_cert(d);
    let listen = format!("127.0.0.1:{}", tollgate_testkit::free_port());
    let log = std::fs::File::create(d.join("webhook.log")).unwrap();
    let _webhook = KillOnDrop(
        Command::new(&tollgate)
            .args(["webhook", "--config", d.join("config.yaml").to_str().unwrap(), "--listen", &listen])
            .arg("--tls-cert")
            .arg(d.join("tls.crt"))
            .arg("--tls-key")
            .arg(d.join("tls.key"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "tollgate webhook did not listen");
        std::thread::sleep(Duration::from_millis(25));
    }
    let direct = tollgate_testkit::https_client(&ca, Duration::from_secs(20)).unwrap();
    let kube = tollgate_testkit::https_client(&api.ca_pem, Duration::from_secs(20)).unwrap();
    let post = |c: &reqwest::Client, url: String, body: String, token: Option<&str>| {
        let t = Instant::now();
        let (status, text) = rt.block_on(async {
            let mut req = c.post(url).header("Content-Type", "application/json").body(body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        });
        (t.elapsed(), status, text)
    };
    let validate_image = |img: &str, uid: usize| {
        let (t, status, text) = post(&direct, format!("https://{listen}/validate"), review(uid, img), None);
        assert!(status == 200 && text.contains("\"allowed\":true"), "{status}: {text}");
        t
    };
    let validate = |i: usize, uid: usize| validate_image(&image(i), uid);
    // Direct: cold (each image once), then cached (image 0, warmed first): by tag, which is resolved
    // at the registry every time (tags move), and pinned by digest, which needs no network.
    let cold_direct: Vec<Duration> = (1..=runs).map(|i| validate(i, i)).collect();
    validate(0, 0);
    let cached_direct: Vec<Duration> = (0..runs).map(|i| validate(0, 1000 + i)).collect();
    let pinned = format!("{}@{}", image(0), digests[0]);
    validate_image(&pinned, 1999);
    let pinned_direct: Vec<Duration> = (0..runs).map(|i| validate_image(&pinned, 2000 + i)).collect();

    // Through the API server.
    let namespace = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench"}}"#.to_owned();
    let (_, status, text) = post(&kube, format!("{}/api/v1/namespaces", api.url), namespace, Some(ADMIN_TOKEN));
    assert_eq!(status, 201, "{text}");
    let (_, status, text) = post(
        &kube,
        format!("{}/api/v1/namespaces/bench/serviceaccounts", api.url),
        r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default","namespace":"bench"}}"#.to_owned(),
        Some(ADMIN_TOKEN),
    );
    assert_eq!(status, 201, "{text}");
    let mut created = 0;
    let mut create = |i: usize| {
        created += 1;
        let (t, status, text) = post(
            &kube,
            format!("{}/api/v1/namespaces/bench/pods", api.url),
            pod(&format!("p{created}"), &image(i)),
            Some(ADMIN_TOKEN),
        );
        assert_eq!(status, 201, "{text}");
        t
    };
    create(0);
    let baseline: Vec<Duration> = (0..runs).map(|_| create(0)).collect();
    let out = Command::new(&tollgate)
        .args(["manifests", "--webhook-url", &format!("https://{listen}"), "--ca-file"])
        .arg(d.join("ca.crt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        if doc["kind"] == "ValidatingWebhookConfiguration" {
            let url = format!("{}/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", api.url);
            let (_, status, text) = post(&kube, url, doc.to_string(), Some(ADMIN_TOKEN));
            assert_eq!(status, 201, "{text}");
        }
    }
    // The configuration is in force once an unsigned image is refused (bounded wait).
    let unsigned = format!("{}/bench/unsigned:v1", reg.addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (_, status, _) = post(
            &kube,
            format!("{}/api/v1/namespaces/bench/pods", api.url),
            pod(&format!("probe{attempt}"), &unsigned),
            Some(ADMIN_TOKEN),
        );
        if status == 403 {
            break;
        }
        assert!(Instant::now() < deadline, "the webhook configuration never took effect");
        std::thread::sleep(Duration::from_millis(200));
    }
    let cached_api: Vec<Duration> = (0..runs).map(|_| create(0)).collect();
    let cold_api: Vec<Duration> = (runs + 1..=2 * runs).map(create).collect();

    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_owned()))
            .unwrap_or_default()
    );
    println!("machine: {machine}; {runs} runs each; milliseconds");
    let row = |label: &str, t: Vec<Duration>| {
        let (p50, p99) = percentiles(t);
        println!("{label:<44} p50 {p50:7.2}  p99 {p99:7.2}");
        p50
    };
    row("direct, pinned by digest, cached verdict", pinned_direct);
    row("direct, tag (resolved), cached verdict", cached_direct);
    row("direct, tag, cold (resolve, fetch, verify)", cold_direct);
    let base = row("pod create, no webhook (baseline)", baseline);
    let cached = row("pod create through the webhook, tag, cached", cached_api);
    let cold = row("pod create through the webhook, tag, cold", cold_api);
    println!("the webhook adds {:.2} ms to a pod create (cached, p50), {:.2} ms cold", cached - base, cold - base);
}
