//! The plugin against the runtime's end of the protocol (`tollgate_testkit::nri`): registration,
//! subscription, decisions and their limits, and malformed input, which closes the connection with
//! a reason and never panics or allows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prost::Message as _;
use tollgate_nri::api;
use tollgate_nri::plugin::{self, Decide, NriError, Settings, Stats, Target, Verdict};
use tollgate_nri::ttrpc::code;
use tollgate_testkit::nri::FakeRuntime;

/// Allows `allowed/…` images, refuses the rest, and takes `slow_ms` for `slow/…` ones.
struct ByName {
    slow_ms: u64,
}

impl Decide for ByName {
    fn decide(&self, t: Target) -> impl std::future::Future<Output = Verdict> + Send {
        let slow = self.slow_ms;
        async move {
            if t.name.starts_with("slow/") {
                tokio::time::sleep(Duration::from_millis(slow)).await;
            }
            if t.name.starts_with("allowed/") {
                Verdict::Allow
            } else {
                Verdict::Refuse(format!("tollgate: {} in {}: denied by test", t.name, t.container))
            }
        }
    }
}

fn settings(rt: &FakeRuntime) -> Settings {
    Settings {
        socket: rt.socket.clone(),
        name: "tollgate".into(),
        index: "10".into(),
        registration_timeout: Duration::from_secs(2),
    }
}

/// The plugin on its own task, with fresh counters.
fn spawn(settings: Settings, decider: impl Decide) -> tokio::task::JoinHandle<Result<plugin::Ended, NriError>> {
    tokio::spawn(plugin::serve_connection_owned(settings, Arc::new(decider), Arc::new(Stats::default())))
}

fn create(image: &str, digest: &str) -> Vec<u8> {
    api::CreateContainerRequest {
        pod: Some(api::PodSandbox {
            id: "p1".into(),
            name: "web".into(),
            namespace: "shop".into(),
            ..Default::default()
        }),
        container: Some(api::Container {
            id: "c1".into(),
            name: "app".into(),
            image: (!image.is_empty()).then(|| api::Image {
                name: image.into(),
                digest: digest.into(),
                config_digest: String::new(),
            }),
            ..Default::default()
        }),
    }
    .encode_to_vec()
}

const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn registers_subscribes_and_decides_each_create() {
    runtime().block_on(async {
        let rt = FakeRuntime::bind();
        let stats = Arc::new(Stats::default());
        let s = settings(&rt);
        let plugin = tokio::spawn(plugin::serve_connection_owned(s, Arc::new(ByName { slow_ms: 0 }), stats.clone()));
        let mut conn = rt.accept().await;
        let reg = conn.registration(None).await;
        assert_eq!(
            (reg.plugin_name.as_str(), reg.plugin_idx.as_str(), reg.nri_version.as_str()),
            ("tollgate", "10", api::NRI_VERSION)
        );

        // An absurd timeout from the runtime is capped, never overflowed.
        let absurd = api::ConfigureRequest { request_timeout: i64::MAX, ..Default::default() };
        assert!(conn.call("Configure", absurd.encode_to_vec()).await.status.is_none());
        let r = conn.call("CreateContainer", create("allowed/app:1", DIGEST)).await;
        assert!(r.status.is_none(), "decided under the capped timeout: {:?}", r.status);
        let cfg = api::ConfigureRequest { runtime_name: "fake".into(), request_timeout: 2000, ..Default::default() };
        let r = conn.call("Configure", cfg.encode_to_vec()).await;
        assert!(r.status.is_none(), "{:?}", r.status);
        let events = api::ConfigureResponse::decode(r.payload.as_slice()).unwrap().events;
        assert_eq!(events, 0x2008, "CreateContainer and ValidateContainerAdjustment");

        let sync = api::SynchronizeRequest { more: true, ..Default::default() };
        let r = conn.call("Synchronize", sync.encode_to_vec()).await;
        assert!(api::SynchronizeResponse::decode(r.payload.as_slice()).unwrap().more, "echoes more");

        let r = conn.call("CreateContainer", create("allowed/app:1", DIGEST)).await;
        assert!(r.status.is_none(), "allowed: {:?}", r.status);
        let r = conn.call("CreateContainer", create("other/app:1", DIGEST)).await;
        let status = r.status.unwrap();
        assert_eq!(status.code, code::PERMISSION_DENIED);
        assert_eq!(status.message, "tollgate: other/app:1 in shop/web/app: denied by test");

        let validate = |image: &str| {
            let c = api::CreateContainerRequest::decode(create(image, DIGEST).as_slice()).unwrap();
            api::ValidateContainerAdjustmentRequest { pod: c.pod, container: c.container, plugins: Vec::new() }
                .encode_to_vec()
        };
        let r = conn.call("ValidateContainerAdjustment", validate("other/app:1")).await;
        let v = api::ValidateContainerAdjustmentResponse::decode(r.payload.as_slice()).unwrap();
        assert!(v.reject && v.reason.contains("denied by test"), "{v:?}");
        let r = conn.call("ValidateContainerAdjustment", validate("allowed/app:1")).await;
        assert!(!api::ValidateContainerAdjustmentResponse::decode(r.payload.as_slice()).unwrap().reject);

        // No image identity (containerd before 2.4): refused, saying why.
        let r = conn.call("CreateContainer", create("", "")).await;
        assert!(r.status.unwrap().message.contains("the runtime gave no image"));
        // A method it does not serve: Unimplemented, as the runtime expects.
        let r = conn.call("StateChange", Vec::new()).await;
        assert_eq!(r.status.unwrap().code, code::UNIMPLEMENTED);

        assert_eq!((stats.allowed.load(Ordering::Relaxed), stats.refused.load(Ordering::Relaxed)), (2, 2));
        let r = conn.call("Shutdown", Vec::new()).await;
        assert!(r.status.is_none());
        assert_eq!(plugin.await.unwrap().unwrap(), plugin::Ended::Shutdown);
    });
}

