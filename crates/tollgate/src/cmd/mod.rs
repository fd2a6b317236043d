//! Command implementations: the imperative shell around the library crates.

mod components;
mod containerd;
mod controller;
mod harden;
pub mod image_verifier;
mod images;
mod kubeadm;
mod mirror;
mod nri;
mod policy;
mod serve;
mod verify;
mod verify_bundle;
mod verify_notation;
mod webhook;

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;
use tollgate_controlplane::{Catalog, KubernetesVersion};

use crate::cli::{
    BootstrapCommand, CatalogArgs, Cli, Command, ComponentsCommand, ContainerdCommand, HardenCommand, ImagesCommand,
    KubeadmCommand, PolicyCommand, SystemdCommand,
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
        Command::VerifyNotation(a) => verify_notation::run(&a, fmt),
        Command::Containerd(ContainerdCommand::Doctor { config, containerd: bin }) => {
            containerd::doctor(&config, &bin, fmt)
        }
        Command::Containerd(ContainerdCommand::Install(a)) => containerd::install(&a, fmt),
        Command::Serve(a) => serve::run(&a),
        Command::Nri(a) => nri::run(&a),
        Command::Controller(a) => controller::run(&a),
        Command::Webhook(a) => webhook::run(&a),
        Command::WebhookCert(a) => webhook::cert(&a, fmt),
        Command::Manifests(a) => manifests(&a, fmt),
        Command::Mirror(a) => runtime()?.block_on(mirror::mirror(&a, fmt)),
        Command::Containerd(ContainerdCommand::Mirrors(a)) => mirror::hosts(&a, fmt),
        Command::Systemd(SystemdCommand::ImageOverride(a)) => mirror::image_override(&a, fmt),
        Command::Bootstrap(BootstrapCommand::Token(a)) => mirror::token(&a, fmt),
        Command::Harden(HardenCommand::Plan(a)) => harden::plan(&a, fmt),
        Command::Harden(HardenCommand::Apply(a)) => harden::apply(&a, fmt),
        Command::Harden(HardenCommand::Audit(a)) => harden::audit(&a, fmt),
        Command::Harden(HardenCommand::Revert(a)) => harden::revert(&a, fmt),
        Command::Policy(PolicyCommand::Check { file }) => policy::check(&file, fmt),
        Command::Policy(PolicyCommand::Default) => policy::default_policy(),
        Command::Policy(PolicyCommand::Import { file, out, to: crate::cli::ImportTarget::Native }) => {
            policy::convert(&file, out.as_deref(), true, fmt)
        }
        Command::Policy(PolicyCommand::Import { file, out, to: crate::cli::ImportTarget::Crd }) => {
            policy::import_crd(&file, out.as_deref(), fmt)
        }
        Command::Policy(PolicyCommand::Export { file, out }) => policy::convert(&file, out.as_deref(), false, fmt),
        Command::Policy(PolicyCommand::Compile { file, out, configmap }) => {
            policy::compile(&file, out.as_deref(), configmap, fmt)
        }
        Command::Version => {
            let coverage = tollgate_controlplane::catalog::Catalog::embedded().coverage();
            match fmt {
                crate::output::Format::Json => crate::output::print_json(&serde_json::json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "catalog": coverage,
                }))?,
                crate::output::Format::Text => {
                    crate::output::print(&format!("tollgate {}\ncatalog: {coverage}\n", env!("CARGO_PKG_VERSION")))?
                }
            }
            Ok(Outcome::Ok)
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tollgate", &mut buf);
            crate::output::print(&String::from_utf8_lossy(&buf))?;
            Ok(Outcome::Ok)
        }
        Command::Man { out } => man(out.as_deref(), fmt),
    }
}

