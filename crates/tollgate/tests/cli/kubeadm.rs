use std::path::Path;

use crate::util::{controlplane_testdata, mode, tollgate};

const STATIC_PODS: [&str; 4] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"];

fn write_patches(dir: &Path, version: &str) -> crate::util::Run {
    tollgate(&["kubeadm", "patches", "--kubernetes-version", version, "--out", dir.to_str().unwrap()])
}

/// Does what kubeadm does with `--patches`: applies each `<target>+json.json` to its manifest.
fn kubeadm_apply(patches: &Path, manifests_out: &Path) {
    std::fs::create_dir_all(manifests_out).unwrap();
    for pod in STATIC_PODS {
        let text = std::fs::read_to_string(controlplane_testdata(&format!("kubeadm-v1.32/{pod}.yaml"))).unwrap();
        let mut doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let patch_text = std::fs::read_to_string(patches.join(format!("{pod}+json.json"))).unwrap();
        let patch: json_patch::Patch = serde_json::from_str(&patch_text).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        std::fs::write(manifests_out.join(format!("{pod}.yaml")), serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    }
}

#[test]
fn readme_command_writes_five_patch_files_atomically_with_mode_0644() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("patches");
    let r = write_patches(&out, "v1.32.9");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "corednsdeployment+json.json",
            "etcd+json.json",
            "kube-apiserver+json.json",
            "kube-controller-manager+json.json",
            "kube-scheduler+json.json"
        ]
    );
    for n in &names {
        assert_eq!(mode(&out.join(n)), 0o644, "{n}");
    }
    assert!(r.stdout.contains(&format!("kubeadm upgrade apply v1.32.9 --patches {}", out.display())));
    assert!(r.stderr.contains("tollgate: warning: kube-proxy is not pinned by these patches"));
    assert!(r.stderr.contains("tollgate: warning: pause is not pinned by these patches"));
    let again = write_patches(&out, "v1.32.9");
    assert_eq!(again.stdout.matches("unchanged").count(), 5, "{}", again.stdout);
}