/// Counts the images it is asked about.
struct Counting(std::sync::Mutex<Vec<String>>);

impl Decide for Counting {
    fn decide(&self, t: Target) -> impl std::future::Future<Output = Verdict> + Send {
        self.0.lock().unwrap().push(format!("{} {}", t.namespace, t.name));
        async { Verdict::Allow }
    }
}

/// `Synchronize` is answered at once, and the images of the running containers are then verified in
/// the background, each once, so that their restarts find a warm cache.
#[test]
fn synchronize_verifies_the_running_images_in_the_background() {
    runtime().block_on(async {
        let rt = FakeRuntime::bind();
        let seen = Arc::new(Counting(std::sync::Mutex::new(Vec::new())));
        let plugin =
            tokio::spawn(plugin::serve_connection_owned(settings(&rt), seen.clone(), Arc::new(Stats::default())));
        let mut conn = rt.accept().await;
        conn.registration(None).await;
        let c = |id: &str, image: &str| api::Container {
            id: id.into(),
            pod_sandbox_id: "p1".into(),
            name: id.into(),
            image: Some(api::Image { name: image.into(), digest: DIGEST.into(), config_digest: String::new() }),
            ..Default::default()
        };
        let sync = api::SynchronizeRequest {
            pods: vec![api::PodSandbox {
                id: "p1".into(),
                name: "web".into(),
                namespace: "shop".into(),
                ..Default::default()
            }],
            containers: vec![c("a", "r.example/app:1"), c("b", "r.example/app:1"), c("c", "r.example/db:2")],
            more: false,
        };
        let r = conn.call("Synchronize", sync.encode_to_vec()).await;
        assert!(r.status.is_none(), "{:?}", r.status);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while seen.0.lock().unwrap().len() < 2 {
            assert!(std::time::Instant::now() < deadline, "not verified: {:?}", seen.0.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut got = seen.0.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, ["shop r.example/app:1", "shop r.example/db:2"], "each running image once, with its namespace");
        plugin.abort();
    });
}

/// A decision slower than three quarters of the request timeout refuses the container in time.
#[test]
fn a_slow_decision_is_refused_within_the_request_timeout() {
    runtime().block_on(async {
        let rt = FakeRuntime::bind();
        let plugin = spawn(settings(&rt), ByName { slow_ms: 3000 });
        let mut conn = rt.accept().await;
        conn.registration(None).await;
        let cfg = api::ConfigureRequest { request_timeout: 400, ..Default::default() };
        conn.call("Configure", cfg.encode_to_vec()).await;
        let started = std::time::Instant::now();
        let r = conn.call("CreateContainer", create("slow/app:1", DIGEST)).await;
        let message = r.status.unwrap().message;
        assert!(message.contains("undecidable: no verdict") && message.contains("within 300 ms"), "{message}");
        assert!(started.elapsed() < Duration::from_millis(2500), "answered before the slow verdict");
        plugin.abort();
    });
}

/// Malformed input from the runtime ends that connection with the reason; the plugin never panics
/// and never answers it with an allow.
#[test]
fn malformed_messages_close_the_connection_with_a_reason() {
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("an oversized mux frame", vec![0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff], "multiplexer frame for connection 1"),
        (
            "an oversized ttrpc message",
            {
                let mut out = Vec::new();
                tollgate_nri::mux::encode(1, &[0, 0x41, 0, 0, 0, 0, 0, 1, 1, 0], &mut out);
                out
            },
            "more than the 4194304 allowed",
        ),
        (
            "a request that does not decode",
            {
                let m = tollgate_nri::ttrpc::Message { stream: 1, kind: 1, flags: 0, body: vec![0x0a, 0x7f, 1] };
                let mut out = Vec::new();
                tollgate_nri::mux::encode(1, &tollgate_nri::ttrpc::encode(&m), &mut out);
                out
            },
            "ttrpc request on stream 1 does not decode",
        ),
    ];
    for (what, bytes, reason) in cases {
        runtime().block_on(async {
            let rt = FakeRuntime::bind();
            let plugin = spawn(settings(&rt), ByName { slow_ms: 0 });
            let mut conn = rt.accept().await;
            conn.registration(None).await;
            conn.write_raw(&bytes).await;
            assert!(conn.closed_by_plugin().await, "{what}: the connection stays open");
            let e = plugin.await.unwrap().unwrap_err();
            assert!(matches!(e, NriError::Mux(_) | NriError::Ttrpc(_)), "{what}: {e:?}");
            assert!(
                e.to_string().starts_with("malformed message from the runtime: ") && e.to_string().contains(reason),
                "{what}: {e}"
            );
        });
    }
}

