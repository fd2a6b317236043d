//! `tollgate serve`: the node daemon. It answers verify requests on a unix
//! socket from a verdict cache, deciding misses once (single-flight) with
//! bounded registry concurrency, writes an audit record before every answer,
//! exports metrics, reloads its policy (keeping the last good one), honours a
//! break-glass file, and shuts down gracefully on SIGTERM or SIGINT.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OnceCell, Semaphore};
use tollgate_oci::Digest;
use tollgate_policy::evaluate::Failure;
use tracing::{error, info, warn};

use crate::api::{self, Health, Outcome, PolicyStatus, VerifyRequest, VerifyResponse};
use crate::audit::{AuditLog, AuditRecord, now_rfc3339};
use crate::cache::TtlCache;
use crate::config::NodeConfig;
use crate::engine::{self, EngineError, PolicySnapshot, SignatureCache, Sources, error_chain as chain};
use crate::metrics::{DecisionLabels, Metrics, ReloadLabels};

/// The daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The policy (or its trust material, or the registry settings) could not be loaded.
    #[error("cannot load the policy: {0}")]
    Policy(#[source] Box<EngineError>),
    /// The registry client could not be built.
    #[error("cannot configure the registry client: {0}")]
    Client(#[source] tollgate_registry::RegistryError),
    /// The audit log could not be opened.
    #[error("cannot open the audit log {path}: {source}")]
    Audit {
        /// The log file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The socket (or metrics address) could not be set up.
    #[error("cannot listen on {what}: {message}")]
    Listen {
        /// The socket path or address.
        what: String,
        /// Why, and what to do.
        message: String,
    },
}

/// A cached verdict: compact, since 100k of them must fit in tens of MiB.
#[derive(Debug, Clone)]
struct Verdict {
    outcome: Outcome,
    rule: String,
    reasons: Vec<String>,
    registry_error: bool,
    /// An allow resting on certificates checked at "now" ends at their
    /// earliest `notAfter` (Unix seconds): the cache keeps it no longer.
    valid_until: Option<u64>,
    /// Undecidable because the registry could not be reached for the image's
    /// manifest: the one case `failOpen` may allow. Never set for a timeout or
    /// for signature fetches that failed after the manifest was served.
    unreachable: bool,
}

#[derive(Debug, Default)]
struct ReloadState {
    loaded_at: String,
    error: Option<String>,
    /// The hash of the policy bundle last read whose cluster policy loaded (`policyBundle`).
    bundle: Option<String>,
}

/// SHA-256 of (policy hash, name, digest, descriptor media type): a fixed 32
/// bytes per cached verdict instead of four strings, and no collisions to worry about.
type Key = [u8; 32];

fn cache_key(policy_hash: &str, name: &str, digest: &Digest, media_type: &str) -> Key {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for part in [policy_hash, name, &digest.to_string(), media_type] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

type Inflight = HashMap<Key, Arc<OnceCell<Arc<Verdict>>>>;

/// Which policy is enforced.
#[derive(Debug, Clone)]
enum InForce {
    /// The configured policy.
    Configured(Arc<PolicySnapshot>),
    /// The configured policy does not load; the last good copy does.
    LastGood(Arc<PolicySnapshot>),
    /// No policy loads: every decision is undecidable (break-glass still applies).
    Nothing,
}

impl InForce {
    fn snapshot(&self) -> Option<&Arc<PolicySnapshot>> {
        match self {
            InForce::Configured(s) | InForce::LastGood(s) => Some(s),
            InForce::Nothing => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            InForce::Configured(_) => "configured",
            InForce::LastGood(_) => "last-good",
            InForce::Nothing => "none",
        }
    }

    fn gauge(&self) -> i64 {
        match self {
            InForce::Configured(_) => 1,
            InForce::LastGood(_) => 2,
            InForce::Nothing => 0,
        }
    }
}

/// The daemon's state, shared by every connection.
pub struct Daemon {
    cfg: NodeConfig,
    policy: RwLock<InForce>,
    /// Per-namespace policies (`namespacePolicies`), by namespace: the last version of each that
    /// loaded, or the error of one that never did (its images are then undecidable).
    namespaces: RwLock<BTreeMap<String, Result<Arc<PolicySnapshot>, String>>>,
    reload: Mutex<ReloadState>,
    verdicts: Mutex<TtlCache<Key, Arc<Verdict>>>,
    inflight: Mutex<Inflight>,
    sources: Sources,
    fetches: Semaphore,
    /// Bounds the CPU-bound evaluations on tokio's blocking pool, so the
    /// runtime workers stay free for cached answers and `/healthz`.
    evaluations: Arc<Semaphore>,
    audit: AuditLog,
    metrics: Metrics,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("socket", &self.cfg.socket).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Daemon {
    /// Loads the policy, opens the audit log and builds the registry client.
    /// A configured policy that does not load is not fatal: the last good
    /// copy is enforced instead (`lastGoodPolicy`), or, without one, every
    /// decision is undecidable until a policy loads; both are loud.
    pub fn new(cfg: NodeConfig) -> Result<Daemon, DaemonError> {
        let files = policy_files(&cfg);
        let (in_force, error) = match engine::load_policy(&files.policy) {
            Ok(s) => {
                save_last_good(&cfg, &s);
                (InForce::Configured(Arc::new(s)), None)
            }
            Err(e) => {
                let message = chain(&e);
                match cfg.last_good_policy.as_deref().map(engine::last_good::load) {
                    Some(Ok(s)) => {
                        error!(
                            "the policy {} does not load ({message}); ENFORCING THE LAST GOOD POLICY {} ({})",
                            cfg.policy.display(),
                            s.path.display(),
                            s.hash
                        );
                        (InForce::LastGood(Arc::new(s)), Some(message))
                    }
                    other => {
                        let why = match other {
                            Some(Err(e)) => chain(&e),
                            _ => "no lastGoodPolicy is configured".into(),
                        };
                        error!(
                            "the policy {} does not load ({message}), and there is no last good copy ({why}): \
                             EVERY DECISION IS UNDECIDABLE until a policy loads; break-glass still applies",
                            cfg.policy.display()
                        );
                        (InForce::Nothing, Some(message))
                    }
                }
            }
        };
        let per_request = Duration::from_secs((cfg.deadline_seconds / 3).max(1));
        let client_cfg = engine::client_config(&cfg, per_request).map_err(|e| DaemonError::Policy(Box::new(e)))?;
        let client = tollgate_registry::Client::new(client_cfg).map_err(DaemonError::Client)?;
        let signatures = SignatureCache::new(
            cfg.cache.max_entries.min(10_000),
            cfg.cache.signature_max_bytes,
            Duration::from_secs(cfg.cache.signature_ttl_seconds),
        );
        let audit = AuditLog::open(&cfg.audit_log)
            .map_err(|source| DaemonError::Audit { path: cfg.audit_log.path.clone(), source })?;
        let metrics = Metrics::new();
        metrics.policy_source.set(in_force.gauge());
        let namespaces = RwLock::new(load_namespaces(&files, &BTreeMap::new()));
        let bundle = if error.is_none() { bundle_hash(&files) } else { None };
        metrics.set_bundle(bundle.as_deref());
        Ok(Daemon {
            policy: RwLock::new(in_force),
            namespaces,
            reload: Mutex::new(ReloadState { loaded_at: now_rfc3339(), error, bundle }),
            verdicts: Mutex::new(TtlCache::new(cfg.cache.max_entries)),
            inflight: Mutex::new(HashMap::new()),
            sources: Sources { client, signatures: Some(Arc::new(signatures)) },
            fetches: Semaphore::new(cfg.max_concurrent_fetches),
            evaluations: Arc::new(Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from))),
            audit,
            metrics,
            cfg,
        })
    }

    fn in_force(&self) -> InForce {
        self.policy.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Re-reads the policy. A policy that fails to load is reported (log,
    /// `/healthz`, metrics) and the last good one stays in force.
    pub fn reload(&self) {
        let files = policy_files(&self.cfg);
        if files.namespaces.is_some() {
            let before = self.namespaces.read().unwrap_or_else(PoisonError::into_inner).clone();
            let after = load_namespaces(&files, &before);
            let hashes = |m: &BTreeMap<String, Result<Arc<PolicySnapshot>, String>>| -> Vec<(String, String)> {
                m.iter().map(|(n, r)| (n.clone(), r.as_ref().map_or_else(Clone::clone, |s| s.hash.clone()))).collect()
            };
            if hashes(&before) != hashes(&after) {
                info!(namespaces = after.len(), "namespace policies reloaded");
                *self.namespaces.write().unwrap_or_else(PoisonError::into_inner) = after;
            }
        }
        let current = self.in_force();
        let current_hash = current.snapshot().map(|s| s.hash.clone()).unwrap_or_default();
        let configured = matches!(current, InForce::Configured(_));
        let result = match engine::load_policy(&files.policy) {
            Ok(next) if configured && next.hash == current_hash => {
                let mut r = lock(&self.reload);
                r.error = None;
                r.bundle = bundle_hash(&files);
                self.metrics.set_bundle(r.bundle.as_deref());
                "unchanged"
            }
            Ok(next) => {
                info!(policy = %next.path.display(), hash = %next.hash, "policy reloaded");
                save_last_good(&self.cfg, &next);
                *self.policy.write().unwrap_or_else(PoisonError::into_inner) = InForce::Configured(Arc::new(next));
                self.metrics.policy_source.set(1);
                lock(&self.verdicts).clear();
                self.metrics.cached_verdicts.set(0);
                let mut r = lock(&self.reload);
                r.error = None;
                r.bundle = bundle_hash(&files);
                self.metrics.set_bundle(r.bundle.as_deref());
                r.loaded_at = now_rfc3339();
                "changed"
            }
            Err(e) => {
                let message = chain(&e);
                let mut r = lock(&self.reload);
                if r.error.as_deref() != Some(&message) {
                    match current {
                        InForce::Nothing => error!("policy reload failed, and no policy is in force: {message}"),
                        _ => error!("policy reload failed, keeping the last good policy ({current_hash}): {message}"),
                    }
                }
                r.error = Some(message);
                "failed"
            }
        };
        self.metrics.reloads.get_or_create(&ReloadLabels { result: result.into() }).inc();
    }

    fn break_glass(&self) -> Option<String> {
        let mut f = std::fs::File::open(&self.cfg.break_glass_file).ok()?;
        let mut note = String::new();
        let _ = (&mut f).take(512).read_to_string(&mut note);
        let note = note.lines().next().unwrap_or("").trim().to_owned();
        Some(note)
    }

    /// Answers one verify request: break-glass, cache, or a fresh decision;
    /// then warn-only and fail-open; then the audit record; then the answer.
    pub async fn verify(&self, req: &VerifyRequest) -> Result<VerifyResponse, String> {
        let start = Instant::now();
        let digest = Digest::parse(&req.digest).map_err(|e| format!("invalid digest {:?}: {e}", req.digest))?;
        if req.name.is_empty() || req.name.len() > 4096 {
            return Err("name must be an image reference of 1 to 4096 bytes".into());
        }
        let in_force = self.in_force();
        let (verdict, cached) = match self.break_glass() {
            Some(note) => {
                self.metrics.break_glass.set(1);
                warn!(name = %req.name, digest = %req.digest, "BREAK-GLASS: allowing without verification");
                let why = format!(
                    "BREAK-GLASS: {} exists, allowing without verification{}",
                    self.cfg.break_glass_file.display(),
                    if note.is_empty() {
                        " (no reason given: write who and why into the file, it goes into every audit record)"
                            .to_owned()
                    } else {
                        format!(" ({note})")
                    }
                );
                let v = Verdict {
                    outcome: Outcome::BreakGlass,
                    rule: "break-glass".into(),
                    reasons: vec![why],
                    registry_error: false,
                    valid_until: None,
                    unreachable: false,
                };
                (Arc::new(v), false)
            }
            None => {
                self.metrics.break_glass.set(0);
                let cluster = match in_force.snapshot() {
                    Some(snapshot) => self.cached_or_decided(snapshot, req, &digest).await,
                    None => (Arc::new(self.no_policy()), false),
                };
                self.with_namespace(cluster, req, &digest).await
            }
        };
        let (mut outcome, mut allowed, reasons) = self.finalize(&verdict);
        let record = AuditRecord {
            time: now_rfc3339(),
            name: req.name.clone(),
            digest: req.digest.clone(),
            namespace: req.namespace.clone(),
            decision: outcome.as_str(),
            allowed,
            rule: verdict.rule.clone(),
            reasons,
            cached,
            latency_micros: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
            policy_hash: in_force.snapshot().map(|s| s.hash.clone()).unwrap_or_default(),
            bundle_hash: lock(&self.reload).bundle.clone(),
            decided_by: "daemon",
        };
        let mut reason = record.reasons.first().cloned().unwrap_or_default();
        if let Err(e) = self.audit.write(&record) {
            self.metrics.audit_errors.inc();
            error!("cannot write the audit log {}: {e}", self.audit.path().display());
            // An answer that cannot be recorded is not given, unless the
            // operator broke the glass (`failOpen` is only for unreachable registries).
            if allowed && outcome != Outcome::BreakGlass {
                outcome = Outcome::Undecidable;
                allowed = false;
                reason = format!("cannot write the audit log {}: {e}; failing closed", self.audit.path().display());
            }
        }
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels { outcome: outcome.as_str().into(), rule: verdict.rule.clone() })
            .inc();
        self.metrics.latency.observe(start.elapsed().as_secs_f64());
        Ok(VerifyResponse { allowed, outcome, reason, rule: record.rule, cached, policy_hash: record.policy_hash })
    }

    /// What the namespace's own policy adds: when the cluster policy allows an image for a namespace
    /// that has a policy under `namespacePolicies`, that policy must allow it too. It can only add
    /// requirements: a cluster denial stands whatever the namespace says.
    async fn with_namespace(
        &self,
        cluster: (Arc<Verdict>, bool),
        req: &VerifyRequest,
        digest: &Digest,
    ) -> (Arc<Verdict>, bool) {
        let Some(ns) = req.namespace.as_deref().filter(|n| !n.is_empty()) else { return cluster };
        if matches!(cluster.0.outcome, Outcome::Denied | Outcome::Undecidable) {
            return cluster;
        }
        let entry = self.namespaces.read().unwrap_or_else(PoisonError::into_inner).get(ns).cloned();
        // The namespace's verdict, saying whose policy it is.
        let prefix = |v: &Verdict| {
            let mut v = v.clone();
            v.rule = format!("namespace {ns}: {}", v.rule);
            if let Some(first) = v.reasons.first_mut() {
                *first = format!("the policy of namespace {ns}: {first}");
            }
            v
        };
        match entry {
            None => cluster,
            Some(Err(e)) => (
                Arc::new(Verdict {
                    outcome: Outcome::Undecidable,
                    rule: format!("namespace {ns}"),
                    reasons: vec![format!("the policy of namespace {ns} does not load: {e}")],
                    registry_error: false,
                    valid_until: None,
                    unreachable: false,
                }),
                false,
            ),
            Some(Ok(snapshot)) => {
                let (v, cached) = self.cached_or_decided(&snapshot, req, digest).await;
                match v.outcome {
                    // Allowed by both: the cluster's verdict says why, the namespace's adds its rule.
                    Outcome::Allowed | Outcome::Exempt if cluster.0.outcome != Outcome::Warned => {
                        let mut both = (*cluster.0).clone();
                        both.reasons
                            .push(format!("and namespace {ns}: {}", v.reasons.first().cloned().unwrap_or_default()));
                        both.valid_until = match (cluster.0.valid_until, v.valid_until) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        (Arc::new(both), cluster.1 && cached)
                    }
                    Outcome::Allowed | Outcome::Exempt => cluster,
                    _ => (Arc::new(prefix(&v)), cached),
                }
            }
        }
    }

    /// The verdict while no policy loads: undecidable, with the load error.
    fn no_policy(&self) -> Verdict {
        let error = lock(&self.reload).error.clone().unwrap_or_default();
        Verdict {
            outcome: Outcome::Undecidable,
            rule: "no policy".into(),
            reasons: vec![format!(
                "no policy is in force: {error}; fix {} (or send SIGHUP after fixing it)",
                self.cfg.policy.display()
            )],
            registry_error: false,
            valid_until: None,
            unreachable: false,
        }
    }

    /// Applies `warnOnly` and `failOpen` to a verdict (never cached: they are config, not policy).
    fn finalize(&self, v: &Verdict) -> (Outcome, bool, Vec<String>) {
        let mut reasons = v.reasons.clone();
        if reasons.is_empty() {
            reasons.push(String::new());
        }
        let first = reasons.first().cloned().unwrap_or_default();
        match v.outcome {
            Outcome::Denied | Outcome::Undecidable if self.cfg.warn_only => {
                reasons[0] = format!("warnOnly: allowed; would be {} ({first})", v.outcome.as_str());
                (Outcome::Warned, true, reasons)
            }
            Outcome::Undecidable if self.cfg.fail_open && v.unreachable => {
                reasons[0] = format!("allowed by failOpen although undecidable: {first}");
                (Outcome::Undecidable, true, reasons)
            }
            Outcome::Denied | Outcome::Undecidable => (v.outcome, false, reasons),
            o => (o, true, reasons),
        }
    }

    async fn cached_or_decided(
        &self,
        snapshot: &Arc<PolicySnapshot>,
        req: &VerifyRequest,
        digest: &Digest,
    ) -> (Arc<Verdict>, bool) {
        let key = cache_key(&snapshot.hash, &req.name, digest, req.media_type.as_deref().unwrap_or_default());
        if let Some(v) = lock(&self.verdicts).get(&key, Instant::now()) {
            self.metrics.cache_hits.inc();
            return (v.clone(), true);
        }
        self.metrics.cache_misses.inc();
        // Single-flight: identical concurrent requests wait for one decision.
        let cell = lock(&self.inflight).entry(key).or_default().clone();
        let given = engine::Given { digest, media_type: req.media_type.as_deref() };
        let verdict = cell.get_or_init(|| self.decide(snapshot, &req.name, given)).await.clone();
        let ttl = match verdict.outcome {
            Outcome::Denied => Duration::from_secs(self.cfg.cache.deny_ttl_seconds),
            Outcome::Undecidable | Outcome::BreakGlass => Duration::ZERO,
            Outcome::Allowed | Outcome::Warned | Outcome::Exempt => {
                let left = verdict.valid_until.map_or(u64::MAX, |t| t.saturating_sub(engine::now_unix()));
                Duration::from_secs(self.cfg.cache.allow_ttl_seconds.min(left))
            }
        };
        {
            let mut verdicts = lock(&self.verdicts);
            verdicts.insert(key, verdict.clone(), Instant::now(), ttl);
            self.metrics.cached_verdicts.set(i64::try_from(verdicts.len()).unwrap_or(i64::MAX));
        }
        let mut inflight = lock(&self.inflight);
        if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&key);
        }
        (verdict, false)
    }

    async fn decide(&self, snapshot: &Arc<PolicySnapshot>, name: &str, given: engine::Given<'_>) -> Arc<Verdict> {
        self.metrics.evaluations.inc();
        // A second under the verifier's own deadline, so the verdict reaches it in time.
        let deadline = Duration::from_secs(self.cfg.deadline_seconds.saturating_sub(1).max(1));
        let decided = async {
            let material = {
                let _permit = self.fetches.acquire().await;
                engine::gather(name, Some(given), &snapshot.policy, &self.sources).await?
            };
            // Signature checks are CPU-bound: off the runtime, a bounded number at a time.
            // The deadline above still fires while one waits for a permit or runs.
            let permit = self.evaluations.clone().acquire_owned().await;
            let snapshot = snapshot.clone();
            let now = engine::now_unix();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                material.evaluate(&snapshot.policy, now)
            })
            .await
            .map_err(|e| EngineError::Refused(format!("the evaluation failed: {e}")))
        };
        let verdict = match tokio::time::timeout(deadline, decided).await {
            Err(_) => Verdict {
                outcome: Outcome::Undecidable,
                rule: "error".into(),
                reasons: vec![format!("no decision within {}s", deadline.as_secs())],
                registry_error: true,
                valid_until: None,
                unreachable: false,
            },
            Ok(Err(e)) => Verdict {
                outcome: if e.is_transient() { Outcome::Undecidable } else { Outcome::Denied },
                rule: "error".into(),
                reasons: vec![chain(&e)],
                registry_error: matches!(e, EngineError::Registry { .. } | EngineError::Refused(_)),
                valid_until: None,
                unreachable: e.is_transient(),
            },
            Ok(Ok(d)) => {
                let outcome = match (d.exempt, d.would_deny, d.allowed, d.failure) {
                    (true, ..) => Outcome::Exempt,
                    (_, true, ..) => Outcome::Warned,
                    (_, _, true, _) => Outcome::Allowed,
                    (.., Some(Failure::Transient)) => Outcome::Undecidable,
                    _ => Outcome::Denied,
                };
                let mut reasons = vec![d.reason.clone()];
                reasons.extend(d.requirements.iter().map(|r| format!("{}: {}", r.requirement, r.reason)));
                Verdict {
                    outcome,
                    rule: d.scope.name.clone(),
                    reasons,
                    registry_error: d.failure == Some(Failure::Transient),
                    valid_until: d.valid_until,
                    unreachable: false,
                }
            }
        };
        if verdict.registry_error {
            self.metrics.registry_errors.inc();
        }
        Arc::new(verdict)
    }

    /// The digest `image` names, or the one its tag points to now (fetched from the registry,
    /// digest-checked). What admission decides on, and pins a tag to, for an image given by tag.
    /// An error says whether trying again may succeed (`true`: the registry is unreachable).
    pub async fn resolve(&self, image: &str) -> Result<Digest, (bool, String)> {
        let reference = tollgate_oci::Reference::parse_normalized(image)
            .map_err(|e| (false, format!("invalid image reference {image:?}: {e}")))?
            .with_default_tag();
        if let Some(d) = reference.digest() {
            return Ok(d.clone());
        }
        let _permit = self.fetches.acquire().await.map_err(|e| (true, e.to_string()))?;
        match self.sources.client.get_manifest(&reference).await {
            Ok(m) => Ok(m.digest),
            Err(e) => Err((e.is_transient(), format!("cannot resolve {reference} to a digest: {}", chain(&e)))),
        }
    }

    /// Why the cluster policy in force lets the object `name` of `namespace` carry annotations that
    /// switch node enforcement off (its `enforcementOverrides` entry's reason), or `None`. Namespace
    /// policies never can: one that tries does not load.
    pub fn enforcement_override(&self, namespace: &str, name: &str) -> Option<String> {
        let in_force = self.in_force();
        let snapshot = in_force.snapshot()?;
        let entry = snapshot.policy.policy.enforcement_overrides.iter().find(|o| o.matches(namespace, name))?;
        Some(format!("{}/{}: {}", entry.namespace, entry.name, entry.reason))
    }

    /// The `/healthz` answer.
    pub fn health(&self) -> Health {
        let in_force = self.in_force();
        let reload = lock(&self.reload);
        let break_glass = self.cfg.break_glass_file.exists();
        Health {
            status: if reload.error.is_some() || break_glass { "degraded" } else { "ok" }.into(),
            policy: PolicyStatus {
                path: in_force
                    .snapshot()
                    .map_or(self.cfg.policy.display().to_string(), |s| s.path.display().to_string()),
                hash: in_force.snapshot().map(|s| s.hash.clone()).unwrap_or_default(),
                loaded_at: reload.loaded_at.clone(),
            },
            reload_error: reload.error.clone(),
            break_glass,
            cached_verdicts: lock(&self.verdicts).len(),
            enforcing: in_force.name().into(),
            bundle_hash: reload.bundle.clone(),
        }
    }
}

