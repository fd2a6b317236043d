//! `tollgate controller`: the client, the replica's name, and the controller until a signal.

use std::time::Duration;

use crate::cli::ControllerArgs;
use crate::exit::Outcome;

/// This replica's name: `--identity` or `$POD_NAME`, else the host name and the process id.
fn identity(a: &ControllerArgs) -> String {
    if let Some(id) = a.identity.as_deref().filter(|s| !s.is_empty()) {
        return id.to_owned();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!("{}-{}", if host.is_empty() { "tollgate" } else { host }, std::process::id())
}

/// Runs the controller until SIGTERM or SIGINT.
pub fn run(a: &ControllerArgs) -> anyhow::Result<Outcome> {
    let settings = tollgate_controller::Settings {
        namespace: tollgate_kube::manifests::NAMESPACE.to_owned(),
        configmap: tollgate_kube::manifests::POLICY_CONFIGMAP.to_owned(),
        lease: tollgate_kube::manifests::CONTROLLER.to_owned(),
        identity: identity(a),
        lease_duration: Duration::from_secs(a.lease_seconds),
        resync: Duration::from_secs(a.resync_seconds),
    };
    let runtime = super::server_runtime()?;
    runtime.block_on(async {
        let client = tollgate_controller::client(a.kubeconfig.as_deref()).await?;
        tollgate_controller::run(client, settings).await?;
        anyhow::Ok(())
    })?;
    Ok(Outcome::Ok)
}