#[test]
fn a_refused_registration_and_a_silent_runtime_are_errors() {
    runtime().block_on(async {
        let rt = FakeRuntime::bind();
        let plugin = spawn(settings(&rt), ByName { slow_ms: 0 });
        let mut conn = rt.accept().await;
        conn.registration(Some("plugin \"tollgate\" is already registered")).await;
        let e = plugin.await.unwrap().unwrap_err();
        assert_eq!(e.to_string(), "the runtime refused the registration: plugin \"tollgate\" is already registered");

        let mut s = settings(&rt);
        s.registration_timeout = Duration::from_millis(200);
        let plugin = spawn(s, ByName { slow_ms: 0 });
        let _conn = rt.accept().await; // never answers
        let e = plugin.await.unwrap().unwrap_err();
        assert!(matches!(e, NriError::RegistrationTimeout(_)), "{e:?}");
    });
}

/// The runtime goes away and comes back: `run` reconnects and registers again, by itself.
#[test]
fn run_reconnects_after_the_runtime_restarts() {
    runtime().block_on(async {
        let rt = FakeRuntime::bind();
        let stats = Arc::new(Stats::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let runner = tokio::spawn(plugin::run(settings(&rt), Arc::new(ByName { slow_ms: 0 }), stats.clone(), async {
            let _ = stop_rx.await;
        }));
        let mut first = rt.accept().await;
        first.registration(None).await;
        drop(first); // containerd stops
        let mut second = rt.accept().await;
        second.registration(None).await;
        let r = second.call("CreateContainer", create("other/app:1", DIGEST)).await;
        assert_eq!(r.status.unwrap().code, code::PERMISSION_DENIED, "enforcing again");
        // One registered connection ended; the second one is up.
        assert_eq!(stats.disconnects.load(Ordering::Relaxed), 1);
        assert_eq!(stats.registrations.load(Ordering::Relaxed), 2);
        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), runner).await.expect("run stops when told").unwrap();
    });
}
