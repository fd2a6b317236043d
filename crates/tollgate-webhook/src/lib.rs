//! The admission webhook: `POST /validate` and `POST /mutate` for `admission.k8s.io/v1`
//! AdmissionReviews of Pods and of the pod templates of Deployments, StatefulSets, DaemonSets,
//! ReplicaSets, Jobs and CronJobs, over HTTPS.
//!
//! Every image is decided by the node daemon's decision function ([`Daemon::verify`]: the same
//! policy, namespace policies, cache, audit log and metrics as pulls and NRI), with the review's
//! namespace, so an `ImagePolicy` applies there. A tag is first resolved to the digest it names
//! now, and that digest is what is decided on and what `/mutate` pins the tag to
//! (`repo:tag@sha256:…`); an image is pinned only to a digest that was allowed by verification.
//!
//! What cannot be decided within the deadline (a registry that does not answer) is not answered
//! with a verdict: the response is HTTP 503, and the webhook configuration's `failurePolicy`
//! decides. A malformed, oversized or unknown-version review gets HTTP 400 with the reason, never
//! an allow. The TLS certificate and key are re-read when either file changes.

pub mod cert;
pub mod configmap;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tollgate_kube::admission::{self, Answer, ImageAt};
use tollgate_node::api::{Outcome, VerifyRequest};
use tollgate_node::daemon::Daemon;
use tracing::{error, info, warn};

/// What the webhook was asked to do with one review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Admit or deny.
    Validate,
    /// Pin verified tags to their digests; never denies.
    Mutate,
}

/// Settings besides the daemon's.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long one review may take; below the configuration's `timeoutSeconds`.
    pub deadline: Duration,
    /// Admit (and log) objects of kinds the webhook does not handle, instead of denying them.
    pub allow_unhandled_kinds: bool,
    /// How often the policy (and namespace policies) are re-read.
    pub reload: Duration,
}

/// The webhook: the daemon that decides, and its settings.
#[derive(Debug)]
pub struct Webhook {
    daemon: Arc<Daemon>,
    settings: Settings,
}

/// An HTTP answer: status and body.
pub type Reply = (StatusCode, Vec<u8>);

/// One image's fate.
enum Fate {
    /// Allowed; pin to this digest when the reference has none and verification allowed it.
    Allowed { pin: Option<String>, warning: Option<String> },
    /// Denied, with the message line.
    Denied(String),
    /// Not decidable now.
    Undecidable(String),
}

impl Webhook {
    /// A webhook deciding through `daemon`.
    pub fn new(daemon: Arc<Daemon>, settings: Settings) -> Webhook {
        Webhook { daemon, settings }
    }

    /// Answers one review body; the whole of it within the deadline.
    pub async fn review(&self, endpoint: Endpoint, body: &[u8]) -> Reply {
        let request = match admission::parse(body) {
            Ok(r) => r,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n").into_bytes()),
        };
        let answered = tokio::time::timeout(self.settings.deadline, self.answer(endpoint, &request))
            .await
            .unwrap_or_else(|_| Err(format!("no decision within {} ms", self.settings.deadline.as_millis())));
        match answered {
            Ok(answer) => (StatusCode::OK, admission::respond(&request.uid, &answer)),
            Err(why) => {
                warn!(uid = %request.uid, kind = %request.kind, namespace = %request.namespace, "undecidable: {why}");
                (StatusCode::SERVICE_UNAVAILABLE, format!("undecidable: {why}\n").into_bytes())
            }
        }
    }

