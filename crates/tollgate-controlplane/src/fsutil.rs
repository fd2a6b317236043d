//! The file-writing edge: atomic writes with explicit modes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file write that failed, naming the path.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {error}", path.display())]
pub struct WriteError {
    /// The file being written.
    pub path: PathBuf,
    /// The I/O error (part of the message, not a `source`).
    pub error: io::Error,
}

/// Whether a write changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteOutcome {
    /// The file was created or its content or mode changed.
    Written,
    /// The file already had exactly this content and mode.
    Unchanged,
}

/// Writes `bytes` to `path` with `mode`, atomically: a temporary file in the
/// same directory is written, given its mode, fsynced and renamed over
/// `path`, then the directory is fsynced. Readers see the old file or the new
/// one, never a partial one. Missing parent directories are created with
/// mode 0755. A file that already has this content and mode is left alone.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<WriteOutcome, WriteError> {
    let err = |error| WriteError { path: path.to_owned(), error };
    if same_content(path, bytes, mode).map_err(err)? {
        return Ok(WriteOutcome::Unchanged);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    create_dirs(&dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new().prefix(".tollgate-").tempfile_in(&dir).map_err(err)?;
    tmp.as_file_mut().write_all(bytes).map_err(err)?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode)).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    File::open(&dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(WriteOutcome::Written)
}

/// Creates `dir` and its missing parents with mode 0755.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)
}

fn same_content(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.is_file() || meta.len() != bytes.len() as u64 || meta.permissions().mode() & 0o7777 != mode {
        return Ok(false);
    }
    let mut existing = Vec::with_capacity(bytes.len());
    OpenOptions::new().read(true).open(path)?.take(bytes.len() as u64 + 1).read_to_end(&mut existing)?;
    Ok(existing == bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_mode_and_is_idempotent() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("a/b/file.json");
        assert_eq!(write_atomic(&p, b"one", 0o640)?, WriteOutcome::Written);
        assert_eq!(fs::read(&p)?, b"one");
        assert_eq!(fs::metadata(&p)?.permissions().mode() & 0o777, 0o640);
        assert_eq!(write_atomic(&p, b"one", 0o640)?, WriteOutcome::Unchanged);
        assert_eq!(write_atomic(&p, b"one", 0o600)?, WriteOutcome::Written);
        assert_eq!(write_atomic(&p, b"two", 0o600)?, WriteOutcome::Written);
        assert_eq!(fs::read(&p)?, b"two");
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("a/b"))?.collect();
        assert_eq!(leftovers.len(), 1, "no temporary files remain");
        Ok(())
    }

    #[test]
    fn error_names_the_path() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let blocker = dir.path().join("file");
        write_atomic(&blocker, b"x", 0o644)?;
        let err = write_atomic(&blocker.join("child"), b"y", 0o644).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with(&format!("cannot write {}/child: ", blocker.display())), "{err}");
        Ok(())
    }
}
