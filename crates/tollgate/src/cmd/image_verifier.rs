//! The containerd image-verifier entry point (bindir protocol).
//!
//! containerd runs every executable in its verifier `bin_dir` as
//! `BIN -name REF -digest DIGEST -stdin-media-type application/vnd.oci.descriptor.v1+json`.
//! tollgate recognises that invocation by its first argument, so the same
//! binary (or a link to it) can sit in `bin_dir`. It decides with the policy
//! named in the config file, in-process (the node daemon will answer first
//! once it exists), within a deadline under containerd's 10 s, and prints one
//! reason line. It fails closed unless the config says `failOpen: true`.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use tollgate_node::verifier::{self, Invocation, MAX_DESCRIPTOR_BYTES};
use tollgate_policy::evaluate::Failure;
use tollgate_registry::ClientConfig;

use crate::exit;

/// Where the config is read from unless `TOLLGATE_CONFIG` names another file.
pub const DEFAULT_CONFIG: &str = "/etc/tollgate/config.yaml";

/// The verifier's configuration (`/etc/tollgate/config.yaml`), documented in docs/operations.md.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Config {
    #[serde(default = "default_policy")]
    policy: PathBuf,
    #[serde(default)]
    insecure_registries: Vec<String>,
    #[serde(default)]
    ca_files: Vec<PathBuf>,
    #[serde(default)]
    auth_file: Option<PathBuf>,
    /// Whole-decision deadline; containerd kills verifiers after 10 s by default.
    #[serde(default = "default_deadline")]
    deadline_seconds: u64,
    /// Allow the pull when the decision cannot be made (registry down, bad config). Default: fail closed.
    #[serde(default)]
    fail_open: bool,
}

fn default_policy() -> PathBuf {
    PathBuf::from("/etc/tollgate/policy.yaml")
}

fn default_deadline() -> u64 {
    8
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: default_policy(),
            insecure_registries: Vec::new(),
            ca_files: Vec::new(),
            auth_file: None,
            deadline_seconds: default_deadline(),
            fail_open: false,
        }
    }
}

/// Runs the verifier protocol and returns the exit code (0 allows the pull).
pub fn run(args: &[String]) -> ExitCode {
    let (code, reason) = match decide(args) {
        Ok(r) => r,
        Err((fail_open, e)) => {
            let why = format!("{e:#}");
            if fail_open {
                (exit::OK, format!("tollgate: allowed by failOpen although undecidable: {why}"))
            } else {
                (exit::TRANSIENT, format!("tollgate: rejected, failing closed: {why}"))
            }
        }
    };
    println!("{}", verifier::cap_reason(&reason));
    ExitCode::from(code)
}

type Decided = (u8, String);

fn decide(args: &[String]) -> Result<Decided, (bool, anyhow::Error)> {
    let inv = verifier::parse(args).map_err(|e| (false, anyhow::anyhow!("bad invocation: {e}")))?;
    if !inv.unknown.is_empty() {
        eprintln!("tollgate: ignoring unknown flags: {}", inv.unknown.join(", "));
    }
    let config_path = std::env::var_os("TOLLGATE_CONFIG").map_or_else(|| PathBuf::from(DEFAULT_CONFIG), PathBuf::from);
    let cfg = load_config(&config_path).map_err(|e| (false, e))?;
    let fail_open = cfg.fail_open;
    let stdin = read_stdin(Duration::from_secs(1));
    verifier::descriptor(&stdin, &inv).map_err(|e| (false, anyhow::anyhow!(e)))?;
    let deadline = Duration::from_secs(cfg.deadline_seconds.clamp(1, 60));
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| (fail_open, e.into()))?;
    let decision = runtime
        .block_on(async { tokio::time::timeout(deadline, decide_with(&inv, &cfg)).await })
        .map_err(|_| (fail_open, anyhow::anyhow!("no decision within {}s", deadline.as_secs())))?
        .map_err(|e| (fail_open, e))?;
    let what = format!("{}@{}", inv.name, inv.digest);
    Ok(match decision.failure {
        None => (exit::OK, format!("tollgate: allowed {what} (in-process): {}", decision.reason)),
        Some(Failure::Fatal) => (exit::DENIED, format!("tollgate: denied {what}: {}", decision.reason)),
        Some(Failure::Transient) if fail_open => {
            (exit::OK, format!("tollgate: allowed by failOpen although undecidable: {}", decision.reason))
        }
        Some(Failure::Transient) => {
            (exit::TRANSIENT, format!("tollgate: rejected, failing closed: {}", decision.reason))
        }
    })
}

async fn decide_with(inv: &Invocation, cfg: &Config) -> anyhow::Result<tollgate_policy::Decision> {
    let policy = super::verify::load_policy(&cfg.policy)?;
    let per_request = Duration::from_secs((cfg.deadline_seconds / 3).max(1));
    let client = ClientConfig {
        insecure_registries: cfg.insecure_registries.clone(),
        request_timeout: per_request,
        connect_timeout: per_request,
        credentials: super::load_credentials(cfg.auth_file.as_deref())?,
        extra_ca_pems: super::load_ca_files(&cfg.ca_files)?,
        ..Default::default()
    };
    super::verify::decide_registry(&inv.name, Some(&inv.digest), &policy, client).await
}

fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        _ => {
            let bytes = super::read_capped(path)?;
            serde_yaml_ng::from_slice(&bytes).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
        }
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
