//! The imperative shell: read the node (under `--root`), take the account-file
//! locks, write accounts atomically, chown/chmod, write the kubeadm patches
//! (and, with `now`, the live manifests), keep a journal, and revert from it.
//!
//! Locking follows shadow-utils and kubeadm at once: a POSIX (`fcntl`) write
//! lock on `/etc/.pwd.lock`, as `lckpwdf(3)` takes it for useradd and vipw,
//! and on `/etc/passwd` and `/etc/group` themselves, as kubeadm took them;
//! each is retried every 200 ms for 5 s. passwd and group are read through the
//! locked descriptors (closing another descriptor of a file drops this
//! process's POSIX locks on it) and replaced by rename, so the lock that
//! protects against shadow-utils is `.pwd.lock`, which is never reopened.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tollgate_controlplane::fsutil::write_atomic;

use crate::HardenError;
use crate::accounts::{self, Names};
use crate::plan::{self, FileState, Inputs, Layout, Plan};
use crate::security::Component;

/// Where the journal lives, relative to the root.
pub const JOURNAL: &str = "/var/lib/tollgate/harden/journal.json";

/// The shadow-utils lock file (`lckpwdf(3)`).
const PWD_LOCK: &str = "/etc/.pwd.lock";

/// The node paths of `dir` and its ancestors that do not exist, outermost first.
fn missing_dirs(node: &Node, dir: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let mut current = dir.trim_end_matches('/');
    while !current.is_empty() && std::fs::symlink_metadata(node.host(current)).is_err() {
        missing.push(current.to_owned());
        current = current.rsplit_once('/').map_or("", |(parent, _)| parent);
    }
    missing.reverse();
    missing
}

/// What `plan`, `apply` and `audit` are run against.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// The root directory (`/` on a node; a copy of one in tests).
    pub root: PathBuf,
    /// Paths on the node.
    pub layout: Layout,
    /// Account names.
    pub names: Names,
    /// Configured IDs by account name.
    pub fixed_ids: BTreeMap<String, u32>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> HardenError + '_ {
    move |cause| HardenError::Io { path: path.display().to_string(), cause }
}

impl Node {
    /// A node path under the root.
    pub fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn read_string(&self, path: &str) -> Result<Option<String>, HardenError> {
        let p = self.host(path);
        match std::fs::read(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
            Ok(b) => String::from_utf8(b).map(Some).map_err(|_| HardenError::Corrupt {
                file: path.into(),
                line: 0,
                message: "not UTF-8 text".into(),
            }),
        }
    }

    fn stat(&self, path: &str) -> Result<Option<FileState>, HardenError> {
        let p = self.host(path);
        match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
            Ok(m) if m.file_type().is_symlink() => Err(HardenError::Io {
                path: p.display().to_string(),
                cause: std::io::Error::other("is a symbolic link; refusing to change ownership through it"),
            }),
            Ok(m) => Ok(Some(FileState { uid: m.uid(), gid: m.gid(), mode: m.mode() & 0o7777 })),
        }
    }

    /// Every file and directory below `dir` (not following links; links are skipped).
    fn walk(&self, dir: &str, out: &mut BTreeMap<String, FileState>) -> Result<(), HardenError> {
        let Some(state) = self.stat(dir)? else { return Ok(()) };
        out.insert(dir.to_owned(), state);
        let p = self.host(dir);
        if !p.is_dir() {
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(&p).map_err(io(&p))?.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let child = format!("{}/{}", dir.trim_end_matches('/'), e.file_name().to_string_lossy());
            if e.file_type().map(|t| t.is_symlink()).unwrap_or(true) {
                continue;
            }
            self.walk(&child, out)?;
        }
        Ok(())
    }

    /// Reads what plan and audit need.
    pub fn read(&self) -> Result<Inputs, HardenError> {
        let passwd = self.read_string("/etc/passwd")?.ok_or_else(|| missing(&self.host("/etc/passwd")))?;
        let group = self.read_string("/etc/group")?.ok_or_else(|| missing(&self.host("/etc/group")))?;
        self.read_with(passwd, group)
    }

    /// Like [`Node::read`], with passwd and group already read (through the
    /// locked descriptors: opening and closing the file again would drop a
    /// POSIX lock this process holds on it).
    fn read_with(&self, passwd: String, group: String) -> Result<Inputs, HardenError> {
        let l = &self.layout;
        let mut manifests = BTreeMap::new();
        for c in Component::ALL {
            let p = self.host(&format!("{}/{}", l.manifests_dir, c.manifest()));
            match std::fs::read(&p) {
                Ok(b) => {
                    manifests.insert(c, b);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&p)(e)),
            }
        }
        let mut files = BTreeMap::new();
        for c in Component::ALL {
            let path = format!("{}/{}", l.manifests_dir, c.manifest());
            if let Some(s) = self.stat(&path)? {
                files.insert(path, s);
            }
        }
        for conf in ["admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"] {
            let path = format!("{}/{conf}", l.kubernetes_dir);
            if let Some(s) = self.stat(&path)? {
                files.insert(path, s);
            }
        }
        self.walk(&l.pki_dir, &mut files)?;
        for t in plan::targets(l, &self.names, &manifests) {
            if t.recursive {
                self.walk(&t.path, &mut files)?;
            } else if let Some(s) = self.stat(&t.path)? {
                files.insert(t.path, s);
            }
        }
        Ok(Inputs {
            login_defs: self.read_string("/etc/login.defs")?,
            passwd,
            group,
            manifests,
            files,
            names: self.names.clone(),
            fixed_ids: self.fixed_ids.clone(),
            layout: l.clone(),
        })
    }
}

