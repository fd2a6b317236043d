//! The image catalog: for each Kubernetes version, the control-plane images
//! kubeadm uses and the digest each one is pinned to.
//!
//! The catalog file format (`tollgate.dev/v1alpha1`, kind `ImageCatalog`) is
//! documented in `docs/catalog.md`. One is embedded in the binary; a user
//! file given with `--catalog` is merged over it, version by version and
//! image by image.
//!
//! An image whose digest is not known is recorded as `"digest": null`, never
//! left out: [`VersionImages::unpinned`] lists them, and commands refuse or
//! warn about them explicitly.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use tollgate_oci::{Digest, Reference};

use crate::version::{KubernetesVersion, VersionError};

/// The `apiVersion` of catalog files.
pub const API_VERSION: &str = "tollgate.dev/v1alpha1";
/// The `kind` of catalog files.
pub const KIND: &str = "ImageCatalog";
/// kubeadm's default `imageRepository`.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";
const EMBEDDED: &str = include_str!("../catalog/catalog.json");

/// A control-plane image that kubeadm deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// kube-apiserver static pod.
    KubeApiserver,
    /// kube-controller-manager static pod.
    KubeControllerManager,
    /// kube-scheduler static pod.
    KubeScheduler,
    /// kube-proxy DaemonSet.
    KubeProxy,
    /// CoreDNS Deployment.
    Coredns,
    /// Pod sandbox image (configured in the container runtime).
    Pause,
    /// Local etcd static pod.
    Etcd,
}

impl Component {
    /// All components, in the order `kubeadm config images list` prints them.
    pub const ALL: [Component; 7] = [
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::KubeProxy,
        Component::Coredns,
        Component::Pause,
        Component::Etcd,
    ];

    /// The four static pods that kubeadm patch files can pin.
    pub const STATIC_PODS: [Component; 4] =
        [Component::KubeApiserver, Component::KubeControllerManager, Component::KubeScheduler, Component::Etcd];

    /// The component name (also the kubeadm patch target for static pods).
    pub fn name(self) -> &'static str {
        match self {
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
            Component::KubeProxy => "kube-proxy",
            Component::Coredns => "coredns",
            Component::Pause => "pause",
            Component::Etcd => "etcd",
        }
    }

    /// Looks a component up by name.
    pub fn from_name(name: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The image repository for this component under `image_repository`,
    /// following kubeadm: CoreDNS lives at `coredns/coredns` on the default
    /// registry and at `coredns` on any other.
    pub fn repository(self, image_repository: &str) -> String {
        let repo = image_repository.trim_end_matches('/');
        match self {
            Component::Coredns if repo == DEFAULT_IMAGE_REPOSITORY => {
                format!("{repo}/coredns/coredns")
            }
            c => format!("{repo}/{}", c.name()),
        }
    }
}

/// One image of one version: its tag and, when known, its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePin {
    /// The tag kubeadm uses.
    pub tag: String,
    /// The published digest (of the index, for multi-platform images), or
    /// `null` when no digest is known. The field is required.
    #[serde(deserialize_with = "required_nullable")]
    pub digest: Option<Digest>,
}

fn required_nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Digest>, D::Error> {
    Option::<Digest>::deserialize(d)
}

/// A tag that applies from a patch release on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TagFrom {
    /// First patch release that uses `tag`.
    pub from_patch: u32,
    /// The tag.
    pub tag: String,
}

