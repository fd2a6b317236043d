use std::path::PathBuf;

use super::*;
use crate::catalog::Catalog;
use crate::version::KubernetesVersion;

fn images(version: &str) -> VersionImages {
    let v = KubernetesVersion::parse(version).unwrap_or_else(|e| panic!("{e}"));
    Catalog::embedded().images(v, None).unwrap_or_else(|e| panic!("{e}"))
}

fn testdata(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn apply(file: &PatchFile, mut doc: serde_json::Value) -> Result<serde_json::Value, json_patch::PatchError> {
    let patch: json_patch::Patch = serde_json::from_str(&file.content).unwrap_or_else(|e| panic!("{e}"));
    json_patch::patch(&mut doc, &patch)?;
    Ok(doc)
}

#[test]
fn v1_32_9_writes_four_static_pod_patches_and_coredns() {
    let set = render(&images("v1.32.9"), false).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = set.files.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "kube-apiserver+json.json",
            "kube-controller-manager+json.json",
            "kube-scheduler+json.json",
            "corednsdeployment+json.json",
            "etcd+json.json",
        ]
    );
    let uncovered: Vec<&str> = set.uncovered.iter().map(|u| u.component.name()).collect();
    assert_eq!(uncovered, ["kube-proxy", "pause"]);
}

#[test]
fn patch_content_is_a_test_then_a_replace() {
    let set = render(&images("v1.32.9"), false).unwrap_or_else(|e| panic!("{e}"));
    let api = set.files.first().map(|f| f.content.as_str()).unwrap_or_default();
    assert_eq!(
        api,
        r#"[
  {
    "op": "test",
    "path": "/spec/containers/0/name",
    "value": "kube-apiserver"
  },
  {
    "op": "replace",
    "path": "/spec/containers/0/image",
    "value": "registry.k8s.io/kube-apiserver:v1.32.9@sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97"
  }
]
"#
    );
}

/// Applying each patch to the manifest kubeadm generates pins exactly the
/// image and changes nothing else.
#[test]
fn patches_apply_to_real_kubeadm_manifests() {
    let set = render(&images("v1.32.9"), false).unwrap_or_else(|e| panic!("{e}"));
    for file in &set.files {
        let (manifest, image_ptr) = if file.target == "corednsdeployment" {
            ("coredns-deployment.yaml".to_owned(), "/spec/template/spec/containers/0/image")
        } else {
            (format!("kubeadm-v1.32/{}.yaml", file.target), "/spec/containers/0/image")
        };
        let before = testdata(&manifest);
        let after = apply(file, before.clone()).unwrap_or_else(|e| panic!("{}: {e}", file.file_name));
        assert_eq!(after.pointer(image_ptr).and_then(|v| v.as_str()), Some(file.image.as_str()));
        let mut restored = after.clone();
        if let Some(slot) = restored.pointer_mut(image_ptr) {
            *slot = before.pointer(image_ptr).cloned().unwrap_or_default();
        }
        assert_eq!(restored, before, "{} changed more than the image", file.file_name);
    }
}

/// The guard: a patch for one component fails on another's manifest, so a
/// reordered or foreign manifest is never silently re-imaged.
#[test]
fn test_op_refuses_the_wrong_container() {
    let set = render(&images("v1.32.9"), false).unwrap_or_else(|e| panic!("{e}"));
    let api = set.files.iter().find(|f| f.target == "kube-apiserver").unwrap_or_else(|| panic!("no apiserver patch"));
    assert!(apply(api, testdata("kubeadm-v1.32/etcd.yaml")).is_err());
}

#[test]
fn before_1_31_coredns_is_left_to_cluster_configuration() {
    let set = render(&images("v1.30.14"), false).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.files.iter().all(|f| f.target != "corednsdeployment"));
    let reason = set.uncovered.iter().find(|u| u.component == Component::Coredns).map(|u| u.reason.as_str());
    assert!(reason.is_some_and(|r| r.contains("ClusterConfiguration.dns")));
}

#[test]
fn unpinned_static_pod_is_refused_unless_allowed() {
    // kubeadm v1.28.4 defaults to etcd 3.5.9-0, whose digest is not published in the facts.
    let imgs = images("v1.28.4");
    assert_eq!(
        render(&imgs, false).err().map(|e| e.to_string()).as_deref(),
        Some(
            "no digest is known for registry.k8s.io/etcd:3.5.9-0 of Kubernetes v1.28.4; resolve digests with \
             `tollgate images lock --kubernetes-version v1.28.4` and pass the result with --catalog, or pass \
             --allow-unpinned to write patches for the pinned images only"
        )
    );
    let set = render(&imgs, true).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.files.iter().all(|f| f.component != Component::Etcd));
    assert_eq!(set.files.len(), 3);
}
