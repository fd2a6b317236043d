//! The plan: accounts, file ownership and modes, and each component's
//! securityContext. Pure: what the node's files say comes in as values.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::HardenError;
use crate::accounts::{self, AccountPlan, Names};
use crate::logindefs::{self, IdRange};
use crate::security::{Component, ComponentSecurity, flag};

/// Owner and mode of a file as found (or as wanted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileState {
    /// Owner UID.
    pub uid: u32,
    /// Group GID.
    pub gid: u32,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
}

/// Who should own a file: root (0), or a planned account by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Absolute path on the node (under `--root` when given).
    pub path: String,
    /// Owner user name (`root` for 0).
    pub user: String,
    /// Group name (`root` for 0).
    pub group: String,
    /// Mode to set; `None` leaves it.
    pub mode: Option<u32>,
    /// Apply to everything below (the etcd data directory).
    pub recursive: bool,
    /// Which component needs it.
    pub component: Component,
}

/// Where the node keeps things (kubeadm's defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    /// `/etc/kubernetes`.
    pub kubernetes_dir: String,
    /// `/etc/kubernetes/pki` (ClusterConfiguration.certificatesDir).
    pub pki_dir: String,
    /// `/etc/kubernetes/manifests`.
    pub manifests_dir: String,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            kubernetes_dir: "/etc/kubernetes".into(),
            pki_dir: "/etc/kubernetes/pki".into(),
            manifests_dir: "/etc/kubernetes/manifests".into(),
        }
    }
}

/// The files each component needs, as kubeadm's RootlessControlPlane chowned them.
pub fn targets(layout: &Layout, names: &Names, manifests: &BTreeMap<Component, Vec<u8>>) -> Vec<Target> {
    let pki = |p: &str| format!("{}/{p}", layout.pki_dir);
    let t = |path: String, user: &str, group: &str, mode: Option<u32>, component: Component| Target {
        path,
        user: user.into(),
        group: group.into(),
        mode,
        recursive: false,
        component,
    };
    let mut out = Vec::new();
    let local_etcd = manifests.contains_key(&Component::Etcd);
    if manifests.contains_key(&Component::KubeApiserver) {
        let (u, c) = (names.apiserver.as_str(), Component::KubeApiserver);
        out.push(t(pki("sa.pub"), u, u, Some(0o600), c));
        out.push(t(pki("sa.key"), "root", &names.sa_key_readers, Some(0o640), c));
        for key in ["apiserver.key", "apiserver-kubelet-client.key", "front-proxy-client.key"] {
            out.push(t(pki(key), u, u, Some(0o600), c));
        }
        if local_etcd {
            out.push(t(pki("apiserver-etcd-client.key"), u, u, Some(0o600), c));
        }
    }
    if manifests.contains_key(&Component::KubeControllerManager) {
        let (u, c) = (names.controller_manager.as_str(), Component::KubeControllerManager);
        out.push(t(format!("{}/controller-manager.conf", layout.kubernetes_dir), u, u, Some(0o600), c));
        out.push(t(pki("ca.key"), u, u, Some(0o600), c));
        if !manifests.contains_key(&Component::KubeApiserver) {
            out.push(t(pki("sa.key"), "root", &names.sa_key_readers, Some(0o640), c));
        }
    }
    if manifests.contains_key(&Component::KubeScheduler) {
        let u = names.scheduler.as_str();
        out.push(t(format!("{}/scheduler.conf", layout.kubernetes_dir), u, u, Some(0o600), Component::KubeScheduler));
    }
    if let Some(m) = manifests.get(&Component::Etcd) {
        let u = names.etcd.as_str();
        for key in ["etcd/server.key", "etcd/peer.key"] {
            out.push(t(pki(key), u, u, Some(0o600), Component::Etcd));
        }
        let data = flag(m, Component::Etcd, "data-dir").unwrap_or_else(|| "/var/lib/etcd".into());
        out.push(Target { recursive: true, ..t(data, u, u, None, Component::Etcd) });
    }
    out
}

/// One file to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChange {
    /// The file.
    pub path: String,
    /// As found.
    pub from: FileState,
    /// As wanted.
    pub to: FileState,
    /// `user:group` as wanted, by name.
    pub owner: String,
}