fn missing(p: &Path) -> HardenError {
    HardenError::Io {
        path: p.display().to_string(),
        cause: std::io::Error::new(std::io::ErrorKind::NotFound, "does not exist"),
    }
}

/// A held POSIX write lock; released when dropped (the file is closed).
struct Lock(File, PathBuf);

impl Lock {
    /// The file's content, read through the locked descriptor.
    fn content(&self) -> Result<String, HardenError> {
        use std::io::{Read as _, Seek as _};
        let mut f = &self.0;
        let mut s = String::new();
        f.seek(std::io::SeekFrom::Start(0)).and_then(|_| f.read_to_string(&mut s)).map_err(io(&self.1))?;
        Ok(s)
    }
}

/// The shadow-utils lock, then passwd's and group's own: every reader of the
/// account files below goes through these descriptors.
fn lock_accounts(node: &Node) -> Result<(Lock, Lock, Lock), HardenError> {
    Ok((
        lock(&node.host(PWD_LOCK), true)?,
        lock(&node.host("/etc/passwd"), false)?,
        lock(&node.host("/etc/group"), false)?,
    ))
}

fn lock(path: &Path, create: bool) -> Result<Lock, HardenError> {
    use rustix::fs::{FlockOperation, fcntl_lock};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    for _ in 0..25 {
        match fcntl_lock(&f, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Lock(f, path.to_owned())),
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(io(path)(e.into())),
        }
    }
    Err(HardenError::Locked { path: path.display().to_string() })
}

/// What a previous state was, for revert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// passwd and group as they were before the first apply.
    pub original_passwd: String,
    /// group as it was.
    pub original_group: String,
    /// Lines appended to passwd.
    pub passwd_lines: Vec<String>,
    /// Lines appended to group.
    pub group_lines: Vec<String>,
    /// Previous owner and mode of every changed file.
    pub files: BTreeMap<String, FileState>,
    /// Previous content of every written patch or manifest, by node path (`None`: it did not exist).
    pub written: BTreeMap<String, Option<String>>,
    /// Directories apply created (the patch directory, the journal's), by node path, parents first.
    /// Revert removes each one that is empty again.
    #[serde(default)]
    pub created_dirs: Vec<String>,
    /// Whether apply created `/etc/.pwd.lock` (on a live system shadow-utils made it long before).
    #[serde(default)]
    pub created_pwd_lock: bool,
}

/// What apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Accounts created: users, then groups.
    pub accounts_created: Vec<String>,
    /// Users created.
    pub users_created: Vec<String>,
    /// Groups created.
    pub groups_created: Vec<String>,
    /// Files whose owner or mode changed.
    pub files_changed: usize,
    /// Patch files and manifests written (changed content only).
    pub written: Vec<String>,
    /// The journal.
    pub journal: String,
}

fn load_journal(path: &Path) -> Result<Option<Journal>, HardenError> {
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| HardenError::Journal { path: path.display().to_string(), message: e.to_string() }),
    }
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, HardenError> {
    write_atomic(path, bytes, mode)
        .map(|o| o == tollgate_controlplane::fsutil::WriteOutcome::Written)
        .map_err(|e| HardenError::Io { path: path.display().to_string(), cause: std::io::Error::other(e.to_string()) })
}

