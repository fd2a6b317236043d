//! OCI image manifests, indexes and descriptors (the parts tollgate reads).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Platform, in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// A platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// Variant (`v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI or docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// Media type, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Config blob.
    pub config: Descriptor,
    /// Layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Subject (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index or docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// Media type, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A manifest could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {message}")]
pub struct ManifestError {
    /// `image manifest` or `image index`.
    pub what: &'static str,
    /// The parser's message.
    pub message: String,
}

impl ImageManifest {
    /// Parses manifest bytes.
    pub fn parse(bytes: &[u8]) -> Result<ImageManifest, ManifestError> {
        serde_json::from_slice(bytes).map_err(|e| ManifestError { what: "image manifest", message: e.to_string() })
    }
}

impl ImageIndex {
    /// Parses index bytes.
    pub fn parse(bytes: &[u8]) -> Result<ImageIndex, ManifestError> {
        serde_json::from_slice(bytes).map_err(|e| ManifestError { what: "image index", message: e.to_string() })
    }
}

/// The cosign signature tag of `digest`: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}.sig", referrers_tag(digest))
}

/// The OCI 1.1 referrers fallback tag of `digest`: `sha256-<hex>`, an index
/// of the artifacts that name `digest` as their subject, for registries
/// without the referrers API (cosign's `.sig`, `.att`, `.sbom` add a suffix).
pub fn referrers_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_cosign_signature_manifest() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
            "layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":248,
              "digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
              "annotations":{"dev.cosignproject.cosign/signature":"MEUC"}}]}"#;
        let m = ImageManifest::parse(m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.layers[0].annotations["dev.cosignproject.cosign/signature"], "MEUC");
        let d = m.layers[0].digest.clone();
        assert_eq!(signature_tag(&d), "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.sig");
    }

    #[test]
    fn malformed_manifests_are_errors() {
        let e =
            ImageManifest::parse(br#"{"schemaVersion":2,"config":{"mediaType":"x","size":1,"digest":"md5:1"}}"#).err();
        assert!(e.is_some_and(|e| e.to_string().starts_with("malformed image manifest: unsupported digest algorithm")));
        assert!(ImageIndex::parse(b"[]").is_err());
    }
}
