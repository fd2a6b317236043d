//! `tollgate harden` on temp root trees laid out like a kubeadm control-plane
//! node: real passwd, group, login.defs, PKI, kubeconfigs, etcd data and the
//! kubeadm v1.32 manifests; real chown/chmod (the tests run as root, as CI does).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::util::{Run, controlplane_testdata, tollgate};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
_apt:x:100:65534::/nonexistent:/usr/sbin/nologin\n\
systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin\n\
admin:x:1000:1000:Admin:/home/admin:/bin/bash\n";
const GROUP: &str = "root:x:0:\ndaemon:x:1:\nsystemd-journal:x:999:\nsystemd-network:x:998:\nadmin:x:1000:\n";
const LOGIN_DEFS: &str = "# /etc/login.defs (Debian)\nUID_MIN\t\t\t 1000\nUID_MAX\t\t\t60000\n#SYS_UID_MIN\t\t  100\n#SYS_UID_MAX\t\t  999\n";
const PIN_PATCH: &str = "[{\"op\":\"test\",\"path\":\"/spec/containers/0/name\",\"value\":\"kube-apiserver\"}]\n";

/// A node tree in a temp dir.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        let r = Root { dir };
        r.file("etc/passwd", PASSWD, 0o644);
        r.file("etc/group", GROUP, 0o644);
        r.file("etc/login.defs", LOGIN_DEFS, 0o644);
        r.file("etc/.pwd.lock", "", 0o600); // shadow-utils leaves it in place
        for m in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
            let text = std::fs::read_to_string(controlplane_testdata(&format!("kubeadm-v1.32/{m}.yaml"))).unwrap();
            r.file(&format!("etc/kubernetes/manifests/{m}.yaml"), &text, 0o600);
        }
        for conf in ["admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf"] {
            r.file(&format!("etc/kubernetes/{conf}"), "apiVersion: v1\nkind: Config\n", 0o600);
        }
        for pair in [
            "ca",
            "apiserver",
            "apiserver-kubelet-client",
            "front-proxy-ca",
            "front-proxy-client",
            "apiserver-etcd-client",
        ] {
            r.file(&format!("etc/kubernetes/pki/{pair}.crt"), "CERT\n", 0o644);
            r.file(&format!("etc/kubernetes/pki/{pair}.key"), "KEY\n", 0o600);
        }
        r.file("etc/kubernetes/pki/sa.key", "KEY\n", 0o600);
        r.file("etc/kubernetes/pki/sa.pub", "PUB\n", 0o600);
        for pair in ["ca", "server", "peer", "healthcheck-client"] {
            r.file(&format!("etc/kubernetes/pki/etcd/{pair}.crt"), "CERT\n", 0o644);
            r.file(&format!("etc/kubernetes/pki/etcd/{pair}.key"), "KEY\n", 0o600);
        }
        r.file("var/lib/etcd/member/snap/db", "bolt\n", 0o600);
        r.file("var/lib/etcd/member/wal/0000000000000000-0000000000000000.wal", "wal\n", 0o600);
        for d in ["var/lib/etcd", "var/lib/etcd/member", "var/lib/etcd/member/snap", "var/lib/etcd/member/wal"] {
            std::fs::set_permissions(r.path(d), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        // tollgate's image pins already in kubeadm's patches directory.
        r.file("etc/kubernetes/tollgate-patches/kube-apiserver+json.json", PIN_PATCH, 0o644);
        r
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn file(&self, p: &str, text: &str, mode: u32) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--root", self.dir.path().to_str().unwrap()]);
        tollgate(&all)
    }

    /// Every file and directory: content, owner and mode.
    fn snapshot(&self) -> BTreeMap<String, (Vec<u8>, u32, u32, u32)> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (Vec<u8>, u32, u32, u32)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                let rel = e.path().strip_prefix(base).unwrap().display().to_string();
                let content = if m.is_dir() { Vec::new() } else { std::fs::read(e.path()).unwrap() };
                out.insert(rel, (content, m.uid(), m.gid(), m.mode() & 0o7777));
                if m.is_dir() {
                    walk(base, &e.path(), out);
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out
    }

    fn owner(&self, p: &str) -> (u32, u32, u32) {
        let m = std::fs::metadata(self.path(p)).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    }
}