fn mode_of(path: &Path, default: u32) -> u32 {
    std::fs::metadata(path).map_or(default, |m| m.mode() & 0o7777)
}

/// Applies the plan: accounts, owners and modes, kubeadm patches in
/// `patches_dir` (a node path), and with `now` the live manifests too.
/// Idempotent; the journal keeps the state before the first change.
pub fn apply(node: &Node, patches_dir: &str, now: bool) -> Result<(Plan, Applied), HardenError> {
    let pwd_lock_existed = std::fs::symlink_metadata(node.host(PWD_LOCK)).is_ok();
    let (_shadow, passwd_lock, group_lock) = lock_accounts(node)?;
    let inputs = node.read_with(passwd_lock.content()?, group_lock.content()?)?;
    let plan = plan::plan(&inputs)?;
    let journal_path = node.host(JOURNAL);
    let mut journal = load_journal(&journal_path)?.unwrap_or_else(|| Journal {
        original_passwd: inputs.passwd.clone(),
        original_group: inputs.group.clone(),
        created_pwd_lock: !pwd_lock_existed,
        ..Journal::default()
    });
    // The directories the writes below will create, recorded before any exists.
    let journal_dir = JOURNAL.rsplit_once('/').map_or("/", |(d, _)| d);
    for dir in [journal_dir, patches_dir.trim_end_matches('/')] {
        for missing in missing_dirs(node, dir) {
            if !journal.created_dirs.contains(&missing) {
                journal.created_dirs.push(missing);
            }
        }
    }
    let mut applied = Applied { journal: journal_path.display().to_string(), ..Applied::default() };
    let remember = |journal: &mut Journal, key: &str, path: &Path| -> Result<(), HardenError> {
        if !journal.written.contains_key(key) {
            let before = match std::fs::read_to_string(path) {
                Ok(s) => Some(s),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io(path)(e)),
            };
            journal.written.insert(key.to_owned(), before);
        }
        Ok(())
    };
    // Journal first: a crash after any change below still leaves a way back.
    for (file, lines) in [("/etc/passwd", &plan.accounts.passwd_lines), ("/etc/group", &plan.accounts.group_lines)] {
        if file == "/etc/passwd" {
            journal.passwd_lines.extend(lines.iter().cloned());
        } else {
            journal.group_lines.extend(lines.iter().cloned());
        }
    }
    for c in &plan.files {
        journal.files.entry(c.path.clone()).or_insert(c.from);
    }
    let patch_paths: Vec<(String, PathBuf, String)> = plan
        .components
        .iter()
        .map(|cs| {
            let path = format!("{}/{}", patches_dir.trim_end_matches('/'), cs.component.patch_file());
            (path.clone(), node.host(&path), cs.patch())
        })
        .collect();
    for (path, host, _) in &patch_paths {
        remember(&mut journal, path, host)?;
    }
    let mut manifest_edits = Vec::new();
    if now {
        for cs in &plan.components {
            let path = format!("{}/{}", node.layout.manifests_dir, cs.component.manifest());
            let host = node.host(&path);
            let current = inputs.manifests.get(&cs.component).cloned().unwrap_or_default();
            let edited = cs.apply_to_manifest(&path, &current)?;
            remember(&mut journal, &path, &host)?;
            manifest_edits.push((host, edited));
        }
    }
    let journal_bytes = serde_json::to_vec_pretty(&journal)
        .map_err(|e| HardenError::Journal { path: journal_path.display().to_string(), message: e.to_string() })?;
    write(&journal_path, &journal_bytes, 0o600)?;

    for (file, lines) in [("/etc/passwd", &plan.accounts.passwd_lines), ("/etc/group", &plan.accounts.group_lines)] {
        if lines.is_empty() {
            continue;
        }
        let host = node.host(file);
        let text = if file == "/etc/passwd" { &inputs.passwd } else { &inputs.group };
        write(&host, accounts::append(text, lines).as_bytes(), mode_of(&host, 0o644))?;
    }
    let created = |list: &[_]| -> Vec<String> {
        list.iter().filter(|a: &&crate::accounts::Account| !a.exists).map(|a| a.name.clone()).collect()
    };
    applied.users_created = created(&plan.accounts.users);
    applied.groups_created = created(&plan.accounts.groups);
    applied.accounts_created = [applied.users_created.clone(), applied.groups_created.clone()].concat();
    for c in &plan.files {
        let host = node.host(&c.path);
        std::os::unix::fs::lchown(&host, Some(c.to.uid), Some(c.to.gid)).map_err(io(&host))?;
        std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(c.to.mode)).map_err(io(&host))?;
        applied.files_changed += 1;
    }
    for (_, p, content) in &patch_paths {
        if write(p, content.as_bytes(), 0o644)? {
            applied.written.push(p.display().to_string());
        }
    }
    // Manifests last: the kubelet restarts the pods as the new users, who now own their files.
    for (p, content) in &manifest_edits {
        if write(p, content.as_bytes(), mode_of(p, 0o600))? {
            applied.written.push(p.display().to_string());
        }
    }
    Ok((plan, applied))
}

