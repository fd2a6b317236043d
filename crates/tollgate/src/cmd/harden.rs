//! `tollgate harden plan | apply | audit | revert`: the shell around tollgate_harden.

use std::collections::BTreeMap;

use tollgate_harden::accounts::Names;
use tollgate_harden::apply::{self, Node};
use tollgate_harden::audit::{self, Profile, Status};
use tollgate_harden::plan::{self, Layout, Plan};

use crate::cli::{AuditProfile, HardenApplyArgs, HardenArgs, HardenAuditArgs, HardenRevertArgs};
use crate::exit::Outcome;
use crate::output::{Format, print, print_json};

fn node(a: &HardenArgs) -> anyhow::Result<Node> {
    anyhow::ensure!(
        a.root.is_dir(),
        "--root {} does not exist or is not a directory; give the root of the node's file system",
        a.root.display()
    );
    let mut names = Names::default();
    for spec in &a.users {
        let (component, name) =
            spec.split_once('=').ok_or_else(|| anyhow::anyhow!("--user {spec}: want COMPONENT=NAME"))?;
        anyhow::ensure!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "--user {spec}: {name:?} is not a valid account name"
        );
        let slot = match component {
            "etcd" => &mut names.etcd,
            "kube-apiserver" => &mut names.apiserver,
            "kube-controller-manager" => &mut names.controller_manager,
            "kube-scheduler" => &mut names.scheduler,
            "sa-key-readers" => &mut names.sa_key_readers,
            other => anyhow::bail!(
                "--user {spec}: unknown component {other:?}; use etcd, kube-apiserver, kube-controller-manager, kube-scheduler or sa-key-readers"
            ),
        };
        *slot = name.to_owned();
    }
    let mut fixed_ids = BTreeMap::new();
    for spec in &a.ids {
        let (name, id) = spec.split_once('=').ok_or_else(|| anyhow::anyhow!("--id {spec}: want NAME=ID"))?;
        let id: u32 = id.parse().map_err(|_| anyhow::anyhow!("--id {spec}: {id:?} is not a number"))?;
        fixed_ids.insert(name.to_owned(), id);
    }
    let layout = Layout { pki_dir: a.pki_dir.trim_end_matches('/').to_owned(), ..Layout::default() };
    Ok(Node { root: a.root.clone(), layout, names, fixed_ids })
}

fn owner(uid: u32, gid: u32, p: &Plan) -> String {
    let name = |id: u32, users: bool| {
        let list = if users { &p.accounts.users } else { &p.accounts.groups };
        if id == 0 {
            "root".to_owned()
        } else {
            list.iter().find(|a| a.id == id).map_or_else(|| id.to_string(), |a| a.name.clone())
        }
    };
    format!("{}:{}", name(uid, true), name(gid, false))
}

fn render_plan(p: &Plan) -> String {
    let mut s = format!(
        "system ID range: UID {}-{}, GID {}-{}\n\nACCOUNT                  KIND   ID    STATE\n",
        p.range.uid_min, p.range.uid_max, p.range.gid_min, p.range.gid_max
    );
    for (kind, list) in [("user", &p.accounts.users), ("group", &p.accounts.groups)] {
        for a in list {
            let state = if a.exists { "exists, reused" } else { "create" };
            s.push_str(&format!("{:<24} {kind:<6} {:<5} {state}\n", a.name, a.id));
        }
    }
    // Columns as wide as their longest entry, so a long owner never pushes the mode out of line.
    let rows: Vec<[String; 3]> = p
        .files
        .iter()
        .map(|c| {
            [
                c.path.clone(),
                format!("{} -> {}", owner(c.from.uid, c.from.gid, p), c.owner),
                format!("{:04o} -> {:04o}", c.from.mode, c.to.mode),
            ]
        })
        .collect();
    let path_w = rows.iter().map(|r| r[0].len()).chain(p.missing.iter().map(String::len)).chain([4]).max().unwrap_or(4);
    let owner_w = rows.iter().map(|r| r[1].len()).chain(["OWNER -> NEW OWNER".len()]).max().unwrap_or(0);
    s.push_str(&format!("\n{:<path_w$}  {:<owner_w$}  MODE\n", "FILE", "OWNER -> NEW OWNER"));
    if p.files.is_empty() {
        s.push_str("(every file already has its planned owner and mode)\n");
    }
    for [path, own, mode] in &rows {
        s.push_str(&format!("{path:<path_w$}  {own:<owner_w$}  {mode}\n"));
    }
    for m in &p.missing {
        s.push_str(&format!("{m:<path_w$}  (not on this node; skipped)\n"));
    }
    let rows: Vec<[String; 4]> = p
        .components
        .iter()
        .map(|c| {
            [
                c.component.name().to_owned(),
                format!("{} ({}:{})", c.user, c.run_as_user, c.run_as_group),
                c.supplemental_groups.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                format!(
                    "drop ALL{}{}",
                    if c.add_capabilities.is_empty() {
                        String::new()
                    } else {
                        format!(", add {}", c.add_capabilities.join(","))
                    },
                    if c.needs_escalation() { "" } else { ", no privilege escalation" }
                ),
            ]
        })
        .collect();
    let width = |i: usize, head: &str| rows.iter().map(|r| r[i].len()).chain([head.len()]).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0, "COMPONENT"), width(1, "RUN AS"), width(2, "SUPPLEMENTAL"));
    s.push_str(&format!("\n{:<w0$}  {:<w1$}  {:<w2$}  CAPABILITIES\n", "COMPONENT", "RUN AS", "SUPPLEMENTAL"));
    for [component, run_as, supplemental, caps] in &rows {
        s.push_str(&format!("{component:<w0$}  {run_as:<w1$}  {supplemental:<w2$}  {caps}\n"));
    }
    s.push_str("runAsNonRoot, seccomp RuntimeDefault for all\n");
    s
}

