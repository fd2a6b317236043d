//! KEP-5793 manifest-based admission on the real kube-apiserver 1.36: what `tollgate manifests
//! --policies F --static-admission` writes, loaded from `AdmissionConfiguration`'s
//! `staticManifestsDir` (feature gate `ManifestBasedAdmissionControlConfig`), holds from the first
//! request and is not an API object that anyone could delete. Its own API server: the policy applies
//! to every pod this server admits.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use tollgate_testkit::kube::{ADMIN_TOKEN, KubeApi, Method};

/// The static policy refuses what is not pinned or not covered from the first request on, admits
/// what is, and cannot be deleted or shadowed through the API.
#[test]
fn the_static_admission_policy_holds_from_startup_and_cannot_be_deleted() {
    let work = tempfile::tempdir().unwrap();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/kubernetes/policies.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["manifests", "--policies", examples, "--static-admission"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> =
        serde_yaml_ng::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    let statics: Vec<&serde_json::Value> =
        docs.iter().filter(|d| d["apiVersion"] == "admissionregistration.k8s.io/v1").collect();
    assert_eq!(statics.len(), 2, "a policy and its binding: {text}");
    for d in &statics {
        let name = d["metadata"]["name"].as_str().unwrap();
        assert!(name.ends_with(".static.k8s.io"), "{name}");
    }
    let dir = work.path().join("static");
    std::fs::create_dir(&dir).unwrap();
    let manifests = statics.iter().map(|d| serde_yaml_ng::to_string(d).unwrap()).collect::<Vec<_>>().join("---\n");
    std::fs::write(dir.join("tollgate.yaml"), manifests).unwrap();
    let config = work.path().join("admission.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: ValidatingAdmissionPolicy\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: ValidatingAdmissionPolicyConfiguration\n    staticManifestsDir: {:?}\n",
            dir.display().to_string()
        ),
    )
    .unwrap();
    let extra = [
        "--feature-gates=ManifestBasedAdmissionControlConfig=true".to_owned(),
        format!("--admission-control-config-file={}", config.display()),
    ];
    let Some(api) = KubeApi::start_with("the_static_admission_policy_holds_from_startup_and_cannot_be_deleted", &extra)
    else {
        return;
    };
    let post = |path: &str, doc: &serde_json::Value| {
        api.request(Method::POST, path, Some(ADMIN_TOKEN), Some(&doc.to_string())).unwrap()
    };
    let (status, body) = post(
        "/api/v1/namespaces",
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    assert_eq!(status, 201, "{body}");
    // The ServiceAccount admission plugin wants the namespace's default account (no controller-manager runs here).
    let (status, body) = post(
        "/api/v1/namespaces/shop/serviceaccounts",
        &serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "shop"}}),
    );
    assert_eq!(status, 201, "{body}");
    let pod = |name: &str, image: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"automountServiceAccountToken": false, "containers": [{"name": "c", "image": image}]}})
    };
    let message = |body: &str| {
        serde_json::from_str::<serde_json::Value>(body).unwrap()["message"].as_str().unwrap_or_default().to_owned()
    };
    // In force from the first pod on: no wait for a policy to be created and type-checked.
    let (status, body) = post("/api/v1/namespaces/shop/pods", &pod("tag-only", "registry.k8s.io/pause:3.10.2"));
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("tollgate: every image must be pinned by digest"), "{body}");
    let pinned = "registry.k8s.io/pause:3.10.2@sha256:f548e0e8e3dc1896ca956272154dde3314e8cc4fde0a57577ee9fa1c63f5baf4";
    let (status, body) = post("/api/v1/namespaces/shop/pods", &pod("pinned", pinned));
    assert_eq!(status, 201, "{body}");

    // Not an API object: there is nothing to delete, and the name cannot be taken through the API.
    let path = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies";
    let name = statics.iter().find(|d| d["kind"] == "ValidatingAdmissionPolicy").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = api.request(Method::DELETE, &format!("{path}/{name}"), Some(ADMIN_TOKEN), None).unwrap();
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(path, statics.iter().find(|d| d["kind"] == "ValidatingAdmissionPolicy").unwrap());
    assert!((400..500).contains(&status) && status != 409, "an API object took the static name: {status} {body}");
    let (status, body) = post("/api/v1/namespaces/shop/pods", &pod("tag-only-again", "registry.k8s.io/pause:3.10.2"));
    assert_eq!(status, 403, "still in force: {body}");
}
