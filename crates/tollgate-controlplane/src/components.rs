//! Component installs: files from `data:`, `file://` and `https://` URLs,
//! hash-checked, optionally extracted from a tar.gz, written atomically.
//!
//! The list format follows Constellation's `components.Component`
//! (`url`, `hash`, `install_path`, `extract`) and adds an optional `mode`:
//!
//! ```json
//! [{"url": "https://dl.k8s.io/v1.32.9/bin/linux/amd64/kubeadm",
//!   "hash": "sha256:…", "install_path": "/usr/local/bin/kubeadm", "mode": "0755"},
//!  {"url": "data:application/json;base64,W3sib3AiOi…", "hash": "",
//!   "install_path": "/etc/kubernetes/patches/etcd+json.json"}]
//! ```
//!
//! The pipeline is split so that nothing is written before everything is
//! checked: [`parse_list`] → [`ComponentSpec::source`] → (fetch, at the
//! edge) → [`plan`] (hash check, extraction in memory) → [`apply`].

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component as PathPart, Path, PathBuf};

use serde::{Deserialize, Serialize};
use tollgate_oci::{Digest, DigestMismatch};

use crate::confined;
use crate::fsutil::{self, WriteOutcome};

/// Largest download or `file://` source accepted.
pub const MAX_SOURCE_BYTES: u64 = 512 << 20;
/// Largest total size extracted from one archive.
pub const MAX_EXTRACTED_BYTES: u64 = 1 << 30;
/// Largest number of entries in one archive.
pub const MAX_ARCHIVE_ENTRIES: usize = 100_000;

/// One entry of a components list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSpec {
    /// `data:`, `file://` or `https://` URL.
    #[serde(alias = "URL")]
    pub url: String,
    /// `sha256:<hex>`; mandatory unless the URL is `data:`. Empty means none.
    #[serde(default, alias = "Hash")]
    pub hash: String,
    /// Absolute path to install to (a directory when `extract` is set).
    #[serde(alias = "InstallPath")]
    pub install_path: String,
    /// Extract a tar.gz into `install_path` instead of writing one file.
    #[serde(default, alias = "Extract")]
    pub extract: bool,
    /// Octal file mode for single files; default 0644 for `data:` URLs and 0755 otherwise.
    #[serde(default)]
    pub mode: Option<String>,
}

/// Where a component's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Decoded `data:` URL content.
    Data(Vec<u8>),
    /// A local file.
    File(PathBuf),
    /// An https URL, to be fetched by the caller.
    Https(String),
}

/// A components list or entry was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComponentError {
    /// The list is not valid JSON/YAML of the expected shape.
    #[error("components list {source_name}: {message}")]
    Parse {
        /// Where the list came from.
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// An entry is invalid.
    #[error("component {index} ({url}): {message}")]
    Invalid {
        /// Position in the list, from 0.
        index: usize,
        /// The URL, redacted.
        url: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The content does not have the declared hash.
    #[error("component {index} ({url}): {mismatch}; refusing to install")]
    HashMismatch {
        /// Position in the list.
        index: usize,
        /// The URL, redacted.
        url: String,
        /// Expected and actual digest.
        mismatch: DigestMismatch,
    },
    /// The archive is unsafe or unreadable.
    #[error("component {index} ({url}): archive entry {entry:?}: {message}")]
    Archive {
        /// Position in the list.
        index: usize,
        /// The URL, redacted.
        url: String,
        /// The archive entry path.
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] fsutil::WriteError),
}

/// One thing [`apply`] will create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedEntry {
    /// A regular file.
    File {
        /// Destination path.
        path: PathBuf,
        /// Content.
        bytes: Vec<u8>,
        /// Mode.
        mode: u32,
        /// For archive entries: the extraction directory, below which no
        /// symbolic link is ever followed when writing.
        confined: Option<PathBuf>,
    },
    /// A directory.
    Dir {
        /// Destination path.
        path: PathBuf,
        /// As for files.
        confined: Option<PathBuf>,
    },
    /// A symbolic link whose target stays inside the extraction directory.
    Symlink {
        /// Destination path.
        path: PathBuf,
        /// Relative link target.
        target: PathBuf,
        /// The extraction directory.
        confined: PathBuf,
    },
}

