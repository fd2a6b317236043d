//! `tollgate serve`: loads the node config, applies the flags over it, and runs the daemon.

use std::sync::Arc;

use tollgate_node::config::{DEFAULT_CONFIG, NodeConfig};
use tollgate_node::daemon::{self, Daemon};

use crate::cli::ServeArgs;
use crate::exit::Outcome;

/// The node config at `path`; the defaults when `path` is the default one and it does not exist.
pub fn load_config(path: &std::path::Path) -> anyhow::Result<NodeConfig> {
    Ok(match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.as_os_str() == DEFAULT_CONFIG => {
            tracing::info!("{DEFAULT_CONFIG} does not exist: using the defaults");
            NodeConfig::default()
        }
        _ => NodeConfig::parse(&super::read_capped(path)?, &path.display().to_string())?,
    })
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(a: &ServeArgs) -> anyhow::Result<Outcome> {
    let mut cfg = load_config(&a.config)?;
    if let Some(p) = &a.policy {
        cfg.policy = p.clone();
    }
    if let Some(s) = &a.socket {
        cfg.socket = s.clone();
    }
    if !a.insecure_registry.is_empty() {
        cfg.insecure_registries = a.insecure_registry.clone();
    }
    let runtime = super::server_runtime()?;
    runtime.block_on(async {
        let daemon = Arc::new(Daemon::new(cfg)?);
        daemon::run(daemon).await
    })?;
    Ok(Outcome::Ok)
}
