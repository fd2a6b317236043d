//! Media types of image manifests and indexes.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI descriptor, as containerd passes it to image verifiers.
pub const OCI_DESCRIPTOR: &str = "application/vnd.oci.descriptor.v1+json";

/// Every manifest media type tollgate accepts, in the order sent in `Accept`
/// headers: indexes first so that a multi-platform image resolves to its
/// index digest, the digest a container runtime pins.
pub const MANIFEST_ACCEPT: [&str; 4] = [OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// Whether `media_type` names a multi-platform index or manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether `media_type` is one of the manifest types tollgate understands.
pub fn is_manifest(media_type: &str) -> bool {
    MANIFEST_ACCEPT.contains(&media_type)
}
