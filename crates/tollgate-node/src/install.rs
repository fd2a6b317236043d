//! `tollgate containerd install`: enabling the image-verifier plugin in a
//! containerd config, keeping every other line and comment. Pure: text in,
//! text out.

use toml_edit::{DocumentMut, Item, Table, value};

use crate::doctor::ConfigError;

pub(crate) const VERIFIER_PLUGIN: &str = "io.containerd.image-verifier.v1.bindir";
/// The newest containerd config version whose layout tollgate knows.
pub const MAX_VERSION: i64 = 4;

/// The merged config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The new config text.
    pub text: String,
    /// Whether it differs from the input.
    pub changed: bool,
    /// The config's version (2, 3 or 4).
    pub version: i64,
}

/// `plugins."NAME"` of `doc`, created (under an implicit `plugins` table) when missing.
fn plugin_table<'d>(doc: &'d mut DocumentMut, name: &str) -> Result<&'d mut dyn toml_edit::TableLike, ConfigError> {
    let plugins = doc.entry("plugins").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let plugins = plugins.as_table_like_mut().ok_or_else(|| ConfigError("`plugins` is not a table".into()))?;
    plugins
        .entry(name)
        .or_insert(Item::Table(Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| ConfigError(format!("plugins.{name:?} is not a table")))
}

/// Sets the verifier plugin's `bin_dir` in `existing` (`None`: no config yet,
/// which becomes a version 3 config). Versions 2, 3 and 4 (what containerd
/// 2.3 writes by default) use the same plugin key; version 1 (containerd 1.x)
/// has no image verifiers and is refused, and so is a version newer than 4,
/// whose layout tollgate cannot know.
pub fn merge(existing: Option<&str>, bin_dir: &str) -> Result<Merged, ConfigError> {
    let source = existing.unwrap_or("");
    let mut doc: DocumentMut = source.parse().map_err(|e: toml_edit::TomlError| ConfigError(e.to_string()))?;
    let version = match doc.get("version").map(|v| v.as_integer()) {
        Some(Some(v)) => v,
        Some(None) => return Err(ConfigError("`version` is not an integer".into())),
        None if source.trim().is_empty() => {
            doc.insert("version", value(3));
            3
        }
        None => 1,
    };
    if version < 2 {
        return Err(ConfigError(format!(
            "config version {version} is for containerd 1.x, which has no image verifiers; run `containerd config migrate` with containerd 2.1 or later first"
        )));
    }
    if version > MAX_VERSION {
        return Err(ConfigError(format!(
            "config version {version} is newer than tollgate knows (2 to {MAX_VERSION}); check containerd's docs for the image-verifier plugin and set its bin_dir by hand"
        )));
    }
    let plugin = plugin_table(&mut doc, VERIFIER_PLUGIN)?;
    let current = plugin.get("bin_dir").and_then(|v| v.as_str());
    if current != Some(bin_dir) {
        plugin.insert("bin_dir", value(bin_dir));
    }
    let text = doc.to_string();
    Ok(Merged { changed: text != source, text, version })
}

/// containerd's NRI plugin.
pub const NRI_PLUGIN: &str = "io.containerd.nri.v1.nri";
/// The pod annotation that lets a pod start while required NRI plugins are missing: static
/// control-plane pods start before tollgate's plugin can, so tollgate's kubeadm patches set it.
pub const TOLERATE_MISSING_NRI: &str = "nri.tollgate.dev/tolerate-missing-plugins";

