//! `tollgate containerd doctor`: every containerd setting that silently turns
//! image verification off. Pure: the config text and the verifier directory
//! listing come in, findings go out.

use serde::Serialize;

use crate::install::{NRI_PLUGIN, VERIFIER_PLUGIN};

/// containerd's default image-verifier directory on Linux.
pub const DEFAULT_BIN_DIR: &str = "/opt/containerd/image-verifier/bin";

/// The key of the one finding that says nothing was found.
pub const SUMMARY: &str = "summary";

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Cannot be checked here, and verification may be off: look yourself.
    Warning,
    /// Verification is off, or pulls are not verified, without any error.
    Critical,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The config key (or directory) concerned.
    pub key: String,
    /// What it does and what to do.
    pub message: String,
}

/// The containerd config could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("containerd config: {0}")]
pub struct ConfigError(pub String);

/// Parses the config, turning a TOML syntax error into one line with its
/// position (the parser's own message is a multi-line caret diagram).
fn parse(config: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str(config).map_err(|e: toml::de::Error| {
        let at = e.span().map(|s| {
            let before = config.get(..s.start).unwrap_or(config);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: ")
        });
        ConfigError(format!("{}{}", at.unwrap_or_default(), e.message().trim()))
    })
}

/// The verifier `bin_dir` the config names (or containerd's default).
pub fn bin_dir(config: &str) -> Result<String, ConfigError> {
    Ok(bin_dir_of(&parse(config)?))
}

fn bin_dir_of(doc: &toml::Table) -> String {
    verifier_plugin(doc).and_then(|p| p.get("bin_dir")).and_then(|v| v.as_str()).unwrap_or(DEFAULT_BIN_DIR).to_owned()
}

fn plugins(doc: &toml::Table) -> Option<&toml::Table> {
    doc.get("plugins").and_then(|p| p.as_table())
}

fn verifier_plugin(doc: &toml::Table) -> Option<&toml::Table> {
    plugins(doc)?.get(VERIFIER_PLUGIN)?.as_table()
}

/// Diagnoses a containerd config (versions 2, 3 and 4). `bin_dir_entries` is the
/// listing of the verifier directory, `None` when it does not exist.
pub fn diagnose(config: &str, bin_dir_entries: Option<&[String]>) -> Result<Vec<Finding>, ConfigError> {
    let doc = parse(config)?;
    let version = doc.get("version").and_then(|v| v.as_integer()).unwrap_or(1);
    let mut out = Vec::new();
    let mut critical =
        |key: &str, message: String| out.push(Finding { severity: Severity::Critical, key: key.to_owned(), message });

    if version < 2 {
        critical(
            "version",
            format!(
                "config version {version}: containerd 2.x with config version 2, 3 or 4 is needed for image verifiers"
            ),
        );
    }
    let disabled = doc.get("disabled_plugins").and_then(|d| d.as_array()).cloned().unwrap_or_default();
    if disabled.iter().any(|p| p.as_str() == Some(VERIFIER_PLUGIN)) {
        critical("disabled_plugins", format!("{VERIFIER_PLUGIN} is disabled: no pull is verified"));
    }
    let dir = bin_dir_of(&doc);
    match bin_dir_entries {
        None => critical(
            "bin_dir",
            format!("{dir} does not exist: containerd allows every pull when the verifier directory is missing"),
        ),
        Some([]) => {
            critical("bin_dir", format!("{dir} is empty: containerd allows every pull when no verifier is installed"))
        }
        Some(_) => {}
    }

    // CRI pulls go through the transfer service (and so the verifiers) only when none of these is set.
    let cri = plugins(&doc).and_then(|p| {
        p.get("io.containerd.cri.v1.images").or_else(|| p.get("io.containerd.grpc.v1.cri")).and_then(|c| c.as_table())
    });
    if let Some(cri) = cri {
        let key = |k: &str| cri.get(k);
        let fallback = "kubelet pulls silently fall back to the unverified local pull path";
        if key("use_local_image_pull").and_then(|v| v.as_bool()) == Some(true) {
            critical("use_local_image_pull", format!("use_local_image_pull = true: {fallback}; set it to false"));
        }
        if let Some(n) = key("max_concurrent_downloads").and_then(|v| v.as_integer()).filter(|n| *n != 3) {
            critical(
                "max_concurrent_downloads",
                format!("max_concurrent_downloads = {n} (not 3): {fallback}; remove it"),
            );
        }
        if key("discard_unpacked_layers").and_then(|v| v.as_bool()) == Some(true) {
            critical("discard_unpacked_layers", format!("discard_unpacked_layers = true: {fallback}; set it to false"));
        }
        if key("image_pull_with_sync_fs").and_then(|v| v.as_bool()) == Some(true) {
            critical("image_pull_with_sync_fs", format!("image_pull_with_sync_fs = true: {fallback}; set it to false"));
        }
        if key("disable_snapshot_annotations").and_then(|v| v.as_bool()) == Some(false) {
            critical(
                "disable_snapshot_annotations",
                format!("disable_snapshot_annotations = false: {fallback}; remove it (true is the default)"),
            );
        }
        if let Some(reg) = key("registry").and_then(|v| v.as_table()) {
            for legacy in ["mirrors", "configs", "auths"] {
                if reg.get(legacy).and_then(|v| v.as_table()).is_some_and(|t| !t.is_empty()) {
                    critical(
                        &format!("registry.{legacy}"),
                        format!(
                            "registry.{legacy} is set: {fallback}; configure mirrors with hosts.toml under registry.config_path instead (tollgate containerd mirrors)"
                        ),
                    );
                }
            }
        }
    }
    let (nri_required, nri) = nri_finding(&doc, &disabled);
    if out.is_empty() {
        out.push(Finding {
            severity: Severity::Info,
            key: SUMMARY.into(),
            message: if nri_required {
                "no setting that disables image verification was found".into()
            } else {
                "no setting that disables image verification was found; images already on the node are not re-verified"
                    .into()
            },
        });
    }
    out.push(nri);
    Ok(out)
}

