//! `tollgate containerd install`: enabling the image-verifier plugin in a
//! containerd config, keeping every other line and comment. Pure: text in,
//! text out.

use toml_edit::{DocumentMut, Item, Table, value};

use crate::doctor::ConfigError;

const VERIFIER_PLUGIN: &str = "io.containerd.image-verifier.v1.bindir";
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
    let plugins = doc.entry("plugins").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let plugins = plugins.as_table_like_mut().ok_or_else(|| ConfigError("`plugins` is not a table".into()))?;
    let plugin = plugins.entry(VERIFIER_PLUGIN).or_insert(Item::Table(Table::new()));
    let plugin =
        plugin.as_table_like_mut().ok_or_else(|| ConfigError(format!("plugins.{VERIFIER_PLUGIN:?} is not a table")))?;
    let current = plugin.get("bin_dir").and_then(|v| v.as_str());
    if current != Some(bin_dir) {
        plugin.insert("bin_dir", value(bin_dir));
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
    fn version_1_and_malformed_configs_are_refused() {
        assert!(merge(Some("[plugins.cri]\nx = 1\n"), "/v").unwrap_err().0.contains("containerd 1.x"));
        assert!(merge(Some("version = ["), "/v").is_err());
        assert!(merge(Some("version = 3\nplugins = 1\n"), "/v").unwrap_err().0.contains("not a table"));
    }
}
