//! The containerd image-verifier entry point (bindir protocol), full version.
//!
//! containerd runs every executable in its verifier `bin_dir` as
//! `BIN -name REF -digest DIGEST -stdin-media-type application/vnd.oci.descriptor.v1+json`.
//! The small `tollgate-verifier` binary is what `containerd install` puts
//! there: it asks the daemon and execs this binary only when the daemon is
//! down. This binary also answers the protocol itself (it recognises the
//! invocation by its first argument): it asks the daemon unless
//! `TOLLGATE_VERIFIER_FALLBACK` says that was already tried, then decides
//! in-process and says so. Either way it answers within the config's deadline
//! (under containerd's 10 s), prints one reason line, and fails closed unless
//! the config says `failOpen: true` and the registry could not be reached for
//! the image's manifest. A daemon that does not answer in time, a deadline
//! that passes, or signatures that cannot be fetched after the manifest was
//! served are never failed open: each of them an attacker can cause.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tollgate_node::client::{self, AskError};
use tollgate_node::config::NodeConfig;
use tollgate_node::engine::{self, Sources, error_chain as chain};
use tollgate_node::verifier::{self, Answer, EXIT_ALLOW, EXIT_DENY, Invocation, undecidable};
use tollgate_policy::evaluate::Failure;

/// Runs the verifier protocol and returns the exit code (0 allows the pull).
pub fn run(args: &[String]) -> ExitCode {
    let (code, reason) = decide(args);
    println!("{}", verifier::cap_reason(&reason));
    ExitCode::from(code)
}