/// Where one load reads the policy and the namespace parts from: the config's files, or a bundle
/// directory resolved once through kubelet's `..data` link, so that one reload reads one version
/// of a mounted ConfigMap (kubelet swaps that link atomically).
#[derive(Debug, Clone)]
struct PolicyFiles {
    policy: PathBuf,
    /// The directory of namespace parts, and whether it is a bundle (`namespace.NS.yaml` keys)
    /// rather than a `namespacePolicies` directory (`NS.yaml`).
    namespaces: Option<(PathBuf, bool)>,
}

/// The cluster policy file `cfg` enforces: `policy`, or the bundle's `policy.yaml` (through its
/// `..data` link) when `policyBundle` is set. What the verifier's in-process fallback loads too.
pub fn cluster_policy_path(cfg: &NodeConfig) -> PathBuf {
    policy_files(cfg).policy
}

fn policy_files(cfg: &NodeConfig) -> PolicyFiles {
    match &cfg.policy_bundle {
        Some(dir) => {
            // `..data` -> `..2026_12_01_20_00_00.123456789`, relative to the volume's directory.
            let root = std::fs::read_link(dir.join("..data")).map_or_else(|_| dir.clone(), |target| dir.join(target));
            PolicyFiles { policy: root.join(tollgate_policy::bundle::POLICY_KEY), namespaces: Some((root, true)) }
        }
        None => {
            PolicyFiles { policy: cfg.policy.clone(), namespaces: cfg.namespace_policies.clone().map(|d| (d, false)) }
        }
    }
}

