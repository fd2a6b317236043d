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
    let what = verifier::shown(inv);
    let open = cfg.fail_open;
    match tokio::time::timeout(left, in_process(inv, cfg)).await {
        Err(_) => verifier::refuse(format!("no decision within {}s ({note})", cfg.deadline_seconds)),
        Ok(Err(e)) if e.is_transient() => undecidable(open, format!("{} ({note})", chain(&e))),
        Ok(Err(e)) => (EXIT_DENY, format!("tollgate: denied {what} (in-process; {note}): {}", chain(&e))),
        Ok(Ok(d)) => {
            let how = format!("in-process; {note}");
            match d.failure {
                None => (EXIT_ALLOW, format!("tollgate: allowed {what} ({how}): {}", d.reason)),
                _ if cfg.warn_only => {
                    (EXIT_ALLOW, format!("tollgate: allowed {what} ({how}): warnOnly: allowed; would be {}", d.reason))
                }
                // Material after the manifest failed: never failed open (see the module doc).
                Some(Failure::Transient) => verifier::refuse(format!("{} ({how})", d.reason)),
                Some(Failure::Fatal) => (EXIT_DENY, format!("tollgate: denied {what} ({how}): {}", d.reason)),
            }
        }
    }
}

async fn in_process(inv: &Invocation, cfg: &NodeConfig) -> Result<tollgate_policy::Decision, engine::EngineError> {
    let snapshot = engine::load_policy(&cfg.policy)?;
    let per_request = Duration::from_secs((cfg.deadline_seconds / 3).max(1));
    let client = tollgate_registry::Client::new(engine::client_config(cfg, per_request)?)
        .map_err(|e| engine::EngineError::Registry { target: "the registry client".into(), source: Box::new(e) })?;
    let given = engine::Given { digest: &inv.digest, media_type: inv.media_type.as_deref() };
    engine::decide(&inv.name, Some(given), &snapshot.policy, &Sources::new(client), engine::now_unix()).await
}
