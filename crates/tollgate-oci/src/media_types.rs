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

/// The media type a manifest's own bytes give, for classifying it as an index
/// or an image manifest. A registry's `Content-Type` header is not covered by
/// the digest, so it never decides: the `mediaType` field does, and where the
/// body has none (it is optional in OCI), the body's shape (`manifests` for an
/// index, `config` and `layers` for an image manifest). The shape must agree
/// with the declared type. `header` (the served `Content-Type`, if any) is
/// used only to name a type the body leaves open, and must agree too.
pub fn of_manifest(body: &[u8], header: Option<&str>) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        config: Option<serde::de::IgnoredAny>,
        layers: Option<serde::de::IgnoredAny>,
    }
    let shape: Shape = serde_json::from_slice(body).map_err(|e| format!("not a manifest: {e}"))?;
    let index_shape = match (shape.manifests.is_some(), shape.config.is_some() || shape.layers.is_some()) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        (true, true) => return Err("it has both `manifests` and `config`/`layers`".into()),
        (false, false) => None,
    };
    let header = header.filter(|h| is_manifest(h));
    let declared = match (shape.media_type, index_shape) {
        (Some(m), _) => m,
        (None, Some(is)) => match header {
            Some(h) if is_index(h) == is => h.to_owned(),
            _ if is => OCI_INDEX.to_owned(),
            _ => OCI_MANIFEST.to_owned(),
        },
        (None, None) => return Err("it has no mediaType, and neither `manifests` nor `config`/`layers`".into()),
    };
    if !is_manifest(&declared) {
        return Ok(declared);
    }
    if let Some(is) = index_shape
        && is != is_index(&declared)
    {
        let shape = if is { "an index's `manifests`" } else { "an image manifest's `config`/`layers`" };
        return Err(format!("it declares {declared} but has {shape}"));
    }
    if let Some(h) = header
        && is_index(h) != is_index(&declared)
    {
        return Err(format!("the registry's Content-Type {h} disagrees with the manifest itself ({declared})"));
    }
    Ok(declared)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    const BARE_INDEX: &str = r#"{"schemaVersion":2,"manifests":[]}"#;
    const MANIFEST: &str = r#"{"schemaVersion":2,"config":{},"layers":[]}"#;

    #[test]
    fn the_body_classifies_and_a_disagreeing_header_is_refused() {
        assert_eq!(of_manifest(INDEX.as_bytes(), None).as_deref(), Ok(OCI_INDEX));
        assert_eq!(of_manifest(BARE_INDEX.as_bytes(), None).as_deref(), Ok(OCI_INDEX));
        assert_eq!(of_manifest(MANIFEST.as_bytes(), Some(DOCKER_MANIFEST)).as_deref(), Ok(DOCKER_MANIFEST));
        assert_eq!(of_manifest(MANIFEST.as_bytes(), None).as_deref(), Ok(OCI_MANIFEST));
        // The spoof: an index served as an image manifest, to skip per-platform checks.
        for body in [INDEX, BARE_INDEX] {
            assert!(of_manifest(body.as_bytes(), Some(OCI_MANIFEST)).is_err_and(|e| e.contains("disagrees")), "{body}");
        }
        assert!(of_manifest(MANIFEST.as_bytes(), Some(OCI_INDEX)).is_err());
        assert_eq!(of_manifest(INDEX.as_bytes(), Some("text/plain")).as_deref(), Ok(OCI_INDEX), "not a manifest type");
    }

    #[test]
    fn a_body_whose_shape_contradicts_its_media_type_is_refused() {
        let lying = r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}"#;
        assert_eq!(
            of_manifest(lying.as_bytes(), None),
            Err("it declares application/vnd.oci.image.manifest.v1+json but has an index's `manifests`".into())
        );
        assert!(of_manifest(br#"{"manifests":[],"layers":[]}"#, None).is_err());
        assert!(of_manifest(br#"{"schemaVersion":2}"#, None).is_err());
        assert!(of_manifest(br#"{"mediaType":"x","mediaType":"y","config":{}}"#, None).is_err(), "duplicate field");
        assert_eq!(of_manifest(br#"{"mediaType":"application/x-other"}"#, None).as_deref(), Ok("application/x-other"));
    }
}