#[test]
fn plan_shows_accounts_files_and_security_context_and_writes_nothing() {
    let r = Root::new();
    let before = r.snapshot();
    let out = r.run(&["harden", "plan"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for line in [
        "system ID range: UID 100-999, GID 100-999",
        "kubeadm-etcd             user   101   create",
        "kubeadm-sa-key-readers   group  104   create",
        "kube-apiserver           kubeadm-kas (102:101)",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?} in:\n{}", out.stdout);
    }
    // Each table's columns line up: every row has its last column where the header has it.
    for (head, last) in [("FILE ", "MODE"), ("COMPONENT ", "CAPABILITIES")] {
        let table: Vec<&str> =
            out.stdout.lines().skip_while(|l| !l.starts_with(head)).take_while(|l| !l.is_empty()).collect();
        let at = table[0].find(last).unwrap();
        for row in &table[1..] {
            if row.contains("(not on this node") || row.starts_with("runAsNonRoot") {
                continue;
            }
            let col = row.char_indices().nth(at).map(|(i, _)| &row[i..]).unwrap_or_default();
            assert!(
                row[..row.char_indices().nth(at).unwrap().0].ends_with("  ") && !col.starts_with(' '),
                "{last} is out of line in\n{row}\nof\n{}",
                table.join("\n")
            );
        }
    }
    let long = r.run(&["harden", "plan", "--user", "etcd=etcd-with-a-long-name"]);
    assert!(long.stdout.contains("etcd                     etcd-with-a-long-name (101:100)  "), "{}", long.stdout);
    // An --id that another account holds names the holder and the way out, for a group still to be created.
    let taken = r.run(&["harden", "plan", "--id", "kubeadm-etcd=0"]);
    assert_eq!(
        taken.one_line_error(2),
        "tollgate: --id kubeadm-etcd=0: GID 0 is taken by group root; choose a free GID (the system range is \
         100-999) or leave out --id kubeadm-etcd to get the lowest free one"
    );
    assert!(out.stdout.contains("/etc/kubernetes/pki/sa.key"), "{}", out.stdout);
    let j = r.run(&["harden", "plan", "-o", "json"]).json();
    assert_eq!(j["accounts"]["passwdLines"][0], "kubeadm-etcd:x:101:100:::/bin/false");
    assert_eq!(j["components"].as_array().unwrap().len(), 4);
    let sa_key = j["files"].as_array().unwrap().iter().find(|f| f["path"] == "/etc/kubernetes/pki/sa.key").unwrap();
    assert_eq!(
        (sa_key["owner"].as_str(), sa_key["to"]["mode"].as_u64()),
        (Some("root:kubeadm-sa-key-readers"), Some(0o640))
    );
    assert_eq!(r.snapshot(), before, "plan writes nothing");
}

#[test]
fn apply_is_idempotent_composes_with_the_pins_and_revert_restores_byte_for_byte() {
    let r = Root::new();
    let before = r.snapshot();
    let audit = r.run(&["harden", "audit"]);
    assert_eq!(audit.code, 1, "a root control plane has findings: {}", audit.stdout);
    assert!(
        audit.stdout.contains("kube-apiserver            NOT hardened: pod runAsUser is unset"),
        "{}",
        audit.stdout
    );

    let out = r.run(&["harden", "apply", "--now"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "created users kubeadm-etcd, kubeadm-kas, kubeadm-kcm, kubeadm-ks\n\
             created groups kubeadm-etcd, kubeadm-kas, kubeadm-kcm, kubeadm-ks, kubeadm-sa-key-readers\n"
        ),
        "which entries are users and which groups: {}",
        out.stdout
    );
    let passwd = std::fs::read_to_string(r.path("etc/passwd")).unwrap();
    assert!(passwd.starts_with(PASSWD) && passwd.ends_with("kubeadm-ks:x:104:103:::/bin/false\n"), "{passwd}");
    let group = std::fs::read_to_string(r.path("etc/group")).unwrap();
    assert!(group.ends_with("kubeadm-sa-key-readers:x:104:kubeadm-kas,kubeadm-kcm\n"), "{group}");
    assert_eq!(r.owner("etc/kubernetes/pki/sa.key"), (0, 104, 0o640));
    assert_eq!(r.owner("etc/kubernetes/pki/apiserver.key"), (102, 101, 0o600));
    assert_eq!(r.owner("etc/kubernetes/scheduler.conf"), (104, 103, 0o600));
    assert_eq!(r.owner("var/lib/etcd/member/wal/0000000000000000-0000000000000000.wal"), (101, 100, 0o600));
    assert_eq!(r.owner("etc/kubernetes/admin.conf"), (0, 0, 0o600), "admin.conf stays root's");
    // The securityContext patch sits beside the pin, and sorts after it.
    let patch = std::fs::read_to_string(r.path("etc/kubernetes/tollgate-patches/kube-apiserver9harden+strategic.yaml"))
        .unwrap();
    assert!(patch.contains("runAsUser: 102") && patch.contains("- ALL"), "{patch}");
    assert_eq!(
        std::fs::read_to_string(r.path("etc/kubernetes/tollgate-patches/kube-apiserver+json.json")).unwrap(),
        PIN_PATCH
    );
    let mut names: Vec<String> = std::fs::read_dir(r.path("etc/kubernetes/tollgate-patches"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kube-apiserver"))
        .collect();
    names.sort();
    assert_eq!(names, ["kube-apiserver+json.json", "kube-apiserver9harden+strategic.yaml"]);
    let live = std::fs::read_to_string(r.path("etc/kubernetes/manifests/etcd.yaml")).unwrap();
    assert!(live.contains("runAsUser: 101") && live.contains("runAsNonRoot: true"), "{live}");

    // Hardened: no findings, with the CIS ownership deviations explained; --profile cis counts them.
    let audit = r.run(&["harden", "audit"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);
    assert!(audit.stdout.contains("1.1.19  DEVIATION  PKI directory and files ownership"), "{}", audit.stdout);
    assert!(audit.stdout.contains("why: a non-root component must read its own key"), "{}", audit.stdout);
    assert!(audit.stdout.contains("1.1.13  PASS"), "{}", audit.stdout);
    let cis = r.run(&["harden", "audit", "--profile", "cis", "-o", "json"]);
    assert_eq!(cis.code, 1);
    let j = cis.json();
    let status = |id: &str| j["cis"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()["status"].clone();
    assert_eq!(status("1.1.12"), "deviation");
    assert_eq!(status("1.1.16"), "deviation");
    assert_eq!(status("1.1.9"), "manual");
    assert_eq!(status("1.1.1"), "pass");

    let after_first = r.snapshot();
    let again = r.run(&["harden", "apply", "--now"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.starts_with("nothing to change: already applied"), "{}", again.stdout);
    assert_eq!(r.snapshot(), after_first, "apply twice changes nothing");

    let back = r.run(&["harden", "revert"]);
    assert_eq!(back.code, 0, "{}{}", back.stdout, back.stderr);
    let now = r.snapshot();
    for (path, was) in &before {
        assert_eq!(now.get(path), Some(was), "{path} after revert");
    }
    assert_eq!(
        now.len(),
        before.len(),
        "no file left behind: {:?}",
        now.keys().filter(|k| !before.contains_key(*k)).collect::<Vec<_>>()
    );
    assert!(r.run(&["harden", "revert"]).one_line_error(2).contains("not found: nothing was applied here"));
}

#[test]
fn a_corrupt_passwd_line_or_an_exhausted_range_is_one_clear_error_and_nothing_is_written() {
    let r = Root::new();
    r.file("etc/passwd", &format!("{PASSWD}broken:x:12\n"), 0o644);
    let before = r.snapshot();
    let out = r.run(&["harden", "apply"]);
    assert_eq!(out.one_line_error(2), "tollgate: passwd:6: 3 fields, not 7; fix the line (nothing was changed)");
    assert_eq!(r.snapshot(), before);
    assert_eq!(std::fs::read_to_string(r.path("etc/passwd")).unwrap(), format!("{PASSWD}broken:x:12\n"));

    let r = Root::new();
    r.file("etc/login.defs", "SYS_UID_MIN 100\nSYS_UID_MAX 102\n", 0o644);
    let out = r.run(&["harden", "plan"]);
    assert_eq!(
        out.one_line_error(2),
        "tollgate: no free UID between 100 and 102 (SYS_UID_MIN/MAX in /etc/login.defs); free one or widen the range"
    );
}

#[test]
fn a_held_account_file_lock_makes_apply_wait_then_give_up_without_writing() {
    use rustix::fs::{FlockOperation, fcntl_lock};
    let r = Root::new();
    let before = r.snapshot(); // first: closing any other descriptor of the file would drop the lock
    let lock =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(r.path("etc/.pwd.lock")).unwrap();
    // A POSIX lock held by this process, as useradd would hold it: the tollgate child must not get it.
    fcntl_lock(&lock, FlockOperation::LockExclusive).unwrap();
    let out = r.run(&["harden", "apply"]);
    let line = out.one_line_error(3);
    assert!(line.contains("etc/.pwd.lock is locked by another program"), "{line}");
    drop(lock);
    assert_eq!(r.snapshot(), before);
    assert_eq!(r.run(&["harden", "apply"]).code, 0, "applies once the lock is released");
}

#[test]
fn existing_accounts_and_already_hardened_manifests_are_reused_and_pass() {
    let r = Root::new();
    assert_eq!(r.run(&["harden", "apply", "--now"]).code, 0);
    // Forget the journal: a node hardened earlier (by kubeadm or by hand) looks like this.
    std::fs::remove_file(r.path("var/lib/tollgate/harden/journal.json")).unwrap();
    let plan = r.run(&["harden", "plan", "-o", "json"]).json();
    assert_eq!(plan["accounts"]["passwdLines"].as_array().unwrap().len(), 0);
    assert!(plan["accounts"]["users"].as_array().unwrap().iter().all(|u| u["exists"] == true));
    assert_eq!(plan["files"].as_array().unwrap().len(), 0);
    assert_eq!(r.run(&["harden", "audit"]).code, 0);
    // An account that exists but may log in is not silently reused.
    let passwd = std::fs::read_to_string(r.path("etc/passwd"))
        .unwrap()
        .replace("kubeadm-ks:x:104:103:::/bin/false", "kubeadm-ks:x:104:103:::/bin/sh");
    r.file("etc/passwd", &passwd, 0o644);
    let out = r.run(&["harden", "plan"]);
    assert_eq!(
        out.one_line_error(2),
        "tollgate: existing user kubeadm-ks: shell /bin/sh allows logins; use /bin/false"
    );
    // --user picks other names: etcd=etcd satisfies kube-bench 1.1.12.
    let r = Root::new();
    assert_eq!(r.run(&["harden", "apply", "--user", "etcd=etcd"]).code, 0);
    let audit = r.run(&["harden", "audit", "--user", "etcd=etcd", "--profile", "cis", "-o", "json"]).json();
    let s = audit["cis"].as_array().unwrap().iter().find(|c| c["id"] == "1.1.12").unwrap()["status"].clone();
    assert_eq!(s, "pass");
}

/// kubeadm reads one `--patches` directory: hardening written next to the
/// pins' directory, rather than into it, would silently lose one of them.
#[test]
fn hardening_is_refused_in_a_second_patches_directory() {
    let r = Root::new();
    let out = r.run(&["harden", "apply", "--patches", "/etc/kubernetes/patches"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let line = out.one_line_error(2);
    assert!(
        line.contains("etc/kubernetes/tollgate-patches holds image-pin patches (tollgate kubeadm patches) (kube-apiserver+json.json), and kubeadm reads only one --patches directory"),
        "{line}"
    );
    assert!(!r.path("etc/kubernetes/patches").exists(), "nothing was written");
    assert_eq!(r.run(&["harden", "apply"]).code, 0, "the default is the pins' directory");
}

/// A `--root` that does not exist is said so, not "entity not found: entity not found".
#[test]
fn a_missing_root_is_named() {
    let r = crate::util::tollgate(&["harden", "plan", "--root", "/nonexistent-root"]);
    assert_eq!(
        r.one_line_error(2),
        "tollgate: --root /nonexistent-root does not exist or is not a directory; give the root of the node's file system"
    );
}

/// A deviation excuses only the ownership hardening gave a file: a data
/// directory CIS refuses for its mode (0755) fails before apply and after it.
#[test]
fn a_cis_mode_failure_is_never_excused_as_hardened() {
    let r = Root::new();
    std::fs::set_permissions(r.path("var/lib/etcd"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let status = |r: &Root| {
        let audit = r.run(&["harden", "audit", "-o", "json"]).json();
        audit["cis"].as_array().unwrap().iter().find(|c| c["id"] == "1.1.11").unwrap()["status"].clone()
    };
    assert_eq!(status(&r), "fail", "before apply");
    assert_eq!(r.run(&["harden", "apply"]).code, 0);
    assert_eq!(r.owner("var/lib/etcd"), (101, 100, 0o755), "apply gives the owner, never the mode");
    assert_eq!(status(&r), "fail", "after apply the mode is still judged against CIS");
    let text = r.run(&["harden", "audit"]);
    assert_ne!(text.code, 0);
    assert!(
        text.stdout.contains("1.1.11") && !text.stdout.contains("755 (CIS wants 700 or stricter); as hardened"),
        "{}",
        text.stdout
    );
}

/// On a tree where apply creates the patch directory and shadow-utils' lock file, revert removes them again:
/// the tree is exactly as before, directories included. A directory that now holds someone else's file stays.
#[test]
fn revert_removes_what_apply_created_and_keeps_what_others_added() {
    let r = Root::new();
    std::fs::remove_dir_all(r.path("etc/kubernetes/tollgate-patches")).unwrap();
    std::fs::remove_file(r.path("etc/.pwd.lock")).unwrap();
    let before = r.snapshot();
    let out = r.run(&["harden", "apply"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(r.path("etc/kubernetes/tollgate-patches/etcd9harden+strategic.yaml").is_file());
    assert!(r.path("etc/.pwd.lock").is_file() && r.path("var/lib/tollgate/harden/journal.json").is_file());
    let back = r.run(&["harden", "revert", "-o", "json"]);
    assert_eq!(back.code, 0, "{}{}", back.stdout, back.stderr);
    assert_eq!(
        back.json()["dirsRemoved"],
        serde_json::json!(["/etc/kubernetes/tollgate-patches", "/var/lib/tollgate/harden", "/var/lib/tollgate"])
    );
    let now = r.snapshot();
    assert_eq!(
        now.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "exactly the paths that were there before"
    );
    assert_eq!(now, before);

    // Another file in the patch directory since apply: the directory is kept, and revert says so.
    assert_eq!(r.run(&["harden", "apply"]).code, 0);
    r.file("etc/kubernetes/tollgate-patches/kube-apiserver+json.json", PIN_PATCH, 0o644);
    let back = r.run(&["harden", "revert"]);
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert!(
        back.stdout.contains("/etc/kubernetes/tollgate-patches: created by apply, kept: it holds other files now"),
        "{}",
        back.stdout
    );
    assert_eq!(
        std::fs::read_to_string(r.path("etc/kubernetes/tollgate-patches/kube-apiserver+json.json")).unwrap(),
        PIN_PATCH
    );
    assert!(!r.path("etc/.pwd.lock").exists() && !r.path("var/lib/tollgate").exists());
}

/// revert takes only --root (the journal knows the rest), says "nothing was
/// applied" before anything else, and a missing account file is said once.
#[test]
fn revert_takes_only_the_root_and_errors_say_their_cause_once() {
    let r = Root::new();
    let help = crate::util::tollgate(&["harden", "revert", "--help"]);
    assert!(
        help.stdout.contains("--root <DIR>")
            && !help.stdout.contains("--user <")
            && !help.stdout.contains("--pki-dir <")
    );
    assert_eq!(r.run(&["harden", "revert", "--user", "etcd=etcd"]).code, 2, "an option revert would ignore is refused");
    let empty = tempfile::tempdir().unwrap();
    let none = crate::util::tollgate(&["harden", "revert", "--root", empty.path().to_str().unwrap()]);
    assert_eq!(
        none.one_line_error(2),
        format!(
            "tollgate: journal {}/var/lib/tollgate/harden/journal.json: not found: nothing was applied here (or it was reverted already)",
            empty.path().display()
        )
    );
    std::fs::create_dir(empty.path().join("etc")).unwrap();
    let plan = crate::util::tollgate(&["harden", "plan", "--root", empty.path().to_str().unwrap()]);
    assert_eq!(plan.one_line_error(2), format!("tollgate: {}/etc/passwd: does not exist", empty.path().display()));
    assert_eq!(r.run(&["harden", "apply"]).code, 0);
    assert_eq!(r.run(&["harden", "revert"]).code, 0);
}
