//! `/etc/passwd` and `/etc/group`: strict parsing, validation of existing
//! control-plane accounts, allocation of free system IDs, and the lines to
//! append, exactly as kubeadm's `RootlessControlPlane` wrote them:
//! `name:x:UID:GID:::/bin/false` and `name:x:GID:member,member`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::HardenError;
use crate::logindefs::IdRange;

/// One passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// UID.
    pub uid: u32,
    /// Primary GID.
    pub gid: u32,
    /// Login shell.
    pub shell: String,
}

/// One group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// GID.
    pub gid: u32,
    /// Member user names.
    pub members: Vec<String>,
}

fn corrupt(file: &str, line: usize, message: impl Into<String>) -> HardenError {
    HardenError::Corrupt { file: file.into(), line, message: message.into() }
}

/// Lines that are not entries: blanks, and NIS `+`/`-` compat lines, which are kept as they are.
fn skipped(line: &str) -> bool {
    line.is_empty() || line.starts_with('+') || line.starts_with('-')
}

/// Parses `/etc/passwd`: seven `:`-separated fields, numeric UID and GID.
pub fn parse_passwd(text: &str) -> Result<Vec<User>, HardenError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if skipped(line) {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 7 {
            return Err(corrupt("passwd", i + 1, format!("{} fields, not 7", f.len())));
        }
        let num = |s: &str, what: &str| {
            s.parse::<u32>().map_err(|_| corrupt("passwd", i + 1, format!("{what} {s:?} is not a number")))
        };
        if f[0].is_empty() {
            return Err(corrupt("passwd", i + 1, "empty user name"));
        }
        out.push(User { name: f[0].into(), uid: num(f[2], "UID")?, gid: num(f[3], "GID")?, shell: f[6].into() });
    }
    Ok(out)
}

/// Parses `/etc/group`: four `:`-separated fields, numeric GID.
pub fn parse_group(text: &str) -> Result<Vec<Group>, HardenError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if skipped(line) {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 4 {
            return Err(corrupt("group", i + 1, format!("{} fields, not 4", f.len())));
        }
        if f[0].is_empty() {
            return Err(corrupt("group", i + 1, "empty group name"));
        }
        let gid =
            f[2].parse::<u32>().map_err(|_| corrupt("group", i + 1, format!("GID {:?} is not a number", f[2])))?;
        let members = f[3].split(',').filter(|m| !m.is_empty()).map(str::to_owned).collect();
        out.push(Group { name: f[0].into(), gid, members });
    }
    Ok(out)
}

/// The account names, kubeadm's by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Names {
    /// etcd.
    pub etcd: String,
    /// kube-apiserver.
    pub apiserver: String,
    /// kube-controller-manager.
    pub controller_manager: String,
    /// kube-scheduler.
    pub scheduler: String,
    /// The group that may read `sa.key` (apiserver and controller-manager).
    pub sa_key_readers: String,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            etcd: "kubeadm-etcd".into(),
            apiserver: "kubeadm-kas".into(),
            controller_manager: "kubeadm-kcm".into(),
            scheduler: "kubeadm-ks".into(),
            sa_key_readers: "kubeadm-sa-key-readers".into(),
        }
    }
}

/// Shells accepted on an existing account (kubeadm writes `/bin/false`).
const NO_LOGIN: [&str; 4] = ["/bin/false", "/usr/bin/false", "/usr/sbin/nologin", "/sbin/nologin"];

/// One planned account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Name.
    pub name: String,
    /// UID (users) or GID (groups).
    pub id: u32,
    /// For users: the primary GID; for groups: the members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Group members.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Whether it exists already (and is reused as it is).
    pub exists: bool,
}

/// The accounts the plan needs, and what to append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountPlan {
    /// The four users.
    pub users: Vec<Account>,
    /// Their primary groups and the sa-key readers group.
    pub groups: Vec<Account>,
    /// Lines to append to /etc/passwd.
    pub passwd_lines: Vec<String>,
    /// Lines to append to /etc/group.
    pub group_lines: Vec<String>,
}

impl AccountPlan {
    /// The UID of a planned user.
    pub fn uid(&self, name: &str) -> Option<u32> {
        self.users.iter().find(|u| u.name == name).map(|u| u.id)
    }

    /// The GID of a planned group.
    pub fn gid(&self, name: &str) -> Option<u32> {
        self.groups.iter().find(|g| g.name == name).map(|g| g.id)
    }

    /// The numeric owner for `user:group`, where `root` is 0 (as plan targets name them).
    pub fn owner_ids(&self, user: &str, group: &str) -> (u32, u32) {
        let uid = if user == "root" { 0 } else { self.uid(user).unwrap_or(0) };
        let gid = if group == "root" { 0 } else { self.gid(group).unwrap_or(0) };
        (uid, gid)
    }
}