/// `tollgate manifests`: the YAML, on stdout or as files in a directory.
fn manifests(a: &crate::cli::ManifestsArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let out = a.out.as_deref();
    let policies = match &a.policies {
        None => None,
        Some(p) => {
            let text =
                String::from_utf8(read_capped(p)?).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", p.display()))?;
            Some(tollgate_kube::manifests::cluster_policies(&text, &p.display().to_string())?)
        }
    };
    anyhow::ensure!(
        a.ca_file.is_none() || a.webhook_url.is_some() || a.webhook_service,
        "--ca-file is the webhook's CA: give it with --webhook-url URL or --webhook-service"
    );
    let webhook = match (&a.webhook_url, &a.ca_file) {
        (url, Some(ca)) => {
            if let Some(url) = url {
                anyhow::ensure!(
                    url.starts_with("https://"),
                    "--webhook-url {url:?} must be an https:// URL: the API server calls webhooks over TLS only"
                );
            }
            let ca_pem =
                String::from_utf8(read_capped(ca)?).map_err(|_| anyhow::anyhow!("{} is not PEM text", ca.display()))?;
            anyhow::ensure!(
                ca_pem.contains("-----BEGIN CERTIFICATE-----"),
                "{} holds no PEM certificate (--ca-file is the CA that signed the webhook's certificate)",
                ca.display()
            );
            Some(tollgate_kube::manifests::WebhookEndpoint {
                url: url.clone(),
                ca_pem,
                timeout_seconds: a.webhook_timeout,
            })
        }
        _ => None,
    };
    let agent = match &a.image {
        None => None,
        Some(image) => {
            let r = tollgate_oci::Reference::parse_normalized(image)
                .map_err(|e| anyhow::anyhow!("--image {image:?} is not an image reference: {e}"))?;
            anyhow::ensure!(
                r.digest().is_some(),
                "--image {image:?} is not pinned: give it as REPOSITORY@sha256:<digest> (the digest of the tollgate \
                 image you verified), so every node runs exactly that"
            );
            Some(tollgate_kube::manifests::NodeAgent { image: image.clone() })
        }
    };
    let all = tollgate_kube::manifests::all(policies.as_deref(), a.static_admission, webhook.as_ref(), agent.as_ref())?;
    let Some(dir) = out else {
        let text: String = all.iter().map(|m| m.yaml.clone()).collect::<Vec<_>>().join("---\n");
        crate::output::print(&text)?;
        return Ok(Outcome::Ok);
    };
    if !dir.is_dir() {
        out_dir_exists(dir)?;
        std::fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut written = Vec::new();
    for m in &all {
        let path = dir.join(m.file);
        write_out(&path, m.yaml.as_bytes(), 0o644)?;
        written.push(path.display().to_string());
    }
    match fmt {
        Format::Json => crate::output::print_json(&serde_json::json!({ "written": written }))?,
        Format::Text => {
            crate::output::print(&format!("{}\napply with: kubectl apply -f {}\n", written.join("\n"), dir.display()))?
        }
    }
    Ok(Outcome::Ok)
}

/// `tollgate man`: the manual pages clap_mangen renders from the same definitions as `--help`.
fn man(out: Option<&Path>, fmt: Format) -> anyhow::Result<Outcome> {
    let mut root = Cli::command();
    root.build();
    let Some(dir) = out else {
        let mut buf = Vec::new();
        clap_mangen::Man::new(root).render(&mut buf)?;
        crate::output::print(&String::from_utf8_lossy(&buf))?;
        return Ok(Outcome::Ok);
    };
    anyhow::ensure!(dir.is_dir(), "cannot write manual pages to {}: no such directory; create it first", dir.display());
    let mut pages = Vec::new();
    man_pages(&root, &mut pages)?;
    let mut written = Vec::new();
    for (name, bytes) in pages {
        let path = dir.join(format!("{name}.1"));
        write_out(&path, &bytes, 0o644)?;
        written.push(path.display().to_string());
    }
    match fmt {
        Format::Json => crate::output::print_json(&serde_json::json!({ "written": written }))?,
        Format::Text => crate::output::print(&format!("wrote {} manual pages to {}\n", written.len(), dir.display()))?,
    }
    Ok(Outcome::Ok)
}

/// The page of a built `cmd`, named by its display name (`tollgate-images-lock`), then those of its subcommands.
fn man_pages(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    out.push((cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_owned(), buf));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help" && !s.is_hide_set()) {
        man_pages(sub, out)?;
    }
    Ok(())
}

/// A single-threaded runtime: the work is network-bound and a decision sits on
/// the pod start path, so no worker threads are spawned for it.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

/// The runtime of the long-running servers (`serve`, `webhook`): one worker per core.
fn server_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
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
    Ok(tollgate_node::engine::read_limited(path, limit)?)
}

/// The clock, read at the edge and passed into the pure core (Unix seconds).
pub fn now_unix() -> u64 {
    tollgate_node::engine::now_unix()
}

/// Registry credentials: `--authfile` (which must exist), else the first of
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json` and
/// `~/.docker/config.json` that exists. A malformed file is an error.
pub fn load_credentials(authfile: Option<&Path>) -> anyhow::Result<tollgate_registry::credentials::CredentialStore> {
    Ok(tollgate_node::engine::load_credentials(authfile)?)
}

/// Refuses an `--out` file whose directory does not exist, with the fix.
pub fn out_dir_exists(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
        anyhow::bail!(
            "cannot write {}: the directory {} does not exist; create it first",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Writes an `--out` file atomically, refusing a missing parent directory: a
/// typo must not create directories (as cosign and crane refuse). Commands
/// whose docs say they create a directory (`kubeadm patches --out`) write directly.
pub fn write_out(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<tollgate_controlplane::fsutil::WriteOutcome> {
    out_dir_exists(path)?;
    Ok(tollgate_controlplane::fsutil::write_atomic(path, bytes, mode)?)
}

/// The client settings `--insecure-registry`, `--authfile` and `--ca-file` ask for.
pub fn client_config(a: &crate::cli::RegistryAccess) -> anyhow::Result<tollgate_registry::ClientConfig> {
    Ok(tollgate_registry::ClientConfig {
        insecure_registries: a.insecure_registry.clone(),
        credentials: load_credentials(a.authfile.as_deref())?,
        extra_ca_pems: load_ca_files(&a.ca_file)?,
        ..Default::default()
    })
}

/// A progress bar on a TTY (`show`), hidden otherwise.
pub fn progress(len: u64, show: bool, verb: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!("{verb} {{bar:30}} {{pos}}/{{len}} {{msg}}")) {
        bar.set_style(style);
    }
    bar
}

/// Reads `--ca-file` PEM bundles (capped); each must hold at least one certificate.
pub fn load_ca_files(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    tollgate_node::engine::load_ca_files(files).map_err(|e| anyhow::anyhow!("--ca-file {e}"))
}

/// Whether progress bars may be drawn.
pub fn interactive(fmt: Format) -> bool {
    fmt == Format::Text && std::io::IsTerminal::is_terminal(&std::io::stderr())
}
