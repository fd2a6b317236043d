//! Real OCI images built in memory.

use std::io::Write;

use tollgate_oci::{Digest, Reference, media_types};

/// One pushed single-platform image.
#[derive(Debug, Clone)]
pub struct Built {
    /// Manifest digest.
    pub digest: Digest,
    /// Manifest bytes.
    pub manifest: Vec<u8>,
    /// Media type.
    pub media_type: String,
}

/// A gzip-compressed tar with one file, and the digest of the uncompressed tar.
pub fn layer(file_name: &str, content: &[u8]) -> (Vec<u8>, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, file_name, content).expect("tar");
    let raw = tar.into_inner().expect("tar");
    let diff_id = Digest::sha256_of(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).expect("gz");
    (gz.finish().expect("gz"), diff_id)
}

/// Builds and pushes a single-platform image with one layer, tagged `tag`.
pub async fn push_image(
    client: &tollgate_registry::Client,
    repo: &Reference,
    tag: Option<&str>,
    arch: &str,
    content: &[u8],
) -> Built {
    let (layer, diff_id) = layer("hello.txt", content);
    push_one(client, repo, tag, arch, &layer, &diff_id, serde_json::json!({})).await
}

/// Pushes one gzip `layer` (uncompressed digest `diff_id`) with an image
/// config whose `config` section is `runtime`, and its manifest: under `tag`,
/// or by digest only.
async fn push_one(
    client: &tollgate_registry::Client,
    repo: &Reference,
    tag: Option<&str>,
    arch: &str,
    layer: &[u8],
    diff_id: &Digest,
    runtime: serde_json::Value,
) -> Built {
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "config": runtime
    })
    .to_string()
    .into_bytes();
    let layer_digest = client.put_blob(repo, layer).await.expect("push layer");
    let config_digest = client.put_blob(repo, &config).await.expect("push config");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": {"mediaType": media_types::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": media_types::OCI_LAYER_GZIP, "digest": layer_digest.to_string(), "size": layer.len()}]
    })
    .to_string()
    .into_bytes();
    let target = match tag {
        Some(t) => Reference::parse_normalized(&format!("{}:{t}", repo.repository())).expect("ref"),
        None => repo.clone().without_digest().with_digest(Digest::sha256_of(&manifest)),
    };
    let digest = client.put_manifest(&target, media_types::OCI_MANIFEST, &manifest).await.expect("push manifest");
    Built { digest, manifest, media_type: media_types::OCI_MANIFEST.to_owned() }
}

/// Builds and pushes a two-platform image (amd64, arm64) under an OCI index tagged `tag`.
pub async fn push_index(client: &tollgate_registry::Client, repo: &Reference, tag: &str, content: &[u8]) -> Built {
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let mut c = content.to_vec();
        c.extend_from_slice(arch.as_bytes());
        let built = push_image(client, repo, None, arch, &c).await;
        manifests.push(serde_json::json!({
            "mediaType": built.media_type, "digest": built.digest.to_string(), "size": built.manifest.len(),
            "platform": {"architecture": arch, "os": "linux"}
        }));
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": media_types::OCI_INDEX, "manifests": manifests})
        .to_string()
        .into_bytes();
    let target = Reference::parse_normalized(&format!("{}:{tag}", repo.repository())).expect("ref");
    let digest = client.put_manifest(&target, media_types::OCI_INDEX, &index).await.expect("push index");
    Built { digest, manifest: index, media_type: media_types::OCI_INDEX.to_owned() }
}

/// Writes a one-image OCI layout to `dir`, named `name`, signed by `key` for
/// `docker_reference`, with the signature tagged `sha256-<hex>.sig`. Returns the manifest digest.
pub fn write_signed_layout(
    dir: &std::path::Path,
    name: &str,
    key: &crate::sign::TestKey,
    docker_reference: &str,
) -> Digest {
    let put = |bytes: &[u8]| -> Digest {
        let d = Digest::sha256_of(bytes);
        let p = dir.join("blobs/sha256");
        std::fs::create_dir_all(&p).expect("mkdir");
        std::fs::write(p.join(d.hex()), bytes).expect("write blob");
        d
    };
    let (layer, diff_id) = layer("hello.txt", b"hello from a signed OCI layout\n");
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]}
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_types::OCI_MANIFEST,
        "config": {"mediaType": media_types::OCI_CONFIG, "digest": put(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": media_types::OCI_LAYER_GZIP, "digest": put(&layer).to_string(), "size": layer.len()}]
    })
    .to_string()
    .into_bytes();
    let digest = put(&manifest);
    let sig = crate::sign::Attached::cosign(key, docker_reference, &digest);
    let sig_config = serde_json::json!({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": [Digest::sha256_of(&sig.payload).to_string()]}})
        .to_string()
        .into_bytes();
    let sig_manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_types::OCI_MANIFEST,
        "config": {"mediaType": media_types::OCI_CONFIG, "digest": put(&sig_config).to_string(), "size": sig_config.len()},
        "layers": [{"mediaType": tollgate_verify::cosign::SIMPLE_SIGNING, "digest": put(&sig.payload).to_string(),
                    "size": sig.payload.len(), "annotations": sig.annotations}]
    })
    .to_string()
    .into_bytes();
    let sig_digest = put(&sig_manifest);
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_types::OCI_INDEX,
        "manifests": [
            {"mediaType": media_types::OCI_MANIFEST, "digest": digest.to_string(), "size": manifest.len(),
             "annotations": {"org.opencontainers.image.ref.name": name}},
            {"mediaType": media_types::OCI_MANIFEST, "digest": sig_digest.to_string(), "size": sig_manifest.len(),
             "annotations": {"org.opencontainers.image.ref.name": tollgate_oci::manifest::signature_tag(&digest)}}
        ]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_string_pretty(&index).expect("json")).expect("index");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    digest
}

/// Debian's static busybox (package busybox-static): the one program in the
/// images that containers really run in end-to-end tests.
pub const BUSYBOX: &str = "/bin/busybox";

/// Builds and pushes a single-platform image that really runs: `/bin/busybox`
/// (from the host's busybox-static) with the entrypoint `busybox sleep 3600`,
/// and a file with `marker` so that every such image has its own digest.
pub async fn push_runnable(client: &tollgate_registry::Client, repo: &Reference, tag: &str, marker: &[u8]) -> Built {
    let busybox = std::fs::read(BUSYBOX)
        .unwrap_or_else(|e| panic!("{BUSYBOX}: {e}; install Debian's busybox-static (scripts/test does)"));
    let mut tar = tar::Builder::new(Vec::new());
    for (name, mode, content) in [("bin/busybox", 0o755, &busybox[..]), ("marker", 0o644, marker)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        tar.append_data(&mut h, name, content).expect("tar");
    }
    let raw = tar.into_inner().expect("tar");
    let diff_id = Digest::sha256_of(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).expect("gz");
    let layer = gz.finish().expect("gz");
    let runtime = serde_json::json!({"Entrypoint": ["/bin/busybox", "sleep", "3600"]});
    push_one(client, repo, Some(tag), "amd64", &layer, &diff_id, runtime).await
}
