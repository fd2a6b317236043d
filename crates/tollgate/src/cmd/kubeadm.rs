//! `tollgate kubeadm patches|config|audit`.

use anyhow::Context as _;
use serde::Serialize;
use tollgate_controlplane::audit::{self, Severity};
use tollgate_controlplane::fsutil::{self, WriteOutcome};
use tollgate_controlplane::kubeadm_config::{self, ConfigOptions};
use tollgate_controlplane::patches::{self, PATCH_FILE_MODE, PatchFile, Uncovered};

use super::{load_catalog, read_capped, version};
use crate::cli::{AuditArgs, ConfigArgs, PatchesArgs};
use crate::exit::Outcome;
use crate::output::{Format, print, print_json, warn};

#[derive(Serialize)]
struct WrittenPatch<'a> {
    #[serde(flatten)]
    file: &'a PatchFile,
    path: String,
    outcome: Option<WriteOutcome>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PatchesOutput<'a> {
    kubernetes_version: String,
    directory: String,
    dry_run: bool,
    files: Vec<WrittenPatch<'a>>,
    uncovered: &'a [Uncovered],
    upgrade_commands: Vec<String>,
    /// The NRI toleration patches written (with --nri-toleration).
    nri_tolerations: Vec<String>,
}

pub fn patches(a: &PatchesArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let catalog = load_catalog(&a.catalog)?;
    let imgs = catalog.images(version(&a.kubernetes_version)?, a.image_repository.as_deref())?;
    let set = patches::render(&imgs, a.allow_unpinned)?;
    // kubeadm reads one --patches directory: never split the pins from the hardening.
    tollgate_controlplane::patchdir::refuse_split(
        &a.out,
        std::path::Path::new("/"),
        tollgate_controlplane::patchdir::Writing::Pins,
    )
    .map_err(anyhow::Error::msg)?;
    let dir = a.out.display().to_string();
    let mut files = Vec::new();
    for f in &set.files {
        let path = a.out.join(&f.file_name);
        let outcome =
            if a.dry_run { None } else { Some(fsutil::write_atomic(&path, f.content.as_bytes(), PATCH_FILE_MODE)?) };
        files.push(WrittenPatch { file: f, path: path.display().to_string(), outcome });
    }
    let mut nri_tolerations = Vec::new();
    let mut toleration_lines = String::new();
    if a.nri_toleration {
        for (name, content) in patches::nri_toleration(tollgate_node::install::TOLERATE_MISSING_NRI) {
            let path = a.out.join(&name);
            let state = if a.dry_run {
                "would write"
            } else {
                match fsutil::write_atomic(&path, content.as_bytes(), PATCH_FILE_MODE)? {
                    WriteOutcome::Written => "wrote",
                    WriteOutcome::Unchanged => "unchanged",
                }
            };
            toleration_lines.push_str(&format!("{state:<11} {}  (tolerates a missing NRI plugin)\n", path.display()));
            nri_tolerations.push(path.display().to_string());
        }
    }
    let upgrade_commands = vec![
        format!("kubeadm init --patches {dir} ...            # or patches.directory in InitConfiguration"),
        format!("kubeadm join --patches {dir} ...            # every control-plane node"),
        format!("kubeadm upgrade apply {} --patches {dir}", imgs.version),
        format!("kubeadm upgrade node --patches {dir}"),
    ];
    match fmt {
        Format::Json => print_json(&PatchesOutput {
            kubernetes_version: imgs.version.to_string(),
            directory: dir,
            dry_run: a.dry_run,
            files,
            uncovered: &set.uncovered,
            upgrade_commands,
            nri_tolerations,
        })?,
        Format::Text => {
            let mut s = String::new();
            for w in &files {
                let state = match w.outcome {
                    None => "would write",
                    Some(WriteOutcome::Written) => "wrote",
                    Some(WriteOutcome::Unchanged) => "unchanged",
                };
                s.push_str(&format!("{state:<11} {}  ({})\n", w.path, w.file.image));
                if a.dry_run {
                    s.push_str(&w.file.content);
                }
            }
            s.push_str(&toleration_lines);
            s.push_str("\nkubeadm reads these patches only when told to, on every run:\n");
            for c in &upgrade_commands {
                s.push_str(&format!("  {c}\n"));
            }
            print(&s)?;
            for u in &set.uncovered {
                warn(&format!("{} is not pinned by these patches: {}", u.component.name(), u.reason));
            }
        }
    }
    Ok(Outcome::Ok)
}

