//! The containerd image-verifier entry point (bindir protocol).
//!
//! containerd runs every executable in its verifier `bin_dir` as
//! `BIN -name REF -digest DIGEST -stdin-media-type application/vnd.oci.descriptor.v1+json`.
//! tollgate recognises that invocation by its first argument, so the same
//! binary (or a copy of it) can sit in `bin_dir`. It asks the daemon on its
//! socket first; when the daemon is down it decides in-process and says so.
//! Either way it answers within the config's deadline (under containerd's
//! 10 s), prints one reason line, and fails closed unless the config says
//! `failOpen: true`, which only ever applies to transient failures.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tollgate_node::api::{Outcome, VerifyRequest, VerifyResponse};
use tollgate_node::client::{self, AskError};
use tollgate_node::config::{DEFAULT_CONFIG, NodeConfig};
use tollgate_node::engine::{self, Sources, error_chain as chain};
use tollgate_node::verifier::{self, Invocation, MAX_DESCRIPTOR_BYTES};
use tollgate_policy::evaluate::Failure;

use crate::exit;

/// Runs the verifier protocol and returns the exit code (0 allows the pull).
pub fn run(args: &[String]) -> ExitCode {
    let (code, reason) = decide(args);
    println!("{}", verifier::cap_reason(&reason));
    ExitCode::from(code)
}

type Decided = (u8, String);

fn refuse(why: impl std::fmt::Display) -> Decided {
    (exit::TRANSIENT, format!("tollgate: rejected, failing closed: {why}"))
}

fn decide(args: &[String]) -> Decided {
    let inv = match verifier::parse(args) {
        Ok(i) => i,
        Err(e) => return refuse(format!("bad invocation: {e}")),
    };
    if !inv.unknown.is_empty() {
        eprintln!("tollgate: ignoring unknown flags: {}", inv.unknown.join(", "));
    }
    let config_path = std::env::var_os("TOLLGATE_CONFIG").map_or_else(|| PathBuf::from(DEFAULT_CONFIG), PathBuf::from);
    let cfg = match load_config(&config_path) {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    let stdin = read_stdin(Duration::from_secs(1));
    if let Err(e) = verifier::descriptor(&stdin, &inv) {
        return refuse(e);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return undecidable(&cfg, format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(ask_then_decide(&inv, &cfg))
}

/// A transient failure: fail closed, unless `failOpen`.
fn undecidable(cfg: &NodeConfig, why: String) -> Decided {
    if cfg.fail_open {
        (exit::OK, format!("tollgate: allowed by failOpen although undecidable: {why}"))
    } else {
        refuse(why)
    }
}

async fn ask_then_decide(inv: &Invocation, cfg: &NodeConfig) -> Decided {
    let started = Instant::now();
    let deadline = Duration::from_secs(cfg.deadline_seconds);
    // The name as pulled, with the digest unless the name already carries it.
    let what = if inv.name.contains('@') { inv.name.clone() } else { format!("{}@{}", inv.name, inv.digest) };
    let req = VerifyRequest { name: inv.name.clone(), digest: inv.digest.to_string(), namespace: None };
    let note = match client::verify(&cfg.socket, &req, deadline).await {
        Ok(answer) => return from_daemon(&what, &answer),
        Err(e @ AskError::Timeout { .. }) => return undecidable(cfg, e.to_string()),
        // Nobody listening, or a broken answer: the in-process path is complete, use it.
        Err(e) => e.to_string(),
    };
    let left = deadline.saturating_sub(started.elapsed()).max(Duration::from_millis(500));
    match tokio::time::timeout(left, in_process(inv, cfg)).await {
        Err(_) => undecidable(cfg, format!("no decision within {}s ({note})", deadline.as_secs())),
        Ok(Err(e)) if e.is_transient() => undecidable(cfg, format!("{} ({note})", chain(&e))),
        Ok(Err(e)) => (exit::DENIED, format!("tollgate: denied {what} (in-process; {note}): {}", chain(&e))),
        Ok(Ok(d)) => {
            let how = format!("in-process; {note}");
            match d.failure {
                None => (exit::OK, format!("tollgate: allowed {what} ({how}): {}", d.reason)),
                _ if cfg.warn_only => {
                    (exit::OK, format!("tollgate: allowed {what} ({how}): warnOnly: allowed; would be {}", d.reason))
                }
                Some(Failure::Transient) => undecidable(cfg, format!("{} ({how})", d.reason)),
                Some(Failure::Fatal) => (exit::DENIED, format!("tollgate: denied {what} ({how}): {}", d.reason)),
            }
        }
    }
}

fn from_daemon(what: &str, a: &VerifyResponse) -> Decided {
    let how = if a.cached { "daemon, cached" } else { "daemon" };
    let code = match (a.allowed, a.outcome) {
        (true, _) => exit::OK,
        (false, Outcome::Undecidable) => exit::TRANSIENT,
        (false, _) => exit::DENIED,
    };
    let verb = match (a.allowed, a.outcome) {
        (true, _) => "allowed",
        (false, Outcome::Undecidable) => "rejected, failing closed:",
        (false, _) => "denied",
    };
    (code, format!("tollgate: {verb} {what} ({how}): {}", a.reason))
}

async fn in_process(inv: &Invocation, cfg: &NodeConfig) -> Result<tollgate_policy::Decision, engine::EngineError> {
    let snapshot = engine::load_policy(&cfg.policy)?;
    let per_request = Duration::from_secs((cfg.deadline_seconds / 3).max(1));
    let client = tollgate_registry::Client::new(engine::client_config(cfg, per_request)?)
        .map_err(|e| engine::EngineError::Registry { target: "the registry client".into(), source: Box::new(e) })?;
    engine::decide(&inv.name, Some(&inv.digest), &snapshot.policy, &Sources::new(client), engine::now_unix()).await
}

fn load_config(path: &std::path::Path) -> anyhow::Result<NodeConfig> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeConfig::default()),
        _ => Ok(NodeConfig::parse(&super::read_capped(path)?, &path.display().to_string())?),
    }
}

/// Reads stdin (capped) on a thread, giving up after `wait`: the descriptor is
/// informational (`-digest` is authoritative) and the verifier must never hang.
fn read_stdin(wait: Duration) -> Vec<u8> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::stdin().lock().take(MAX_DESCRIPTOR_BYTES as u64 + 1).read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx.recv_timeout(wait).unwrap_or_default()
}
