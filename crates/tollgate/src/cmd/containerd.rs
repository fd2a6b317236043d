//! `tollgate containerd doctor | install`: the shell around the pure
//! diagnosis and config merge in `tollgate_node::{doctor, install}`.

use std::path::{Path, PathBuf};

use tollgate_controlplane::fsutil::{WriteOutcome, write_atomic};
use tollgate_node::config::NodeConfig;
use tollgate_node::doctor::{self, Severity};

use super::read_capped;
use crate::cli::ContainerdInstallArgs;
use crate::exit::Outcome;
use crate::output::{Format, print, print_json};

/// `tollgate containerd doctor`: reads the config and the verifier directory, diagnoses purely.
pub fn doctor(config: &Path, containerd: &Path, fmt: Format) -> anyhow::Result<Outcome> {
    let text = String::from_utf8(read_capped(config)?)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", config.display()))?;
    let dir = doctor::bin_dir(&text).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let entries: Option<Vec<String>> = std::fs::read_dir(&dir)
        .ok()
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect());
    let mut findings =
        doctor::diagnose(&text, entries.as_deref()).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    findings.extend(not_executable(Path::new(&dir), entries.as_deref().unwrap_or_default()));
    findings.push(match containerd_version(containerd) {
        Some(out) => doctor::version_finding(&out),
        None => doctor::Finding {
            severity: Severity::Warning,
            key: "containerd version".into(),
            message: format!(
                "{} not found or not runnable, so the version is not checked; before 2.1 kubelet pulls are not \
                 verified: give --containerd PATH",
                containerd.display()
            ),
        },
    });
    if findings.iter().any(|f| f.severity == Severity::Critical) {
        findings.retain(|f| f.key != doctor::SUMMARY); // "nothing found" no longer holds
    }
    let critical = findings.iter().filter(|f| f.severity == Severity::Critical).count();
    match fmt {
        Format::Json => print_json(&serde_json::json!({
            "config": config.display().to_string(), "binDir": dir, "verifiers": entries, "findings": findings,
        }))?,
        Format::Text => {
            let verifiers = match entries.as_deref() {
                None => format!("{dir} does not exist"),
                Some([]) => format!("no verifiers in {dir}"),
                Some(e) => format!("verifiers in {dir}: {}", e.join(", ")),
            };
            let mut s = format!("{} ({verifiers})\n", config.display());
            for f in &findings {
                let sev = label(f.severity);
                s.push_str(&format!("{sev:<8}  {}: {}\n", f.key, f.message));
            }
            print(&s)?;
        }
    }
    Ok(if critical > 0 { Outcome::Findings } else { Outcome::Ok })
}

/// How a finding's severity is printed.
fn label(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRITICAL",
        Severity::Warning => "WARNING",
        Severity::Info => "ok",
    }
}

/// Entries of `bin_dir` that are not executable files: containerd fails every pull on them.
fn not_executable(dir: &Path, entries: &[String]) -> Vec<doctor::Finding> {
    use std::os::unix::fs::PermissionsExt as _;
    entries
        .iter()
        .filter(|e| {
            std::fs::metadata(dir.join(e)).map_or(true, |m| !m.is_file() || m.permissions().mode() & 0o111 == 0)
        })
        .map(|e| doctor::Finding {
            severity: Severity::Critical,
            key: "bin_dir".into(),
            message: format!("{e} in {} is not an executable file: containerd fails every pull on it", dir.display()),
        })
        .collect()
}

