//! `harden audit`: the manifests' securityContext, the files' owners and
//! modes, and the CIS 1.1.1–1.1.21 checks as kube-bench runs them, in two
//! views. CIS wants the PKI and kubeconfigs owned by root:root, while
//! non-root components must be able to read their own keys: the `hardened`
//! profile reports those CIS failures as accepted deviations when the owner is
//! exactly the planned component; the `cis` profile counts them as findings.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::plan::{FileState, Inputs, Plan};
use crate::security::Component;

/// Which view decides what counts as a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Non-root control plane: hardening deviations from CIS ownership are accepted.
    Hardened,
    /// CIS as kube-bench scores it: root:root everywhere.
    Cis,
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Holds.
    Pass,
    /// Does not hold: a finding.
    Fail,
    /// CIS fails, by the hardening's design (a finding only in the `cis` profile).
    Deviation,
    /// The target does not exist on this node.
    NotApplicable,
    /// Not checkable from files (kube-bench marks it Manual).
    Manual,
}

/// One CIS check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// kube-bench id, `1.1.1` …
    pub id: String,
    /// What it checks.
    pub title: String,
    /// Outcome.
    pub status: Status,
    /// Files that failed (or deviated), with what was found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Why a deviation is accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One component's securityContext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentReport {
    /// Which.
    pub component: Component,
    /// Whether the manifest runs it as planned.
    pub hardened: bool,
    /// What differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// The audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The view that counted findings.
    pub profile: Profile,
    /// Manifests.
    pub components: Vec<ComponentReport>,
    /// Files whose owner or mode is not the planned one.
    pub files: Vec<String>,
    /// CIS 1.1.x.
    pub cis: Vec<Check>,
    /// How many findings (non-zero exit when any).
    pub findings: usize,
}

fn stat_text(s: &FileState, names: &BTreeMap<u32, String>, groups: &BTreeMap<u32, String>) -> String {
    let n = |m: &BTreeMap<u32, String>, id: u32| m.get(&id).cloned().unwrap_or_else(|| id.to_string());
    format!("{}:{} {:04o}", n(names, s.uid), n(groups, s.gid), s.mode)
}

