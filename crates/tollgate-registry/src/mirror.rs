//! Copying images by digest from one registry to another, with every platform
//! of an index, their cosign signatures (`sha256-<hex>.sig`, `.att`, `.sbom`
//! tags) and their OCI referrers (the referrers API, or the `sha256-<hex>`
//! fallback tag). Digests are unchanged, so pins and signatures still hold at
//! the destination. Every manifest and blob is digest-checked on the way
//! (the client verifies what it fetches). Blobs and manifests already at the
//! destination are skipped (HEAD), which is also how an interrupted mirror
//! resumes; blobs are mounted across repositories of one registry, and large
//! ones are uploaded in chunks. The blobs of one manifest are copied
//! [`PARALLEL_BLOBS`] at a time.

use serde::Serialize;
use tollgate_oci::manifest::{ImageIndex, ImageManifest};
use tollgate_oci::{Digest, Reference, media_types};

use crate::{Client, RegistryError};

/// Largest blob copied.
pub const MAX_BLOB_BYTES: u64 = 8 << 30;
/// Blobs up to this size are copied through memory in one upload; larger ones
/// are streamed to a temporary file (digest-checked on the way) and uploaded
/// from it in chunks of this size, so memory stays bounded.
pub const CHUNK_BYTES: usize = 16 << 20;
/// Blobs of one manifest copied at the same time: enough to overlap round
/// trips, few enough that in-memory blobs stay within 4 × [`CHUNK_BYTES`].
pub const PARALLEL_BLOBS: usize = 4;

/// What happened to one blob.
enum BlobCopy {
    Present,
    Mounted,
    /// Uploaded, or (dry run) would be, with its size.
    Uploaded(u64),
}

/// Where `source` goes under `to` (`HOST[/PREFIX]`): the source's path is
/// kept below the prefix, so `registry.k8s.io/kube-apiserver` becomes
/// `HOST/PREFIX/kube-apiserver`.
pub fn destination(source: &Reference, to: &str) -> Result<Reference, RegistryError> {
    let to = to.trim_end_matches('/');
    let text = format!("{to}/{}", source.path());
    let r = Reference::parse_normalized(&text)
        .map_err(|e| RegistryError::Config(format!("--to {to}: {text} is not a valid reference: {e}")))?;
    if r.domain() != to.split('/').next().unwrap_or_default() {
        return Err(RegistryError::Config(format!(
            "--to {to} must start with a registry host (with a dot or a port, or localhost)"
        )));
    }
    Ok(r)
}

/// What one copy did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Copied {
    /// Source reference as given.
    pub source: String,
    /// Destination reference (with the tag when the source had one).
    pub destination: String,
    /// The top-level digest (unchanged).
    pub digest: String,
    /// Manifests written (or already present).
    pub manifests: usize,
    /// Manifests that were already there.
    pub manifests_present: usize,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs mounted from another repository of the destination registry.
    pub blobs_mounted: usize,
    /// Blobs already there (those of a manifest already there are counted
    /// without asking the registry about each).
    pub blobs_present: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Signature, attestation and referrer artifacts copied.
    pub artifacts: Vec<String>,
}

/// Copies between two registries through one client.
#[derive(Debug, Clone)]
pub struct Mirror<'a> {
    /// The client (credentials are scoped per registry by the client).
    pub client: &'a Client,
    /// Read only, write nothing: report what would be copied.
    pub dry_run: bool,
    /// Chunk size and in-memory threshold ([`CHUNK_BYTES`] unless testing).
    pub chunk_bytes: usize,
}