#[test]
fn patches_then_kubeadm_then_audit_passes_and_unpatched_fails() {
    let dir = tempfile::tempdir().unwrap();
    let patches = dir.path().join("patches");
    assert_eq!(write_patches(&patches, "v1.32.9").code, 0);

    let unpatched = controlplane_testdata("kubeadm-v1.32");
    let r = tollgate(&["kubeadm", "audit", "--manifests", unpatched.to_str().unwrap()]);
    assert_eq!(r.code, 1, "unpinned manifests are findings: {}", r.stdout);
    assert!(r.stdout.contains("audit failed: 4 finding(s)"), "{}", r.stdout);
    assert!(r.stdout.contains("FAIL  etcd.yaml"), "{}", r.stdout);

    let manifests = dir.path().join("manifests");
    kubeadm_apply(&patches, &manifests);
    let r = tollgate(&["kubeadm", "audit", "--manifests", manifests.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let j = r.json();
    assert_eq!(j["kubernetesVersion"], "v1.32.9");
    let findings = j["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 4);
    assert!(findings.iter().all(|f| f["kind"] == "pinned" && f["severity"] == "info"), "{findings:?}");
}

#[test]
fn audit_catches_a_pin_to_another_digest() {
    let dir = tempfile::tempdir().unwrap();
    let patches = dir.path().join("patches");
    // Patches for an older patch release: kubeadm would pin the wrong apiserver for v1.32.9.
    assert_eq!(write_patches(&patches, "v1.32.8").code, 0);
    let manifests = dir.path().join("manifests");
    kubeadm_apply(&patches, &manifests);
    let r =
        tollgate(&["kubeadm", "audit", "--manifests", manifests.to_str().unwrap(), "--kubernetes-version", "v1.32.9"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains(
            "but the catalog expects sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn audit_without_manifests_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = tollgate(&["kubeadm", "audit", "--manifests", dir.path().to_str().unwrap()]);
    assert_eq!(
        r.one_line_error(2),
        format!(
            "tollgate: no static-pod manifests (*.yaml, *.yml, *.json) in {}; pass --manifests DIR",
            dir.path().display()
        )
    );
}

#[test]
fn unpinned_version_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p");
    let r = write_patches(&out, "v1.28.4");
    assert!(r.one_line_error(2).contains("no digest is known for registry.k8s.io/etcd:3.5.9-0 of Kubernetes v1.28.4"));
    assert!(!out.exists());
    let r = tollgate(&[
        "kubeadm",
        "patches",
        "--kubernetes-version",
        "v1.28.4",
        "--out",
        out.to_str().unwrap(),
        "--allow-unpinned",
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["files"].as_array().unwrap().len(), 3);
    assert!(j["uncovered"].as_array().unwrap().iter().any(|u| u["component"] == "etcd"));
    // The sandbox image: the pinned reference when there is one, else "lock it first".
    let pause = |j: &serde_json::Value| {
        let u = j["uncovered"].as_array().unwrap().iter().find(|u| u["component"] == "pause").cloned();
        u.unwrap()["reason"].as_str().unwrap().to_owned()
    };
    let unpinned = tollgate(&[
        "kubeadm",
        "patches",
        "--kubernetes-version",
        "v1.37.0",
        "--out",
        out.to_str().unwrap(),
        "--allow-unpinned",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert!(pause(&unpinned.json()).ends_with("no digest is known for registry.k8s.io/pause:3.10.2: lock it first (tollgate images lock), then set containerd's sandbox image to it"), "{}", unpinned.stdout);
    let pinned = tollgate(&[
        "kubeadm",
        "patches",
        "--kubernetes-version",
        "v1.36.2",
        "--out",
        out.to_str().unwrap(),
        "--dry-run",
        "-o",
        "json",
    ]);
    assert!(pause(&pinned.json()).ends_with("set containerd's sandbox image to registry.k8s.io/pause:3.10.2@sha256:f548e0e8e3dc1896ca956272154dde3314e8cc4fde0a57577ee9fa1c63f5baf4"), "{}", pinned.stdout);
}

#[test]
fn dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p");
    let r = tollgate(&[
        "kubeadm",
        "patches",
        "--kubernetes-version",
        "v1.31.13",
        "--out",
        out.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("would write"));
    assert!(r.stdout.contains("\"op\": \"test\""));
    assert!(!out.exists());
}

#[test]
fn config_renders_v1beta4_with_upgrade_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kubeadm.yaml");
    let r = tollgate(&["kubeadm", "config", "--kubernetes-version", "v1.32.9", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mode(&out), 0o600);
    let text = std::fs::read_to_string(&out).unwrap();
    let kinds: Vec<String> = text
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str::<serde_json::Value>(d).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["InitConfiguration", "ClusterConfiguration", "JoinConfiguration", "UpgradeConfiguration"]);
    assert_eq!(text.matches("directory: /etc/kubernetes/tollgate-patches").count(), 4);
    assert!(r.stderr.contains("kubeadm upgrade apply --config upgrade.yaml"));
    let r = tollgate(&["kubeadm", "config", "--kubernetes-version", "v1.32.9", "--only", "upgrade"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("kind: UpgradeConfiguration") && !r.stdout.contains("kind: InitConfiguration"),
        "{}",
        r.stdout
    );
    let r = tollgate(&["kubeadm", "config", "--kubernetes-version", "v1.30.14", "--only", "upgrade"]);
    assert!(r.one_line_error(2).contains("has no UpgradeConfiguration"));
}

#[test]
fn config_v1beta3_json_has_upgrade_flags() {
    let r = tollgate(&["kubeadm", "config", "--kubernetes-version", "v1.29.15", "--patches-dir", "/p", "-o", "json"]);
    assert_eq!(r.code, 0);
    let j = r.json();
    assert_eq!(j["apiVersion"], "kubeadm.k8s.io/v1beta3");
    assert_eq!(j["upgradeCommands"][0], "kubeadm upgrade apply v1.29.15 --patches /p   # first control-plane node");
    assert!(
        j["yaml"]
            .as_str()
            .unwrap()
            .contains("imageTag: v1.11.1@sha256:1eeb4c7316bacb1d4c8ead65571cd92dd21e27359f0d4917f1a5822a73b75db1")
    );
}

/// `--nri-toleration` adds a strategic merge per static pod that kubeadm applies after the pin; merged
/// into manifests with and without annotations, each static pod carries the toleration and keeps the rest.
#[test]
fn the_nri_toleration_annotates_every_static_pod() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("patches");
    let r = tollgate(&[
        "kubeadm",
        "patches",
        "--kubernetes-version",
        "v1.36.2",
        "--out",
        out.to_str().unwrap(),
        "--nri-toleration",
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["nriTolerations"].as_array().unwrap().len(), 4);
    // The key containerd is told to honour, the key these patches set, and the key admission refuses elsewhere.
    assert_eq!(tollgate_node::install::TOLERATE_MISSING_NRI, tollgate_kube::manifests::TOLERATION);
    for pod in STATIC_PODS {
        let name = format!("{pod}5nri+strategic.yaml");
        // kubeadm applies a target's patches in file-name order: the pin first, hardening ("9harden") last.
        let order = [format!("{pod}+json.json"), name.clone(), format!("{pod}9harden+strategic.yaml")];
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, order, "{pod}");
        let patch: serde_json::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(out.join(&name)).unwrap()).unwrap();
        let text = std::fs::read_to_string(controlplane_testdata(&format!("kubeadm-v1.32/{pod}.yaml"))).unwrap();
        let mut manifest: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let before = manifest["metadata"]["annotations"].as_object().map_or(0, |a| a.len());
        // A strategic merge of metadata.annotations is a map merge.
        let annotations =
            manifest["metadata"].as_object_mut().unwrap().entry("annotations").or_insert(serde_json::json!({}));
        for (k, v) in patch["metadata"]["annotations"].as_object().unwrap() {
            annotations[k] = v.clone();
        }
        assert_eq!(manifest["metadata"]["annotations"]["nri.tollgate.dev/tolerate-missing-plugins"], "true", "{pod}");
        assert_eq!(
            manifest["metadata"]["annotations"].as_object().unwrap().len(),
            before + 1,
            "{pod}: the others stay"
        );
    }
}
