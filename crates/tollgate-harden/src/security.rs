//! The securityContext of each control-plane component: as a kubeadm
//! strategic-merge patch file (composing with the image-pin JSON patches), as
//! an edit of a live static-pod manifest, and as a check of one.

use serde::Serialize;
use serde_json::{Value, json};

use crate::HardenError;

/// A control-plane component run from a static pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// etcd.
    Etcd,
    /// kube-apiserver.
    KubeApiserver,
    /// kube-controller-manager.
    KubeControllerManager,
    /// kube-scheduler.
    KubeScheduler,
}

impl Component {
    /// All four, in kubeadm's order.
    pub const ALL: [Component; 4] =
        [Component::Etcd, Component::KubeApiserver, Component::KubeControllerManager, Component::KubeScheduler];

    /// The container name, patch target and manifest stem.
    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
        }
    }

    /// The static-pod manifest file name.
    pub fn manifest(self) -> String {
        format!("{}.yaml", self.name())
    }

    /// The hardening patch file name. kubeadm applies patches of a target in
    /// file-name order: `kube-apiserver+json.json` (the image pin, no suffix)
    /// sorts before `kube-apiserver9harden+strategic.yaml`.
    pub fn patch_file(self) -> String {
        format!("{}9harden+strategic.yaml", self.name())
    }
}

/// What one component runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSecurity {
    /// Which.
    pub component: Component,
    /// The user name.
    pub user: String,
    /// runAsUser.
    pub run_as_user: u32,
    /// runAsGroup.
    pub run_as_group: u32,
    /// supplementalGroups (the sa.key readers for apiserver and controller-manager).
    pub supplemental_groups: Vec<u32>,
    /// Capabilities added after dropping ALL (NET_BIND_SERVICE for an apiserver on a port below 1024).
    pub add_capabilities: Vec<String>,
}

impl ComponentSecurity {
    /// Whether privilege escalation must stay allowed: a non-root process only
    /// gains the binary's file capability (cap_net_bind_service) without
    /// no_new_privs, which is what kubeadm did for a low apiserver port.
    pub fn needs_escalation(&self) -> bool {
        !self.add_capabilities.is_empty()
    }

    fn pod_context(&self) -> Value {
        let mut pod = json!({
            "runAsUser": self.run_as_user,
            "runAsGroup": self.run_as_group,
            "runAsNonRoot": true,
            "seccompProfile": {"type": "RuntimeDefault"},
        });
        if !self.supplemental_groups.is_empty() {
            pod["supplementalGroups"] = json!(self.supplemental_groups);
        }
        pod
    }

    fn container_context(&self) -> Value {
        let mut caps = json!({"drop": ["ALL"]});
        if !self.add_capabilities.is_empty() {
            caps["add"] = json!(self.add_capabilities);
        }
        let mut c = json!({"capabilities": caps});
        if !self.needs_escalation() {
            c["allowPrivilegeEscalation"] = json!(false);
        }
        c
    }

    /// The strategic-merge patch (YAML) kubeadm applies on init, join and upgrade.
    pub fn patch(&self) -> String {
        let v = json!({
            "spec": {
                "securityContext": self.pod_context(),
                "containers": [{"name": self.component.name(), "securityContext": self.container_context()}],
            }
        });
        let body = serde_yaml_ng::to_string(&v).unwrap_or_default();
        format!(
            "# tollgate harden: {} runs as {} ({}:{}), all capabilities dropped{}.\n{body}",
            self.component.name(),
            self.user,
            self.run_as_user,
            self.run_as_group,
            if self.add_capabilities.is_empty() {
                String::new()
            } else {
                format!(" except {}", self.add_capabilities.join(", "))
            }
        )
    }