impl Mirror<'_> {
    /// Copies `source` (a tag, a digest, or both) to `dest` (same path
    /// mapping; its tag, if any, is set too) with its platforms, signatures
    /// and referrers.
    pub async fn copy_image(&self, source: &Reference, dest: &Reference) -> Result<Copied, RegistryError> {
        let top = self.client.get_manifest(source).await?;
        let mut out = Copied {
            source: source.to_string(),
            destination: match source.tag() {
                Some(t) => format!("{}:{t}", dest.repository()),
                None => dest.repository(),
            },
            digest: top.digest.to_string(),
            ..Copied::default()
        };
        let src_repo = source.clone().without_digest();
        let dst_repo = dest.clone().without_digest();
        // Children first, so the destination never serves an index whose platforms it lacks.
        let mut digests = vec![top.digest.clone()];
        if media_types::is_index(&top.media_type) {
            let index = ImageIndex::parse(&top.bytes).map_err(|e| malformed(source, &e.to_string()))?;
            for d in &index.manifests {
                self.copy_by_digest(&src_repo, &dst_repo, &d.digest, &mut out).await?;
                digests.push(d.digest.clone());
            }
        }
        self.put_manifest(&src_repo, &dst_repo, &top, source.tag(), &mut out).await?;
        for d in &digests {
            self.copy_artifacts(&src_repo, &dst_repo, d, &mut out).await?;
        }
        Ok(out)
    }

    /// One manifest (and its blobs) by digest; an index recurses one level.
    async fn copy_by_digest(
        &self,
        src: &Reference,
        dst: &Reference,
        digest: &Digest,
        out: &mut Copied,
    ) -> Result<(), RegistryError> {
        let m = self.client.get_manifest(&src.clone().with_digest(digest.clone())).await?;
        if media_types::is_index(&m.media_type) {
            let index = ImageIndex::parse(&m.bytes).map_err(|e| malformed(src, &e.to_string()))?;
            for d in &index.manifests {
                let child = self.client.get_manifest(&src.clone().with_digest(d.digest.clone())).await?;
                self.put_manifest(src, dst, &child, None, out).await?;
            }
        }
        self.put_manifest(src, dst, &m, None, out).await
    }

    /// Blobs of an image manifest, then the manifest by digest (and `tag`).
    async fn put_manifest(
        &self,
        src: &Reference,
        dst: &Reference,
        m: &crate::Manifest,
        tag: Option<&str>,
        out: &mut Copied,
    ) -> Result<(), RegistryError> {
        out.manifests += 1;
        let by_digest = Reference::parse_normalized(&format!("{}@{}", dst.repository(), m.digest))
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        let present = self.client.manifest_exists(&by_digest).await?;
        if !media_types::is_index(&m.media_type) {
            let parsed = ImageManifest::parse(&m.bytes).map_err(|e| malformed(src, &e.to_string()))?;
            if present {
                // A registry stores a manifest only once it has every blob the
                // manifest names, so a resumed run need not ask for each one.
                out.blobs_present += 1 + parsed.layers.len();
            } else {
                use futures_util::{StreamExt as _, TryStreamExt as _};
                let copies: Vec<BlobCopy> =
                    futures_util::stream::iter(std::iter::once(&parsed.config).chain(parsed.layers.iter()))
                        .map(|blob| self.copy_blob(src, dst, &blob.digest, blob.size))
                        .buffer_unordered(PARALLEL_BLOBS)
                        .try_collect()
                        .await?;
                for copy in copies {
                    match copy {
                        BlobCopy::Present => out.blobs_present += 1,
                        BlobCopy::Mounted => out.blobs_mounted += 1,
                        BlobCopy::Uploaded(n) => {
                            out.blobs_uploaded += 1;
                            out.bytes_uploaded += n;
                        }
                    }
                }
            }
        }
        if present && tag.is_none() {
            out.manifests_present += 1;
            return Ok(());
        }
        if !self.dry_run {
            let target = match tag {
                Some(t) => Reference::parse_normalized(&format!("{}:{t}", dst.repository()))
                    .map_err(|e| RegistryError::Config(e.to_string()))?,
                None => by_digest,
            };
            let stored = self.client.put_manifest(&target, &m.media_type, &m.bytes).await?;
            if stored != m.digest {
                return Err(RegistryError::DigestMismatch {
                    registry: dst.domain().to_owned(),
                    what: target.to_string(),
                    expected: m.digest.to_string(),
                    actual: stored,
                });
            }
        }
        if present {
            out.manifests_present += 1;
        }
        Ok(())
    }

    async fn copy_blob(
        &self,
        src: &Reference,
        dst: &Reference,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobCopy, RegistryError> {
        if self.client.blob_exists(dst, digest).await? {
            return Ok(BlobCopy::Present);
        }
        if self.dry_run {
            return Ok(BlobCopy::Uploaded(size));
        }
        if self.client.mount_blob(dst, digest, src).await? {
            return Ok(BlobCopy::Mounted);
        }
        if size > MAX_BLOB_BYTES {
            return Err(RegistryError::TooLarge {
                registry: src.domain().to_owned(),
                what: format!("blob {digest}"),
                limit: MAX_BLOB_BYTES,
            });
        }
        let uploaded = if size <= self.chunk_bytes as u64 {
            let bytes = self.client.get_blob(src, digest, self.chunk_bytes as u64).await?;
            let d = self.client.put_blob(dst, &bytes).await?;
            if d != *digest {
                return Err(RegistryError::DigestMismatch {
                    registry: dst.domain().to_owned(),
                    what: format!("blob {digest}"),
                    expected: digest.to_string(),
                    actual: d,
                });
            }
            bytes.len() as u64
        } else {
            let mut tmp = tempfile::tempfile()
                .map_err(|e| RegistryError::Config(format!("cannot create a temporary file for blob {digest}: {e}")))?;
            let n = self.client.download_blob(src, digest, MAX_BLOB_BYTES, &mut tmp).await?;
            self.client.put_blob_file(dst, &tmp, n, digest, self.chunk_bytes).await?;
            n
        };
        Ok(BlobCopy::Uploaded(uploaded))
    }

    /// cosign's `.sig`/`.att`/`.sbom` tags, and referrers (API or fallback tag).
    async fn copy_artifacts(
        &self,
        src: &Reference,
        dst: &Reference,
        digest: &Digest,
        out: &mut Copied,
    ) -> Result<(), RegistryError> {
        let hex = tollgate_oci::manifest::referrers_tag(digest);
        let mut tags: Vec<String> = ["sig", "att", "sbom"].iter().map(|s| format!("{hex}.{s}")).collect();
        let api = self.client.referrers(src, digest).await?;
        match &api {
            Some(index) => {
                let parsed = ImageIndex::parse(&index.bytes).map_err(|e| malformed(src, &e.to_string()))?;
                for d in &parsed.manifests {
                    self.copy_by_digest(src, dst, &d.digest, out).await?;
                    out.artifacts.push(format!("referrer {}", d.digest));
                }
            }
            None => tags.push(hex.clone()), // the OCI 1.1 fallback tag schema
        }
        for tag in tags {
            let r = Reference::parse_normalized(&format!("{}:{tag}", src.repository()))
                .map_err(|e| RegistryError::Config(e.to_string()))?;
            let m = match self.client.get_manifest(&r).await {
                Ok(m) => m,
                Err(RegistryError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if media_types::is_index(&m.media_type) {
                let index = ImageIndex::parse(&m.bytes).map_err(|e| malformed(src, &e.to_string()))?;
                for d in &index.manifests {
                    self.copy_by_digest(src, dst, &d.digest, out).await?;
                }
            }
            self.put_manifest(src, dst, &m, Some(&tag), out).await?;
            out.artifacts.push(tag);
        }
        Ok(())
    }
}

fn malformed(r: &Reference, message: &str) -> RegistryError {
    RegistryError::Malformed { registry: r.domain().to_owned(), what: r.to_string(), message: message.to_owned() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn destinations_keep_the_source_path_below_the_prefix() {
        let src = Reference::parse_normalized("registry.k8s.io/kube-apiserver:v1.32.9").unwrap();
        assert_eq!(
            destination(&src, "mirror.local:5000/k8s").unwrap().repository(),
            "mirror.local:5000/k8s/kube-apiserver"
        );
        let hub = Reference::parse_normalized("busybox").unwrap();
        assert_eq!(destination(&hub, "127.0.0.1:5000").unwrap().repository(), "127.0.0.1:5000/library/busybox");
        assert!(destination(&src, "noregistry/prefix").is_err());
    }
}