/// Turns containerd's NRI on with its default validator requiring `plugin_name` (added to any
/// plugins already required), so that containerd refuses every container while tollgate's plugin
/// is not connected, except pods annotated [`TOLERATE_MISSING_NRI`]`: "true"`. NRI is also taken off
/// `disabled_plugins`. Expects a config [`merge`] accepted (version 2 to 4).
pub fn merge_nri(source: &str, plugin_name: &str) -> Result<Merged, ConfigError> {
    let mut doc: DocumentMut = source.parse().map_err(|e: toml_edit::TomlError| ConfigError(e.to_string()))?;
    let version = doc.get("version").and_then(|v| v.as_integer()).unwrap_or(1);
    if let Some(disabled) = doc.get_mut("disabled_plugins").and_then(|v| v.as_array_mut()) {
        disabled.retain(|v| v.as_str() != Some(NRI_PLUGIN));
    }
    let nri = plugin_table(&mut doc, NRI_PLUGIN)?;
    if nri.get("disable").and_then(|v| v.as_bool()) != Some(false) {
        nri.insert("disable", value(false));
    }
    let validator = nri.entry("default_validator").or_insert(Item::Table(Table::new()));
    let validator = validator
        .as_table_like_mut()
        .ok_or_else(|| ConfigError(format!("plugins.{NRI_PLUGIN:?}.default_validator is not a table")))?;
    if validator.get("enable").and_then(|v| v.as_bool()) != Some(true) {
        validator.insert("enable", value(true));
    }
    let mut required: Vec<String> = match validator.get("required_plugins") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .ok_or_else(|| ConfigError("default_validator.required_plugins is not a list".into()))?
            .iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect(),
    };
    if !required.iter().any(|p| p == plugin_name) {
        required.push(plugin_name.to_owned());
        let mut list = toml_edit::Array::new();
        for p in &required {
            list.push(p.as_str());
        }
        validator.insert("required_plugins", value(list));
    }
    if validator.get("tolerate_missing_plugins_annotation").and_then(|v| v.as_str()).is_none() {
        validator.insert("tolerate_missing_plugins_annotation", value(TOLERATE_MISSING_NRI));
    }
    let text = doc.to_string();
    Ok(Merged { changed: text != source, text, version })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ok(r: Result<Merged, ConfigError>) -> Merged {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_missing_config_becomes_version_3_with_the_plugin() {
        let m = ok(merge(None, "/opt/v"));
        assert_eq!(
            m.text,
            "version = 3\n\n[plugins.\"io.containerd.image-verifier.v1.bindir\"]\nbin_dir = \"/opt/v\"\n"
        );
        assert_eq!(m.version, 3);
        let parsed: toml::Table = toml::from_str(&m.text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(crate::doctor::bin_dir(&m.text).ok().as_deref(), Some("/opt/v"), "{parsed:?}");
    }

    #[test]
    fn comments_and_other_settings_survive_and_a_second_merge_changes_nothing() {
        let v2 = "# node config\nversion = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.10\" # pinned\n\n[plugins.\"io.containerd.image-verifier.v1.bindir\"]\n  bin_dir = \"/old\"\n  max_verifiers = 3\n";
        let m = ok(merge(Some(v2), "/opt/v"));
        assert!(m.changed);
        assert_eq!(m.version, 2);
        assert!(m.text.starts_with("# node config\nversion = 2\n"), "{}", m.text);
        assert!(m.text.contains("sandbox_image = \"registry.k8s.io/pause:3.10\" # pinned"), "{}", m.text);
        assert!(m.text.contains("max_verifiers = 3"), "{}", m.text);
        assert_eq!(crate::doctor::bin_dir(&m.text).ok().as_deref(), Some("/opt/v"));
        let again = ok(merge(Some(&m.text), "/opt/v"));
        assert!(!again.changed);
        assert_eq!(again.text, m.text);
    }

    /// containerd 2.3 (the LTS line) writes version 4 by default
    /// (`containerd config default`); the plugin key is the same.
    #[test]
    fn a_version_4_config_gets_the_plugin_and_keeps_its_version() {
        let v4 = "version = 4\nroot = '/var/lib/containerd'\n\n[plugins]\n  [plugins.'io.containerd.image-verifier.v1.bindir']\n    bin_dir = '/opt/containerd/image-verifier/bin'\n    max_verifiers = 10\n";
        let m = merge(Some(v4), "/opt/v").unwrap();
        assert_eq!(m.version, 4);
        assert!(m.changed);
        assert!(m.text.starts_with("version = 4\nroot = '/var/lib/containerd'\n"), "{}", m.text);
        assert!(m.text.contains("bin_dir = \"/opt/v\"") && m.text.contains("max_verifiers = 10"), "{}", m.text);
        assert!(crate::doctor::bin_dir(&m.text).is_ok_and(|d| d == "/opt/v"));
        assert!(merge(Some("version = 5\n"), "/opt/v").unwrap_err().0.contains("newer than tollgate knows"));
    }

    #[test]
    fn nri_is_enabled_with_a_validator_that_requires_tollgate_and_a_second_merge_changes_nothing() {
        let v3 = "version = 3\ndisabled_plugins = [\"io.containerd.nri.v1.nri\", \"x\"]\n\n[plugins.'io.containerd.nri.v1.nri']\n  socket_path = '/run/n.sock'\n  [plugins.'io.containerd.nri.v1.nri'.default_validator]\n    required_plugins = ['other']\n";
        let m = merge_nri(v3, "tollgate").unwrap();
        let parsed: toml::Table = toml::from_str(&m.text).unwrap();
        assert_eq!(parsed["disabled_plugins"].as_array().unwrap().len(), 1, "{}", m.text);
        let nri = &parsed["plugins"][NRI_PLUGIN];
        assert_eq!(nri["disable"].as_bool(), Some(false));
        assert_eq!(nri["socket_path"].as_str(), Some("/run/n.sock"), "other keys stay");
        let v = &nri["default_validator"];
        assert_eq!(v["enable"].as_bool(), Some(true));
        assert_eq!(v["required_plugins"], toml::Value::Array(vec!["other".into(), "tollgate".into()]));
        assert_eq!(v["tolerate_missing_plugins_annotation"].as_str(), Some(TOLERATE_MISSING_NRI));
        let again = merge_nri(&m.text, "tollgate").unwrap();
        assert!(!again.changed, "{}", again.text);
        assert!(merge_nri("version = 3\n[plugins.'io.containerd.nri.v1.nri']\ndefault_validator = 1\n", "t").is_err());
    }

    #[test]
    fn version_1_and_malformed_configs_are_refused() {
        assert!(merge(Some("[plugins.cri]\nx = 1\n"), "/v").unwrap_err().0.contains("containerd 1.x"));
        assert!(merge(Some("version = ["), "/v").is_err());
        assert!(merge(Some("version = 3\nplugins = 1\n"), "/v").unwrap_err().0.contains("not a table"));
    }
}