    /// The live manifest with this securityContext set (other fields kept).
    pub fn apply_to_manifest(&self, path: &str, manifest: &[u8]) -> Result<String, HardenError> {
        let err = |message: String| HardenError::Manifest { path: path.into(), message };
        let mut pod: Value = serde_yaml_ng::from_slice(manifest).map_err(|e| err(e.to_string()))?;
        let spec = pod.get_mut("spec").and_then(Value::as_object_mut).ok_or_else(|| err("no spec".into()))?;
        let pod_ctx = spec.entry("securityContext").or_insert_with(|| json!({}));
        merge(pod_ctx, self.pod_context());
        let containers =
            spec.get_mut("containers").and_then(Value::as_array_mut).ok_or_else(|| err("no containers".into()))?;
        let c = containers
            .iter_mut()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(self.component.name()))
            .ok_or_else(|| err(format!("no container named {}", self.component.name())))?;
        let obj = c.as_object_mut().ok_or_else(|| err("container is not a mapping".into()))?;
        let ctx = obj.entry("securityContext").or_insert_with(|| json!({}));
        merge(ctx, self.container_context());
        serde_yaml_ng::to_string(&pod).map_err(|e| err(e.to_string()))
    }

    /// What differs between a manifest and this securityContext (empty: hardened).
    pub fn check_manifest(&self, manifest: &[u8]) -> Result<Vec<String>, String> {
        let pod: Value = serde_yaml_ng::from_slice(manifest).map_err(|e| e.to_string())?;
        let name = self.component.name();
        let mut out = Vec::new();
        let p = &pod["spec"]["securityContext"];
        let expect = |out: &mut Vec<String>, what: &str, got: &Value, want: Value| {
            if *got != want {
                out.push(format!(
                    "{what} is {}, want {want}",
                    if got.is_null() { "unset".into() } else { got.to_string() }
                ));
            }
        };
        expect(&mut out, "pod runAsUser", &p["runAsUser"], json!(self.run_as_user));
        expect(&mut out, "pod runAsGroup", &p["runAsGroup"], json!(self.run_as_group));
        expect(&mut out, "pod runAsNonRoot", &p["runAsNonRoot"], json!(true));
        expect(&mut out, "pod seccompProfile.type", &p["seccompProfile"]["type"], json!("RuntimeDefault"));
        let groups: Vec<u64> = p["supplementalGroups"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        for g in &self.supplemental_groups {
            if !groups.contains(&u64::from(*g)) {
                out.push(format!("pod supplementalGroups lacks {g}"));
            }
        }
        let c = pod["spec"]["containers"].as_array().and_then(|cs| cs.iter().find(|c| c["name"] == name));
        match c {
            None => out.push(format!("no container named {name}")),
            Some(c) => {
                let ctx = &c["securityContext"];
                if !self.needs_escalation() {
                    expect(&mut out, "allowPrivilegeEscalation", &ctx["allowPrivilegeEscalation"], json!(false));
                }
                let drop: Vec<&str> = ctx["capabilities"]["drop"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if !drop.contains(&"ALL") {
                    out.push("capabilities.drop does not contain ALL".into());
                }
                let add: Vec<&str> = ctx["capabilities"]["add"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for extra in add.iter().filter(|a| !self.add_capabilities.iter().any(|w| w == *a)) {
                    out.push(format!("capabilities.add has {extra}, which it does not need"));
                }
                if ctx["privileged"] == json!(true) {
                    out.push("container is privileged".into());
                }
            }
        }
        Ok(out)
    }
}

/// Sets every key of `patch` in `target`, recursing into mappings.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

/// A `--flag=value` of the component's command, if set.
pub fn flag(manifest: &[u8], component: Component, flag: &str) -> Option<String> {
    let pod: Value = serde_yaml_ng::from_slice(manifest).ok()?;
    let c = pod["spec"]["containers"].as_array()?.iter().find(|c| c["name"] == component.name())?;
    let prefix = format!("--{flag}=");
    c["command"].as_array()?.iter().filter_map(Value::as_str).find_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn apiserver(add: &[&str]) -> ComponentSecurity {
        ComponentSecurity {
            component: Component::KubeApiserver,
            user: "kubeadm-kas".into(),
            run_as_user: 102,
            run_as_group: 102,
            supplemental_groups: vec![105],
            add_capabilities: add.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    const MANIFEST: &[u8] = include_bytes!("../../tollgate-controlplane/testdata/kubeadm-v1.32/kube-apiserver.yaml");

    #[test]
    fn the_patch_is_a_strategic_merge_of_pod_and_container_context() {
        let patch = apiserver(&[]).patch();
        assert!(
            patch.starts_with(
                "# tollgate harden: kube-apiserver runs as kubeadm-kas (102:102), all capabilities dropped.\n"
            ),
            "{patch}"
        );
        let v: Value = serde_yaml_ng::from_str(&patch).unwrap();
        assert_eq!(v["spec"]["securityContext"]["supplementalGroups"], json!([105]));
        assert_eq!(v["spec"]["containers"][0]["name"], "kube-apiserver");
        assert_eq!(v["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"], false);
        let low = apiserver(&["NET_BIND_SERVICE"]).patch();
        let v: Value = serde_yaml_ng::from_str(&low).unwrap();
        assert_eq!(v["spec"]["containers"][0]["securityContext"]["capabilities"]["add"], json!(["NET_BIND_SERVICE"]));
        assert!(v["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"].is_null());
    }

    #[test]
    fn a_manifest_edit_passes_the_check_and_keeps_everything_else() {
        let s = apiserver(&[]);
        let before = s.check_manifest(MANIFEST).unwrap();
        assert!(before.iter().any(|p| p.starts_with("pod runAsUser is unset")), "{before:?}");
        let edited = s.apply_to_manifest("kube-apiserver.yaml", MANIFEST).unwrap();
        assert_eq!(s.check_manifest(edited.as_bytes()).unwrap(), Vec::<String>::new());
        let v: Value = serde_yaml_ng::from_str(&edited).unwrap();
        assert_eq!(v["spec"]["containers"][0]["image"], "registry.k8s.io/kube-apiserver:v1.32.9");
        assert_eq!(flag(edited.as_bytes(), Component::KubeApiserver, "secure-port").as_deref(), Some("6443"));
    }
}
