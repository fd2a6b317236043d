//! `tollgate controller`: watches the `tollgate.dev` objects (ClusterImagePolicy, ImagePolicy,
//! TrustRoot) through kube's reflectors, reads the Secret and ConfigMap keys they name, compiles
//! everything into one content-addressed policy bundle (`tollgate_kube::compile`, pure), writes it
//! into the ConfigMap the nodes and the webhook mount (`tollgate-system/tollgate-policy`, its hash
//! as the annotation `tollgate.dev/bundle-hash`), and sets each object's status.
//!
//! The bundle is published whole or not at all: when any object does not compile, that object is
//! `Invalid` with the reason, the others say they wait for it, and the ConfigMap keeps the last good
//! bundle (leaving one object out could loosen what the nodes enforce). Referenced Secrets and
//! ConfigMaps are read with `get` on every reconcile (a change to the objects, or every resync
//! period), so a deleted or changed key is reported within one period. One replica writes at a
//! time: the holder of a Lease ([`lease`]).

#![forbid(unsafe_code)]

pub mod lease;
pub mod status;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource, ResourceExt as _};
use tokio::sync::Notify;
use tollgate_kube::compile::{self, CompileError, KeyRef, Materials, RefKind};
use tollgate_kube::crd::{ClusterImagePolicy, ImagePolicy, PolicyStatus, TrustRoot};
use tracing::{info, warn};

/// The field manager and the name the controller's writes carry.
pub const MANAGER: &str = "tollgate-controller";
/// The ClusterRole a namespace binds (RoleBinding to the controller's ServiceAccount) to let its
/// ImagePolicies take keys from its Secrets.
pub const SECRETS_ROLE: &str = "tollgate-controller-secrets";

/// Where the controller writes, and how often it looks again.
#[derive(Debug, Clone)]
pub struct Settings {
    /// tollgate's namespace: the bundle ConfigMap and the Lease live there.
    pub namespace: String,
    /// The bundle ConfigMap's name.
    pub configmap: String,
    /// The Lease's name.
    pub lease: String,
    /// This replica's name in the Lease (its pod name).
    pub identity: String,
    /// How long a leader that stopped renewing keeps the Lease.
    pub lease_duration: Duration,
    /// How often everything is compiled again without a change to the objects (Secrets and
    /// ConfigMaps are not watched).
    pub resync: Duration,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The kubeconfig (or the in-cluster config) does not load.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// Its path, or `in-cluster`.
        path: String,
        /// kube's message.
        message: String,
    },
    /// No kubeconfig was given, and this is not a pod with a ServiceAccount.
    #[error("cannot use the pod's ServiceAccount ({0}); outside a pod, give --kubeconfig FILE")]
    InCluster(String),
    /// The Lease was lost: another replica may write now, so this one stops.
    #[error("lost the Lease {what} ({why}); stopping so that only one replica writes")]
    Lost {
        /// `NAMESPACE/NAME`.
        what: String,
        /// What happened.
        why: String,
    },
    /// Signals could not be set up.
    #[error("signals: {0}")]
    Signals(String),
}

/// A client for the API server of `kubeconfig` (its current context), or the in-cluster one (the
/// pod's ServiceAccount) without it.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ControllerError> {
    let config = match kubeconfig {
        Some(path) => {
            let bad = |message: String| ControllerError::Kubeconfig { path: path.display().to_string(), message };
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?
        }
        None => kube::Config::incluster().map_err(|e| ControllerError::InCluster(e.to_string()))?,
    };
    let mut config = config;
    config.connect_timeout = Some(Duration::from_secs(10));
    Client::try_from(config).map_err(|e| ControllerError::Kubeconfig {
        path: kubeconfig.map_or_else(|| "in-cluster".into(), |p| p.display().to_string()),
        message: e.to_string(),
    })
}

/// Feeds `writer` from a watch of `api`, with kube's backoff on errors, and pokes `changed` on
/// every event. Runs until the task is aborted.
async fn reflect<K>(api: Api<K>, writer: reflector::store::Writer<K>, changed: Arc<Notify>, kind: &'static str)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(_) => changed.notify_one(),
            Err(e) => warn!(kind, "watch: {e}; retrying"),
        }
    }
}

/// The objects as the stores hold them now, sorted by name.
struct Objects {
    cluster: Vec<ClusterImagePolicy>,
    namespaced: Vec<ImagePolicy>,
    roots: Vec<TrustRoot>,
}

