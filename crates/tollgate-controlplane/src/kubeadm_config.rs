//! kubeadm configuration that uses the pin patches.
//!
//! kubeadm reads patches only from the directory its configuration or flags
//! name, and patches are node-local: they are never uploaded to the
//! `kubeadm-config` ConfigMap. So every `init`, `join`, `upgrade apply` and
//! `upgrade node` must be told where they are, or the regenerated manifests
//! lose their digests. This module renders all four configurations with
//! `patches.directory` set:
//!
//! - v1beta4 (kubeadm ≥ 1.31): Init, Cluster, Join and UpgradeConfiguration.
//! - v1beta3 (older): Init, Cluster and Join; upgrades take `--patches`, and
//!   [`Rendered::upgrade_commands`] spells the commands out.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::catalog::{Component, DEFAULT_IMAGE_REPOSITORY, VersionImages};

/// Options for rendering.
#[derive(Debug, Clone)]
pub struct ConfigOptions {
    /// Directory holding the patch files on the node.
    pub patches_dir: String,
    /// Custom `imageRepository` (a mirror), if any.
    pub image_repository: Option<String>,
    /// Render only this kind (e.g. `UpgradeConfiguration` for `kubeadm upgrade apply --config`).
    pub only: Option<String>,
}

/// The rendered configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rendered {
    /// `kubeadm.k8s.io/v1beta3` or `kubeadm.k8s.io/v1beta4`.
    pub api_version: String,
    /// Multi-document YAML for `kubeadm init|join|upgrade --config`.
    pub yaml: String,
    /// The kinds rendered, in document order.
    pub kinds: Vec<String>,
    /// The commands that keep the pins through an upgrade.
    pub upgrade_commands: Vec<String>,
    /// Notes for the operator.
    pub notes: Vec<String>,
}