/// Whether containerd's NRI default validator requires a plugin (tollgate's), and what to say.
/// Without it a container from an image already on the node (pulled before the policy, imported,
/// preloaded) starts with no check, and with the plugin down nothing is checked either.
fn nri_finding(doc: &toml::Table, disabled: &[toml::Value]) -> (bool, Finding) {
    let nri = plugins(doc).and_then(|p| p.get(NRI_PLUGIN)).and_then(|t| t.as_table());
    let off = disabled.iter().any(|p| p.as_str() == Some(NRI_PLUGIN))
        || nri.and_then(|t| t.get("disable")).and_then(|v| v.as_bool()) == Some(true);
    let validator = nri.and_then(|t| t.get("default_validator")).and_then(|v| v.as_table());
    let enabled = validator.and_then(|v| v.get("enable")).and_then(|v| v.as_bool()) == Some(true);
    let required: Vec<&str> = validator
        .and_then(|v| v.get("required_plugins"))
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
        .unwrap_or_default();
    let fix = "run `tollgate containerd install --nri`, then `tollgate nri`";
    let warn = |message: String| (false, Finding { severity: Severity::Warning, key: "nri".into(), message });
    if off {
        return warn(format!(
            "NRI is disabled: containers from images already on the node start without a check; {fix}"
        ));
    }
    if !enabled || required.is_empty() {
        return warn(format!(
            "NRI's default_validator requires no plugin: containers from images already on the node start \
             without a check, and with no plugin connected nothing is checked; {fix}"
        ));
    }
    (
        true,
        Finding {
            severity: Severity::Info,
            key: "nri".into(),
            message: format!(
                "every container create needs NRI plugin(s) {} (default_validator.required_plugins)",
                required.join(", ")
            ),
        },
    )
}

