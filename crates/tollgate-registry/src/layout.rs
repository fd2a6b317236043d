//! Reading an OCI image layout on disk (`oci:DIR[:NAME]`), with the same
//! checks as the registry: capped reads, every blob verified against its digest.
//!
//! Signatures are found like on a registry: a manifest in `index.json` whose
//! `org.opencontainers.image.ref.name` is `sha256-<hex>.sig`.

use std::io::Read;
use std::path::{Path, PathBuf};

use tollgate_oci::manifest::{Descriptor, ImageIndex, ImageManifest, signature_tag};
use tollgate_oci::{Digest, media_types};

/// The annotation naming an image in a layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A layout could not be read, or its content is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// A file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// Not an OCI layout.
    #[error("{} is not an OCI image layout: {why}", dir.display())]
    NotALayout {
        /// The directory.
        dir: PathBuf,
        /// Why.
        why: String,
    },
    /// No image of that name, or no single image without a name.
    #[error("{}: {why}", dir.display())]
    NoImage {
        /// The directory.
        dir: PathBuf,
        /// Why.
        why: String,
    },
    /// A blob does not hash to its digest.
    #[error("blob {digest} in {} hashes to {actual}; the layout was modified", dir.display())]
    DigestMismatch {
        /// The directory.
        dir: PathBuf,
        /// The expected digest.
        digest: Digest,
        /// What the file hashes to.
        actual: Digest,
    },
    /// A blob is larger than allowed.
    #[error("blob {digest} in {} exceeds the {limit}-byte limit", dir.display())]
    TooLarge {
        /// The directory.
        dir: PathBuf,
        /// The blob.
        digest: Digest,
        /// The cap.
        limit: u64,
    },
    /// A file of the layout is larger than allowed.
    #[error("{} exceeds the {limit}-byte limit", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The cap.
        limit: u64,
    },
    /// A manifest or index is malformed.
    #[error("{} in {}: {message}", what, dir.display())]
    Malformed {
        /// The directory.
        dir: PathBuf,
        /// What.
        what: String,
        /// The parser's message.
        message: String,
    },
}

/// An opened layout.
#[derive(Debug, Clone)]
pub struct Layout {
    dir: PathBuf,
    index: ImageIndex,
    limit: u64,
}

impl Layout {
    /// Opens `dir`: checks `oci-layout` and reads `index.json`. `limit` caps manifests and signature blobs.
    pub fn open(dir: &Path, limit: u64) -> Result<Layout, LayoutError> {
        let marker = read_capped(&dir.join("oci-layout"), 64 << 10)?;
        let v: serde_json::Value = serde_json::from_slice(&marker)
            .map_err(|e| LayoutError::NotALayout { dir: dir.to_owned(), why: format!("oci-layout: {e}") })?;
        if v.get("imageLayoutVersion").and_then(|x| x.as_str()) != Some("1.0.0") {
            return Err(LayoutError::NotALayout {
                dir: dir.to_owned(),
                why: "imageLayoutVersion is not \"1.0.0\"".into(),
            });
        }
        let index = ImageIndex::parse(&read_capped(&dir.join("index.json"), limit)?).map_err(|e| {
            LayoutError::Malformed { dir: dir.to_owned(), what: "index.json".into(), message: e.to_string() }
        })?;
        Ok(Layout { dir: dir.to_owned(), index, limit })
    }

    /// The manifest descriptor named `name`, or the only image when `name` is `None`.
    pub fn resolve(&self, name: Option<&str>) -> Result<Descriptor, LayoutError> {
        let images: Vec<&Descriptor> = self
            .index
            .manifests
            .iter()
            .filter(|d| !d.annotations.get(REF_NAME).is_some_and(|n| n.ends_with(".sig")))
            .collect();
        let found: Vec<&&Descriptor> = match name {
            Some(n) => images.iter().filter(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(n)).collect(),
            None => images.iter().collect(),
        };
        match found.as_slice() {
            [d] => Ok((**d).clone()),
            [] => Err(LayoutError::NoImage {
                dir: self.dir.clone(),
                why: match name {
                    Some(n) => format!("no image named {n:?} in index.json"),
                    None => "index.json lists no image".into(),
                },
            }),
            _ => Err(LayoutError::NoImage {
                dir: self.dir.clone(),
                why: format!("index.json lists {} images; name one with oci:DIR:NAME", found.len()),
            }),
        }
    }

    /// A blob, digest-checked, at most `limit` bytes.
    pub fn blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, LayoutError> {
        let blobs = self.dir.join("blobs");
        let algorithm = blobs.join(digest.algorithm().as_str());
        let path = algorithm.join(digest.hex());
        // A linked blob, or a linked blobs directory, could read anything the verifier may read.
        for (p, what) in [
            (&blobs, "blobs".to_owned()),
            (&algorithm, format!("blobs/{}", digest.algorithm().as_str())),
            (&path, format!("blob {digest}")),
        ] {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(LayoutError::Malformed {
                    dir: self.dir.clone(),
                    what,
                    message: "is a symbolic link; refusing to follow it".into(),
                });
            }
        }
        let bytes = read_capped(&path, limit).map_err(|e| match e {
            LayoutError::TooLarge { .. } => {
                LayoutError::TooLarge { dir: self.dir.clone(), digest: digest.clone(), limit }
            }
            other => other,
        })?;
        digest.verify(&bytes).map_err(|m| LayoutError::DigestMismatch {
            dir: self.dir.clone(),
            digest: digest.clone(),
            actual: m.actual,
        })?;
        Ok(bytes)
    }

    /// The manifest bytes for a descriptor (digest-checked, capped).
    pub fn manifest(&self, d: &Descriptor) -> Result<Vec<u8>, LayoutError> {
        if !media_types::is_manifest(&d.media_type) {
            return Err(LayoutError::Malformed {
                dir: self.dir.clone(),
                what: format!("manifest {}", d.digest),
                message: format!("media type {:?} is not a manifest", d.media_type),
            });
        }
        self.blob(&d.digest, self.limit)
    }

    /// Signature layers attached to `digest` (`sha256-<hex>.sig`), each digest-checked.
    pub fn signature_layers(&self, digest: &Digest) -> Result<Vec<(Descriptor, Vec<u8>)>, LayoutError> {
        let tag = signature_tag(digest);
        let Some(sig) = self.index.manifests.iter().find(|d| d.annotations.get(REF_NAME) == Some(&tag)) else {
            return Ok(Vec::new());
        };
        let bytes = self.blob(&sig.digest, self.limit)?;
        let m = ImageManifest::parse(&bytes).map_err(|e| LayoutError::Malformed {
            dir: self.dir.clone(),
            what: tag.clone(),
            message: e.to_string(),
        })?;
        m.layers
            .into_iter()
            .map(|l| {
                let b = self.blob(&l.digest, self.limit)?;
                Ok((l, b))
            })
            .collect()
    }
}

fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, LayoutError> {
    let io = |error| LayoutError::Io { path: path.to_owned(), error };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(LayoutError::FileTooLarge { path: path.to_owned(), limit });
    }
    Ok(buf)
}
