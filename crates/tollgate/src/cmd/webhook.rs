//! `tollgate webhook`: loads the node config, points it at a policy bundle when asked, and serves
//! the admission webhook with the daemon's decision function.

use std::sync::Arc;
use std::time::Duration;

use tollgate_node::daemon::Daemon;
use tollgate_webhook::{Settings, TlsFiles, Webhook};

use crate::cli::{WebhookArgs, WebhookCertArgs};
use crate::exit::Outcome;
use crate::output::Format;

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
    let runtime = super::server_runtime()?;
    runtime.block_on(async {
        if let Some(kubeconfig) = &a.kubeconfig {
            use tollgate_webhook::configmap::{Mirror, Source, follow};
            let (namespace, name) = a
                .configmap
                .split_once('/')
                .filter(|(n, m)| !n.is_empty() && !m.is_empty() && !m.contains('/'))
                .ok_or_else(|| anyhow::anyhow!("--configmap {:?}: give NAMESPACE/NAME", a.configmap))?;
            let source = Source::connect(kubeconfig, namespace, name).await?;
            let first = source.fetch().await.map_err(|e| {
                anyhow::anyhow!("{e}; the webhook starts only with its policy bundle (kubectl apply the output of tollgate policy compile FILE --configmap)")
            })?;
            let mut mirror = Mirror::new()?;
            mirror.update(&first)?;
            tracing::info!(configmap = source.what(), resource_version = %first.resource_version, mirror = %mirror.path().display(), "policy bundle read from the API server");
            cfg.policy_bundle = Some(mirror.path().to_owned());
            tokio::spawn(follow(source, mirror, Duration::from_secs(cfg.reload_seconds)));
        }
        let daemon = Arc::new(Daemon::new(cfg)?);
        tollgate_webhook::run(Arc::new(Webhook::new(daemon, settings)), a.listen, files).await?;
        anyhow::Ok(())
    })?;
    Ok(Outcome::Ok)
}

/// `tollgate webhook-cert`: a one-shot CA and a serving certificate, written into an existing directory.
pub fn cert(a: &WebhookCertArgs, fmt: Format) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        a.out.is_dir(),
        "cannot write the certificate to {}: no such directory; create it first",
        a.out.display()
    );
    let key = a.out.join("tls.key");
    anyhow::ensure!(
        std::fs::symlink_metadata(&key).is_err(),
        "{} exists; tollgate never overwrites a key: remove it first, or choose another --out",
        key.display()
    );
    let names = if a.name.is_empty() { vec![tollgate_webhook::cert::SERVICE_NAME.to_owned()] } else { a.name.clone() };
    let now = i64::try_from(super::now_unix()).unwrap_or(i64::MAX);
    let c = tollgate_webhook::cert::serving_cert(&names, now, a.days)?;
    let ca = a.out.join("ca.crt");
    let crt = a.out.join("tls.crt");
    super::write_out(&key, c.key_pem.as_bytes(), 0o600)?;
    super::write_out(&crt, c.cert_pem.as_bytes(), 0o644)?;
    super::write_out(&ca, c.ca_pem.as_bytes(), 0o644)?;
    match fmt {
        Format::Json => crate::output::print_json(&serde_json::json!({
            "ca": ca.display().to_string(), "cert": crt.display().to_string(), "key": key.display().to_string(),
            "names": names, "days": a.days,
        }))?,
        Format::Text => crate::output::print(&format!(
            "wrote {}, {} and {} (for {}, {} days)\n",
            ca.display(),
            crt.display(),
            key.display(),
            names.join(", "),
            a.days
        ))?,
    }
    Ok(Outcome::Ok)
}
