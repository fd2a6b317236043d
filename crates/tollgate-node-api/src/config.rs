//! The node configuration, `/etc/tollgate/config.yaml`, shared by the
//! containerd verifier entry point and the `tollgate serve` daemon. Pure: bytes
//! in, a checked [`NodeConfig`] out. Every key is documented in
//! docs/operations.md; unknown keys are errors, so a typo cannot silently
//! leave a default (such as fail-closed) in a state the operator did not mean.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Where the config is read from unless `TOLLGATE_CONFIG` names another file.
pub const DEFAULT_CONFIG: &str = "/etc/tollgate/config.yaml";
/// The daemon's socket unless the config or `--socket` names another.
pub const DEFAULT_SOCKET: &str = "/run/tollgate/tollgate.sock";

/// The node configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct NodeConfig {
    /// The policy file (native YAML or containers-policy.json).
    pub policy: PathBuf,
    /// The daemon's unix socket (mode 0600).
    pub socket: PathBuf,
    /// Registries reached over plain HTTP (`HOST[:PORT]`).
    pub insecure_registries: Vec<String>,
    /// Extra PEM CA bundles for registry TLS.
    pub ca_files: Vec<PathBuf>,
    /// A docker config.json / containers auth.json with registry credentials.
    pub auth_file: Option<PathBuf>,
    /// Whole-decision deadline in seconds; containerd kills verifiers after 10 s by default.
    pub deadline_seconds: u64,
    /// Allow the pull when the decision cannot be made for now (registry down).
    /// Integrity failures and denials are never failed open. Default: fail closed.
    pub fail_open: bool,
    /// Allow what the policy would deny, recording `wouldDeny` (a rollout aid,
    /// for policies such as containers-policy.json that cannot say `mode: warn`).
    pub warn_only: bool,
    /// The daemon's caches.
    pub cache: CacheConfig,
    /// The daemon's audit log.
    pub audit_log: AuditConfig,
    /// Also serve `/metrics` on this loopback TCP address (it is always on the socket).
    pub metrics_address: Option<SocketAddr>,
    /// While this file exists the daemon allows every image, with loud audit records.
    pub break_glass_file: PathBuf,
    /// At most this many decisions fetch from registries at once.
    pub max_concurrent_fetches: usize,
    /// How often the daemon re-reads the policy and its trust material.
    pub reload_seconds: u64,
    /// The full `tollgate` binary that `tollgate-verifier` hands a pull to when
    /// the daemon is down (outside containerd's bin_dir, which runs every file in it).
    pub fallback_binary: PathBuf,
    /// A copy of the last policy that loaded, with its trust material, used
    /// when the configured one does not load (so a bad push, then a restart,
    /// keeps enforcing). Its directory must exist; `null` keeps no copy.
    pub last_good_policy: Option<PathBuf>,
    /// The NRI plugin (`tollgate nri`), which decides every container create.
    pub nri: NriConfig,
    /// A directory of per-namespace policies, `NAMESPACE.yaml` (or `.json`): an image decided for a
    /// namespace (NRI, admission) must be allowed by `policy` **and** by its namespace's policy, which
    /// can only add requirements. `null`: none.
    pub namespace_policies: Option<PathBuf>,
    /// A compiled policy bundle, as its ConfigMap (`tollgate policy compile --configmap`) is mounted:
    /// `DIR/policy.yaml` and `DIR/namespace.NAMESPACE.yaml`, read through kubelet's `..data` link
    /// so that one reload reads one version. It replaces `policy` and `namespacePolicies`. `null`:
    /// none.
    pub policy_bundle: Option<PathBuf>,
}

/// `tollgate nri`: where containerd's NRI socket is and what the plugin registers as.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct NriConfig {
    /// containerd's NRI socket (`socket_path` in its `io.containerd.nri.v1.nri` section).
    pub socket: PathBuf,
    /// The name registered; containerd's `default_validator.required_plugins` must list it.
    pub plugin_name: String,
    /// Two digits ordering tollgate among NRI plugins.
    pub plugin_index: String,
    /// Serve the plugin's own `/metrics` (registrations, reconnects, verdicts) on this loopback
    /// TCP address; port 0 picks one, which the log names.
    pub metrics_address: Option<SocketAddr>,
    /// containerd's API socket. On containerd before 2.4, which tells NRI plugins no image digest,
    /// the plugin asks containerd's image store there which digest a container's image name is.
    pub containerd_socket: PathBuf,
}

impl Default for NriConfig {
    fn default() -> Self {
        NriConfig {
            socket: PathBuf::from("/var/run/nri/nri.sock"),
            plugin_name: "tollgate".into(),
            plugin_index: "10".into(),
            metrics_address: None,
            containerd_socket: PathBuf::from("/run/containerd/containerd.sock"),
        }
    }
}

/// Verdict and signature caches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct CacheConfig {
    /// How long an allow is reused.
    pub allow_ttl_seconds: u64,
    /// How long a denial is reused (short: a signature may be published after the first pull).
    pub deny_ttl_seconds: u64,
    /// How long fetched signatures are reused across policy reloads.
    pub signature_ttl_seconds: u64,
    /// At most this many verdicts are kept; the oldest go first.
    pub max_entries: usize,
    /// Fetched signatures kept, in bytes of signature and bundle payloads; the oldest go first.
    pub signature_max_bytes: u64,
}