pub fn config(a: &ConfigArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let catalog = load_catalog(&a.catalog)?;
    let imgs = catalog.images(version(&a.kubernetes_version)?, a.image_repository.as_deref())?;
    let opts = ConfigOptions {
        patches_dir: a.patches_dir.clone(),
        image_repository: a.image_repository.clone(),
        only: a.only.map(|k| k.kind().to_owned()),
    };
    let rendered = kubeadm_config::render(&imgs, &opts);
    if rendered.kinds.is_empty() {
        anyhow::bail!(
            "Kubernetes {} uses kubeadm {}, which has no {}; UpgradeConfiguration exists from 1.31 (v1beta4), use --patches on kubeadm upgrade instead",
            imgs.version,
            rendered.api_version,
            opts.only.unwrap_or_default()
        );
    }
    if let Some(path) = &a.out {
        super::write_out(path, rendered.yaml.as_bytes(), 0o600)?;
    }
    match fmt {
        Format::Json => print_json(&rendered)?,
        Format::Text => {
            if let Some(path) = &a.out {
                print(&format!("wrote {} ({})\n", path.display(), rendered.kinds.join(", ")))?;
            } else {
                print(&rendered.yaml)?;
            }
            eprintln!("To keep the pins through upgrades:");
            for c in &rendered.upgrade_commands {
                eprintln!("  {c}");
            }
            for n in &rendered.notes {
                eprintln!("note: {n}");
            }
        }
    }
    Ok(Outcome::Ok)
}

pub fn audit(a: &AuditArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let catalog = load_catalog(&a.catalog)?;
    let version = a.kubernetes_version.as_deref().map(version).transpose()?;
    let mut manifests = Vec::new();
    let entries = std::fs::read_dir(&a.manifests).with_context(|| {
        format!("cannot read the manifests directory {}; pass --manifests DIR", a.manifests.display())
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        manifests.push((name, read_capped(&p)?));
    }
    if manifests.is_empty() {
        anyhow::bail!(
            "no static-pod manifests (*.yaml, *.yml, *.json) in {}; pass --manifests DIR",
            a.manifests.display()
        );
    }
    let report = audit::audit(&manifests, &catalog, version);
    match fmt {
        Format::Json => print_json(&report)?,
        Format::Text => {
            let mut s = String::new();
            let v = report.kubernetes_version.map_or_else(|| "unknown".to_owned(), |v| v.to_string());
            s.push_str(&format!("Kubernetes {v} ({}), {} manifests\n", report.version_source, report.manifests));
            for f in &report.findings {
                let sev = match f.severity {
                    Severity::Error => "FAIL",
                    Severity::Warning => "WARN",
                    Severity::Info => "ok",
                };
                let what = match (&f.container, &f.image) {
                    (Some(c), Some(i)) => format!("{c}: {i}"),
                    _ => String::new(),
                };
                s.push_str(&format!("{sev:<4}  {:<30} {what}\n      {}\n", f.manifest, f.message));
                if f.severity == Severity::Error {
                    if let Some(e) = &f.expected {
                        s.push_str(&format!("      expected {e}\n"));
                    }
                }
            }
            let errors = report.findings.iter().filter(|f| f.severity == Severity::Error).count();
            s.push_str(&if errors == 0 {
                "audit passed\n".to_owned()
            } else {
                format!("audit failed: {errors} finding(s)\n")
            });
            print(&s)?;
        }
    }
    Ok(if report.failed() { Outcome::Findings } else { Outcome::Ok })
}
