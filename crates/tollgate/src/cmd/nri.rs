//! `tollgate nri`: the NRI plugin, deciding each container create by asking the node daemon.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tollgate_node::api::{Outcome as Verdicts, VerifyRequest};
use tollgate_nri::plugin::{self, Decide, Settings, Stats, Target, Verdict};

use crate::cli::NriArgs;
use crate::exit::Outcome;

/// How long one question to the daemon may take: inside NRI's default 2 s request timeout, of
/// which the plugin allows three quarters.
const ASK_DEADLINE: Duration = Duration::from_millis(1400);

/// How long looking an image name up in containerd's store may take (containerd before 2.4).
const LOOKUP_DEADLINE: Duration = Duration::from_millis(400);

/// Asks the daemon on its socket, as tollgate-verifier does for pulls.
struct AskDaemon {
    socket: PathBuf,
    /// containerd's API socket, for images the runtime gave no digest for.
    containerd: PathBuf,
}

impl Decide for AskDaemon {
    fn decide(&self, t: Target) -> impl std::future::Future<Output = Verdict> + Send {
        let socket = self.socket.clone();
        let containerd = self.containerd.clone();
        async move {
            let mut t = t;
            if t.digest.is_empty() {
                // containerd before 2.4: the CRI image-name annotation names it, containerd's store says which digest.
                let looked_up =
                    tollgate_node::containerd_images::target(&containerd, "k8s.io", &t.name, LOOKUP_DEADLINE);
                match looked_up.await {
                    Ok(d) => t.digest = d,
                    Err(e) => {
                        return Verdict::Refuse(format!(
                            "tollgate: {} in {} (degraded: named by its {} annotation): {e}; refused",
                            t.name,
                            t.container,
                            tollgate_nri::plugin::CRI_IMAGE_NAME
                        ));
                    }
                }
            }
            let shown = format!("{}@{} in {}", t.name, t.digest, t.container);
            let req = VerifyRequest {
                name: t.name,
                digest: t.digest,
                namespace: Some(t.namespace).filter(|n| !n.is_empty()),
                media_type: None,
            };
            let asked =
                tokio::task::spawn_blocking(move || tollgate_node::client::verify(&socket, &req, ASK_DEADLINE)).await;
            match asked {
                // failOpen is for pulls while a registry is down; what cannot be verified does not start.
                Ok(Ok(r)) if r.allowed && r.outcome != Verdicts::Undecidable => Verdict::Allow,
                Ok(Ok(r)) => Verdict::Refuse(format!("tollgate: {shown}: {}", r.reason)),
                Ok(Err(e)) => Verdict::Refuse(format!("tollgate: {shown}: undecidable, refused: {e}")),
                Err(e) => Verdict::Refuse(format!("tollgate: {shown}: undecidable, refused: {e}")),
            }
        }
    }
}

/// Runs the plugin until SIGTERM or SIGINT.
pub fn run(a: &NriArgs) -> anyhow::Result<Outcome> {
    // First, before anything opens a file: the connection, if containerd launched this plugin.
    let launched = tollgate_nri::launched::inherited()?;
    let cfg = super::serve::load_config(&a.config)?;
    let from_env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty() && launched.is_some());
    let settings = Settings {
        socket: cfg.nri.socket.clone(),
        name: from_env(tollgate_nri::launched::NAME_ENV).unwrap_or_else(|| cfg.nri.plugin_name.clone()),
        index: from_env(tollgate_nri::launched::INDEX_ENV).unwrap_or_else(|| cfg.nri.plugin_index.clone()),
        registration_timeout: Duration::from_secs(5),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| anyhow::anyhow!("cannot handle SIGTERM: {e}"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| anyhow::anyhow!("cannot handle SIGINT: {e}"))?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        tracing::info!(socket = %settings.socket.display(), daemon = %cfg.socket.display(), "tollgate nri starting");
        let stats = Arc::new(Stats::default());
        if let Some(address) = cfg.nri.metrics_address {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on nri.metricsAddress {address}: {e}"))?;
            let shown = listener.local_addr().map_or_else(|_| address.to_string(), |a| a.to_string());
            tracing::info!(address = %shown, "serving NRI plugin metrics");
            let counts = stats.clone();
            let render = move || {
                use std::sync::atomic::Ordering::Relaxed;
                tollgate_node::metrics::encode_plugin(tollgate_node::metrics::PluginCounts {
                    registrations: counts.registrations.load(Relaxed),
                    disconnects: counts.disconnects.load(Relaxed),
                    failed_connects: counts.failed_connects.load(Relaxed),
                    allowed: counts.allowed.load(Relaxed),
                    refused: counts.refused.load(Relaxed),
                })
            };
            tokio::spawn(tollgate_node::metrics::serve(listener, Arc::new(render)));
        }
        let decider = Arc::new(AskDaemon { socket: cfg.socket.clone(), containerd: cfg.nri.containerd_socket.clone() });
        match launched {
            Some(stream) => {
                tracing::info!(name = %settings.name, index = %settings.index, "launched by the runtime: serving the connection it passed");
                let ended = plugin::run_launched(stream, settings, decider, stats, stop).await?;
                tracing::info!(?ended, "the runtime ended the connection it launched this plugin with");
            }
            None => plugin::run(settings, decider, stats, stop).await,
        }
        anyhow::Ok(())
    })?;
    Ok(Outcome::Ok)
}