/// Plans the accounts: existing valid entries are reused, the rest get the
/// lowest free IDs of the system range (users and groups separately, as
/// kubeadm does), or the ID configured in `fixed` (by name).
pub fn plan(
    passwd: &[User],
    group: &[Group],
    range: IdRange,
    names: &Names,
    users_needed: &[&str],
    fixed: &BTreeMap<String, u32>,
) -> Result<AccountPlan, HardenError> {
    // Each ID in use, with the account that holds it (the first, as getpwuid(3) finds it).
    let mut used_uids: BTreeMap<u32, String> = BTreeMap::new();
    for u in passwd {
        used_uids.entry(u.uid).or_insert_with(|| u.name.clone());
    }
    let mut used_gids: BTreeMap<u32, String> = BTreeMap::new();
    for g in group {
        used_gids.entry(g.gid).or_insert_with(|| g.name.clone());
    }
    let conflict = |kind, name: &str, message: String| HardenError::Conflict { kind, name: name.into(), message };
    let next = |used: &mut BTreeMap<u32, String>, name: &str, what: &'static str, min: u32, max: u32| {
        let kind = if what == "UID" { "user" } else { "group" };
        if let Some(&id) = fixed.get(name) {
            if let Some(holder) = used.get(&id) {
                return Err(HardenError::IdTaken {
                    kind,
                    name: name.into(),
                    what,
                    id,
                    holder: holder.clone(),
                    min,
                    max,
                });
            }
            used.insert(id, name.to_owned());
            return Ok(id);
        }
        let id = (min..=max).find(|i| !used.contains_key(i)).ok_or(HardenError::RangeExhausted { what, min, max })?;
        used.insert(id, name.to_owned());
        Ok(id)
    };

    let mut groups: Vec<Account> = Vec::new();
    let mut users: Vec<Account> = Vec::new();
    // Primary groups first, so users can name them.
    for name in users_needed {
        let g = match group.iter().find(|g| g.name == *name) {
            Some(g) => {
                if !(range.gid_min..=range.gid_max).contains(&g.gid) {
                    return Err(conflict(
                        "group",
                        name,
                        format!("GID {} is outside the system range {}-{}", g.gid, range.gid_min, range.gid_max),
                    ));
                }
                Account { name: (*name).into(), id: g.gid, gid: None, members: g.members.clone(), exists: true }
            }
            None => {
                let id = next(&mut used_gids, name, "GID", range.gid_min, range.gid_max)?;
                Account { name: (*name).into(), id, gid: None, members: Vec::new(), exists: false }
            }
        };
        groups.push(g);
    }
    for name in users_needed {
        let gid = groups.iter().find(|g| g.name == *name).map_or(0, |g| g.id);
        let u = match passwd.iter().find(|u| u.name == *name) {
            Some(u) => {
                if !(range.uid_min..=range.uid_max).contains(&u.uid) {
                    return Err(conflict(
                        "user",
                        name,
                        format!("UID {} is outside the system range {}-{}", u.uid, range.uid_min, range.uid_max),
                    ));
                }
                if u.gid != gid {
                    return Err(conflict(
                        "user",
                        name,
                        format!("primary GID {} is not the GID {gid} of group {name}", u.gid),
                    ));
                }
                if !NO_LOGIN.contains(&u.shell.as_str()) {
                    return Err(conflict("user", name, format!("shell {} allows logins; use /bin/false", u.shell)));
                }
                Account { name: (*name).into(), id: u.uid, gid: Some(gid), members: Vec::new(), exists: true }
            }
            None => {
                let id = next(&mut used_uids, name, "UID", range.uid_min, range.uid_max)?;
                Account { name: (*name).into(), id, gid: Some(gid), members: Vec::new(), exists: false }
            }
        };
        users.push(u);
    }
    // The sa.key readers: apiserver and controller-manager, when both are planned.
    let readers: Vec<String> = [&names.apiserver, &names.controller_manager]
        .into_iter()
        .filter(|n| users_needed.contains(&n.as_str()))
        .cloned()
        .collect();
    if !readers.is_empty() {
        let name = &names.sa_key_readers;
        let g = match group.iter().find(|g| &g.name == name) {
            Some(g) => {
                let (mut want, mut have) = (readers.clone(), g.members.clone());
                want.sort();
                have.sort();
                if want != have {
                    return Err(conflict(
                        "group",
                        name,
                        format!("members are {have:?}, not {want:?}; fix the members or remove the group"),
                    ));
                }
                Account { name: name.clone(), id: g.gid, gid: None, members: g.members.clone(), exists: true }
            }
            None => {
                let id = next(&mut used_gids, name, "GID", range.gid_min, range.gid_max)?;
                Account { name: name.clone(), id, gid: None, members: readers, exists: false }
            }
        };
        groups.push(g);
    }
    let passwd_lines = users
        .iter()
        .filter(|u| !u.exists)
        .map(|u| format!("{}:x:{}:{}:::/bin/false", u.name, u.id, u.gid.unwrap_or(0)))
        .collect();
    let group_lines =
        groups.iter().filter(|g| !g.exists).map(|g| format!("{}:x:{}:{}", g.name, g.id, g.members.join(","))).collect();
    Ok(AccountPlan { users, groups, passwd_lines, group_lines })
}