fn snapshot<K: Clone + Resource<DynamicType = ()>>(store: &Store<K>) -> Vec<K> {
    let mut v: Vec<K> = store.state().iter().map(|k| (**k).clone()).collect();
    v.sort_by_key(|k| (k.meta().namespace.clone(), k.meta().name.clone()));
    v
}

/// Reads one referenced key. The message of a failure says what to do and never holds a value.
async fn read_key(client: &Client, r: &KeyRef) -> Result<String, String> {
    let forbidden = |kind: &str| match r.kind {
        RefKind::Secret if r.namespace != "tollgate-system" => format!(
            "tollgate's controller may not read {kind} {}/{}: bind ClusterRole {SECRETS_ROLE} to ServiceAccount \
             tollgate-system/{MANAGER} with a RoleBinding in namespace {}",
            r.namespace, r.name, r.namespace
        ),
        _ => format!(
            "tollgate's controller may not read {kind} {}/{}: check its RBAC (tollgate manifests)",
            r.namespace, r.name
        ),
    };
    let api_error = |kind: &str, e: kube::Error| match e {
        kube::Error::Api(s) if s.code == 403 => forbidden(kind),
        other => format!("cannot read {kind} {}/{}: {other}", r.namespace, r.name),
    };
    let utf8 = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|_| format!("{r} is not UTF-8 text"));
    match r.kind {
        RefKind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), &r.namespace);
            match api.get_opt(&r.name).await.map_err(|e| api_error("Secret", e))? {
                None => Err(format!("{r}: the Secret does not exist")),
                Some(s) => match s.data.and_then(|mut d| d.remove(&r.key)) {
                    Some(bytes) => utf8(bytes.0),
                    None => Err(format!("{r}: the Secret has no such key")),
                },
            }
        }
        RefKind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &r.namespace);
            match api.get_opt(&r.name).await.map_err(|e| api_error("ConfigMap", e))? {
                None => Err(format!("{r}: the ConfigMap does not exist")),
                Some(c) => {
                    match (c.data.and_then(|mut d| d.remove(&r.key)), c.binary_data.and_then(|mut d| d.remove(&r.key)))
                    {
                        (Some(text), _) => Ok(text),
                        (None, Some(bytes)) => utf8(bytes.0),
                        (None, None) => Err(format!("{r}: the ConfigMap has no such key")),
                    }
                }
            }
        }
    }
}

/// The hash the bundle ConfigMap carries now, if it exists.
fn hash_of(cm: &ConfigMap) -> Option<String> {
    cm.annotations().get(tollgate_policy::bundle::HASH_ANNOTATION).cloned()
}