    /// The answer, or why none can be given now.
    async fn answer(&self, endpoint: Endpoint, r: &admission::Request) -> Result<Answer, String> {
        let Some((spec, metadata)) = admission::pod_paths(&r.group, &r.kind) else {
            let what = if r.group.is_empty() { r.kind.clone() } else { format!("{}/{}", r.group, r.kind) };
            if self.settings.allow_unhandled_kinds || endpoint == Endpoint::Mutate {
                info!(kind = %what, namespace = %r.namespace, "admitted: a kind tollgate does not handle");
                return Ok(Answer { allowed: true, ..Answer::default() });
            }
            return Ok(deny(format!(
                "tollgate does not handle {what} objects; match only Pods and workloads in the webhook \
                 configuration, or start the webhook with --allow-unhandled-kinds"
            )));
        };
        let images = match admission::images(&r.object, spec) {
            Ok(i) => i,
            Err(e) => return Ok(deny(format!("tollgate cannot read the images of this {}: {e}", r.kind))),
        };
        let overrides = admission::enforcement_overrides(&admission::annotations(&r.object, metadata));
        let mut allowed_override = None;
        if endpoint == Endpoint::Validate && !overrides.is_empty() && !admission::is_mirror_pod_by_kubelet(r) {
            // On create, a generated name is in the object by the time validating webhooks run.
            let name = admission::object_name(r);
            let node_agent = tollgate_kube::manifests::is_node_agent_pod(&r.namespace, &name).then(|| {
                format!("{}/{}*: tollgate's node agent", r.namespace, tollgate_kube::manifests::NODE_AGENT_PODS)
            });
            match node_agent.or_else(|| self.daemon.enforcement_override(&r.namespace, &name)) {
                Some(why) => {
                    info!(namespace = %r.namespace, name = %name, annotations = %overrides.join(","),
                          "enforcement override allowed by the cluster policy ({why})");
                    allowed_override = Some(why);
                }
                None => {
                    return Ok(deny(format!(
                        "tollgate: {} {}/{name} carries {}: it would let containers start while node enforcement \
                         is away; only a kubelet's static pods, and pods the cluster policy names under \
                         enforcementOverrides, may",
                        r.kind,
                        r.namespace,
                        overrides.join(", ")
                    )));
                }
            }
        }
        // Concurrently: a pod's images are fetched and verified side by side.
        let fates = futures_util::future::join_all(images.iter().map(|i| self.fate(i, &r.namespace))).await;
        let mut answer = Answer { allowed: true, ..Answer::default() };
        let mut denied = Vec::new();
        for (image, fate) in images.iter().zip(fates) {
            match fate {
                Fate::Undecidable(why) => return Err(format!("{} ({}): {why}", image.image, image.pointer)),
                Fate::Denied(why) => {
                    denied.push(format!("image {} (container {}): {why}", image.image, image.container))
                }
                Fate::Allowed { pin, warning } => {
                    if let Some(w) = warning {
                        answer.warnings.push(format!("tollgate: {} (container {}): {w}", image.image, image.container));
                    }
                    if let Some(pinned) = pin.filter(|_| endpoint == Endpoint::Mutate) {
                        answer.patch.push(json!({"op": "replace", "path": image.pointer, "value": pinned}));
                    }
                }
            }
        }
        if endpoint == Endpoint::Validate && !denied.is_empty() {
            let mut a = deny(format!("tollgate: {}", denied.join("; ")));
            a.audit.push(("decision".into(), "denied".into()));
            return Ok(a);
        }
        if !answer.warnings.is_empty() {
            answer.audit.push(("decision".into(), "warned".into()));
        }
        if let Some(why) = allowed_override {
            answer.audit.push(("enforcement-override".into(), why));
        }
        Ok(answer)
    }

    /// Decides one image for `namespace`.
    async fn fate(&self, image: &ImageAt, namespace: &str) -> Fate {
        let digest = match self.daemon.resolve(&image.image).await {
            Ok(d) => d,
            Err((true, why)) => return Fate::Undecidable(why),
            Err((false, why)) => return Fate::Denied(why),
        };
        let req = VerifyRequest {
            name: image.image.clone(),
            digest: digest.to_string(),
            namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
            media_type: None,
        };
        let v = match self.daemon.verify(&req).await {
            Ok(v) => v,
            Err(e) => return Fate::Denied(e),
        };
        let pinned = (!image.image.contains('@')).then(|| format!("{}@{digest}", image.image));
        match v.outcome {
            Outcome::Allowed | Outcome::Exempt => Fate::Allowed { pin: pinned, warning: None },
            Outcome::Warned => Fate::Allowed { pin: None, warning: Some(v.reason) },
            Outcome::BreakGlass => Fate::Allowed { pin: None, warning: Some(v.reason) },
            Outcome::Undecidable if v.allowed => Fate::Allowed { pin: None, warning: Some(v.reason) },
            Outcome::Undecidable => Fate::Undecidable(v.reason),
            Outcome::Denied => Fate::Denied(v.reason),
        }
    }
}

fn deny(message: String) -> Answer {
    Answer { allowed: false, message, ..Answer::default() }
}

/// Why the webhook cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The certificate or key does not load.
    #[error("TLS: {0}")]
    Tls(String),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
}

/// The serving certificate and key files; re-read when either changes.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Largest certificate or key file read.
const MAX_PEM_BYTES: u64 = 1 << 20;

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!("{} is larger than {MAX_PEM_BYTES} bytes", path.display()));
    }
    Ok(bytes)
}

/// The modification times of the certificate and key files.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

impl TlsFiles {
    fn stamp(&self) -> Stamp {
        let m = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (m(&self.cert), m(&self.key))
    }