/// `text` with `lines` appended, each newline-terminated.
pub fn append(text: &str, lines: &[String]) -> String {
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// `text` without the given lines (each removed once, exactly); `Err` names a
/// line that is no longer there as written.
pub fn remove(text: &str, lines: &[String]) -> Result<String, String> {
    let mut kept: Vec<&str> = text.split_inclusive('\n').collect();
    for l in lines {
        let pos = kept.iter().position(|k| k.trim_end_matches('\n') == l).ok_or_else(|| l.clone())?;
        kept.remove(pos);
    }
    Ok(kept.concat())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n_apt:x:100:65534::/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\ndaemon:x:1:\nsystemd-journal:x:100:\n";

    fn all(names: &Names) -> Vec<&str> {
        vec![&names.etcd, &names.apiserver, &names.controller_manager, &names.scheduler]
    }

    #[test]
    fn allocates_the_lowest_free_ids_and_writes_kubeadm_lines() {
        let names = Names::default();
        let p = plan(
            &parse_passwd(PASSWD).unwrap(),
            &parse_group(GROUP).unwrap(),
            IdRange::default(),
            &names,
            &all(&names),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            p.passwd_lines,
            [
                "kubeadm-etcd:x:101:101:::/bin/false",
                "kubeadm-kas:x:102:102:::/bin/false",
                "kubeadm-kcm:x:103:103:::/bin/false",
                "kubeadm-ks:x:104:104:::/bin/false",
            ]
        );
        assert_eq!(p.group_lines.last().unwrap(), "kubeadm-sa-key-readers:x:105:kubeadm-kas,kubeadm-kcm");
        // Applied, the same plan reuses everything and appends nothing.
        let passwd = append(PASSWD, &p.passwd_lines);
        let group = append(GROUP, &p.group_lines);
        let again = plan(
            &parse_passwd(&passwd).unwrap(),
            &parse_group(&group).unwrap(),
            IdRange::default(),
            &names,
            &all(&names),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(again.passwd_lines.is_empty() && again.group_lines.is_empty());
        assert_eq!(again.uid("kubeadm-kas"), Some(102));
        assert_eq!(remove(&passwd, &p.passwd_lines).unwrap(), PASSWD);
        assert_eq!(remove(&group, &p.group_lines).unwrap(), GROUP);
    }

    #[test]
    fn configured_ids_exhausted_ranges_and_invalid_entries_are_errors() {
        let names = Names::default();
        let (pw, gr) = (parse_passwd(PASSWD).unwrap(), parse_group(GROUP).unwrap());
        let fixed: BTreeMap<String, u32> = [("kubeadm-etcd".to_owned(), 500)].into();
        let p = plan(&pw, &gr, IdRange::default(), &names, &all(&names), &fixed).unwrap();
        assert_eq!(p.uid("kubeadm-etcd"), Some(500));
        let tight = IdRange { uid_min: 100, uid_max: 102, gid_min: 100, gid_max: 999 };
        let e = plan(&pw, &gr, tight, &names, &all(&names), &BTreeMap::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no free UID between 100 and 102 (SYS_UID_MIN/MAX in /etc/login.defs); free one or widen the range"
        );
        let bad = format!("{PASSWD}kubeadm-kas:x:150:150:::/bin/bash\n");
        let gr2 = parse_group(&format!("{GROUP}kubeadm-kas:x:150:\n")).unwrap();
        let e = plan(&parse_passwd(&bad).unwrap(), &gr2, IdRange::default(), &names, &all(&names), &BTreeMap::new())
            .unwrap_err();
        assert!(e.to_string().contains("shell /bin/bash allows logins"), "{e}");
    }

    #[test]
    fn corrupt_lines_name_file_and_line() {
        let e = parse_passwd("root:x:0:0:root:/root:/bin/bash\nbroken:x:1\n").unwrap_err();
        assert_eq!(e.to_string(), "passwd:2: 3 fields, not 7; fix the line (nothing was changed)");
        assert!(parse_group("g:x:notanumber:\n").unwrap_err().to_string().starts_with("group:1: GID"));
        assert_eq!(parse_passwd("+::::::\n\n").unwrap(), []);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,200}") {
            let _ = parse_passwd(&s);
            let _ = parse_group(&s);
            let _ = crate::logindefs::parse(Some(&s));
        }
    }
}