/// The audit log: JSON lines, rotated by size.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AuditConfig {
    /// The log file; rotated files get `.1`, `.2`, … suffixes.
    pub path: PathBuf,
    /// Rotate when the file would grow past this size.
    pub max_bytes: u64,
    /// How many rotated files to keep.
    pub max_files: u32,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            policy: PathBuf::from("/etc/tollgate/policy.yaml"),
            socket: PathBuf::from(DEFAULT_SOCKET),
            insecure_registries: Vec::new(),
            ca_files: Vec::new(),
            auth_file: None,
            deadline_seconds: 8,
            fail_open: false,
            warn_only: false,
            cache: CacheConfig::default(),
            audit_log: AuditConfig::default(),
            metrics_address: None,
            break_glass_file: PathBuf::from("/etc/tollgate/break-glass"),
            max_concurrent_fetches: 8,
            reload_seconds: 10,
            fallback_binary: PathBuf::from("/usr/local/bin/tollgate"),
            last_good_policy: Some(PathBuf::from("/var/lib/tollgate/last-good-policy.json")),
            nri: NriConfig::default(),
            namespace_policies: None,
            policy_bundle: None,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            allow_ttl_seconds: 600,
            deny_ttl_seconds: 30,
            signature_ttl_seconds: 300,
            max_entries: 100_000,
            signature_max_bytes: 64 << 20,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { path: PathBuf::from("/var/log/tollgate/audit.log"), max_bytes: 50 << 20, max_files: 5 }
    }
}

/// The config is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config {source_name}: {message}")]
pub struct ConfigError {
    /// The file (or other source) the config came from.
    pub source_name: String,
    /// What is wrong.
    pub message: String,
}

impl NodeConfig {
    /// Parses and checks a config file's bytes. An empty file is the defaults.
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<NodeConfig, ConfigError> {
        let err = |message: String| ConfigError { source_name: source_name.to_owned(), message };
        let text = std::str::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))?;
        let cfg: NodeConfig = if text.trim().is_empty() {
            NodeConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| err(e.to_string()))?
        };
        cfg.check().map_err(err)?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=60).contains(&self.deadline_seconds) {
            return Err(format!(
                "deadlineSeconds must be 1..=60 (containerd's own limit is 10), not {}",
                self.deadline_seconds
            ));
        }
        if self.max_concurrent_fetches == 0 {
            return Err("maxConcurrentFetches must be at least 1".into());
        }
        if self.reload_seconds == 0 {
            return Err("reloadSeconds must be at least 1".into());
        }
        if self.cache.max_entries == 0 {
            return Err("cache.maxEntries must be at least 1".into());
        }
        if self.audit_log.max_bytes < 4096 {
            return Err("auditLog.maxBytes must be at least 4096".into());
        }
        // NRI's own rules (api.CheckPluginName, CheckPluginIndex): the runtime refuses others at registration.
        let name = &self.nri.plugin_name;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c)) {
            return Err(format!("nri.pluginName {name:?} must be letters, digits, '-', '_', '.' or '+'"));
        }
        let idx = &self.nri.plugin_index;
        if idx.len() != 2 || !idx.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("nri.pluginIndex {idx:?} must be two digits, such as \"10\""));
        }
        if let Some(a) = self.metrics_address
            && !a.ip().is_loopback()
        {
            return Err(format!(
                "metricsAddress {a} is not a loopback address; metrics name images, so expose them through a proxy you control"
            ));
        }
        if let Some(a) = self.nri.metrics_address
            && !a.ip().is_loopback()
        {
            return Err(format!(
                "nri.metricsAddress {a} is not a loopback address; expose the plugin's metrics through a proxy you control"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults_and_fails_closed() {
        let c = NodeConfig::parse(b"", "c").unwrap();
        assert_eq!(c, NodeConfig::default());
        assert!(!c.fail_open);
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn keys_parse_and_unknown_keys_are_errors() {
        let c = NodeConfig::parse(
            b"policy: /p.yaml\nsocket: /s.sock\nfailOpen: true\ncache:\n  denyTtlSeconds: 5\nmetricsAddress: 127.0.0.1:9464\n",
            "c",
        )
        .unwrap();
        assert_eq!(c.policy, PathBuf::from("/p.yaml"));
        assert_eq!(c.cache.deny_ttl_seconds, 5);
        assert_eq!(c.cache.allow_ttl_seconds, 600);
        assert!(c.fail_open);
        let e = NodeConfig::parse(b"failopen: true\n", "c").unwrap_err();
        assert!(e.to_string().contains("unknown field `failopen`"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for bad in [
            "deadlineSeconds: 0",
            "deadlineSeconds: 600",
            "maxConcurrentFetches: 0",
            "metricsAddress: 0.0.0.0:9464",
            "auditLog: {maxBytes: 10}",
            "cache: {maxEntries: 0}",
            "nri: {pluginName: \"toll gate\"}",
            "nri: {pluginIndex: \"7\"}",
            "nri: {metricsAddress: \"0.0.0.0:9465\"}",
        ] {
            assert!(NodeConfig::parse(bad.as_bytes(), "c").is_err(), "{bad} accepted");
        }
        let c = NodeConfig::parse(b"nri: {metricsAddress: \"127.0.0.1:9465\"}\n", "c").unwrap();
        assert_eq!(c.nri.metrics_address.map(|a| a.port()), Some(9465));
    }
}