fn decide(args: &[String]) -> Answer {
    let (inv, cfg) = match verifier::prepare(args, "tollgate") {
        Ok(prepared) => prepared,
        Err(answer) => return answer,
    };
    let started = Instant::now();
    let deadline = Duration::from_secs(cfg.deadline_seconds);
    let note = match std::env::var(verifier::FALLBACK_ENV) {
        Ok(why) if !why.is_empty() => why,
        _ => {
            match client::verify(&cfg.socket, &inv.request(), deadline) {
                Ok(answer) => return verifier::from_daemon(&inv, &answer),
                Err(e @ AskError::Timeout { .. }) => return verifier::refuse(e),
                // Nobody listening, or a broken answer: the in-process path is complete, use it.
                Err(e) => e.to_string(),
            }
        }
    };
    let left = deadline.saturating_sub(started.elapsed()).max(Duration::from_millis(500));
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return verifier::refuse(format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(decide_in_process(&inv, &cfg, &note, left))
}

async fn decide_in_process(inv: &Invocation, cfg: &NodeConfig, note: &str, left: Duration) -> Answer {
    let started = std::time::Instant::now();
    let (answer, decision, rule, hash) = decide_unaudited(inv, cfg, note, left).await;
    // Every decision is audited, the fallback's too, in the daemon's format.
    let record = tollgate_node::audit::AuditRecord {
        time: tollgate_node::audit::now_rfc3339(),
        name: inv.name.clone(),
        digest: inv.digest.to_string(),
        namespace: None,
        decision,
        allowed: answer.0 == EXIT_ALLOW,
        rule,
        reasons: vec![answer.1.clone()],
        cached: false,
        latency_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        policy_hash: hash,
        bundle_hash: None,
        decided_by: "in-process",
    };
    let written = tollgate_node::audit::AuditLog::open(&cfg.audit_log).and_then(|log| log.write(&record));
    match written {
        Err(e) if answer.0 == EXIT_ALLOW && decision != "break-glass" => verifier::refuse(format!(
            "cannot write the audit log {}: {e}; failing closed ({note})",
            cfg.audit_log.path.display()
        )),
        _ => answer,
    }
}

/// The in-process answer, the audit `decision`, the rule and the policy hash.
async fn decide_unaudited(
    inv: &Invocation,
    cfg: &NodeConfig,
    note: &str,
    left: Duration,
) -> (Answer, &'static str, String, String) {
    let what = verifier::shown(inv);
    let open = cfg.fail_open;
    // Break-glass needs no policy: it works when none loads.
    if cfg.break_glass_file.exists() {
        let why = format!("BREAK-GLASS: {} exists, allowing without verification", cfg.break_glass_file.display());
        return (
            (EXIT_ALLOW, format!("tollgate: allowed {what} (in-process; {note}): {why}")),
            "break-glass",
            "break-glass".into(),
            String::new(),
        );
    }
    let snapshot = match load(cfg) {
        Ok(s) => s,
        // No policy: undecidable with the load error, never "denied".
        Err(why) => {
            let answer = verifier::refuse(format!("no policy is in force ({note}): {why}"));
            return (answer, "undecidable", "no policy".into(), String::new());
        }
    };
    let hash = snapshot.hash.clone();
    let undecided = |answer: Answer| (answer, "undecidable", "error".to_owned(), hash.clone());
    match tokio::time::timeout(left, in_process(inv, cfg, &snapshot)).await {
        Err(_) => undecided(verifier::refuse(format!("no decision within {}s ({note})", cfg.deadline_seconds))),
        Ok(Err(e)) if e.is_transient() => undecided(undecidable(open, format!("{} ({note})", chain(&e)))),
        Ok(Err(e)) => (
            (EXIT_DENY, format!("tollgate: denied {what} (in-process; {note}): {}", chain(&e))),
            "denied",
            "error".into(),
            hash.clone(),
        ),
        Ok(Ok(d)) => {
            let how = format!("in-process; {note}");
            let rule = d.scope.name.clone();
            let (answer, decision) = match d.failure {
                None if d.exempt => ((EXIT_ALLOW, format!("tollgate: allowed {what} ({how}): {}", d.reason)), "exempt"),
                None if d.would_deny => {
                    ((EXIT_ALLOW, format!("tollgate: allowed {what} ({how}): {}", d.reason)), "warned")
                }
                None => ((EXIT_ALLOW, format!("tollgate: allowed {what} ({how}): {}", d.reason)), "allowed"),
                _ if cfg.warn_only => (
                    (EXIT_ALLOW, format!("tollgate: allowed {what} ({how}): warnOnly: allowed; would be {}", d.reason)),
                    "warned",
                ),
                // Material after the manifest failed: never failed open (see the module doc).
                Some(Failure::Transient) => (verifier::refuse(format!("{} ({how})", d.reason)), "undecidable"),
                Some(Failure::Fatal) => {
                    ((EXIT_DENY, format!("tollgate: denied {what} ({how}): {}", d.reason)), "denied")
                }
            };
            (answer, decision, rule, hash.clone())
        }
    }
}

/// The configured policy, else the last good copy the daemon kept.
fn load(cfg: &NodeConfig) -> Result<engine::PolicySnapshot, String> {
    let configured = match engine::load_policy(&tollgate_node::daemon::cluster_policy_path(cfg)) {
        Ok(s) => return Ok(s),
        Err(e) => chain(&e),
    };
    match cfg.last_good_policy.as_deref().map(engine::last_good::load) {
        Some(Ok(s)) => {
            eprintln!("tollgate: the policy does not load ({configured}); enforcing the last good copy ({})", s.hash);
            Ok(s)
        }
        Some(Err(e)) => Err(format!("{configured}; and the last good copy: {}", chain(&e))),
        None => Err(configured),
    }
}

async fn in_process(
    inv: &Invocation,
    cfg: &NodeConfig,
    snapshot: &engine::PolicySnapshot,
) -> Result<tollgate_policy::Decision, engine::EngineError> {
    let per_request = Duration::from_secs((cfg.deadline_seconds / 3).max(1));
    let client = tollgate_registry::Client::new(engine::client_config(cfg, per_request)?)
        .map_err(|e| engine::EngineError::Registry { target: "the registry client".into(), source: Box::new(e) })?;
    let given = engine::Given { digest: &inv.digest, media_type: inv.media_type.as_deref() };
    engine::decide(&inv.name, Some(given), &snapshot.policy, &Sources::new(client), engine::now_unix()).await
}
