//! The daemon's audit log: one JSON line per decision, written (to the
//! kernel, with one `write`) before the answer goes back, rotated by size.
//! Records never hold credentials: only the image name, digest, verdict and
//! the reasons the policy gave.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::config::AuditConfig;

/// One decision, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// RFC 3339 UTC time of the answer.
    pub time: String,
    /// The image reference as asked.
    pub name: String,
    /// The digest decided on.
    pub digest: String,
    /// The Kubernetes namespace, when the caller knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `allowed`, `denied`, `undecidable`, `warned`, `exempt` or `break-glass`.
    pub decision: &'static str,
    /// Whether the image may run.
    pub allowed: bool,
    /// The policy rule (scope) that decided.
    pub rule: String,
    /// Why: the decision's reason first, then each requirement's.
    pub reasons: Vec<String>,
    /// Whether the verdict came from the cache.
    pub cached: bool,
    /// Time to answer, in microseconds.
    pub latency_micros: u64,
    /// The hash of the policy in force (empty when none loads).
    pub policy_hash: String,
    /// The hash of the policy bundle in force (`policyBundle`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_hash: Option<String>,
    /// Who decided: `daemon`, or `in-process` (the verifier's fallback while
    /// the daemon is down).
    pub decided_by: &'static str,
}

/// An append-only JSON-lines file with size-based rotation.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    inner: Mutex<Option<(File, u64)>>,
}

fn open(path: &Path) -> std::io::Result<(File, u64)> {
    let f = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    let size = f.metadata()?.len();
    Ok((f, size))
}

/// Whether `file` is still the file at `path`: logrotate (or an operator) may
/// have moved or removed it, and records written to the old inode are lost to
/// whoever reads `path`.
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.ino() == named.ino() && open.dev() == named.dev(),
        _ => false,
    }
}

impl AuditLog {
    /// Opens (creating it, mode 0600) the log the config names. Its directory
    /// must exist: a typo must not create directories (the systemd unit's
    /// `LogsDirectory=` creates `/var/log/tollgate`).
    pub fn open(cfg: &AuditConfig) -> std::io::Result<AuditLog> {
        if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("its directory {} does not exist; create it (mode 0750)", dir.display()),
            ));
        }
        let file = open(&cfg.path)?;
        Ok(AuditLog {
            path: cfg.path.clone(),
            max_bytes: cfg.max_bytes,
            max_files: cfg.max_files,
            inner: Mutex::new(Some(file)),
        })
    }

    /// Where it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line, rotating first if the line would take
    /// the file past its size limit. Returns only once the line is written.
    pub fn write(&self, record: &AuditRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (file, size) = match inner.take() {
            Some((file, size)) if still_at(&file, &self.path) => (file, size),
            // Rotated or removed behind our back, or a failed rotation left it closed.
            _ => open(&self.path)?,
        };
        let (mut file, mut size) = if size > 0 && size + line.len() as u64 > self.max_bytes {
            drop(file);
            self.rotate()?;
            open(&self.path)?
        } else {
            (file, size)
        };
        file.write_all(&line)?;
        file.flush()?;
        size += line.len() as u64;
        *inner = Some((file, size));
        Ok(())
    }

    /// `log` → `log.1` → … → `log.N`; the oldest is dropped.
    fn rotate(&self) -> std::io::Result<()> {
        let numbered = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        if self.max_files == 0 {
            return std::fs::remove_file(&self.path);
        }
        for i in (1..self.max_files).rev() {
            match std::fs::rename(numbered(i), numbered(i + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, numbered(1))
    }
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(now.millisecond() as u32 * 1_000_000).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// A Unix time (seconds) as RFC 3339 UTC, e.g. `2025-06-12T12:02:20Z`; the
/// number itself when it is out of the calendar's range.
pub fn rfc3339(unix: i64) -> String {
    tollgate_verify::tlog::format_rfc3339(unix)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            time: now_rfc3339(),
            name: format!("example.com/app:{i}"),
            digest: format!("sha256:{}", "a".repeat(64)),
            namespace: None,
            decision: "denied",
            allowed: false,
            rule: "default".into(),
            reasons: vec!["denied by default: reject".into()],
            cached: false,
            latency_micros: 12,
            policy_hash: "sha256:00".into(),
            bundle_hash: None,
            decided_by: "daemon",
        }
    }

    #[test]
    fn lines_are_json_and_rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuditConfig { path: dir.path().join("sub/audit.log"), max_bytes: 4096, max_files: 2 };
        let missing = AuditLog::open(&cfg).map(|_| ()).unwrap_err().to_string();
        assert!(missing.contains("sub does not exist"), "no directory is created: {missing}");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let log = AuditLog::open(&cfg).unwrap();
        for i in 0..100 {
            log.write(&record(i)).unwrap();
        }
        let names: Vec<String> = {
            let mut v: Vec<String> = std::fs::read_dir(dir.path().join("sub"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names, ["audit.log", "audit.log.1", "audit.log.2"]);
        let current = std::fs::read_to_string(&cfg.path).unwrap();
        assert!(current.len() <= 4096);
        let last: serde_json::Value = serde_json::from_str(current.lines().last().unwrap()).unwrap();
        assert_eq!(last["name"], "example.com/app:99");
        assert_eq!(last["decision"], "denied");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&cfg.path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
    }

    /// logrotate's default moves the file away; an operator may delete it.
    /// Either way the next record goes to a file at the configured path.
    #[test]
    fn a_log_moved_or_removed_behind_the_daemons_back_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&AuditConfig { path: path.clone(), max_bytes: 1 << 20, max_files: 2 }).unwrap();
        log.write(&record(0)).unwrap();
        std::fs::rename(&path, dir.path().join("audit.log-20261201")).unwrap();
        log.write(&record(1)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1, "a new file at the path");
        std::fs::remove_file(&path).unwrap();
        log.write(&record(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("example.com/app:2"), "{text}");
        assert_eq!(crate::audit::tests::mode(&path), 0o600);
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn unix_seconds_read_as_rfc3339() {
        assert_eq!(rfc3339(1_749_729_740), "2025-06-12T12:02:20Z");
        assert_eq!(rfc3339(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn time_is_rfc3339_utc_with_millis() {
        let t = now_rfc3339();
        assert!(t.ends_with('Z') && t.contains('T') && t.len() <= "2026-11-22T08:00:00.123Z".len(), "{t}");
    }
}