/// What revert did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reverted {
    /// Account lines removed.
    pub accounts_removed: usize,
    /// Files whose owner and mode were restored.
    pub files_restored: usize,
    /// Patches and manifests restored or removed.
    pub written_restored: usize,
    /// Journaled files that no longer exist.
    pub missing: Vec<String>,
    /// Directories apply created, removed again.
    pub dirs_removed: Vec<String>,
    /// Directories apply created that now hold other files, so they stay.
    pub dirs_kept: Vec<String>,
}

/// Restores everything the journal recorded, then removes the journal. Checks
/// the account files first: nothing is written when an added line has changed.
pub fn revert(node: &Node) -> Result<Reverted, HardenError> {
    let journal_path = node.host(JOURNAL);
    // Said before taking the account locks: with nothing applied, the journal is the news.
    if !journal_path.exists() {
        return Err(HardenError::Journal {
            path: journal_path.display().to_string(),
            message: "not found: nothing was applied here (or it was reverted already)".into(),
        });
    }
    let (_shadow, passwd_lock, group_lock) = lock_accounts(node)?;
    let journal = load_journal(&journal_path)?.ok_or_else(|| HardenError::Journal {
        path: journal_path.display().to_string(),
        message: "not found: nothing was applied here (or it was reverted already)".into(),
    })?;
    let mut restored_accounts = Vec::new();
    for (file, lines, original, locked) in [
        ("/etc/passwd", &journal.passwd_lines, &journal.original_passwd, &passwd_lock),
        ("/etc/group", &journal.group_lines, &journal.original_group, &group_lock),
    ] {
        let host = node.host(file);
        let current = locked.content()?;
        let without = accounts::remove(&current, lines).map_err(|line| HardenError::Journal {
            path: journal_path.display().to_string(),
            message: format!(
                "{file} no longer has the line {line:?} that apply added; restore it or edit {file} by hand"
            ),
        })?;
        // Byte for byte when nothing else changed (apply may have added a final newline).
        let restored =
            if without == *original || without == format!("{original}\n") { original.clone() } else { without };
        restored_accounts.push((host, restored));
    }
    let mut report =
        Reverted { accounts_removed: journal.passwd_lines.len() + journal.group_lines.len(), ..Reverted::default() };
    for (path, before) in &journal.written {
        let p = node.host(path);
        match before {
            Some(content) => {
                write(&p, content.as_bytes(), mode_of(&p, 0o644))?;
            }
            None => match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&p)(e)),
                _ => {}
            },
        }
        report.written_restored += 1;
    }
    for (path, was) in &journal.files {
        let host = node.host(path);
        if std::fs::symlink_metadata(&host).is_err() {
            report.missing.push(path.clone());
            continue;
        }
        std::os::unix::fs::lchown(&host, Some(was.uid), Some(was.gid)).map_err(io(&host))?;
        std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(was.mode)).map_err(io(&host))?;
        report.files_restored += 1;
    }
    for (host, text) in restored_accounts {
        write(&host, text.as_bytes(), mode_of(&host, 0o644))?;
    }
    std::fs::remove_file(&journal_path).map_err(io(&journal_path))?;
    // The directories apply created, innermost first, each only when nothing else is in it now.
    for dir in journal.created_dirs.iter().rev() {
        let host = node.host(dir);
        match std::fs::remove_dir(&host) {
            Ok(()) => report.dirs_removed.push(dir.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => report.dirs_kept.push(dir.clone()),
        }
    }
    if journal.created_pwd_lock {
        let host = node.host(PWD_LOCK);
        match std::fs::remove_file(&host) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&host)(e)),
            _ => {}
        }
    }
    Ok(report)
}
