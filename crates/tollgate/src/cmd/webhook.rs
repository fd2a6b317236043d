//! `tollgate webhook`: loads the node config, points it at a policy bundle when asked, and serves
//! the admission webhook with the daemon's decision function.

use std::sync::Arc;
use std::time::Duration;

use tollgate_node::daemon::Daemon;
use tollgate_webhook::{Settings, TlsFiles, Webhook};

use crate::cli::WebhookArgs;
use crate::exit::Outcome;

/// Runs the webhook until SIGTERM or SIGINT.
pub fn run(a: &WebhookArgs) -> anyhow::Result<Outcome> {
    let mut cfg = super::serve::load_config(&a.config)?;
    if let Some(dir) = &a.policy_bundle {
        anyhow::ensure!(
            dir.join(tollgate_policy::bundle::POLICY_KEY).is_file(),
            "--policy-bundle {}: no policy.yaml in it (write the bundle with tollgate policy compile FILE --out {})",
            dir.display(),
            dir.display()
        );
        cfg.policy_bundle = Some(dir.clone());
    }
    if !a.insecure_registry.is_empty() {
        cfg.insecure_registries = a.insecure_registry.clone();
    }
    let files = TlsFiles { cert: a.tls_cert.clone(), key: a.tls_key.clone() };
    // The certificate is checked before anything starts, so a wrong path is one clear line.
    files.load()?;
    let settings = Settings {
        deadline: Duration::from_secs(a.deadline_seconds),
        allow_unhandled_kinds: a.allow_unhandled_kinds,
        reload: Duration::from_secs(cfg.reload_seconds),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let daemon = Arc::new(Daemon::new(cfg)?);
        tollgate_webhook::run(Arc::new(Webhook::new(daemon, settings)), a.listen, files).await?;
        anyhow::Ok(())
    })?;
    Ok(Outcome::Ok)
}