    /// A rustls server config from the two files (TLS 1.2 and 1.3, ring, HTTP/1.1).
    pub fn load(&self) -> Result<Arc<rustls::ServerConfig>, WebhookError> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let tls = |m: String| WebhookError::Tls(m);
        let cert_pem = read_pem(&self.cert).map_err(tls)?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| tls(format!("{}: {e}", self.cert.display())))?;
        if certs.is_empty() {
            return Err(tls(format!("{} holds no PEM certificate", self.cert.display())));
        }
        let key_pem = read_pem(&self.key).map_err(tls)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| tls(format!("{}: {e}", self.key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls(format!("{} and {}: {e}", self.cert.display(), self.key.display())))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// The TLS config in force, re-read when the files change; a change that does not load keeps the
/// old one, loudly.
struct Certs {
    files: TlsFiles,
    current: RwLock<(Arc<rustls::ServerConfig>, Stamp)>,
}

impl Certs {
    fn config(&self) -> Arc<rustls::ServerConfig> {
        let stamp = self.files.stamp();
        {
            let cur = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            if cur.1 == stamp {
                return cur.0.clone();
            }
        }
        let mut cur = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.files.load() {
            Ok(cfg) => {
                info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                *cur = (cfg, stamp);
            }
            Err(e) => {
                error!("the changed TLS certificate or key does not load ({e}); serving the previous one");
                cur.1 = stamp;
            }
        }
        cur.0.clone()
    }
}

/// Serves the webhook on `addr` until SIGTERM or SIGINT.
pub async fn run(webhook: Arc<Webhook>, addr: SocketAddr, files: TlsFiles) -> Result<(), WebhookError> {
    use tokio::signal::unix::{SignalKind, signal};
    let first = files.load()?;
    let certs = Arc::new(Certs { current: RwLock::new((first, files.stamp())), files });
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| WebhookError::Listen { addr, message: e.to_string() })?;
    let sig = |k: SignalKind| signal(k).map_err(|e| WebhookError::Listen { addr, message: format!("signals: {e}") });
    let (mut term, mut int) = (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut tick = tokio::time::interval(webhook.settings.reload.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the policy was just loaded
    info!(%addr, "admission webhook serving /validate and /mutate");
    loop {
        tokio::select! {
            _ = tick.tick() => webhook.daemon.reload(),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(certs.config());
                    let webhook = webhook.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        // A client that does not finish its handshake in 10 s is dropped.
                        let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => { warn!("TLS handshake: {e}"); return; }
                            Err(_) => { warn!("TLS handshake timed out"); return; }
                        };
                        let service = hyper::service::service_fn(move |req| {
                            let webhook = webhook.clone();
                            async move { Ok::<_, std::convert::Infallible>(handle(&webhook, req).await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(Duration::from_secs(10))
                            .serve_connection(TokioIo::new(tls), service);
                        if let Err(e) = watcher.watch(conn).await {
                            warn!("connection: {e}");
                        }
                    });
                }
                Err(e) => { warn!("accept: {e}"); tokio::time::sleep(Duration::from_millis(50)).await; }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    info!("shutting down: draining in-flight reviews");
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        warn!("in-flight reviews did not finish within 10s");
    }
    Ok(())
}

async fn handle(webhook: &Webhook, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |(status, body): Reply, json: bool| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        let ct = if json { "application/json" } else { "text/plain; charset=utf-8" };
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(ct));
        r
    };
    let endpoint = match (req.method(), req.uri().path()) {
        (&Method::POST, "/validate") => Endpoint::Validate,
        (&Method::POST, "/mutate") => Endpoint::Mutate,
        (&Method::GET, "/healthz") => return reply((StatusCode::OK, b"ok\n".to_vec()), false),
        _ => return reply((StatusCode::NOT_FOUND, b"POST /validate or /mutate\n".to_vec()), false),
    };
    let limit = admission::MAX_REVIEW_BYTES;
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let why = format!("cannot read the review (at most {limit} bytes): {e}\n");
            return reply((StatusCode::BAD_REQUEST, why.into_bytes()), false);
        }
    };
    let (status, body) = webhook.review(endpoint, &body).await;
    let json = status == StatusCode::OK;
    reply((status, body), json)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::disallowed_methods)]
mod tests {
    use super::*;

