//! What `tollgate manifests` writes: plain YAML that `kubectl apply -f` accepts. Pure.

use kube::CustomResourceExt as _;

use crate::crd::{ClusterImagePolicy, ImagePolicy, TrustRoot};

/// tollgate's namespace.
pub const NAMESPACE: &str = "tollgate-system";

/// A manifest rendering failed (a serializer error: a bug, reported rather than panicked on).
#[derive(Debug, thiserror::Error)]
#[error("cannot render {what}: {message}")]
pub struct RenderError {
    /// Which manifest.
    pub what: &'static str,
    /// The serializer's reason.
    pub message: String,
}

/// One file of the manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its file name (`00-namespace.yaml`); `kubectl apply -f DIR` applies them in this order.
    pub file: &'static str,
    /// YAML documents.
    pub yaml: String,
}

fn yaml<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, RenderError> {
    serde_yaml_ng::to_string(value).map_err(|e| RenderError { what, message: e.to_string() })
}

/// The namespace, with Pod Security labels: tollgate's own pods run as `restricted`.
pub fn namespace() -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n  labels:\n    \
         app.kubernetes.io/part-of: tollgate\n    \
         pod-security.kubernetes.io/enforce: restricted\n    \
         pod-security.kubernetes.io/enforce-version: latest\n    \
         pod-security.kubernetes.io/warn: restricted\n    \
         pod-security.kubernetes.io/audit: restricted\n"
    )
}

/// The three CustomResourceDefinitions, as one YAML stream.
pub fn crds() -> Result<String, RenderError> {
    let docs = [
        yaml("the ClusterImagePolicy CRD", &ClusterImagePolicy::crd())?,
        yaml("the ImagePolicy CRD", &ImagePolicy::crd())?,
        yaml("the TrustRoot CRD", &TrustRoot::crd())?,
    ];
    Ok(docs.join("---\n"))
}

/// Every manifest, in apply order.
pub fn all() -> Result<Vec<Manifest>, RenderError> {
    Ok(vec![
        Manifest { file: "00-namespace.yaml", yaml: namespace() },
        Manifest { file: "10-crds.yaml", yaml: crds()? },
    ])
}