/// What `containerd --version` says about verification: containerd 1.x has no
/// image verifiers, 2.0 runs them only for transfer-service pulls (`ctr`), and
/// from 2.1 kubelet's CRI pulls go through them too. `output` is the command's
/// stdout, e.g. `containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7…`.
pub fn version_finding(output: &str) -> Finding {
    // Only containerd's own line counts: another program's version is not containerd's.
    let words = output.split_whitespace();
    let parsed = words.clone().next().filter(|w| *w == "containerd").and_then(|_| {
        words.clone().find_map(|w| {
            let mut parts = w.strip_prefix('v').unwrap_or(w).split(['.', '-', '+']);
            let major = parts.next()?.parse::<u32>().ok()?;
            let minor = parts.next()?.parse::<u32>().ok()?;
            Some((major, minor, w.to_owned()))
        })
    });
    let finding = |severity, message: String| Finding { severity, key: "containerd version".into(), message };
    match parsed {
        None => finding(
            Severity::Warning,
            format!(
                "cannot tell the containerd version from {:?}; before 2.1 kubelet pulls are not verified: check \
                 `containerd --version`",
                output.lines().next().unwrap_or_default().trim()
            ),
        ),
        Some((major, _, v)) if major < 2 => finding(
            Severity::Critical,
            format!("containerd {v} has no image verifiers: no pull is verified; upgrade to 2.1 or later"),
        ),
        Some((2, 0, v)) => finding(
            Severity::Critical,
            format!("containerd {v} verifies only transfer-service pulls (ctr); kubelet pulls are verified from 2.1"),
        ),
        Some((_, _, v)) => {
            finding(Severity::Info, format!("containerd {v} sends kubelet (CRI) pulls through the verifiers"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD_V3: &str = r#"
version = 3
[plugins.'io.containerd.image-verifier.v1.bindir']
  bin_dir = '/opt/containerd/image-verifier/bin'
[plugins.'io.containerd.cri.v1.images']
  use_local_image_pull = false
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = '/etc/containerd/certs.d'
"#;

    fn keys(f: &[Finding]) -> Vec<&str> {
        f.iter().filter(|f| f.severity == Severity::Critical).map(|f| f.key.as_str()).collect()
    }

    #[test]
    fn a_good_config_with_a_verifier_is_clean() {
        let f = diagnose(GOOD_V3, Some(&["tollgate".to_owned()])).unwrap_or_else(|e| panic!("{e}"));
        assert!(keys(&f).is_empty(), "{f:?}");
    }

    #[test]
    fn nri_without_a_required_plugin_is_a_warning_and_with_one_is_said() {
        let f = diagnose(GOOD_V3, Some(&["tollgate".to_owned()])).unwrap_or_else(|e| panic!("{e}"));
        let nri = f.iter().find(|f| f.key == "nri").unwrap_or_else(|| panic!("{f:?}"));
        assert_eq!(nri.severity, Severity::Warning);
        assert!(nri.message.contains("images already on the node start without a check"), "{}", nri.message);
        assert!(f[0].message.ends_with("images already on the node are not re-verified"), "{}", f[0].message);
        let with = crate::install::merge_nri(GOOD_V3, "tollgate").unwrap_or_else(|e| panic!("{e}")).text;
        let f = diagnose(&with, Some(&["tollgate".to_owned()])).unwrap_or_else(|e| panic!("{e}"));
        let nri = f.iter().find(|f| f.key == "nri").unwrap_or_else(|| panic!("{f:?}"));
        assert_eq!(
            (nri.severity, nri.message.contains("plugin(s) tollgate")),
            (Severity::Info, true),
            "{}",
            nri.message
        );
        assert_eq!(f[0].message, "no setting that disables image verification was found");
        let off = format!("disabled_plugins = [\"{NRI_PLUGIN}\"]\n{with}");
        let f = diagnose(&off, Some(&["tollgate".to_owned()])).unwrap_or_else(|e| panic!("{e}"));
        assert!(f.iter().any(|f| f.key == "nri" && f.message.starts_with("NRI is disabled")), "{f:?}");
    }

    #[test]
    fn empty_or_missing_bin_dir_is_critical() {
        let f = diagnose(GOOD_V3, Some(&[])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(&f), ["bin_dir"]);
        assert!(f[0].message.contains("allows every pull"));
        let f = diagnose("version = 3", None).unwrap_or_else(|e| panic!("{e}"));
        assert!(f[0].message.starts_with(DEFAULT_BIN_DIR));
    }

    #[test]
    fn every_silent_fallback_is_reported_in_v3_and_v2() {
        let v3 = r#"
version = 3
disabled_plugins = ["io.containerd.image-verifier.v1.bindir"]
[plugins.'io.containerd.cri.v1.images']
  use_local_image_pull = true
  max_concurrent_downloads = 5
  discard_unpacked_layers = true
  image_pull_with_sync_fs = true
  disable_snapshot_annotations = false
  [plugins.'io.containerd.cri.v1.images'.registry.mirrors.'docker.io']
    endpoint = ['https://mirror.local']
"#;
        let f = diagnose(v3, Some(&["tollgate".to_owned()])).unwrap_or_else(|e| panic!("{e}"));
        // containerd 2.3 writes version 4, with the same plugin tables.
        let v4 = diagnose(&v3.replace("version = 3", "version = 4"), Some(&["tollgate".to_owned()]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(&v4), keys(&f), "version 4 is read like version 3");
        assert_eq!(
            keys(&f),
            [
                "disabled_plugins",
                "use_local_image_pull",
                "max_concurrent_downloads",
                "discard_unpacked_layers",
                "image_pull_with_sync_fs",
                "disable_snapshot_annotations",
                "registry.mirrors"
            ]
        );
        let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.auths.\"r.io\"]\nusername = \"u\"\n";
        let f = diagnose(v2, Some(&["t".to_owned()])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(&f), ["registry.auths"]);
        let f = diagnose("", Some(&["t".to_owned()])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(&f), ["version"]);
    }

    #[test]
    fn versions_before_2_1_do_not_verify_kubelet_pulls() {
        let sev = |o: &str| version_finding(o).severity;
        assert_eq!(sev("containerd containerd.io 1.7.27 05044ec0a9a7"), Severity::Critical);
        assert_eq!(sev("containerd github.com/containerd/containerd/v2 v2.0.5 fb4c30d4"), Severity::Critical);
        assert_eq!(sev("containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b71"), Severity::Info);
        assert_eq!(sev("containerd github.com/containerd/containerd/v2 v2.2.0-rc.1 1"), Severity::Info);
        let dev = version_finding("containerd github.com/containerd/containerd/v2 v2.4.0-dev+301026e 301026e");
        assert_eq!(dev.severity, Severity::Info);
        assert!(dev.message.contains("v2.4.0-dev+301026e"), "{}", dev.message);
        assert!(version_finding("garbage").message.starts_with("cannot tell"));
        assert_eq!(version_finding("garbage").severity, Severity::Warning, "unknown is not ok");
        assert_eq!(version_finding("echo (GNU coreutils) 9.1").severity, Severity::Warning, "not containerd's line");
    }

    #[test]
    fn malformed_config_is_an_error() {
        assert!(diagnose("version = [", None).is_err());
    }
}