/// Renders kubeadm configuration for `images`.
pub fn render(images: &VersionImages, opts: &ConfigOptions) -> Rendered {
    let v1beta4 = images.version.at_least(1, 31);
    let api_version = if v1beta4 { "kubeadm.k8s.io/v1beta4" } else { "kubeadm.k8s.io/v1beta3" };
    let version = images.version.to_string();
    let patches = json!({ "directory": opts.patches_dir });
    let mut notes = Vec::new();

    let mut cluster = Map::new();
    cluster.insert("apiVersion".into(), json!(api_version));
    cluster.insert("kind".into(), json!("ClusterConfiguration"));
    cluster.insert("kubernetesVersion".into(), json!(version));
    if let Some(repo) = &opts.image_repository {
        cluster.insert("imageRepository".into(), json!(repo));
    }
    if let Some(etcd) = images.get(Component::Etcd) {
        // The tag keeps kubeadm's etcd upgrade logic working; the digest comes from etcd+json.json.
        let repo = opts.image_repository.as_deref().unwrap_or(DEFAULT_IMAGE_REPOSITORY);
        cluster.insert(
            "etcd".into(),
            json!({"local": {"imageRepository": repo, "imageTag": etcd.image.tag().unwrap_or_default()}}),
        );
    }
    if let Some(dns) = images.get(Component::Coredns) {
        if !v1beta4 {
            let repo = dns.image.repository();
            let dns_repo = repo.strip_suffix("/coredns").unwrap_or(&repo).to_owned();
            let tag = match &dns.digest {
                Some(d) => format!("{}@{d}", dns.image.tag().unwrap_or_default()),
                None => {
                    notes.push(format!("no digest known for {}: CoreDNS is pinned by tag only", dns.image));
                    dns.image.tag().unwrap_or_default().to_owned()
                }
            };
            cluster.insert("dns".into(), json!({"imageRepository": dns_repo, "imageTag": tag}));
            notes.push(
                "dns.imageTag holds a digest, which freezes CoreDNS across upgrades: re-render this configuration \
                 for each new version, and pass --ignore-preflight-errors=CoreDNSUnsupportedPlugins,CoreDNSMigration \
                 to kubeadm upgrade if its CoreDNS preflight cannot parse the tag"
                    .into(),
            );
        }
    }

    let init = json!({"apiVersion": api_version, "kind": "InitConfiguration", "patches": patches});
    let join = json!({
        "apiVersion": api_version,
        "kind": "JoinConfiguration",
        "patches": patches,
        "controlPlane": {},
        "discovery": {"bootstrapToken": {"apiServerEndpoint": "CHANGE-ME:6443", "token": "CHANGE-ME", "caCertHashes": ["CHANGE-ME"]}},
    });
    notes.push("JoinConfiguration: fill in discovery, and drop controlPlane for worker nodes".into());

    let mut docs: Vec<Value> = vec![init, Value::Object(cluster), join];
    let dir = &opts.patches_dir;
    let upgrade_commands = if v1beta4 {
        docs.push(json!({
            "apiVersion": api_version,
            "kind": "UpgradeConfiguration",
            "apply": {"kubernetesVersion": version, "patches": patches},
            "node": {"patches": patches},
        }));
        vec![
            format!(
                "tollgate kubeadm config --kubernetes-version {version} --patches-dir {dir} --only upgrade --out upgrade.yaml"
            ),
            "kubeadm upgrade apply --config upgrade.yaml   # first control-plane node".to_owned(),
            "kubeadm upgrade node --config upgrade.yaml    # every other node".to_owned(),
        ]
    } else {
        vec![
            format!("kubeadm upgrade apply {version} --patches {dir}   # first control-plane node"),
            format!("kubeadm upgrade node --patches {dir}              # every other node"),
        ]
    };
    if let Some(only) = &opts.only {
        docs.retain(|d| d.get("kind").and_then(Value::as_str) == Some(only.as_str()));
    }
    let kinds = docs.iter().filter_map(|d| d.get("kind").and_then(Value::as_str).map(str::to_owned)).collect();
    let yaml = docs.iter().map(|d| serde_yaml_ng::to_string(d).unwrap_or_default()).collect::<Vec<_>>().join("---\n");
    let header = format!(
        "# Rendered by tollgate for Kubernetes {version}. Every kubeadm init, join and upgrade must read the\n\
         # patches in {dir}, or the control plane loses its digest pins.\n"
    );
    Rendered { api_version: api_version.into(), yaml: header + &yaml, kinds, upgrade_commands, notes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::version::KubernetesVersion;

    fn rendered(version: &str) -> Rendered {
        let v = KubernetesVersion::parse(version).unwrap_or_else(|e| panic!("{e}"));
        let imgs = Catalog::embedded().images(v, None).unwrap_or_else(|e| panic!("{e}"));
        render(
            &imgs,
            &ConfigOptions {
                patches_dir: "/etc/kubernetes/tollgate-patches".into(),
                image_repository: None,
                only: None,
            },
        )
    }

    fn docs(r: &Rendered) -> Vec<Value> {
        r.yaml.split("\n---\n").map(|d| serde_yaml_ng::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}"))).collect()
    }

    #[test]
    fn v1beta4_has_upgrade_configuration_with_patches() {
        let r = rendered("v1.32.9");
        assert_eq!(r.api_version, "kubeadm.k8s.io/v1beta4");
        assert_eq!(r.kinds, ["InitConfiguration", "ClusterConfiguration", "JoinConfiguration", "UpgradeConfiguration"]);
        let d = docs(&r);
        let dir = Some("/etc/kubernetes/tollgate-patches");
        assert_eq!(d[0].pointer("/patches/directory").and_then(Value::as_str), dir);
        assert_eq!(d[1].pointer("/kubernetesVersion").and_then(Value::as_str), Some("v1.32.9"));
        assert_eq!(d[1].pointer("/etcd/local/imageTag").and_then(Value::as_str), Some("3.5.16-0"));
        assert_eq!(d[1].pointer("/dns"), None, "CoreDNS is pinned by the corednsdeployment patch from 1.31");
        assert_eq!(d[2].pointer("/patches/directory").and_then(Value::as_str), dir);
        assert_eq!(d[3].pointer("/apply/patches/directory").and_then(Value::as_str), dir);
        assert_eq!(d[3].pointer("/node/patches/directory").and_then(Value::as_str), dir);
        assert_eq!(d[3].pointer("/apply/kubernetesVersion").and_then(Value::as_str), Some("v1.32.9"));
    }

    #[test]
    fn v1beta3_pins_coredns_in_cluster_configuration_and_spells_out_upgrade_flags() {
        let r = rendered("v1.30.14");
        assert_eq!(r.api_version, "kubeadm.k8s.io/v1beta3");
        assert_eq!(r.kinds, ["InitConfiguration", "ClusterConfiguration", "JoinConfiguration"]);
        let d = docs(&r);
        assert_eq!(d[1].pointer("/dns/imageRepository").and_then(Value::as_str), Some("registry.k8s.io/coredns"));
        assert_eq!(
            d[1].pointer("/dns/imageTag").and_then(Value::as_str),
            Some("v1.11.3@sha256:9caabbf6238b189a65d0d6e6ac138de60d6a1c419e5a341fbbb7c78382559c6e")
        );
        assert_eq!(
            r.upgrade_commands[0],
            "kubeadm upgrade apply v1.30.14 --patches /etc/kubernetes/tollgate-patches   # first control-plane node"
        );
    }

    #[test]
    fn only_renders_one_kind() {
        let v = KubernetesVersion::parse("v1.32.9").unwrap_or_else(|e| panic!("{e}"));
        let imgs = Catalog::embedded().images(v, None).unwrap_or_else(|e| panic!("{e}"));
        let opts = ConfigOptions {
            patches_dir: "/p".into(),
            image_repository: None,
            only: Some("UpgradeConfiguration".into()),
        };
        let r = render(&imgs, &opts);
        assert_eq!(r.kinds, ["UpgradeConfiguration"]);
        assert!(!r.yaml.contains("InitConfiguration"));
    }

    #[test]
    fn custom_repository_is_passed_through() {
        let v = KubernetesVersion::parse("v1.31.13").unwrap_or_else(|e| panic!("{e}"));
        let imgs = Catalog::embedded().images(v, Some("mirror.local/k8s")).unwrap_or_else(|e| panic!("{e}"));
        let r = render(
            &imgs,
            &ConfigOptions { patches_dir: "/p".into(), image_repository: Some("mirror.local/k8s".into()), only: None },
        );
        let d = docs(&r);
        assert_eq!(d[1].pointer("/imageRepository").and_then(Value::as_str), Some("mirror.local/k8s"));
        assert_eq!(d[1].pointer("/etcd/local/imageRepository").and_then(Value::as_str), Some("mirror.local/k8s"));
    }
}