/// `harden plan`.
pub fn plan(a: &HardenArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let n = node(a)?;
    let p = plan::plan(&n.read()?)?;
    match fmt {
        Format::Json => print_json(&p)?,
        Format::Text => print(&render_plan(&p))?,
    }
    Ok(Outcome::Ok)
}

/// `harden apply`.
pub fn apply(a: &HardenApplyArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let n = node(&a.node)?;
    // kubeadm reads one --patches directory: never split the hardening from the pins.
    let root = std::path::Path::new(&n.root);
    tollgate_controlplane::patchdir::refuse_split(
        &root.join(a.patches.trim_start_matches('/')),
        root,
        tollgate_controlplane::patchdir::Writing::Hardening,
    )
    .map_err(anyhow::Error::msg)?;
    let (p, done) = apply::apply(&n, &a.patches, a.now)?;
    match fmt {
        Format::Json => print_json(&serde_json::json!({"plan": p, "applied": done}))?,
        Format::Text => {
            let mut s = String::new();
            if done.accounts_created.is_empty() && done.files_changed == 0 && done.written.is_empty() {
                s.push_str("nothing to change: already applied\n");
            }
            for (kind, names) in [("users", &done.users_created), ("groups", &done.groups_created)] {
                if !names.is_empty() {
                    s.push_str(&format!("created {kind} {}\n", names.join(", ")));
                }
            }
            if done.files_changed > 0 {
                s.push_str(&format!("changed owner or mode of {} files\n", done.files_changed));
            }
            for w in &done.written {
                s.push_str(&format!("wrote {w}\n"));
            }
            s.push_str(&format!("journal: {} (tollgate harden revert undoes it)\n", done.journal));
            if !a.now {
                s.push_str(&format!(
                    "kubeadm applies the securityContext on its next run with --patches {} (init, join, upgrade); --now rewrites the running static pods\n",
                    a.patches
                ));
            }
            print(&s)?;
        }
    }
    Ok(Outcome::Ok)
}

/// `harden audit`.
pub fn audit(a: &HardenAuditArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let n = node(&a.node)?;
    let inputs = n.read()?;
    let p = plan::plan(&inputs)?;
    let profile = match a.profile {
        AuditProfile::Hardened => Profile::Hardened,
        AuditProfile::Cis => Profile::Cis,
    };
    let r = audit::audit(&inputs, &p, profile);
    match fmt {
        Format::Json => print_json(&r)?,
        Format::Text => {
            let mut s = String::from("COMPONENT                 SECURITYCONTEXT\n");
            for c in &r.components {
                let state =
                    if c.hardened { "hardened".to_owned() } else { format!("NOT hardened: {}", c.problems.join("; ")) };
                s.push_str(&format!("{:<25} {state}\n", c.component.name()));
            }
            s.push_str(&format!(
                "\nFILES: {}\n",
                if r.files.is_empty() { "every planned owner and mode is in place" } else { "" }
            ));
            for f in &r.files {
                s.push_str(&format!("  {f}\n"));
            }
            s.push_str("\nCIS (kube-bench)\n");
            for c in &r.cis {
                let st = match c.status {
                    Status::Pass => "PASS",
                    Status::Fail => "FAIL",
                    Status::Deviation => "DEVIATION",
                    Status::NotApplicable => "n/a",
                    Status::Manual => "MANUAL",
                };
                s.push_str(&format!("{:<7} {st:<10} {}\n", c.id, c.title));
                for d in &c.details {
                    s.push_str(&format!("        {d}\n"));
                }
                if let Some(n) = &c.note {
                    s.push_str(&format!("        why: {n}\n"));
                }
            }
            s.push_str(&format!(
                "\n{} finding(s) under the {} profile\n",
                r.findings,
                if profile == Profile::Hardened { "hardened" } else { "cis" }
            ));
            print(&s)?;
        }
    }
    Ok(if r.findings > 0 { Outcome::Findings } else { Outcome::Ok })
}

/// `harden revert`.
pub fn revert(a: &HardenRevertArgs, fmt: Format) -> anyhow::Result<Outcome> {
    // The journal holds the names, IDs and paths apply used; only the root is needed to find it.
    let n = node(&HardenArgs {
        root: a.root.clone(),
        pki_dir: tollgate_harden::plan::Layout::default().pki_dir,
        users: Vec::new(),
        ids: Vec::new(),
    })?;
    let r = apply::revert(&n)?;
    match fmt {
        Format::Json => print_json(&r)?,
        Format::Text => {
            let mut s = format!(
                "removed {} account lines, restored {} files' owners and modes, restored {} patches and manifests\n",
                r.accounts_removed, r.files_restored, r.written_restored
            );
            for m in &r.missing {
                s.push_str(&format!("{m}: gone since apply; skipped\n"));
            }
            for d in &r.dirs_kept {
                s.push_str(&format!("{d}: created by apply, kept: it holds other files now\n"));
            }
            print(&s)?;
        }
    }
    Ok(Outcome::Ok)
}