/// What happened to one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// The path.
    pub path: PathBuf,
    /// Whether it changed.
    pub outcome: WriteOutcome,
}

/// Parses a components list (a JSON or YAML array).
pub fn parse_list(bytes: &[u8], source_name: &str) -> Result<Vec<ComponentSpec>, ComponentError> {
    let parse_err = |message: String| ComponentError::Parse { source_name: source_name.to_owned(), message };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let list: Vec<ComponentSpec> = if first == Some(&b'[') {
        serde_json::from_slice(bytes).map_err(|e| parse_err(e.to_string()))?
    } else {
        serde_yaml_ng::from_slice(bytes).map_err(|e| parse_err(e.to_string()))?
    };
    if list.is_empty() {
        return Err(parse_err("the list is empty".into()));
    }
    for (i, c) in list.iter().enumerate() {
        c.source(i)?;
        c.install_rel(i)?;
        c.mode(i)?;
        c.digest(i)?;
    }
    Ok(list)
}

impl ComponentSpec {
    /// The URL with credentials, query and long `data:` payloads removed, safe to print.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }

    fn invalid(&self, index: usize, message: impl Into<String>) -> ComponentError {
        ComponentError::Invalid { index, url: self.display_url(), message: message.into() }
    }

    /// Classifies and checks the URL. `data:` URLs are decoded here.
    pub fn source(&self, index: usize) -> Result<Source, ComponentError> {
        let lower = self.url.to_ascii_lowercase();
        if lower.starts_with("data:") {
            let url = data_url::DataUrl::process(&self.url)
                .map_err(|e| self.invalid(index, format!("malformed data: URL: {e:?}")))?;
            let (body, _) =
                url.decode_to_vec().map_err(|_| self.invalid(index, "data: URL has invalid base64 content"))?;
            return Ok(Source::Data(body));
        }
        if self.hash.is_empty() {
            return Err(
                self.invalid(index, "a sha256 hash is required for non-data: URLs; add \"hash\": \"sha256:<hex>\"")
            );
        }
        if let Some(path) = lower.strip_prefix("file://").map(|_| &self.url[7..]) {
            if !path.starts_with('/') {
                return Err(self.invalid(index, "file:// URLs need an absolute path (file:///path)"));
            }
            return Ok(Source::File(PathBuf::from(path)));
        }
        if lower.starts_with("https://") {
            return Ok(Source::Https(self.url.clone()));
        }
        if lower.starts_with("http://") {
            return Err(self.invalid(index, "plain http is refused; use https:// or a local file:// copy"));
        }
        Err(self.invalid(index, "unsupported URL scheme; use data:, file:// or https://"))
    }

    fn digest(&self, index: usize) -> Result<Option<Digest>, ComponentError> {
        if self.hash.is_empty() {
            return Ok(None);
        }
        Digest::parse(&self.hash).map(Some).map_err(|e| self.invalid(index, e.to_string()))
    }

    fn install_rel(&self, index: usize) -> Result<PathBuf, ComponentError> {
        let p = Path::new(&self.install_path);
        if !p.is_absolute() {
            return Err(self.invalid(index, format!("install_path {:?} must be absolute", self.install_path)));
        }
        let mut rel = PathBuf::new();
        for part in p.components() {
            match part {
                PathPart::RootDir | PathPart::CurDir => {}
                PathPart::Normal(n) => rel.push(n),
                _ => {
                    return Err(
                        self.invalid(index, format!("install_path {:?} must not contain '..'", self.install_path))
                    );
                }
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(self.invalid(index, "install_path must not be the root directory"));
        }
        Ok(rel)
    }

    fn mode(&self, index: usize) -> Result<u32, ComponentError> {
        match &self.mode {
            Some(m) => u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| self.invalid(index, format!("mode {m:?} must be octal permissions such as \"0755\""))),
            None if self.url.to_ascii_lowercase().starts_with("data:") => Ok(0o644),
            None => Ok(0o755),
        }
    }
}