/// kubeadm's default tags for the images that do not follow the Kubernetes version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinorDefaults {
    /// etcd tags by patch release (etcd bumps are backported).
    pub etcd: Vec<TagFrom>,
    /// CoreDNS tags by patch release.
    pub coredns: Vec<TagFrom>,
    /// pause tags by patch release.
    pub pause: Vec<TagFrom>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionEntry {
    images: BTreeMap<Component, ImagePin>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CatalogFile {
    api_version: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image_repository: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    kubeadm_defaults: BTreeMap<String, MinorDefaults>,
    #[serde(default)]
    versions: BTreeMap<KubernetesVersion, VersionEntry>,
}

/// What a catalog covers (`tollgate version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    /// Releases with an entry (digests where known).
    pub releases: usize,
    /// The oldest of them.
    pub first: Option<String>,
    /// The newest of them.
    pub last: Option<String>,
    /// Minors whose kubeadm default tags are known (`1.26`, …).
    pub default_minors: Vec<String>,
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let span = |v: &[String]| match (v.first(), v.last()) {
            (Some(a), Some(b)) if a != b => format!("{a}–{b}"),
            (Some(a), _) => a.clone(),
            _ => "none".into(),
        };
        write!(
            f,
            "{} releases {}–{}, kubeadm defaults {}",
            self.releases,
            self.first.as_deref().unwrap_or("none"),
            self.last.as_deref().unwrap_or("none"),
            span(&self.default_minors)
        )
    }
}

/// Why a catalog could not be loaded or a version not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The file is not valid catalog JSON.
    #[error("catalog {source_name}: {error}")]
    Parse {
        /// Where the catalog came from.
        source_name: String,
        /// The JSON error, with line and column (part of the message, not a `source`).
        error: serde_json::Error,
    },
    /// `apiVersion` or `kind` is wrong.
    #[error(
        "catalog {source_name}: expected apiVersion {API_VERSION:?} and kind {KIND:?}, found {api_version:?} and {kind:?}"
    )]
    WrongType {
        /// Where the catalog came from.
        source_name: String,
        /// The apiVersion found.
        api_version: String,
        /// The kind found.
        kind: String,
    },
    /// A tag, repository or default in the file is invalid.
    #[error("catalog {source_name}: {what}")]
    Invalid {
        /// Where the catalog came from.
        source_name: String,
        /// What is invalid, naming the entry.
        what: String,
    },
    /// The version is neither pinned in the catalog nor covered by kubeadm defaults.
    #[error(
        "Kubernetes version {version} is not in the catalog (it covers {first} to {last} and kubeadm defaults for {minors}); \
         pass a catalog that has it with --catalog, or resolve it with `tollgate images lock --kubernetes-version {version}`"
    )]
    UnknownVersion {
        /// The requested version.
        version: KubernetesVersion,
        /// Oldest pinned version.
        first: String,
        /// Newest pinned version.
        last: String,
        /// Minor versions with kubeadm defaults.
        minors: String,
    },
    /// Bad version string.
    #[error(transparent)]
    Version(#[from] VersionError),
}

/// Where a version's image list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provenance {
    /// The version has an entry in the catalog.
    Catalog,
    /// Only kubeadm's per-minor defaults are known: tags, no digests.
    KubeadmDefaults,
}

/// An image reference for one component, with its pin state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedImage {
    /// Which component.
    pub component: Component,
    /// `repository:tag`, without digest.
    pub image: Reference,
    /// The pinned digest, or `None` when unknown.
    pub digest: Option<Digest>,
}

impl ResolvedImage {
    /// `repository:tag@digest` when pinned, `repository:tag` otherwise.
    pub fn pinned_reference(&self) -> Reference {
        match &self.digest {
            Some(d) => self.image.clone().with_digest(d.clone()),
            None => self.image.clone(),
        }
    }
}

/// The images of one Kubernetes version, in kubeadm's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionImages {
    /// The Kubernetes version.
    pub version: KubernetesVersion,
    /// Where the list came from.
    pub provenance: Provenance,
    /// The images, in `kubeadm config images list` order.
    pub images: Vec<ResolvedImage>,
}

impl VersionImages {
    /// The image of `component`.
    pub fn get(&self, component: Component) -> Option<&ResolvedImage> {
        self.images.iter().find(|i| i.component == component)
    }

    /// Images without a known digest.
    pub fn unpinned(&self) -> impl Iterator<Item = &ResolvedImage> {
        self.images.iter().filter(|i| i.digest.is_none())
    }
}