/// Audits a node: `inputs` as read (manifests, and the state of every
/// manifest, kubeconfig, PKI entry and etcd data file), `plan` as planned for it.
pub fn audit(inputs: &Inputs, plan: &Plan, profile: Profile) -> Report {
    let users: BTreeMap<u32, String> = crate::accounts::parse_passwd(&inputs.passwd)
        .unwrap_or_default()
        .into_iter()
        .map(|u| (u.uid, u.name))
        .collect();
    let groups: BTreeMap<u32, String> =
        crate::accounts::parse_group(&inputs.group).unwrap_or_default().into_iter().map(|g| (g.gid, g.name)).collect();
    let components: Vec<ComponentReport> = plan
        .components
        .iter()
        .map(|cs| {
            let problems = match inputs.manifests.get(&cs.component) {
                Some(m) => cs.check_manifest(m).unwrap_or_else(|e| vec![format!("cannot parse the manifest: {e}")]),
                None => vec!["no manifest".into()],
            };
            ComponentReport { component: cs.component, hardened: problems.is_empty(), problems }
        })
        .collect();
    // Planned owners, by path (recursive targets cover everything below).
    let target = |path: &str| {
        plan.targets.iter().find(|t| t.path == path || (t.recursive && path.starts_with(&format!("{}/", t.path))))
    };
    let planned = |path: &str| -> Option<FileState> {
        target(path).map(|t| {
            let (uid, gid) = plan.accounts.owner_ids(&t.user, &t.group);
            let mode = t.mode.unwrap_or_else(|| inputs.files.get(path).map_or(0, |s| s.mode));
            FileState { uid, gid, mode }
        })
    };
    // A permission check may excuse only a mode hardening sets: a mode the
    // plan leaves alone (the etcd data directory) is judged against CIS.
    let planned_mode = |path: &str| -> Option<FileState> { target(path)?.mode.and_then(|_| planned(path)) };
    let files: Vec<String> = plan
        .targets
        .iter()
        .flat_map(|t| {
            let below = format!("{}/", t.path);
            inputs.files.iter().filter(move |(p, _)| **p == t.path || (t.recursive && p.starts_with(&below)))
        })
        .filter_map(|(p, s)| {
            let want = planned(p)?;
            (want != *s)
                .then(|| format!("{p}: {} (want {})", stat_text(s, &users, &groups), stat_text(&want, &users, &groups)))
        })
        .collect();

    let l = &inputs.layout;
    let manifest = |c: Component| format!("{}/{}", l.manifests_dir, c.manifest());
    let conf = |n: &str| format!("{}/{n}", l.kubernetes_dir);
    let etcd_dir = plan.targets.iter().find(|t| t.recursive).map(|t| t.path.clone());
    let pki_entries: Vec<&String> = inputs.files.keys().filter(|p| p.starts_with(&format!("{}/", l.pki_dir))).collect();
    let mut cis = Vec::new();
    let mut perm = |id: &str, title: &str, paths: Vec<String>, max: u32| {
        cis.push(check(
            id,
            title,
            &paths,
            inputs,
            |s| s.mode & !max == 0,
            format!("permissions {max:o} or stricter"),
            &planned_mode,
            &users,
            &groups,
        ));
    };
    perm("1.1.1", "kube-apiserver manifest permissions", vec![manifest(Component::KubeApiserver)], 0o600);
    perm(
        "1.1.3",
        "kube-controller-manager manifest permissions",
        vec![manifest(Component::KubeControllerManager)],
        0o600,
    );
    perm("1.1.5", "kube-scheduler manifest permissions", vec![manifest(Component::KubeScheduler)], 0o600);
    perm("1.1.7", "etcd manifest permissions", vec![manifest(Component::Etcd)], 0o600);
    perm("1.1.11", "etcd data directory permissions", etcd_dir.clone().into_iter().collect(), 0o700);
    perm(
        "1.1.13",
        "admin.conf and super-admin.conf permissions",
        vec![conf("admin.conf"), conf("super-admin.conf")],
        0o600,
    );
    perm("1.1.15", "scheduler.conf permissions", vec![conf("scheduler.conf")], 0o600);
    perm("1.1.17", "controller-manager.conf permissions", vec![conf("controller-manager.conf")], 0o600);
    let crts: Vec<String> = pki_entries.iter().filter(|p| p.ends_with(".crt")).map(|p| (*p).clone()).collect();
    let keys: Vec<String> = pki_entries.iter().filter(|p| p.ends_with(".key")).map(|p| (*p).clone()).collect();
    perm("1.1.20", "PKI certificate file permissions", crts, 0o644);
    perm("1.1.21", "PKI key file permissions", keys, 0o600);
    let root = |id: &str, title: &str, paths: Vec<String>| {
        check(id, title, &paths, inputs, |s| s.uid == 0 && s.gid == 0, "root:root".into(), &planned, &users, &groups)
    };
    cis.push(root("1.1.2", "kube-apiserver manifest ownership", vec![manifest(Component::KubeApiserver)]));
    cis.push(root(
        "1.1.4",
        "kube-controller-manager manifest ownership",
        vec![manifest(Component::KubeControllerManager)],
    ));
    cis.push(root("1.1.6", "kube-scheduler manifest ownership", vec![manifest(Component::KubeScheduler)]));
    cis.push(root("1.1.8", "etcd manifest ownership", vec![manifest(Component::Etcd)]));
    cis.push(root(
        "1.1.14",
        "admin.conf and super-admin.conf ownership",
        vec![conf("admin.conf"), conf("super-admin.conf")],
    ));
    cis.push(root("1.1.16", "scheduler.conf ownership", vec![conf("scheduler.conf")]));
    cis.push(root("1.1.18", "controller-manager.conf ownership", vec![conf("controller-manager.conf")]));
    cis.push(root("1.1.19", "PKI directory and files ownership", pki_entries.iter().map(|p| (*p).clone()).collect()));
    // 1.1.12: kube-bench wants a user named etcd.
    let etcd_user = users.iter().find(|(_, n)| *n == "etcd").map(|(id, _)| *id);
    let etcd_group = groups.iter().find(|(_, n)| *n == "etcd").map(|(id, _)| *id);
    cis.push(check(
        "1.1.12",
        "etcd data directory ownership",
        &etcd_dir.into_iter().collect::<Vec<_>>(),
        inputs,
        |s| Some(s.uid) == etcd_user && Some(s.gid) == etcd_group,
        "etcd:etcd".into(),
        &planned,
        &users,
        &groups,
    ));
    for (id, title) in [("1.1.9", "CNI configuration file permissions"), ("1.1.10", "CNI configuration file ownership")]
    {
        cis.push(Check {
            id: id.into(),
            title: title.into(),
            status: Status::Manual,
            details: Vec::new(),
            note: Some(
                "kube-bench marks it Manual: the files are in kubelet's --cni-conf-dir, not in the control plane"
                    .into(),
            ),
        });
    }
    cis.sort_by_key(|c| c.id.split('.').map(|n| n.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>());

    let hardened_view = profile == Profile::Hardened;
    let findings = components.iter().filter(|c| !c.hardened && hardened_view).count()
        + if hardened_view { files.len() } else { 0 }
        + cis
            .iter()
            .filter(|c| c.status == Status::Fail || (c.status == Status::Deviation && profile == Profile::Cis))
            .count();
    Report { profile, components, files, cis, findings }
}

/// One CIS check over `paths`: pass when every existing one holds; a failing
/// file whose state is exactly the planned hardened state is a deviation.
/// `planned` answers only for the attribute the check judges that hardening
/// sets, so a failure hardening did not cause stays a failure.
#[allow(clippy::too_many_arguments)]
fn check(
    id: &str,
    title: &str,
    paths: &[String],
    inputs: &Inputs,
    holds: impl Fn(&FileState) -> bool,
    expected: String,
    planned: &dyn Fn(&str) -> Option<FileState>,
    users: &BTreeMap<u32, String>,
    groups: &BTreeMap<u32, String>,
) -> Check {
    let found: Vec<(&String, &FileState)> = paths.iter().filter_map(|p| inputs.files.get_key_value(p)).collect();
    if found.is_empty() {
        return Check {
            id: id.into(),
            title: title.into(),
            status: Status::NotApplicable,
            details: Vec::new(),
            note: None,
        };
    }
    let mut status = Status::Pass;
    let mut details = Vec::new();
    for (p, s) in found {
        if holds(s) {
            continue;
        }
        let by_design = planned(p).is_some_and(|w| w == *s);
        details.push(format!(
            "{p}: {} (CIS wants {expected}){}",
            stat_text(s, users, groups),
            if by_design { "; as hardened" } else { "" }
        ));
        status = match (status, by_design) {
            (Status::Fail, _) | (_, false) => Status::Fail,
            _ => Status::Deviation,
        };
    }
    let note = (status == Status::Deviation).then(|| {
        "a non-root component must read its own key or kubeconfig, so hardening gives it the file; CIS scores root \
         ownership, which only a root component can read. Use --profile cis to count this"
            .to_owned()
    });
    Check { id: id.into(), title: title.into(), status, details, note }
}
