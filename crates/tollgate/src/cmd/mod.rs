//! Command implementations: the imperative shell around the library crates.

mod components;
pub mod image_verifier;
mod images;
mod kubeadm;
mod policy;
mod verify;
mod verify_bundle;

use std::io::Read;
use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;
use tollgate_controlplane::{Catalog, KubernetesVersion};

use crate::cli::{
    CatalogArgs, Cli, Command, ComponentsCommand, ContainerdCommand, ImagesCommand, KubeadmCommand, PolicyCommand,
};
use crate::exit::Outcome;
use crate::output::Format;

/// Largest catalog, manifest or components list read from disk.
pub const MAX_CONFIG_FILE_BYTES: u64 = 16 << 20;

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let fmt = cli.output;
    match cli.command {
        Command::Images(ImagesCommand::List(a)) => images::list(&a, fmt),
        Command::Images(ImagesCommand::Lock(a)) => runtime()?.block_on(images::lock(&a, fmt)),
        Command::Kubeadm(KubeadmCommand::Patches(a)) => kubeadm::patches(&a, fmt),
        Command::Kubeadm(KubeadmCommand::Config(a)) => kubeadm::config(&a, fmt),
        Command::Kubeadm(KubeadmCommand::Audit(a)) => kubeadm::audit(&a, fmt),
        Command::Components(ComponentsCommand::Install(a)) => runtime()?.block_on(components::install(&a, fmt)),
        Command::Verify(a) => runtime()?.block_on(verify::verify(&a, fmt)),
        Command::VerifyBundle(a) => verify_bundle::run(&a, fmt),
        Command::Containerd(ContainerdCommand::Doctor { config }) => doctor(&config, fmt),
        Command::Policy(PolicyCommand::Check { file }) => policy::check(&file, fmt),
        Command::Policy(PolicyCommand::Import { file, out }) => policy::convert(&file, out.as_deref(), true),
        Command::Policy(PolicyCommand::Export { file, out }) => policy::convert(&file, out.as_deref(), false),
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tollgate", &mut buf);
            crate::output::print(&String::from_utf8_lossy(&buf))?;
            Ok(Outcome::Ok)
        }
    }
}

/// A single-threaded runtime: the work is network-bound and a decision sits on
/// the pod start path, so no worker threads are spawned for it.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

/// Parses `--kubernetes-version`.
pub fn version(s: &str) -> anyhow::Result<KubernetesVersion> {
    Ok(KubernetesVersion::parse(s)?)
}

/// The embedded catalog, with `--catalog` merged over it.
pub fn load_catalog(args: &CatalogArgs) -> anyhow::Result<Catalog> {
    let mut catalog = Catalog::embedded();
    if let Some(path) = &args.catalog {
        let bytes = read_capped(path)?;
        let user = Catalog::parse(&bytes, &path.display().to_string())?;
        catalog.merge(user);
    }
    Ok(catalog)
}

/// Reads a file, refusing more than [`MAX_CONFIG_FILE_BYTES`].
pub fn read_capped(path: &Path) -> anyhow::Result<Vec<u8>> {
    read_limited(path, MAX_CONFIG_FILE_BYTES)
}

/// Reads a file, refusing more than `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
    if buf.len() as u64 > limit {
        anyhow::bail!("{} is larger than {limit} bytes; refusing to read it", path.display());
    }
    Ok(buf)
}

/// The clock, read at the edge and passed into the pure core (Unix seconds).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Registry credentials: `--authfile` (which must exist), else the first of
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json` and
/// `~/.docker/config.json` that exists. A malformed file is an error.
pub fn load_credentials(authfile: Option<&Path>) -> anyhow::Result<tollgate_registry::credentials::CredentialStore> {
    use tollgate_registry::credentials::CredentialStore;
    let parse = |p: &Path| -> anyhow::Result<CredentialStore> {
        Ok(CredentialStore::parse(&read_capped(p)?, &p.display().to_string())?)
    };
    if let Some(p) = authfile {
        return parse(p);
    }
    let env = |k: &str| std::env::var_os(k).map(std::path::PathBuf::from);
    let candidates = [
        env("REGISTRY_AUTH_FILE"),
        env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")),
        env("HOME").map(|h| h.join(".docker/config.json")),
    ];
    for p in candidates.into_iter().flatten() {
        if p.is_file() {
            return parse(&p);
        }
    }
    Ok(CredentialStore::default())
}

/// Reads `--ca-file` PEM bundles (capped); each must hold at least one certificate.
pub fn load_ca_files(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    files
        .iter()
        .map(|f| {
            let pem = read_capped(f)?;
            anyhow::ensure!(
                String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----"),
                "--ca-file {}: no PEM certificate in it",
                f.display()
            );
            Ok(pem)
        })
        .collect()
}

/// `tollgate containerd doctor`: reads the config and the verifier directory, diagnoses purely.
fn doctor(config: &Path, fmt: crate::output::Format) -> anyhow::Result<Outcome> {
    use tollgate_node::doctor::{self, Severity};
    let text = String::from_utf8(read_capped(config)?)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", config.display()))?;
    let dir = doctor::bin_dir(&text).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let entries: Option<Vec<String>> = std::fs::read_dir(&dir)
        .ok()
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect());
    let findings =
        doctor::diagnose(&text, entries.as_deref()).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let critical = findings.iter().filter(|f| f.severity == Severity::Critical).count();
    match fmt {
        crate::output::Format::Json => crate::output::print_json(&serde_json::json!({
            "config": config.display().to_string(), "binDir": dir, "verifiers": entries, "findings": findings,
        }))?,
        crate::output::Format::Text => {
            let mut s = format!(
                "{} (verifiers in {dir}: {})\n",
                config.display(),
                entries.as_ref().map_or("none".into(), |e| e.join(", "))
            );
            for f in &findings {
                let sev = if f.severity == Severity::Critical { "CRITICAL" } else { "ok" };
                s.push_str(&format!("{sev:<8}  {}: {}\n", f.key, f.message));
            }
            crate::output::print(&s)?;
        }
    }
    Ok(if critical > 0 { Outcome::Findings } else { Outcome::Ok })
}

/// Whether progress bars may be drawn.
pub fn interactive(fmt: Format) -> bool {
    fmt == Format::Text && std::io::IsTerminal::is_terminal(&std::io::stderr())
}