/// Writes the bundle into the ConfigMap, replacing all its data (a stale namespace part must not
/// survive), unless it already holds this hash. Conditional on the version read.
async fn publish(
    api: &Api<ConfigMap>,
    s: &Settings,
    current: Option<ConfigMap>,
    files: Vec<(String, Vec<u8>)>,
    hash: &str,
) -> Result<bool, String> {
    if current.as_ref().and_then(hash_of).as_deref() == Some(hash) {
        return Ok(false);
    }
    let data: BTreeMap<String, String> =
        files.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect();
    let mut cm = current.unwrap_or_else(|| ConfigMap {
        metadata: ObjectMeta {
            name: Some(s.configmap.clone()),
            namespace: Some(s.namespace.clone()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    });
    cm.metadata.labels.get_or_insert_with(BTreeMap::new).insert("app.kubernetes.io/part-of".into(), "tollgate".into());
    cm.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(tollgate_policy::bundle::HASH_ANNOTATION.into(), hash.to_owned());
    cm.data = Some(data);
    cm.binary_data = None;
    let pp = PostParams { field_manager: Some(MANAGER.into()), ..PostParams::default() };
    let written = if cm.metadata.resource_version.is_some() {
        api.replace(&s.configmap, &pp, &cm).await
    } else {
        api.create(&pp, &cm).await
    };
    written.map(|_| true).map_err(|e| format!("cannot write ConfigMap {}/{}: {e}", s.namespace, s.configmap))
}

/// `KIND/NAME`, or `KIND/NAMESPACE/NAME`: how the compiler names objects in its errors.
fn object_id<K: Resource<DynamicType = ()>>(k: &K) -> String {
    let name = k.meta().name.as_deref().unwrap_or_default();
    match k.meta().namespace.as_deref() {
        Some(ns) => format!("{}/{ns}/{name}", K::kind(&())),
        None => format!("{}/{name}", K::kind(&())),
    }
}

/// The three kinds, each with a [`PolicyStatus`].
trait Reported: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug {
    fn status(&self) -> Option<&PolicyStatus>;
}

impl Reported for ClusterImagePolicy {
    fn status(&self) -> Option<&PolicyStatus> {
        self.status.as_ref()
    }
}

impl Reported for ImagePolicy {
    fn status(&self) -> Option<&PolicyStatus> {
        self.status.as_ref()
    }
}

impl Reported for TrustRoot {
    fn status(&self) -> Option<&PolicyStatus> {
        self.status.as_ref()
    }
}

/// Writes the status `desired` says each of `objects` should have, where it does not say so yet,
/// through the API `api` gives for it; failures are added to `failed`.
async fn report<K: Reported>(
    objects: &[K],
    api: impl Fn(&K) -> Api<K>,
    desired: &BTreeMap<String, status::Desired>,
    now: &Time,
    failed: &mut Vec<String>,
) {
    for k in objects {
        let id = object_id(k);
        let meta = k.meta();
        let Some(next) = desired.get(&id).and_then(|d| status::next(d, meta.generation, k.status(), now.clone()))
        else {
            continue;
        };
        if let Err(e) = set_status(api(k), meta.name.as_deref().unwrap_or_default(), &next).await {
            failed.push(format!("{id}: {e}"));
        }
    }
}

/// Patches one object's status subresource.
async fn set_status<K>(api: Api<K>, name: &str, status: &PolicyStatus) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut body = serde_json::to_value(status).unwrap_or_default();
    // A merge patch keeps what it does not name: say explicitly that there is no hash.
    if status.bundle_hash.is_none() {
        body["bundleHash"] = serde_json::Value::Null;
    }
    let patch = serde_json::json!({"status": body});
    let pp = PatchParams { field_manager: Some(MANAGER.into()), ..PatchParams::default() };
    api.patch_status(name, &pp, &Patch::Merge(&patch)).await.map(|_| ())
}

/// One pass: read the keys, compile, publish, report. An error reading the ConfigMap leaves
/// everything as it is until the next pass. Compile errors are logged when they differ from
/// `last` (the previous pass's), not on every resync.
async fn reconcile(client: &Client, s: &Settings, o: &Objects, last: &mut Vec<CompileError>) -> Result<(), String> {
    let refs = compile::references(&o.cluster, &o.namespaced, &o.roots);
    let mut materials = Materials::new();
    for r in refs {
        let value = read_key(client, &r).await;
        materials.insert(r, value);
    }
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &s.namespace);
    let current = cm_api
        .get_opt(&s.configmap)
        .await
        .map_err(|e| format!("cannot read ConfigMap {}/{}: {e}", s.namespace, s.configmap))?;
    let before = current.as_ref().and_then(hash_of);
    let compiled: Result<String, Vec<CompileError>> = match compile::compile_with(
        &o.cluster,
        &o.namespaced,
        &o.roots,
        &materials,
    ) {
        Ok(c) => {
            let hash = c.hash();
            if publish(&cm_api, s, current, c.files(), &hash).await? {
                info!(bundle = %hash, previous = before.as_deref().unwrap_or("none"), "published the policy bundle");
            }
            Ok(hash)
        }
        Err(errors) => {
            if *last != errors {
                for e in &errors {
                    warn!(object = %e.object, "does not compile: {}; keeping the last good bundle", e.message);
                }
            }
            Err(errors)
        }
    };
    *last = compiled.as_ref().err().cloned().unwrap_or_default();
    let ids: Vec<String> = o
        .cluster
        .iter()
        .map(object_id)
        .chain(o.namespaced.iter().map(object_id))
        .chain(o.roots.iter().map(object_id))
        .collect();
    let desired = status::desired(&ids, &compiled, before.as_deref());
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut failed = Vec::new();
    report(&o.cluster, |_| Api::all(client.clone()), &desired, &now, &mut failed).await;
    report(
        &o.namespaced,
        |p| Api::namespaced(client.clone(), &p.namespace().unwrap_or_default()),
        &desired,
        &now,
        &mut failed,
    )
    .await;
    report(&o.roots, |_| Api::all(client.clone()), &desired, &now, &mut failed).await;
    if failed.is_empty() { Ok(()) } else { Err(format!("cannot set the status of {}", failed.join("; "))) }
}