/// The hash of the bundle in `files` (policy and namespace parts, as read now), for `/healthz` and
/// audit records; `None` outside bundle mode or when it cannot be read.
fn bundle_hash(files: &PolicyFiles) -> Option<String> {
    let (root, true) = files.namespaces.as_ref()? else { return None };
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == tollgate_policy::bundle::POLICY_KEY || tollgate_policy::bundle::namespace_of(&name).is_some() {
            let bytes = engine::read_limited(&entry.path(), engine::MAX_FILE_BYTES).ok()?;
            parts.push((name, bytes));
        }
    }
    Some(tollgate_policy::bundle::hash(&parts))
}

/// The namespace parts in `files`: under `namespacePolicies` each `NAME.yaml`/`.yml`/`.json` file
/// is namespace NAME's; in a bundle, each `namespace.NAME.yaml`. One that fails to load keeps its
/// version in `previous` if it had one, else records the error.
fn load_namespaces(
    files: &PolicyFiles,
    previous: &BTreeMap<String, Result<Arc<PolicySnapshot>, String>>,
) -> BTreeMap<String, Result<Arc<PolicySnapshot>, String>> {
    let mut out = BTreeMap::new();
    let Some((dir, bundle)) = &files.namespaces else { return out };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            error!("cannot read the namespace policies in {}: {e}; keeping those in force", dir.display());
            return previous.clone();
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        // Kubernetes namespace names, from a ConfigMap mount too (`..data` links are skipped).
        let ns = if *bundle {
            match tollgate_policy::bundle::namespace_of(name) {
                Some(ns) => ns,
                None => continue,
            }
        } else {
            let Some(ns) = [".yaml", ".yml", ".json"].iter().find_map(|ext| name.strip_suffix(ext)) else { continue };
            if !tollgate_policy::bundle::is_namespace(ns) {
                continue;
            }
            ns
        };
        let loaded = match engine::load_policy(&path).and_then(|s| namespace_may(s, &path)) {
            Ok(s) => Ok(Arc::new(s)),
            Err(e) => {
                let message = chain(&e);
                match previous.get(ns) {
                    Some(Ok(old)) => {
                        error!(
                            "the policy of namespace {ns} ({}) does not load, keeping {}: {message}",
                            path.display(),
                            old.hash
                        );
                        Ok(old.clone())
                    }
                    _ => {
                        error!(
                            "the policy of namespace {ns} ({}) does not load, so its images are undecidable: {message}",
                            path.display()
                        );
                        Err(message)
                    }
                }
            }
        };
        out.insert(ns.to_owned(), loaded);
    }
    out
}