/// What the node's files say, read by the shell.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `/etc/login.defs`, if it exists.
    pub login_defs: Option<String>,
    /// `/etc/passwd`.
    pub passwd: String,
    /// `/etc/group`.
    pub group: String,
    /// The static-pod manifests found.
    pub manifests: BTreeMap<Component, Vec<u8>>,
    /// The state of every target path that exists, and of everything below a recursive target.
    pub files: BTreeMap<String, FileState>,
    /// Account names.
    pub names: Names,
    /// Configured IDs by account name.
    pub fixed_ids: BTreeMap<String, u32>,
    /// Paths.
    pub layout: Layout,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The system ID range used.
    pub range: IdRange,
    /// Accounts to reuse or create.
    pub accounts: AccountPlan,
    /// Owner and mode changes (files already right are left out).
    pub files: Vec<FileChange>,
    /// Target files that do not exist on this node.
    pub missing: Vec<String>,
    /// Each component's securityContext.
    pub components: Vec<ComponentSecurity>,
    /// The targets, for the audit.
    pub targets: Vec<Target>,
}

impl Plan {
    /// Whether applying it would change nothing in accounts and files.
    pub fn is_noop(&self) -> bool {
        self.accounts.passwd_lines.is_empty() && self.accounts.group_lines.is_empty() && self.files.is_empty()
    }
}

/// Plans the hardening of the components whose manifests exist.
pub fn plan(inputs: &Inputs) -> Result<Plan, HardenError> {
    if inputs.manifests.is_empty() {
        return Err(HardenError::Manifest {
            path: inputs.layout.manifests_dir.clone(),
            message: "no control-plane static-pod manifest here; is this a kubeadm control-plane node?".into(),
        });
    }
    let range = logindefs::parse(inputs.login_defs.as_deref())?;
    let passwd = accounts::parse_passwd(&inputs.passwd)?;
    let group = accounts::parse_group(&inputs.group)?;
    let names = &inputs.names;
    let user_of = |c: Component| match c {
        Component::Etcd => names.etcd.as_str(),
        Component::KubeApiserver => names.apiserver.as_str(),
        Component::KubeControllerManager => names.controller_manager.as_str(),
        Component::KubeScheduler => names.scheduler.as_str(),
    };
    let needed: Vec<&str> = inputs.manifests.keys().map(|c| user_of(*c)).collect();
    let accounts = accounts::plan(&passwd, &group, range, names, &needed, &inputs.fixed_ids)?;
    let readers = accounts.gid(&names.sa_key_readers);

    let components = inputs
        .manifests
        .iter()
        .map(|(c, m)| {
            let user = user_of(*c);
            let uid = accounts.uid(user).unwrap_or(0);
            let gid = accounts.gid(user).unwrap_or(0);
            let supplemental = match c {
                Component::KubeApiserver | Component::KubeControllerManager => readers.into_iter().collect(),
                _ => Vec::new(),
            };
            let port = flag(m, *c, "secure-port").and_then(|p| p.parse::<u16>().ok()).unwrap_or(6443);
            let add = if *c == Component::KubeApiserver && port < 1024 {
                vec!["NET_BIND_SERVICE".to_owned()]
            } else {
                Vec::new()
            };
            ComponentSecurity {
                component: *c,
                user: user.into(),
                run_as_user: uid,
                run_as_group: gid,
                supplemental_groups: supplemental,
                add_capabilities: add,
            }
        })
        .collect();

    let targets = targets(&inputs.layout, names, &inputs.manifests);
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for t in &targets {
        let (uid, gid) = accounts.owner_ids(&t.user, &t.group);
        let owner = format!("{}:{}", t.user, t.group);
        let paths: Vec<(&String, &FileState)> = if t.recursive {
            let below = format!("{}/", t.path);
            inputs.files.iter().filter(|(p, _)| **p == t.path || p.starts_with(&below)).collect()
        } else {
            inputs.files.get_key_value(&t.path).into_iter().collect()
        };
        if paths.is_empty() {
            missing.push(t.path.clone());
        }
        for (p, from) in paths {
            let to = FileState { uid, gid, mode: t.mode.unwrap_or(from.mode) };
            if *from != to {
                files.push(FileChange { path: p.clone(), from: *from, to, owner: owner.clone() });
            }
        }
    }
    Ok(Plan { range, accounts, files, missing, components, targets })
}
