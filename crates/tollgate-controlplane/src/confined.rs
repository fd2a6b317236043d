//! Writes below a directory without ever following a symbolic link below it.
//!
//! Path checks alone cannot confine an archive: the kernel resolves `..` after
//! it follows a link, so a link an earlier install left on disk (or a race)
//! can turn a lexically confined path into one outside the root. Here the
//! root is opened once, and every component below it is opened with `openat`
//! and `O_NOFOLLOW`: a symbolic link anywhere on the way is an error, never
//! a detour. The root itself is opened normally: it is the operator's path.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::fsutil::WriteOutcome;

const DIR_FLAGS: OFlags = OFlags::DIRECTORY.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC).union(OFlags::RDONLY);

fn in_the_way() -> io::Error {
    io::Error::other("a symbolic link is in the way; remove it and retry")
}

/// Opens (creating with mode 0755 when `create`) each component of `rel`
/// below `root`, refusing symbolic links; returns the innermost directory.
fn open_dirs(root: &Path, rel: &Path, create: bool) -> io::Result<OwnedFd> {
    let mut fd: OwnedFd = rustix::fs::open(root, OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY, Mode::empty())?;
    for part in rel.components() {
        let Component::Normal(name) = part else {
            return Err(io::Error::other("not a plain relative path"));
        };
        let next = match rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty())
            }
            other => other,
        };
        fd = next.map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR if is_link(&fd, name) => in_the_way(),
            e => e.into(),
        })?;
    }
    Ok(fd)
}

fn is_link(dir: &OwnedFd, name: &std::ffi::OsStr) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink)
}

fn split(rel: &Path) -> io::Result<(&Path, &std::ffi::OsStr)> {
    match (rel.parent(), rel.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(io::Error::other("no file name")),
    }
}

/// Creates the directory `root/rel` (and its missing parents).
pub fn create_dir(root: &Path, rel: &Path) -> io::Result<WriteOutcome> {
    let existed = rel.as_os_str().is_empty() || {
        let (parent, name) = split(rel)?;
        open_dirs(root, parent, false)
            .ok()
            .is_some_and(|d| rustix::fs::openat(&d, name, DIR_FLAGS, Mode::empty()).is_ok())
    };
    open_dirs(root, rel, true)?;
    Ok(if existed { WriteOutcome::Unchanged } else { WriteOutcome::Written })
}

/// Writes `bytes` to `root/rel` with `mode`, atomically (a temporary file in
/// the same directory, fsync, rename, fsync the directory); unchanged content
/// and mode are left alone.
pub fn write_file(root: &Path, rel: &Path, bytes: &[u8], mode: u32) -> io::Result<WriteOutcome> {
    let (parent, name) = split(rel)?;
    let dir = open_dirs(root, parent, true)?;
    match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink => {
            return Err(in_the_way());
        }
        Ok(st)
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
                && st.st_size as u64 == bytes.len() as u64
                && st.st_mode & 0o7777 == mode =>
        {
            let fd =
                rustix::fs::openat(&dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
            let mut existing = Vec::with_capacity(bytes.len());
            File::from(fd).take(bytes.len() as u64 + 1).read_to_end(&mut existing)?;
            if existing == bytes {
                return Ok(WriteOutcome::Unchanged);
            }
        }
        _ => {}
    }
    let tmp = format!(".tollgate-{}-{}", std::process::id(), name.to_string_lossy());
    let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&dir, tmp.as_str(), flags, Mode::from_raw_mode(0o600))?;
    let mut f = File::from(fd);
    let written = f
        .write_all(bytes)
        .and_then(|()| rustix::fs::fchmod(f.as_fd(), Mode::from_raw_mode(mode)).map_err(io::Error::from))
        .and_then(|()| f.sync_all())
        .and_then(|()| rustix::fs::renameat(&dir, tmp.as_str(), &dir, name).map_err(io::Error::from));
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        return Err(e);
    }
    rustix::fs::fsync(&dir)?;
    Ok(WriteOutcome::Written)
}

/// Makes `root/rel` a symbolic link to `target` (replacing one that points elsewhere).
pub fn symlink(root: &Path, rel: &Path, target: &Path) -> io::Result<WriteOutcome> {
    let (parent, name) = split(rel)?;
    let dir = open_dirs(root, parent, true)?;
    if rustix::fs::readlinkat(&dir, name, Vec::new()).is_ok_and(|t| Path::new(t.to_string_lossy().as_ref()) == target) {
        return Ok(WriteOutcome::Unchanged);
    }
    let tmp = format!(".tollgate-link-{}", std::process::id());
    let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
    rustix::fs::symlinkat(target, &dir, tmp.as_str())?;
    rustix::fs::renameat(&dir, tmp.as_str(), &dir, name)?;
    rustix::fs::fsync(&dir)?;
    Ok(WriteOutcome::Written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_below_the_root_and_never_through_a_link() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let outside = tempfile::tempdir()?;
        assert_eq!(write_file(root.path(), Path::new("a/b/f"), b"x", 0o640)?, WriteOutcome::Written);
        assert_eq!(write_file(root.path(), Path::new("a/b/f"), b"x", 0o640)?, WriteOutcome::Unchanged);
        assert_eq!(std::fs::read(root.path().join("a/b/f"))?, b"x");
        std::os::unix::fs::symlink(outside.path(), root.path().join("a/esc"))?;
        for rel in ["a/esc/pwned", "a/esc/d/pwned"] {
            let err = write_file(root.path(), Path::new(rel), b"x", 0o644).map_err(|e| e.to_string());
            assert_eq!(err, Err("a symbolic link is in the way; remove it and retry".into()), "{rel}");
        }
        assert_eq!(
            create_dir(root.path(), Path::new("a/esc/d")).map_err(|e| e.to_string()),
            Err(in_the_way().to_string())
        );
        assert_eq!(std::fs::read_dir(outside.path())?.count(), 0, "nothing written outside");
        assert_eq!(symlink(root.path(), Path::new("a/l"), Path::new("b/f"))?, WriteOutcome::Written);
        assert_eq!(symlink(root.path(), Path::new("a/l"), Path::new("b/f"))?, WriteOutcome::Unchanged);
        assert_eq!(
            write_file(root.path(), Path::new("a/l"), b"y", 0o644).map_err(|e| e.to_string()),
            Err(in_the_way().to_string())
        );
        Ok(())
    }
}
