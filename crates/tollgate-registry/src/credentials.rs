//! Registry credentials from docker `config.json` and containers `auth.json`.
//!
//! Parsing is pure. Lookup follows containers-auth.json(5): the most specific
//! key wins (`host/ns/repo`, then `host/ns`, then `host`), and docker's
//! `https://index.docker.io/v1/` key stands for docker.io. Credentials are only
//! ever sent to the registry they are keyed by (and to the token service that
//! registry names, over HTTPS).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;

/// A username and password (or identity token as password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// An auth file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("auth file {source_name}: {message}")]
pub struct AuthFileError {
    /// Which file.
    pub source_name: String,
    /// What is wrong (never includes secrets).
    pub message: String,
}

/// Credentials by registry key (`host[:port]` or `host[:port]/namespace…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialStore {
    entries: BTreeMap<String, Credentials>,
}

#[derive(serde::Deserialize)]
struct File {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl CredentialStore {
    /// Parses a docker `config.json` or containers `auth.json`. Entries
    /// without usable credentials (e.g. only a credential helper) are skipped.
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<CredentialStore, AuthFileError> {
        let err = |message: String| AuthFileError { source_name: source_name.to_owned(), message };
        let file: File = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
        let mut entries = BTreeMap::new();
        for (key, e) in file.auths {
            let creds = match (e.auth, e.username, e.password) {
                (Some(a), _, _) if !a.is_empty() => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(a.trim())
                        .map_err(|_| err(format!("entry {key:?}: \"auth\" is not base64")))?;
                    let text =
                        String::from_utf8(raw).map_err(|_| err(format!("entry {key:?}: \"auth\" is not UTF-8")))?;
                    let (u, p) = text
                        .split_once(':')
                        .ok_or_else(|| err(format!("entry {key:?}: \"auth\" is not user:password")))?;
                    Credentials { username: u.to_owned(), password: p.to_owned() }
                }
                (_, Some(u), Some(p)) => Credentials { username: u, password: p },
                _ => continue,
            };
            entries.insert(normalize_key(&key), creds);
        }
        Ok(CredentialStore { entries })
    }

    /// Adds `other`'s entries where this store has none.
    pub fn merge_missing(&mut self, other: CredentialStore) {
        for (k, v) in other.entries {
            self.entries.entry(k).or_insert(v);
        }
    }

    /// Credentials for `repository` (`host[:port]/path`), most specific key first.
    pub fn lookup(&self, repository: &str) -> Option<&Credentials> {
        let mut key = repository;
        loop {
            if let Some(c) = self.entries.get(key) {
                return Some(c);
            }
            key = &key[..key.rfind('/')?];
        }
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn normalize_key(key: &str) -> String {
    let k = key.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    match k {
        "index.docker.io/v1" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_and_containers_formats_and_picks_the_most_specific() {
        let file = br#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpodWI="},
            "quay.io":{"auth":"cTpob3N0"},
            "quay.io/team":{"username":"t","password":"ns"},
            "helper-only.io":{}},
            "credHelpers":{"gcr.io":"gcloud"}}"#;
        let s = CredentialStore::parse(file, "auth.json").unwrap_or_default();
        assert_eq!(s.lookup("docker.io/library/busybox").map(|c| c.password.as_str()), Some("hub"));
        assert_eq!(s.lookup("quay.io/team/app").map(|c| c.password.as_str()), Some("ns"));
        assert_eq!(s.lookup("quay.io/other/app").map(|c| c.password.as_str()), Some("host"));
        assert_eq!(s.lookup("helper-only.io/x"), None);
        assert_eq!(s.lookup("quay.iox/app"), None);
    }

    #[test]
    fn errors_never_contain_secrets() {
        let e = CredentialStore::parse(br#"{"auths":{"r.io":{"auth":"c2VjcmV0"}}}"#, "a.json").err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("auth file a.json: entry \"r.io\": \"auth\" is not user:password")
        );
        let c = Credentials { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