/// Runs until SIGTERM or SIGINT: waits to hold the Lease, then watches, compiles and reports, and
/// gives the Lease up on the way out. Losing the Lease is an error (the process should restart).
pub async fn run(client: Client, s: Settings) -> Result<(), ControllerError> {
    use tokio::signal::unix::{SignalKind, signal};
    let sig = |k: SignalKind| signal(k).map_err(|e| ControllerError::Signals(e.to_string()));
    let (mut term, mut int) = (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?);
    let elector = lease::Elector::new(client.clone(), &s.namespace, &s.lease, &s.identity, s.lease_duration);
    let what = format!("{}/{}", s.namespace, s.lease);
    let retry = (s.lease_duration / 3).max(Duration::from_secs(1));
    loop {
        match elector.try_hold().await {
            Ok(None) => break,
            Ok(Some(holder)) => info!(lease = %what, "{holder} leads; standing by"),
            Err(e) => warn!("{e}"),
        }
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = tokio::time::sleep(retry) => {}
        }
    }
    info!(lease = %what, identity = %s.identity, "leading: watching ClusterImagePolicies, ImagePolicies and TrustRoots");
    let changed = Arc::new(Notify::new());
    let (cips, w1) = reflector::store::<ClusterImagePolicy>();
    let (ips, w2) = reflector::store::<ImagePolicy>();
    let (trs, w3) = reflector::store::<TrustRoot>();
    let tasks = [
        tokio::spawn(reflect(Api::all(client.clone()), w1, changed.clone(), "ClusterImagePolicy")),
        tokio::spawn(reflect(Api::all(client.clone()), w2, changed.clone(), "ImagePolicy")),
        tokio::spawn(reflect(Api::all(client.clone()), w3, changed.clone(), "TrustRoot")),
    ];
    let stores = Stores { cluster: cips, namespaced: ips, roots: trs };
    let signals = Signals { term, int };
    let result = lead(&client, &s, &elector, &stores, &changed, signals).await;
    for t in tasks {
        t.abort();
    }
    if let Err(e) = elector.release().await {
        warn!("giving up the Lease: {e}");
    }
    result
}

/// The reflectors' caches.
struct Stores {
    cluster: Store<ClusterImagePolicy>,
    namespaced: Store<ImagePolicy>,
    roots: Store<TrustRoot>,
}

/// SIGTERM and SIGINT.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

/// While leading: compile on every change and every resync, renew the Lease, stop on a signal.
async fn lead(
    client: &Client,
    s: &Settings,
    elector: &lease::Elector,
    stores: &Stores,
    changed: &Notify,
    mut signals: Signals,
) -> Result<(), ControllerError> {
    let what = format!("{}/{}", s.namespace, s.lease);
    let mut renew = tokio::time::interval((s.lease_duration / 3).max(Duration::from_secs(1)));
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held_at = tokio::time::Instant::now();
    let mut ready = false;
    let mut due = true;
    let mut last_errors = Vec::new();
    loop {
        if !ready {
            ready = tokio::time::timeout(Duration::from_millis(100), async {
                let _ = stores.cluster.wait_until_ready().await;
                let _ = stores.namespaced.wait_until_ready().await;
                let _ = stores.roots.wait_until_ready().await;
            })
            .await
            .is_ok();
        }
        if ready && due {
            let objects = Objects {
                cluster: snapshot(&stores.cluster),
                namespaced: snapshot(&stores.namespaced),
                roots: snapshot(&stores.roots),
            };
            if let Err(e) = reconcile(client, s, &objects, &mut last_errors).await {
                warn!("{e}; trying again in {} s", s.resync.as_secs());
            }
            due = false;
        }
        tokio::select! {
            _ = signals.term.recv() => return Ok(()),
            _ = signals.int.recv() => return Ok(()),
            _ = changed.notified() => {
                // Let a burst of events (the initial list, an apply of many objects) settle.
                tokio::time::sleep(Duration::from_millis(200)).await;
                due = true;
            }
            _ = tokio::time::sleep(s.resync) => due = true,
            _ = tokio::time::sleep(Duration::from_millis(250)), if !ready => {}
            _ = renew.tick() => match elector.try_hold().await {
                Ok(None) => held_at = tokio::time::Instant::now(),
                Ok(Some(holder)) => return Err(ControllerError::Lost { what, why: format!("{holder} holds it") }),
                Err(e) if held_at.elapsed() >= elector.duration() => {
                    let why = format!("not renewed for {} s: {e}", elector.duration().as_secs());
                    return Err(ControllerError::Lost { what, why });
                }
                Err(e) => warn!("renewing: {e}"),
            },
        }
    }
}
