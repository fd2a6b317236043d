//! `tollgate webhook --kubeconfig`: the compiled policy bundle read from its ConfigMap through the
//! API server (kube's client), and mirrored into a private directory laid out as kubelet lays out a
//! mounted ConfigMap: each version in its own directory, behind a `..data` link that is swapped
//! atomically. The daemon then reads it exactly as it reads a mounted bundle, one version per load.
//! Only the bundle's keys are written (`policy.yaml`, `namespace.NAMESPACE.yaml`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;

/// Reading or mirroring the ConfigMap failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigMapError {
    /// The kubeconfig does not load.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// Its path.
        path: String,
        /// kube's message.
        message: String,
    },
    /// The API server did not give the ConfigMap.
    #[error("cannot read ConfigMap {what} from the API server: {message}")]
    Api {
        /// `NAMESPACE/NAME`.
        what: String,
        /// kube's message.
        message: String,
    },
    /// The ConfigMap holds no bundle.
    #[error("ConfigMap {what} has no {key}; write it with tollgate policy compile FILE --configmap")]
    NoPolicy {
        /// `NAMESPACE/NAME`.
        what: String,
        /// The key it lacks.
        key: &'static str,
    },
    /// The mirror directory could not be written.
    #[error("cannot write the bundle mirror {path}: {message}")]
    Write {
        /// What was written.
        path: String,
        /// The OS's message.
        message: String,
    },
}

/// One version of the bundle: the ConfigMap's `resourceVersion` and its bundle keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The ConfigMap's `metadata.resourceVersion`.
    pub resource_version: String,
    /// `policy.yaml` and the `namespace.NAMESPACE.yaml` keys, with their bytes.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Where the bundle is read from.
pub struct Source {
    api: kube::Api<ConfigMap>,
    name: String,
    what: String,
}

impl Source {
    /// A client for the API server and credentials of `kubeconfig` (its current context), reading
    /// ConfigMap `namespace/name`. The identity needs only `get` on that one ConfigMap.
    pub async fn connect(kubeconfig: &Path, namespace: &str, name: &str) -> Result<Source, ConfigMapError> {
        let bad = |message: String| ConfigMapError::Kubeconfig { path: kubeconfig.display().to_string(), message };
        let file = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| bad(e.to_string()))?;
        let mut config = kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| bad(e.to_string()))?;
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(30));
        let client = kube::Client::try_from(config).map_err(|e| bad(e.to_string()))?;
        Ok(Source {
            api: kube::Api::namespaced(client, namespace),
            name: name.to_owned(),
            what: format!("{namespace}/{name}"),
        })
    }

    /// `NAMESPACE/NAME`.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The bundle as the API server has it now.
    pub async fn fetch(&self) -> Result<Version, ConfigMapError> {
        let cm = self
            .api
            .get(&self.name)
            .await
            .map_err(|e| ConfigMapError::Api { what: self.what.clone(), message: e.to_string() })?;
        let key = tollgate_policy::bundle::POLICY_KEY;
        let data = cm.data.unwrap_or_default();
        if !data.contains_key(key) {
            return Err(ConfigMapError::NoPolicy { what: self.what.clone(), key });
        }
        let files = data
            .into_iter()
            .filter(|(k, _)| k == key || tollgate_policy::bundle::namespace_of(k).is_some())
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        Ok(Version { resource_version: cm.metadata.resource_version.unwrap_or_default(), files })
    }
}

/// The private directory the bundle is mirrored into (removed when dropped).
pub struct Mirror {
    dir: tempfile::TempDir,
    serial: u64,
    current: Option<(String, PathBuf)>,
}

impl Mirror {
    /// A new, empty mirror: a directory only this user can read, under the system's temp directory.
    pub fn new() -> Result<Mirror, ConfigMapError> {
        let dir = tempfile::Builder::new().prefix("tollgate-webhook-bundle-").tempdir().map_err(|e| {
            ConfigMapError::Write { path: std::env::temp_dir().display().to_string(), message: e.to_string() }
        })?;
        Ok(Mirror { dir, serial: 0, current: None })
    }

    /// The directory to give the daemon as its `policyBundle`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `v` as the version in force, unless it is the one in force already; `Ok(true)` when
    /// it changed. The new version's directory is complete before `..data` points at it.
    pub fn update(&mut self, v: &Version) -> Result<bool, ConfigMapError> {
        if self.current.as_ref().is_some_and(|(rv, _)| *rv == v.resource_version) {
            return Ok(false);
        }
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        self.serial += 1;
        let name = format!("..version-{}", self.serial);
        let root = self.dir.path();
        let version_dir = root.join(&name);
        let io = |p: &Path, e: std::io::Error| ConfigMapError::Write {
            path: p.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir(&version_dir).map_err(|e| io(&version_dir, e))?;
        for (key, bytes) in &v.files {
            let path = version_dir.join(key);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io(&path, e))?;
            f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| io(&path, e))?;
        }
        // `..data` -> the new version, by rename over the old link (atomic), as kubelet does.
        let link = root.join("..data");
        let staged = root.join("..data_tmp");
        let _ = std::fs::remove_file(&staged);
        std::os::unix::fs::symlink(&name, &staged).map_err(|e| io(&staged, e))?;
        std::fs::rename(&staged, &link).map_err(|e| io(&link, e))?;
        if let Some((_, old)) = self.current.replace((v.resource_version.clone(), version_dir)) {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(true)
    }
}

/// Reads the ConfigMap every `every` and mirrors each new version, until the process ends. A
/// failure keeps the version in force and is logged; the next round tries again.
pub async fn follow(source: Source, mut mirror: Mirror, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match source.fetch().await.and_then(|v| mirror.update(&v).map(|changed| (changed, v))) {
            Ok((true, v)) => {
                tracing::info!(configmap = source.what(), resource_version = %v.resource_version, "policy bundle updated from the API server");
            }
            Ok((false, _)) => {}
            Err(e) => tracing::warn!(error = %e, "keeping the policy bundle in force"),
        }
    }
}
