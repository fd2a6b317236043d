//! kubeadm patch files (RFC 6902) that pin control-plane images by digest.
//!
//! kubeadm reads every `target[suffix][+patchtype].{json,yaml}` file in the
//! directory given by `--patches` or `patches.directory` and applies it to
//! the manifest it generates. tollgate writes one JSON patch per static pod:
//!
//! ```json
//! [{"op":"test","path":"/spec/containers/0/name","value":"kube-apiserver"},
//!  {"op":"replace","path":"/spec/containers/0/image","value":"registry.k8s.io/kube-apiserver:v1.32.9@sha256:…"}]
//! ```
//!
//! The `test` makes kubeadm fail loudly instead of pinning the wrong
//! container should a future manifest reorder its containers. From kubeadm
//! 1.31 the `corednsdeployment` target pins CoreDNS the same way; before
//! that, CoreDNS is pinned through `ClusterConfiguration.dns`.

use serde::Serialize;
use serde_json::json;

use crate::catalog::{Component, ResolvedImage, VersionImages};

/// File mode of patch files: world-readable, no secrets inside.
pub const PATCH_FILE_MODE: u32 = 0o644;

/// One patch file to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchFile {
    /// File name inside the patches directory.
    pub file_name: String,
    /// The kubeadm patch target.
    pub target: String,
    /// The component it pins.
    pub component: Component,
    /// The pinned reference written into the patch.
    pub image: String,
    /// File content: an RFC 6902 JSON array, newline-terminated.
    #[serde(skip)]
    pub content: String,
}

/// What the patch set does not cover, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Uncovered {
    /// The component.
    pub component: Component,
    /// Why no patch pins it, and what to do.
    pub reason: String,
}

/// The patch files for one version, and what they leave out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatchSet {
    /// Files to write.
    pub files: Vec<PatchFile>,
    /// Images the patch files do not pin.
    pub uncovered: Vec<Uncovered>,
}

/// A patch cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// Images that patches must pin have no known digest.
    #[error(
        "no digest is known for {} of Kubernetes {version}; resolve digests with \
         `tollgate images lock --kubernetes-version {version}` and pass the result with --catalog, \
         or pass --allow-unpinned to write patches for the pinned images only",
        .images.join(", ")
    )]
    Unpinned {
        /// The version.
        version: String,
        /// The unpinned images.
        images: Vec<String>,
    },
}

/// The static pods kubeadm writes, by patch target.
pub const STATIC_POD_TARGETS: [&str; 4] = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// Strategic-merge patches (`<target>5nri+strategic.yaml`, applied after the pins' `+json.json`) that
/// annotate each static pod with `annotation: "true"`, so that containerd's NRI default validator lets
/// the control plane start while a required NRI plugin (tollgate's, when it runs as a pod) is not up yet.
/// A strategic merge adds the key to annotations kubeadm writes, or creates them (the controller
/// manager and scheduler have none). File names and contents, in target order.
pub fn nri_toleration(annotation: &str) -> Vec<(String, String)> {
    STATIC_POD_TARGETS
        .iter()
        .map(|t| {
            (format!("{t}5nri+strategic.yaml"), format!("metadata:\n  annotations:\n    {annotation}: \"true\"\n"))
        })
        .collect()
}

/// Renders the patch set for `images`. With `allow_unpinned`, images without
/// a digest are reported in [`PatchSet::uncovered`] instead of failing.
pub fn render(images: &VersionImages, allow_unpinned: bool) -> Result<PatchSet, PatchError> {
    let coredns_by_patch = images.version.at_least(1, 31);
    let mut targets: Vec<(&ResolvedImage, &str, &str, &str)> = Vec::new();
    let mut uncovered = Vec::new();
    let mut missing = Vec::new();
    for img in &images.images {
        let (target, name_path, image_path) = match img.component {
            Component::Coredns if coredns_by_patch => {
                ("corednsdeployment", "/spec/template/spec/containers/0/name", "/spec/template/spec/containers/0/image")
            }
            Component::Coredns => {
                uncovered.push(Uncovered {
                    component: img.component,
                    reason: "kubeadm before 1.31 has no corednsdeployment patch target; \
                             `tollgate kubeadm config` pins CoreDNS through ClusterConfiguration.dns"
                        .into(),
                });
                continue;
            }
            Component::KubeProxy => {
                uncovered.push(Uncovered {
                    component: img.component,
                    reason: "kubeadm has no kube-proxy patch target before 1.37; pin it in the kube-proxy DaemonSet \
                             or replace kube-proxy"
                        .into(),
                });
                continue;
            }
            Component::Pause => {
                uncovered.push(Uncovered {
                    component: img.component,
                    reason: match &img.digest {
                        Some(d) => format!(
                            "the sandbox image is set by the container runtime, not kubeadm; set containerd's \
                             sandbox image to {}@{d}",
                            img.image
                        ),
                        None => format!(
                            "the sandbox image is set by the container runtime, not kubeadm, and no digest is known \
                             for {}: lock it first (tollgate images lock), then set containerd's sandbox image to it",
                            img.image
                        ),
                    },
                });
                continue;
            }
            c => (c.name(), "/spec/containers/0/name", "/spec/containers/0/image"),
        };
        if img.digest.is_none() {
            missing.push(img.image.to_string());
            uncovered
                .push(Uncovered { component: img.component, reason: format!("no digest known for {}", img.image) });
            continue;
        }
        targets.push((img, target, name_path, image_path));
    }
    if !missing.is_empty() && !allow_unpinned {
        return Err(PatchError::Unpinned { version: images.version.to_string(), images: missing });
    }
    let files = targets
        .into_iter()
        .map(|(img, target, name_path, image_path)| {
            let container = if img.component == Component::Coredns { "coredns" } else { img.component.name() };
            let pinned = img.pinned_reference().to_string();
            let ops = json!([
                {"op": "test", "path": name_path, "value": container},
                {"op": "replace", "path": image_path, "value": pinned},
            ]);
            let mut content = serde_json::to_string_pretty(&ops).unwrap_or_default();
            content.push('\n');
            PatchFile {
                file_name: format!("{target}+json.json"),
                target: target.to_owned(),
                component: img.component,
                image: pinned,
                content,
            }
        })
        .collect();
    Ok(PatchSet { files, uncovered })
}

#[cfg(test)]
mod tests;