/// A merged image catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    image_repository: String,
    defaults: BTreeMap<String, MinorDefaults>,
    versions: BTreeMap<KubernetesVersion, BTreeMap<Component, ImagePin>>,
}

impl Catalog {
    /// The catalog compiled into tollgate.
    ///
    /// # Panics
    /// Never at run time in a released binary: the embedded file is checked
    /// by unit tests, so a malformed one cannot be shipped.
    #[allow(clippy::expect_used)]
    pub fn embedded() -> Catalog {
        Catalog::parse(EMBEDDED.as_bytes(), "<embedded>").expect("embedded catalog is validated by tests")
    }

    /// An empty catalog with the default image repository.
    pub fn empty() -> Catalog {
        Catalog {
            image_repository: DEFAULT_IMAGE_REPOSITORY.to_owned(),
            defaults: BTreeMap::new(),
            versions: BTreeMap::new(),
        }
    }

    /// Parses and validates a catalog file. `source_name` names it in errors.
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = serde_json::from_slice(bytes)
            .map_err(|error| CatalogError::Parse { source_name: source_name.to_owned(), error })?;
        if file.api_version != API_VERSION || file.kind != KIND {
            return Err(CatalogError::WrongType {
                source_name: source_name.to_owned(),
                api_version: file.api_version,
                kind: file.kind,
            });
        }
        let invalid = |what: String| CatalogError::Invalid { source_name: source_name.to_owned(), what };
        let image_repository = file.image_repository.unwrap_or_else(|| DEFAULT_IMAGE_REPOSITORY.to_owned());
        validate_repository(&image_repository).map_err(invalid)?;
        for (minor, d) in &file.kubeadm_defaults {
            validate_minor_key(minor).map_err(invalid)?;
            for (what, list) in [("etcd", &d.etcd), ("coredns", &d.coredns), ("pause", &d.pause)] {
                if list.first().map(|t| t.from_patch) != Some(0) {
                    return Err(invalid(format!("kubeadmDefaults.{minor}.{what} must start with fromPatch 0")));
                }
                if list.windows(2).any(|w| w[0].from_patch >= w[1].from_patch) {
                    return Err(invalid(format!("kubeadmDefaults.{minor}.{what} must be sorted by fromPatch")));
                }
                for t in list {
                    validate_tag(&t.tag).map_err(|e| invalid(format!("kubeadmDefaults.{minor}.{what}: {e}")))?;
                }
            }
        }
        let mut versions = BTreeMap::new();
        for (v, entry) in file.versions {
            for (c, pin) in &entry.images {
                validate_tag(&pin.tag).map_err(|e| invalid(format!("versions.{v}.images.{}: {e}", c.name())))?;
            }
            versions.insert(v, entry.images);
        }
        Ok(Catalog { image_repository, defaults: file.kubeadm_defaults, versions })
    }

    /// Merges `other` over `self`: its defaults replace whole minors, its
    /// version entries replace individual images, and new versions are added.
    pub fn merge(&mut self, other: Catalog) {
        if other.image_repository != DEFAULT_IMAGE_REPOSITORY {
            self.image_repository = other.image_repository;
        }
        self.defaults.extend(other.defaults);
        for (v, images) in other.versions {
            self.versions.entry(v).or_default().extend(images);
        }
    }

    /// Records `pin` for `component` of `version` (used by `images lock`).
    pub fn set_pin(&mut self, version: KubernetesVersion, component: Component, pin: ImagePin) {
        self.versions.entry(version).or_default().insert(component, pin);
    }

    /// What the catalog covers: pinned releases and kubeadm-default minors.
    pub fn coverage(&self) -> Coverage {
        Coverage {
            releases: self.versions.len(),
            first: self.versions.keys().next().map(ToString::to_string),
            last: self.versions.keys().next_back().map(ToString::to_string),
            default_minors: self.defaults.keys().cloned().collect(),
        }
    }

    /// Versions with an entry, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = KubernetesVersion> + '_ {
        self.versions.keys().copied()
    }

    /// The image repository the catalog's digests were published under.
    pub fn image_repository(&self) -> &str {
        &self.image_repository
    }

    /// kubeadm's default tag of `component` for `version`, if the minor is known.
    pub fn default_tag(&self, version: KubernetesVersion, component: Component) -> Option<String> {
        let d = self.defaults.get(&version.minor_key())?;
        let list = match component {
            Component::Etcd => &d.etcd,
            Component::Coredns => &d.coredns,
            Component::Pause => &d.pause,
            _ => return Some(version.to_string()),
        };
        list.iter().rev().find(|t| t.from_patch <= version.patch).map(|t| t.tag.clone())
    }

    /// The images of `version` under `image_repository` (the catalog's own
    /// when `None`). A pinned digest stays valid under another repository
    /// only if that repository mirrors the content by digest, which
    /// `tollgate mirror` guarantees and the runtime enforces.
    pub fn images(
        &self,
        version: KubernetesVersion,
        image_repository: Option<&str>,
    ) -> Result<VersionImages, CatalogError> {
        let repo = image_repository.unwrap_or(&self.image_repository);
        validate_repository(repo)
            .map_err(|what| CatalogError::Invalid { source_name: "--image-repository".into(), what })?;
        let entry = self.versions.get(&version);
        if entry.is_none() && !self.defaults.contains_key(&version.minor_key()) {
            return Err(self.unknown(version));
        }
        let mut images = Vec::with_capacity(Component::ALL.len());
        for component in Component::ALL {
            let pin = match entry.and_then(|e| e.get(&component)) {
                Some(p) => p.clone(),
                None => match self.default_tag(version, component) {
                    Some(tag) => ImagePin { tag, digest: None },
                    None => return Err(self.unknown(version)),
                },
            };
            let text = format!("{}:{}", component.repository(repo), pin.tag);
            let image = Reference::parse_normalized(&text)
                .map_err(|e| CatalogError::Invalid { source_name: "catalog".into(), what: e.to_string() })?;
            images.push(ResolvedImage { component, image, digest: pin.digest });
        }
        let provenance = if entry.is_some() { Provenance::Catalog } else { Provenance::KubeadmDefaults };
        Ok(VersionImages { version, provenance, images })
    }

    fn unknown(&self, version: KubernetesVersion) -> CatalogError {
        let first = self.versions.keys().next().map_or_else(|| "(none)".into(), ToString::to_string);
        let last = self.versions.keys().next_back().map_or_else(|| "(none)".into(), ToString::to_string);
        let minors = if self.defaults.is_empty() {
            "no minor versions".to_owned()
        } else {
            self.defaults.keys().cloned().collect::<Vec<_>>().join(", ")
        };
        CatalogError::UnknownVersion { version, first, last, minors }
    }

    /// Serializes the catalog as pretty JSON in the documented file format.
    pub fn to_json(&self) -> String {
        let file = CatalogFile {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            image_repository: Some(self.image_repository.clone()),
            kubeadm_defaults: self.defaults.clone(),
            versions: self.versions.iter().map(|(v, i)| (*v, VersionEntry { images: i.clone() })).collect(),
        };
        let mut s = serde_json::to_string_pretty(&file).unwrap_or_default();
        s.push('\n');
        s
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    match Reference::parse_normalized(&format!("example.invalid/x:{tag}")) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("invalid tag {tag:?}")),
    }
}

fn validate_repository(repo: &str) -> Result<(), String> {
    Reference::parse_normalized(&format!("{}/x", repo.trim_end_matches('/')))
        .map(|_| ())
        .map_err(|e| format!("invalid image repository {repo:?}: {e}"))
}

fn validate_minor_key(key: &str) -> Result<(), String> {
    KubernetesVersion::parse(&format!("{key}.0"))
        .map(|_| ())
        .map_err(|_| format!("kubeadmDefaults key {key:?} must be MAJOR.MINOR such as 1.32"))
}

#[cfg(test)]
mod tests;
