//! One patches directory. kubeadm reads exactly one `--patches` directory, so
//! the image pins (`tollgate kubeadm patches`) and the non-root hardening
//! (`tollgate harden apply`) must go into the same one: written into two
//! directories, whichever kubeadm is not told about is silently lost.

use std::path::{Path, PathBuf};

/// The patches directory tollgate uses by default for pins and hardening alike.
pub const DEFAULT_DIR: &str = "/etc/kubernetes/tollgate-patches";

/// Every directory tollgate has written patches to by default (`harden apply`
/// used `/etc/kubernetes/patches` before there was one default).
pub const KNOWN_DIRS: [&str; 2] = [DEFAULT_DIR, "/etc/kubernetes/patches"];

/// Which of tollgate's patches are being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writing {
    /// Image pins: `kube-apiserver+json.json`, `corednsdeployment+json.json`, …
    Pins,
    /// Hardening: `kube-apiserver9harden+strategic.yaml`, …
    Hardening,
}

impl Writing {
    fn other_matches(self, file_name: &str) -> bool {
        match self {
            // Pins are being written: look for hardening patches elsewhere.
            Writing::Pins => file_name.ends_with("9harden+strategic.yaml"),
            Writing::Hardening => {
                const PINNED: [&str; 5] =
                    ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "corednsdeployment"];
                PINNED.iter().any(|t| file_name == format!("{t}+json.json"))
            }
        }
    }

    fn other(self) -> &'static str {
        match self {
            Writing::Pins => "hardening patches (tollgate harden apply)",
            Writing::Hardening => "image-pin patches (tollgate kubeadm patches)",
        }
    }
}

/// The other known directory (under `root`) that holds tollgate's other kind
/// of patches, if any: `dir` is where `writing` is about to go. Pure over the
/// listings: `list` returns a directory's file names (`None` when it does not exist).
pub fn split_from(
    dir: &Path,
    root: &Path,
    writing: Writing,
    list: &dyn Fn(&Path) -> Option<Vec<String>>,
) -> Option<(PathBuf, String)> {
    KNOWN_DIRS.iter().map(|d| root.join(d.trim_start_matches('/'))).filter(|d| !same_dir(d, dir)).find_map(|d| {
        let names = list(&d)?;
        let found = names.iter().find(|n| writing.other_matches(n))?.clone();
        Some((d, found))
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Refuses to write `writing` patches into `dir` while another known patches
/// directory holds tollgate's other patches; the message says what to do.
pub fn refuse_split(dir: &Path, root: &Path, writing: Writing) -> Result<(), String> {
    let list = |d: &Path| -> Option<Vec<String>> {
        let entries = std::fs::read_dir(d).ok()?;
        Some(entries.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned())).collect())
    };
    match split_from(dir, root, writing, &list) {
        None => Ok(()),
        Some((other, file)) => Err(format!(
            "{} holds {} ({file}), and kubeadm reads only one --patches directory: write these patches there too \
             (pass {}), or move those into {}",
            other.display(),
            writing.other(),
            other.display(),
            dir.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dirs: &'static [(&'static str, &'static [&'static str])]) -> impl Fn(&Path) -> Option<Vec<String>> {
        move |d: &Path| {
            dirs.iter()
                .find(|(p, _)| Path::new(p) == d)
                .map(|(_, names)| names.iter().map(|n| (*n).to_owned()).collect())
        }
    }

    #[test]
    fn pins_and_hardening_in_two_directories_are_refused_both_ways() {
        let old = listing(&[("/etc/kubernetes/patches", &["kube-apiserver9harden+strategic.yaml"])]);
        let found = split_from(Path::new(DEFAULT_DIR), Path::new("/"), Writing::Pins, &old);
        assert_eq!(found.map(|(d, _)| d), Some(PathBuf::from("/etc/kubernetes/patches")));
        let pins = listing(&[(DEFAULT_DIR, &["etcd+json.json", "README"])]);
        let found = split_from(Path::new("/etc/kubernetes/patches"), Path::new("/"), Writing::Hardening, &pins);
        assert_eq!(found, Some((PathBuf::from(DEFAULT_DIR), "etcd+json.json".to_owned())));
    }

    #[test]
    fn one_directory_or_unrelated_files_are_fine() {
        let both = listing(&[(DEFAULT_DIR, &["etcd+json.json", "etcd9harden+strategic.yaml"])]);
        assert_eq!(split_from(Path::new(DEFAULT_DIR), Path::new("/"), Writing::Pins, &both), None);
        let mine = listing(&[("/etc/kubernetes/patches", &["etcd+json.json", "custom+strategic.yaml"])]);
        assert_eq!(split_from(Path::new(DEFAULT_DIR), Path::new("/"), Writing::Pins, &mine), None, "not hardening");
        let under = listing(&[("/r/etc/kubernetes/patches", &["kube-scheduler9harden+strategic.yaml"])]);
        assert!(
            split_from(Path::new("/r/etc/kubernetes/tollgate-patches"), Path::new("/r"), Writing::Pins, &under)
                .is_some()
        );
    }
}
