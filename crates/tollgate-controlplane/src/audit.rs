//! Audit of static-pod manifests: is every control-plane image pinned by
//! digest, and is it the digest the catalog expects?
//!
//! Pure: manifests come in as `(file name, bytes)`, findings go out.

use serde::{Deserialize, Serialize};
use tollgate_oci::Reference;

use crate::catalog::{Catalog, Component, VersionImages};
use crate::version::KubernetesVersion;

/// Largest manifest the audit reads.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational; does not fail the audit.
    Info,
    /// Worth a look; does not fail the audit.
    Warning,
    /// Fails the audit.
    Error,
}

/// What was found about one image (or one manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The image is pinned to the digest the catalog expects.
    Pinned,
    /// The image has no digest: the runtime will run whatever the tag points to.
    NotPinned,
    /// Pinned, but to another digest than the catalog's.
    DigestMismatch,
    /// Pinned, but the catalog has no digest for this image to compare with.
    NoCatalogDigest,
    /// The image is not a control-plane component the catalog knows.
    UnknownImage,
    /// The file could not be read as a pod manifest.
    Unreadable,
    /// The image reference is malformed.
    BadReference,
    /// The Kubernetes version could not be determined, so digests were not compared.
    VersionUnknown,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Manifest file name.
    pub manifest: String,
    /// Container name, when the finding is about a container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The image as written in the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// What was found.
    pub kind: FindingKind,
    /// How serious it is.
    pub severity: Severity,
    /// One sentence: what is wrong and what to do.
    pub message: String,
    /// The reference the catalog expects, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
}

/// The audit result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The version the images were compared against.
    pub kubernetes_version: Option<KubernetesVersion>,
    /// How the version was determined.
    pub version_source: String,
    /// Manifests read.
    pub manifests: usize,
    /// Every finding, errors first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether any finding fails the audit.
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

#[derive(Deserialize)]
struct Pod {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    spec: PodSpec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    init_containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: String,
}

/// Audits `manifests` against `catalog`. The version is `version` when
/// given, otherwise the tag of the kube-apiserver image.
pub fn audit(manifests: &[(String, Vec<u8>)], catalog: &Catalog, version: Option<KubernetesVersion>) -> Report {
    let mut findings = Vec::new();
    let mut containers: Vec<(String, String, String)> = Vec::new();
    for (file, bytes) in manifests {
        let finding = |kind, message: String| Finding {
            manifest: file.clone(),
            container: None,
            image: None,
            kind,
            severity: Severity::Error,
            message,
            expected: None,
        };
        if bytes.len() > MAX_MANIFEST_BYTES {
            findings
                .push(finding(FindingKind::Unreadable, format!("larger than {MAX_MANIFEST_BYTES} bytes; not read")));
            continue;
        }
        let pod: Pod = match serde_yaml_ng::from_slice(bytes) {
            Ok(p) => p,
            Err(e) => {
                findings.push(finding(FindingKind::Unreadable, format!("not a valid pod manifest: {e}")));
                continue;
            }
        };
        if pod.kind != "Pod" {
            findings.push(finding(FindingKind::Unreadable, format!("kind is {:?}, expected \"Pod\"", pod.kind)));
            continue;
        }
        for c in pod.spec.init_containers.into_iter().chain(pod.spec.containers) {
            containers.push((file.clone(), c.name, c.image));
        }
    }

    let (version, version_source) = match version {
        Some(v) => (Some(v), "given with --kubernetes-version".to_owned()),
        None => detect_version(&containers),
    };
    let expected: Option<Result<VersionImages, String>> =
        version.map(|v| catalog.images(v, None).map_err(|e| e.to_string()));
    let not_compared = match (&expected, version) {
        (Some(Err(e)), _) => Some(e.clone()),
        (None, None) => Some("no kube-apiserver image with a vX.Y.Z tag found; pass --kubernetes-version".to_owned()),
        _ => None,
    };
    if let Some(why) = not_compared {
        findings.push(Finding {
            manifest: "-".into(),
            container: None,
            image: None,
            kind: FindingKind::VersionUnknown,
            severity: Severity::Warning,
            message: format!("digests not compared: {why}"),
            expected: None,
        });
    }
    let expected = expected.and_then(Result::ok);

    for (manifest, container, image) in containers {
        findings.push(check_container(manifest, container, image, expected.as_ref()));
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Report { kubernetes_version: version, version_source, manifests: manifests.len(), findings }
}

fn detect_version(containers: &[(String, String, String)]) -> (Option<KubernetesVersion>, String) {
    for (file, _, image) in containers {
        let Ok(r) = Reference::parse_normalized(image) else {
            continue;
        };
        if r.path().rsplit('/').next() == Some("kube-apiserver") {
            if let Some(v) = r.tag().and_then(|t| KubernetesVersion::parse(t).ok()) {
                return (Some(v), format!("tag of the kube-apiserver image in {file}"));
            }
        }
    }
    (None, "not found".into())
}

fn check_container(manifest: String, container: String, image: String, expected: Option<&VersionImages>) -> Finding {
    let mut f = Finding {
        manifest,
        container: Some(container.clone()),
        image: Some(image.clone()),
        kind: FindingKind::Pinned,
        severity: Severity::Info,
        message: String::new(),
        expected: None,
    };
    let reference = match Reference::parse_normalized(&image) {
        Ok(r) => r,
        Err(e) => {
            f.kind = FindingKind::BadReference;
            f.severity = Severity::Error;
            f.message = e.to_string();
            return f;
        }
    };
    let component =
        Component::from_name(&container).or_else(|| reference.path().rsplit('/').next().and_then(Component::from_name));
    let want = component.and_then(|c| expected.and_then(|e| e.get(c)));
    f.expected = want.map(|w| w.pinned_reference().to_string());
    let Some(digest) = reference.digest() else {
        f.kind = FindingKind::NotPinned;
        f.severity = Severity::Error;
        f.message = "image is not pinned by digest: the runtime runs whatever the tag points to; pin it with \
                     `tollgate kubeadm patches` and re-run kubeadm with --patches"
            .into();
        return f;
    };
    match (component, want) {
        (None, _) => {
            f.kind = FindingKind::UnknownImage;
            f.severity = Severity::Warning;
            f.message = format!("pinned to {digest}, but not a control-plane image the catalog knows");
        }
        (Some(_), None) => {
            f.kind = FindingKind::NoCatalogDigest;
            f.severity = Severity::Warning;
            f.message = format!("pinned to {digest}; no catalog entry to compare with");
        }
        (Some(_), Some(w)) => match &w.digest {
            None => {
                f.kind = FindingKind::NoCatalogDigest;
                f.severity = Severity::Warning;
                f.message = format!("pinned to {digest}; the catalog records no digest for {}", w.image);
            }
            Some(d) if d == digest => {
                // The digest is on the image line already.
                f.message = "pinned to the digest the catalog expects".into();
            }
            Some(d) => {
                f.kind = FindingKind::DigestMismatch;
                f.severity = Severity::Error;
                f.message = format!(
                    "pinned to {digest}, but the catalog expects {d} for {}; regenerate the patches and re-run kubeadm",
                    w.image
                );
            }
        },
    }
    f
}

#[cfg(test)]
mod tests;