/// A namespace's policy can only add requirements: one that lets pods switch node enforcement off
/// does not load.
fn namespace_may(s: PolicySnapshot, path: &std::path::Path) -> Result<PolicySnapshot, engine::EngineError> {
    if s.policy.policy.enforcement_overrides.is_empty() {
        return Ok(s);
    }
    Err(engine::EngineError::Policy(tollgate_policy::PolicyError::Invalid {
        source_name: path.display().to_string(),
        location: "enforcementOverrides".into(),
        message: "only the cluster policy may let pods switch node enforcement off".into(),
    }))
}

/// Keeps a copy of a policy that loaded, when `lastGoodPolicy` names a file in
/// an existing directory (tollgate creates no directories). Failure is a warning.
fn save_last_good(cfg: &NodeConfig, snapshot: &PolicySnapshot) {
    let Some(path) = &cfg.last_good_policy else { return };
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            warn!(
                "not keeping a last good policy copy: {} does not exist (create it, or set lastGoodPolicy)",
                dir.display()
            );
        }
        _ => {
            if let Err(e) = engine::last_good::save(path, snapshot) {
                warn!("cannot keep the last good policy copy {}: {e}", path.display());
            }
        }
    }
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json(status, &api::ErrorResponse { error: message.into() })
}

async fn handle(
    daemon: Arc<Daemon>,
    req: Request<Incoming>,
    metrics_only: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    Ok(match (req.method(), path.as_str()) {
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(Full::new(Bytes::from(daemon.metrics.encode())));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            r
        }
        _ if metrics_only => error(StatusCode::NOT_FOUND, "only /metrics is served here"),
        (&Method::GET, "/healthz") => json(StatusCode::OK, &daemon.health()),
        (&Method::POST, "/v1/verify") => {
            let body = match Limited::new(req.into_body(), api::MAX_REQUEST_BYTES).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, format!("cannot read the request: {e}"))),
            };
            match serde_json::from_slice::<VerifyRequest>(&body) {
                Err(e) => error(StatusCode::BAD_REQUEST, format!("invalid verify request: {e}")),
                Ok(v) => match daemon.verify(&v).await {
                    Ok(answer) => json(StatusCode::OK, &answer),
                    Err(e) => error(StatusCode::BAD_REQUEST, e),
                },
            }
        }
        (_, "/v1/verify" | "/healthz") => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, format!("no such endpoint {path}; try POST /v1/verify or GET /healthz")),
    })
}