    /// A webhook over a daemon whose policy is `policy` (JSON), with its files in `dir`.
    fn webhook(dir: &std::path::Path, policy: &str, allow_unhandled_kinds: bool) -> Webhook {
        std::fs::write(dir.join("policy.json"), policy).unwrap();
        let cfg = tollgate_node::config::NodeConfig {
            policy: dir.join("policy.json"),
            socket: dir.join("tollgate.sock"),
            audit_log: tollgate_node::config::AuditConfig {
                path: dir.join("audit.log"),
                ..tollgate_node::config::AuditConfig::default()
            },
            break_glass_file: dir.join("break-glass"),
            last_good_policy: None,
            insecure_registries: vec!["127.0.0.1:1".into()],
            deadline_seconds: 3,
            ..tollgate_node::config::NodeConfig::default()
        };
        let daemon = Arc::new(Daemon::new(cfg).unwrap());
        let settings =
            Settings { deadline: Duration::from_secs(3), allow_unhandled_kinds, reload: Duration::from_secs(60) };
        Webhook::new(daemon, settings)
    }

    fn review(kind: (&str, &str), object: serde_json::Value) -> Vec<u8> {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u-7", "kind": {"group": kind.0, "version": "v1", "kind": kind.1}, "namespace": "shop",
            "operation": "CREATE", "userInfo": {"username": "alice"}, "object": object}})
        .to_string()
        .into_bytes()
    }

    fn pod(image: &str) -> serde_json::Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    fn response(reply: &Reply) -> serde_json::Value {
        assert_eq!(reply.0, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.1));
        serde_json::from_slice::<serde_json::Value>(&reply.1).unwrap()["response"].clone()
    }

    #[tokio::test]
    async fn bad_reviews_are_http_400_with_the_reason_never_an_allow() {
        let dir = tempfile::tempdir().unwrap();
        let w = webhook(dir.path(), r#"{"default":[{"type":"insecureAcceptAnything"}]}"#, false);
        for (body, why) in [
            (b"{".to_vec(), "not a JSON AdmissionReview"),
            (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#.to_vec(), "v1beta1"),
        ] {
            let (status, text) = w.review(Endpoint::Validate, &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(String::from_utf8_lossy(&text).contains(why), "{}", String::from_utf8_lossy(&text));
        }
    }

    #[tokio::test]
    async fn denials_name_the_image_and_the_reason_and_unhandled_kinds_are_denied_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let w = webhook(dir.path(), r#"{"default":[{"type":"reject"}]}"#, false);
        let image = "r.example/app@sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97";
        let r = response(&w.review(Endpoint::Validate, &review(("", "Pod"), pod(image))).await);
        assert_eq!((r["uid"].as_str(), r["allowed"].as_bool()), (Some("u-7"), Some(false)));
        let message = r["status"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("tollgate: image {image} (container c): denied by default")), "{message}");
        // The mutating endpoint never denies, and pins nothing it did not allow.
        let r = response(&w.review(Endpoint::Mutate, &review(("", "Pod"), pod(image))).await);
        assert_eq!((r["allowed"].as_bool(), r.get("patch")), (Some(true), None));

        let config_map = review(("", "ConfigMap"), json!({"data": {}}));
        let r = response(&w.review(Endpoint::Validate, &config_map).await);
        assert_eq!(r["allowed"], false);
        assert!(r["status"]["message"].as_str().unwrap().contains("does not handle ConfigMap objects"), "{r}");
        let lenient = webhook(dir.path(), r#"{"default":[{"type":"reject"}]}"#, true);
        assert_eq!(response(&lenient.review(Endpoint::Validate, &config_map).await)["allowed"], true);
    }

    #[tokio::test]
    async fn a_registry_that_cannot_be_reached_is_undecidable_and_leaves_it_to_the_failure_policy() {
        let dir = tempfile::tempdir().unwrap();
        let w = webhook(dir.path(), r#"{"default":[{"type":"insecureAcceptAnything"}]}"#, false);
        let (status, text) = w.review(Endpoint::Validate, &review(("", "Pod"), pod("127.0.0.1:1/team/app:v1"))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{}", String::from_utf8_lossy(&text));
        assert!(String::from_utf8_lossy(&text).starts_with("undecidable: 127.0.0.1:1/team/app:v1"));
    }

    #[tokio::test]
    async fn the_nri_toleration_is_refused_except_on_a_kubelets_mirror_pods() {
        let dir = tempfile::tempdir().unwrap();
        let w = webhook(dir.path(), r#"{"default":[{"type":"insecureAcceptAnything"}]}"#, false);
        let image = "r.example/app@sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97";
        let mut p = pod(image);
        p["metadata"]["annotations"] =
            json!({"nri.tollgate.dev/tolerate-missing-plugins": "true", "kubernetes.io/config.mirror": "x"});
        let r = response(&w.review(Endpoint::Validate, &review(("", "Pod"), p.clone())).await);
        assert_eq!(r["allowed"], false, "alice is not a kubelet, whatever the annotations say");
        let mut by_kubelet: serde_json::Value = serde_json::from_slice(&review(("", "Pod"), p)).unwrap();
        by_kubelet["request"]["userInfo"]["username"] = json!("system:node:cp-1");
        let r = response(&w.review(Endpoint::Validate, by_kubelet.to_string().as_bytes()).await);
        assert_eq!(r["allowed"], true, "{r}");
    }

    /// The cluster policy may name pods that carry the overrides; every other pod is still refused.
    #[tokio::test]
    async fn the_cluster_policy_may_allow_enforcement_overrides_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let policy = "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\n\
            enforcementOverrides: [{namespace: shop, name: agent-*, reason: starts before the NRI plugin}]\n\
            default: [{type: insecureAcceptAnything}]\n";
        let w = webhook(dir.path(), policy, false);
        let image = "r.example/app@sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97";
        let annotated = |name: &str| {
            let mut p = pod(image);
            p["metadata"] = json!({"name": name, "annotations": {
                "nri.tollgate.dev/tolerate-missing-plugins": "true",
                "required-plugins.noderesource.dev/container.c": "[]"}});
            p
        };
        let r = response(&w.review(Endpoint::Validate, &review(("", "Pod"), annotated("agent-7f9c"))).await);
        assert_eq!(r["allowed"], true, "{r}");
        assert_eq!(r["auditAnnotations"]["enforcement-override"], "shop/agent-*: starts before the NRI plugin", "{r}");
        let r = response(&w.review(Endpoint::Validate, &review(("", "Pod"), annotated("web-1"))).await);
        assert_eq!(r["allowed"], false, "{r}");
        let message = r["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("Pod shop/web-1 carries nri.tollgate.dev/tolerate-missing-plugins, required-plugins")
                && message.contains("enforcementOverrides"),
            "{message}"
        );
        let mut elsewhere: serde_json::Value =
            serde_json::from_slice(&review(("", "Pod"), annotated("agent-7f9c"))).unwrap();
        elsewhere["request"]["namespace"] = json!("other");
        let r = response(&w.review(Endpoint::Validate, elsewhere.to_string().as_bytes()).await);
        assert_eq!(r["allowed"], false, "the entry names namespace shop only: {r}");
        // The node agent's pods carry the toleration themselves (the NRI plugin runs in them).
        for (name, allowed) in [("tollgate-node-x7k2p", true), ("tollgate-nodes", false)] {
            let mut agent: serde_json::Value = serde_json::from_slice(&review(("", "Pod"), annotated(name))).unwrap();
            agent["request"]["namespace"] = json!("tollgate-system");
            let r = response(&w.review(Endpoint::Validate, agent.to_string().as_bytes()).await);
            assert_eq!(r["allowed"], allowed, "{name}: {r}");
        }
    }

    /// A namespace's policy cannot let pods switch enforcement off: one that tries does not load, so
    /// the namespace's images are undecidable until it is fixed.
    #[tokio::test]
    async fn a_namespace_policy_that_allows_enforcement_overrides_does_not_load() {
        let dir = tempfile::tempdir().unwrap();
        let namespaces = dir.path().join("namespaces");
        std::fs::create_dir(&namespaces).unwrap();
        std::fs::write(
            namespaces.join("shop.yaml"),
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\n\
             enforcementOverrides: [{namespace: shop, name: p, reason: mine}]\ndefault: [{type: insecureAcceptAnything}]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("policy.json"), r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
        let cfg = tollgate_node::config::NodeConfig {
            policy: dir.path().join("policy.json"),
            namespace_policies: Some(namespaces),
            socket: dir.path().join("tollgate.sock"),
            audit_log: tollgate_node::config::AuditConfig {
                path: dir.path().join("audit.log"),
                ..tollgate_node::config::AuditConfig::default()
            },
            break_glass_file: dir.path().join("break-glass"),
            last_good_policy: None,
            ..tollgate_node::config::NodeConfig::default()
        };
        let daemon = Arc::new(Daemon::new(cfg).unwrap());
        assert_eq!(daemon.enforcement_override("shop", "p"), None);
        let settings = Settings {
            deadline: Duration::from_secs(3),
            allow_unhandled_kinds: false,
            reload: Duration::from_secs(60),
        };
        let w = Webhook::new(daemon, settings);
        let image = "r.example/app@sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97";
        let (status, text) = w.review(Endpoint::Validate, &review(("", "Pod"), pod(image))).await;
        let text = String::from_utf8_lossy(&text);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
        assert!(text.contains("only the cluster policy may let pods switch node enforcement off"), "{text}");
    }
}