/// Checks `bytes` against the entry's hash and plans what to write under `root`.
pub fn plan(
    spec: &ComponentSpec,
    index: usize,
    bytes: &[u8],
    root: &Path,
) -> Result<Vec<PlannedEntry>, ComponentError> {
    if let Some(d) = spec.digest(index)? {
        d.verify(bytes).map_err(|mismatch| ComponentError::HashMismatch {
            index,
            url: spec.display_url(),
            mismatch,
        })?;
    }
    let dest = root.join(spec.install_rel(index)?);
    if !spec.extract {
        return Ok(vec![PlannedEntry::File {
            path: dest,
            bytes: bytes.to_vec(),
            mode: spec.mode(index)?,
            confined: None,
        }]);
    }
    extract_plan(spec, index, bytes, &dest)
}

fn extract_plan(
    spec: &ComponentSpec,
    index: usize,
    bytes: &[u8],
    dest: &Path,
) -> Result<Vec<PlannedEntry>, ComponentError> {
    let err = |entry: &str, message: &str| ComponentError::Archive {
        index,
        url: spec.display_url(),
        entry: entry.to_owned(),
        message: message.to_owned(),
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let entries = archive.entries().map_err(|e| err("-", &format!("not a tar.gz archive: {e}")))?;
    let mut plan = vec![PlannedEntry::Dir { path: dest.to_owned(), confined: None }];
    let within = Some(dest.to_owned());
    let mut links: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut total: u64 = 0;
    for (n, entry) in entries.enumerate() {
        if n >= MAX_ARCHIVE_ENTRIES {
            return Err(err("-", &format!("more than {MAX_ARCHIVE_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(|e| err("-", &format!("unreadable archive: {e}")))?;
        let raw = entry.path().map(|p| p.to_path_buf()).map_err(|e| err("-", &format!("bad entry name: {e}")))?;
        let shown = raw.display().to_string();
        let rel = confined(&raw).ok_or_else(|| err(&shown, "path escapes the install directory"))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        if rel.ancestors().skip(1).any(|a| links.contains_key(a)) {
            return Err(err(&shown, "path goes through a symbolic link from the same archive"));
        }
        let path = dest.join(&rel);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            plan.push(PlannedEntry::Dir { path, confined: within.clone() });
        } else if kind.is_file() {
            let size = entry.header().size().map_err(|e| err(&shown, &e.to_string()))?;
            total = total.saturating_add(size);
            if total > MAX_EXTRACTED_BYTES {
                return Err(err(&shown, &format!("archive expands beyond {MAX_EXTRACTED_BYTES} bytes")));
            }
            let mode = entry.header().mode().map_err(|e| err(&shown, &e.to_string()))? & 0o755;
            let mut content = Vec::with_capacity(usize::try_from(size.min(1 << 24)).unwrap_or(0));
            entry.by_ref().take(size).read_to_end(&mut content).map_err(|e| err(&shown, &e.to_string()))?;
            plan.push(PlannedEntry::File { path, bytes: content, mode, confined: within.clone() });
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.to_path_buf())
                .ok_or_else(|| err(&shown, "symbolic link without a target"))?;
            let parent = rel.parent().unwrap_or(Path::new(""));
            if target.is_absolute() || confined(&parent.join(&target)).is_none() {
                return Err(err(
                    &shown,
                    &format!("symbolic link to {} points outside the install directory", target.display()),
                ));
            }
            links.insert(rel, target.clone());
            plan.push(PlannedEntry::Symlink { path, target, confined: dest.to_owned() });
        } else {
            return Err(err(&shown, "only files, directories and contained symbolic links may be extracted"));
        }
    }
    // Lexical confinement is not enough: the kernel applies `..` after it
    // follows a link (`d/b -> ..`, then `esc -> d/b/d/b/../../../victim`).
    // Every link is resolved through the archive's other links, once all are known.
    let mut sorted: Vec<_> = links.iter().collect();
    sorted.sort();
    for (rel, target) in sorted {
        let parent = rel.parent().unwrap_or(Path::new(""));
        if resolve(&links, &parent.join(target), 0).is_none() {
            return Err(err(
                &rel.display().to_string(),
                &format!(
                    "symbolic link to {} leads outside the install directory through the archive's other links",
                    target.display()
                ),
            ));
        }
    }
    Ok(plan)
}

/// Where `p` (relative to the extraction directory) leads when the archive's
/// `links` are followed as the kernel follows them: a link's target against
/// the link's directory, and `..` after the link. `None` when it leaves the
/// directory, is absolute, or loops.
fn resolve(links: &HashMap<PathBuf, PathBuf>, p: &Path, depth: u32) -> Option<PathBuf> {
    if depth > 40 {
        return None;
    }
    let mut out = PathBuf::new();
    for part in p.components() {
        match part {
            PathPart::CurDir => {}
            PathPart::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            PathPart::Normal(n) => {
                out.push(n);
                if let Some(target) = links.get(&out) {
                    let base = out.parent().unwrap_or(Path::new("")).join(target);
                    out = resolve(links, &base, depth + 1)?;
                }
            }
            PathPart::RootDir | PathPart::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Lexically resolves `p` (no `..` above the start, no absolute paths).
fn confined(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in p.components() {
        match part {
            PathPart::CurDir => {}
            PathPart::Normal(n) => out.push(n),
            PathPart::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            PathPart::RootDir | PathPart::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Writes a plan to disk. Files are written atomically; files that already
/// have the planned content and mode are left untouched, so applying the
/// same plan twice changes nothing. A symbolic link already on disk inside
/// an extraction directory is never followed.
pub fn apply(plan: &[PlannedEntry]) -> Result<Vec<Installed>, ComponentError> {
    let mut out = Vec::with_capacity(plan.len());
    let below = |root: &Path, path: &Path| path.strip_prefix(root).map(Path::to_path_buf).unwrap_or_default();
    for entry in plan {
        let (path, outcome) = match entry {
            PlannedEntry::Dir { path, confined: Some(root) } => (
                path,
                confined::create_dir(root, &below(root, path))
                    .map_err(|error| fsutil::WriteError { path: path.clone(), error })?,
            ),
            PlannedEntry::Dir { path, confined: None } => {
                let existed = path.is_dir();
                fsutil::create_dirs(path).map_err(|error| fsutil::WriteError { path: path.clone(), error })?;
                (path, if existed { WriteOutcome::Unchanged } else { WriteOutcome::Written })
            }
            PlannedEntry::File { path, bytes, mode, confined: Some(root) } => (
                path,
                confined::write_file(root, &below(root, path), bytes, *mode)
                    .map_err(|error| fsutil::WriteError { path: path.clone(), error })?,
            ),
            PlannedEntry::File { path, bytes, mode, confined: None } => {
                refuse_existing_symlink(path)?;
                (path, fsutil::write_atomic(path, bytes, *mode)?)
            }
            PlannedEntry::Symlink { path, target, confined: root } => (
                path,
                confined::symlink(root, &below(root, path), target)
                    .map_err(|error| fsutil::WriteError { path: path.clone(), error })?,
            ),
        };
        out.push(Installed { path: path.clone(), outcome });
    }
    Ok(out)
}

fn refuse_existing_symlink(path: &Path) -> Result<(), fsutil::WriteError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(fsutil::WriteError {
            path: path.to_owned(),
            error: std::io::Error::other("a symbolic link is in the way; remove it and retry"),
        }),
        _ => Ok(()),
    }
}

/// Reads a `file://` source, capped at [`MAX_SOURCE_BYTES`].
pub fn read_file_source(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(MAX_SOURCE_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_SOURCE_BYTES {
        return Err(std::io::Error::other(format!("larger than {MAX_SOURCE_BYTES} bytes")));
    }
    Ok(buf)
}

/// The mode bits of an installed file (for reports and tests).
pub fn mode_of(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

fn redact(url: &str) -> String {
    if url.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        let head: String = url.chars().take(40).collect();
        return if url.len() > 40 { format!("{head}… ({} bytes)", url.len()) } else { head };
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.chars().take(200).collect();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}/{path}")
}

#[cfg(test)]
mod tests;