/// Binds the socket mode 0600 without a window where it is wider: bind to a
/// temporary name in the same directory, chmod, then rename over the path.
/// A stale socket (nobody listening) is replaced; a live one is an error.
fn bind_socket(path: &Path) -> Result<UnixListener, DaemonError> {
    let err = |message: String| DaemonError::Listen { what: path.display().to_string(), message };
    // A typo must not create directories: the systemd unit's RuntimeDirectory= makes /run/tollgate.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
        return Err(err(format!("its directory {} does not exist; create it, or fix --socket", dir.display())));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(err("another daemon is listening there; stop it first".into()));
            }
        }
        Ok(_) => return Err(err("the path exists and is not a socket; remove it or choose another --socket".into())),
        Err(_) => {}
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(|e| err(e.to_string()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
    Ok(listener)
}

fn serve_conn<I>(
    daemon: &Arc<Daemon>,
    io: I,
    metrics_only: bool,
    graceful: &hyper_util::server::graceful::GracefulShutdown,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let daemon = daemon.clone();
    let svc = hyper::service::service_fn(move |req| handle(daemon.clone(), req, metrics_only));
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(Duration::from_secs(10))
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(io), svc);
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        let _ = conn.await;
    });
}

/// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight
/// requests finish (at most 10 s), and removes the socket. SIGHUP reloads the
/// policy at once; it is also re-read every `reloadSeconds`.
pub async fn run(daemon: Arc<Daemon>) -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let socket = daemon.cfg.socket.clone();
    // Every listen address is checked before the socket is created, and the
    // socket is removed again if start-up fails after it.
    let metrics_listener = match daemon.cfg.metrics_address {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|e| DaemonError::Listen { what: a.to_string(), message: e.to_string() })?,
        ),
        None => None,
    };
    let sig =
        |k: SignalKind| signal(k).map_err(|e| DaemonError::Listen { what: "signals".into(), message: e.to_string() });
    let (mut term, mut int, mut hup) =
        (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?, sig(SignalKind::hangup())?);
    let listener = bind_socket(&socket)?;
    let mut tick = tokio::time::interval(Duration::from_secs(daemon.cfg.reload_seconds));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the policy was just loaded
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let in_force = daemon.in_force();
    let hash = in_force.snapshot().map(|s| s.hash.clone()).unwrap_or_default();
    info!(socket = %socket.display(), policy = %daemon.cfg.policy.display(), enforcing = in_force.name(), hash = %hash, "serving");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => serve_conn(&daemon, stream, false, &graceful),
                Err(e) => { warn!("accept on {}: {e}", socket.display()); tokio::time::sleep(Duration::from_millis(50)).await; }
            },
            accepted = async { match &metrics_listener { Some(l) => l.accept().await, None => std::future::pending().await } } => {
                if let Ok((stream, _)) = accepted { serve_conn(&daemon, stream, true, &graceful) }
            },
            _ = tick.tick() => daemon.reload(),
            _ = hup.recv() => { info!("SIGHUP: reloading the policy"); daemon.reload() },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    info!("shutting down: draining in-flight requests");
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        warn!("in-flight requests did not finish within 10s");
    }
    Ok(())
}