/// `containerd --version`, within 5 s; `None` when it cannot be run. There is
/// no library for asking a binary its version, hence the one child process.
#[allow(clippy::disallowed_methods)]
fn containerd_version(bin: &Path) -> Option<String> {
    use std::io::Read as _;
    let spawn = || {
        std::process::Command::new(bin)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
    };
    // ETXTBSY: the binary is being replaced (an upgrade) this very moment.
    let mut attempt = 0;
    let mut child = loop {
        match spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.ok()?,
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    child.stdout.take()?.take(4096).read_to_string(&mut out).ok()?;
    Some(out)
}

/// `tollgate containerd install`: copies this binary into the verifier
/// directory and sets `bin_dir` in containerd's config, then runs the doctor.
pub fn install(a: &ContainerdInstallArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let existing = match std::fs::metadata(&a.config) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        _ => Some(
            String::from_utf8(read_capped(&a.config)?)
                .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", a.config.display()))?,
        ),
    };
    let bin_dir = match &a.bin_dir {
        Some(d) => d.clone(),
        None => PathBuf::from(
            doctor::bin_dir(existing.as_deref().unwrap_or(""))
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.config.display()))?,
        ),
    };
    anyhow::ensure!(bin_dir.is_absolute(), "--bin-dir {} must be an absolute path", bin_dir.display());
    let bin_dir_text =
        bin_dir.to_str().ok_or_else(|| anyhow::anyhow!("--bin-dir {} is not UTF-8", bin_dir.display()))?;
    if let Some(socket) = &a.socket {
        check_socket(&a.tollgate_config, socket)?;
    }
    let mut merged = tollgate_node::install::merge(existing.as_deref(), bin_dir_text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.config.display()))?;
    if a.nri {
        let name = verifier_config(&a.tollgate_config)?.nri.plugin_name;
        let with_nri = tollgate_node::install::merge_nri(&merged.text, &name)
            .map_err(|e| anyhow::anyhow!("{}: {e}", a.config.display()))?;
        merged = tollgate_node::install::Merged {
            changed: merged.changed || with_nri.changed,
            text: with_nri.text,
            version: merged.version,
        };
    }
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find this binary: {e}"))?;
    // The small verifier is shipped beside this binary.
    let exe = exe.with_file_name("tollgate-verifier");
    anyhow::ensure!(
        exe.is_file(),
        "{} not found: tollgate-verifier ships beside tollgate; install both (see docs/operations.md)",
        exe.display()
    );
    let target = bin_dir.join("tollgate-verifier");
    let mut actions = Vec::new();
    let config_name = a.config.display().to_string();
    let diff = tollgate_node::diff::unified(
        existing.as_deref().unwrap_or(""),
        &merged.text,
        if existing.is_some() { &config_name } else { "/dev/null" },
        &config_name,
    );
    if a.dry_run {
        actions.push(format!("would copy {} to {} (mode 0755)", exe.display(), target.display()));
        if merged.changed {
            let verb = if existing.is_some() { "change" } else { "create" };
            actions.push(format!("would {verb} {config_name} (bin_dir = {bin_dir_text}):\n{}", diff.trim_end()));
        } else {
            actions.push(format!("{config_name} already sets bin_dir = {bin_dir_text}"));
        }
    } else {
        let bytes = std::fs::read(&exe).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", exe.display()))?;
        let copied = write_atomic(&target, &bytes, 0o755)?;
        actions.push(format!(
            "{} {}",
            if copied == WriteOutcome::Unchanged { "unchanged" } else { "installed" },
            target.display()
        ));
        let mode = existing_mode(&a.config).unwrap_or(0o644);
        let wrote = write_atomic(&a.config, merged.text.as_bytes(), mode)?;
        actions.push(format!(
            "{} {} (bin_dir = {bin_dir_text}{}, config version {})",
            if wrote == WriteOutcome::Unchanged { "unchanged" } else { "updated" },
            a.config.display(),
            if a.nri { ", NRI with default_validator requiring tollgate's plugin" } else { "" },
            merged.version
        ));
    }
    let entries: Vec<String> = if a.dry_run {
        vec!["tollgate".to_owned()]
    } else {
        std::fs::read_dir(&bin_dir)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let findings =
        doctor::diagnose(&merged.text, Some(&entries)).map_err(|e| anyhow::anyhow!("{}: {e}", a.config.display()))?;
    let mut findings = findings;
    findings.push(fallback_finding(&a.tollgate_config));
    let critical = findings.iter().any(|f| f.severity == Severity::Critical);
    match fmt {
        Format::Json => print_json(&serde_json::json!({
            "config": a.config.display().to_string(), "binDir": bin_dir_text, "dryRun": a.dry_run,
            "changed": merged.changed, "diff": diff, "actions": actions, "findings": findings,
        }))?,
        Format::Text => {
            let mut s = actions.join("\n");
            s.push('\n');
            for f in &findings {
                let sev = label(f.severity);
                s.push_str(&format!("{sev:<8}  {}: {}\n", f.key, f.message));
            }
            if !a.dry_run && merged.changed {
                s.push_str("restart containerd to load the verifier: systemctl restart containerd\n");
            }
            print(&s)?;
        }
    }
    Ok(if critical { Outcome::Findings } else { Outcome::Ok })
}

/// When the daemon is down the verifier hands over to the full binary the
/// tollgate config names; a missing one means every such pull fails closed.
fn fallback_finding(tollgate_config: &Path) -> doctor::Finding {
    use std::os::unix::fs::PermissionsExt as _;
    let fallback = verifier_config(tollgate_config).map(|c| c.fallback_binary);
    let (severity, message) = match fallback {
        Err(e) => (Severity::Critical, format!("cannot read the tollgate config: {e:#}")),
        Ok(p) => match std::fs::metadata(&p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
                (Severity::Info, format!("with the daemon down, pulls are decided in-process by {}", p.display()))
            }
            _ => (
                Severity::Critical,
                format!(
                    "{} (fallbackBinary) is not an executable file: with the daemon down every pull fails closed; install tollgate there",
                    p.display()
                ),
            ),
        },
    };
    doctor::Finding { severity, key: "fallbackBinary".into(), message }
}

fn verifier_config(path: &Path) -> anyhow::Result<NodeConfig> {
    tollgate_node::verifier::load_config(path).map_err(|e| anyhow::anyhow!(e))
}

fn existing_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
}

/// The verifier finds the daemon through the tollgate config; a `--socket`
/// that config does not name would leave every pull on the slow path.
fn check_socket(tollgate_config: &Path, socket: &Path) -> anyhow::Result<()> {
    let configured = verifier_config(tollgate_config)?.socket;
    anyhow::ensure!(
        configured == socket,
        "--socket {} is not the socket the verifier will ask ({} from {}); set `socket: {}` there",
        socket.display(),
        configured.display(),
        tollgate_config.display(),
        socket.display()
    );
    Ok(())
}
