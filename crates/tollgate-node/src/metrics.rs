//! The daemon's Prometheus metrics (OpenMetrics text, `prometheus-client`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a decision: its outcome and the rule (policy scope) that decided.
/// Both are bounded: outcomes are a fixed set, rules come from the policy.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allowed`, `denied`, `undecidable`, `warned`, `exempt`, `break-glass`.
    pub outcome: String,
    /// The policy scope, `exemptions`, `break-glass` or `error`.
    pub rule: String,
}

/// Labels of a policy reload.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `changed`, `unchanged` or `failed`.
    pub result: String,
}

/// Labels of the policy bundle in force.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BundleLabels {
    /// Its hash, as `tollgate policy compile --configmap` annotates the ConfigMap.
    pub hash: String,
}

/// Every metric the daemon exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Decisions answered.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Time to answer a verify request, in seconds.
    pub latency: Histogram,
    /// Verdicts answered from the cache.
    pub cache_hits: Counter,
    /// Verdicts that had to be decided.
    pub cache_misses: Counter,
    /// Decisions actually evaluated (misses minus those that joined one in flight).
    pub evaluations: Counter,
    /// Verdicts currently cached.
    pub cached_verdicts: Gauge,
    /// Decisions that failed on a registry error (transient or refused content).
    pub registry_errors: Counter,
    /// Policy reload attempts by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Audit records that could not be written.
    pub audit_errors: Counter,
    /// 1 while the break-glass file exists.
    pub break_glass: Gauge,
    /// Which policy is enforced: 1 the configured one, 2 the last good copy
    /// (the configured one does not load), 0 none (every decision undecidable).
    pub policy_source: Gauge,
    /// 1 for the policy bundle in force (`policyBundle`), labelled with its hash; no series without one.
    pub bundle: Family<BundleLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `tollgate` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let decisions = Family::<DecisionLabels, Counter>::default();
        // 50 µs … ~1.6 s.
        let latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let m = Metrics {
            decisions,
            latency,
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            evaluations: Counter::default(),
            cached_verdicts: Gauge::default(),
            registry_errors: Counter::default(),
            reloads: Family::default(),
            audit_errors: Counter::default(),
            break_glass: Gauge::default(),
            policy_source: Gauge::default(),
            bundle: Family::default(),
            registry: Registry::default(),
        };
        registry.register("decisions", "Image decisions answered, by outcome and rule", m.decisions.clone());
        registry.register("decision_latency_seconds", "Time to answer a verify request", m.latency.clone());
        registry.register("cache_hits", "Verdicts answered from the cache", m.cache_hits.clone());
        registry.register("cache_misses", "Verdicts that had to be decided", m.cache_misses.clone());
        registry.register(
            "evaluations",
            "Decisions evaluated (identical concurrent requests share one)",
            m.evaluations.clone(),
        );
        registry.register("cached_verdicts", "Verdicts currently cached", m.cached_verdicts.clone());
        registry.register("registry_errors", "Decisions that failed on a registry error", m.registry_errors.clone());
        registry.register("policy_reloads", "Policy reload attempts, by result", m.reloads.clone());
        registry.register("audit_errors", "Audit records that could not be written", m.audit_errors.clone());
        registry.register("break_glass", "1 while the break-glass file exists", m.break_glass.clone());
        registry.register(
            "policy_source",
            "The policy enforced: 1 configured, 2 the last good copy (the configured one does not load), 0 none",
            m.policy_source.clone(),
        );
        registry.register(
            "policy_bundle_info",
            "1 for the policy bundle in force, labelled with its hash",
            m.bundle.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Shows `hash` as the bundle in force (and no other).
    pub fn set_bundle(&self, hash: Option<&str>) {
        self.bundle.clear();
        if let Some(h) = hash {
            self.bundle.get_or_create(&BundleLabels { hash: h.to_owned() }).set(1);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// What the NRI plugin (`tollgate nri`) counts, as it serves it on `nri.metricsAddress`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginCounts {
    /// Connections that registered with the runtime (more than one: it reconnected).
    pub registrations: u64,
    /// Registered connections that ended.
    pub disconnects: u64,
    /// Connection attempts that ended before registering.
    pub failed_connects: u64,
    /// Allow verdicts answered (`CreateContainer` and `ValidateContainerAdjustment`).
    pub allowed: u64,
    /// Refusals answered.
    pub refused: u64,
}

/// Labels of a container verdict.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

/// The NRI plugin's metrics, OpenMetrics text: `tollgate_nri_registrations_total`,
/// `tollgate_nri_disconnects_total`, `tollgate_nri_connect_failures_total`, `tollgate_nri_connected` (1
/// while a registered connection is
/// up) and `tollgate_nri_verdicts_total{verdict}` (one per `CreateContainer` or
/// `ValidateContainerAdjustment` answered).
pub fn encode_plugin(c: PluginCounts) -> String {
    use prometheus_client::metrics::counter::ConstCounter;
    let mut registry = Registry::with_prefix("tollgate_nri");
    registry.register(
        "registrations",
        "Connections that registered with the runtime",
        ConstCounter::new(c.registrations),
    );
    registry.register(
        "disconnects",
        "Registered connections to the runtime that ended",
        ConstCounter::new(c.disconnects),
    );
    registry.register(
        "connect_failures",
        "Connection attempts that ended before registering",
        ConstCounter::new(c.failed_connects),
    );
    let connected = Gauge::<i64>::default();
    connected.set(i64::from(c.registrations > c.disconnects));
    registry.register("connected", "1 while registered with the runtime", connected);
    let verdicts = Family::<VerdictLabels, Counter>::default();
    verdicts.get_or_create(&VerdictLabels { verdict: "allowed" }).inc_by(c.allowed);
    verdicts.get_or_create(&VerdictLabels { verdict: "refused" }).inc_by(c.refused);
    registry.register("verdicts", "Verdicts answered to the runtime (create and validation), by verdict", verdicts);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Serves `GET /metrics` with what `render` returns on `listener` (loopback), until the process
/// ends; anything else is 404.
pub async fn serve(listener: tokio::net::TcpListener, render: std::sync::Arc<dyn Fn() -> String + Send + Sync>) {
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response, StatusCode};
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let render = render.clone();
                async move {
                    let mut r = Response::new(Full::new(Bytes::new()));
                    if req.method() == hyper::Method::GET && req.uri().path() == "/metrics" {
                        *r.body_mut() = Full::new(Bytes::from(render()));
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static(
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            ),
                        );
                    } else {
                        *r.status_mut() = StatusCode::NOT_FOUND;
                    }
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_exported_by_outcome_and_rule() {
        let m = Metrics::new();
        m.decisions.get_or_create(&DecisionLabels { outcome: "denied".into(), rule: "default".into() }).inc();
        m.latency.observe(0.0002);
        let text = m.encode();
        assert!(text.contains("tollgate_decisions_total{outcome=\"denied\",rule=\"default\"} 1"), "{text}");
        assert!(text.contains("tollgate_decision_latency_seconds_count 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
