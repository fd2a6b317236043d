//! The real API server harness (etcd + kube-apiserver from ../shared/peers)
//! that the cluster layer's tests build on: it comes up, authenticates the
//! admin token, refuses anonymous requests, and enforces RBAC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use tollgate_testkit::kube::{ADMIN_TOKEN, KubeApi, Method};

#[test]
fn the_api_server_starts_authenticates_and_authorizes() {
    let Some(api) = KubeApi::start("the kube-apiserver harness test") else { return };
    let (status, body) = api.get("/api/v1/namespaces", Some(ADMIN_TOKEN)).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"kind\":\"NamespaceList\""), "{body}");
    let (status, _) = api.get("/api/v1/namespaces", Some("not-a-token")).unwrap();
    assert_eq!(status, 401, "an unknown token is refused");
    let (status, _) = api.get("/api/v1/namespaces", None).unwrap();
    assert!(status == 401 || status == 403, "anonymous: {status}");
    let (status, body) = api
        .request(
            tollgate_testkit::kube::Method::POST,
            "/api/v1/namespaces",
            Some(ADMIN_TOKEN),
            Some(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"tollgate-system"}}"#),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let kubeconfig = std::fs::read_to_string(&api.kubeconfig).unwrap();
    assert!(kubeconfig.contains(&api.url) && kubeconfig.contains(ADMIN_TOKEN));
    the_manifests_apply_and_the_api_server_enforces_the_crds_rules(&api);
}

/// POSTs one YAML document to the collection its apiVersion and kind name.
fn create(api: &KubeApi, doc: &serde_json::Value) -> (u16, String) {
    api.request(Method::POST, &collection(doc), Some(ADMIN_TOKEN), Some(&doc.to_string())).unwrap()
}

/// The same as a server-side dry run: validated and admitted, not stored.
fn dry_run(api: &KubeApi, doc: &serde_json::Value) -> (u16, String) {
    let path = format!("{}?dryRun=All", collection(doc));
    api.request(Method::POST, &path, Some(ADMIN_TOKEN), Some(&doc.to_string())).unwrap()
}

/// The collection a document is created in.
fn collection(doc: &serde_json::Value) -> String {
    let kind = doc["kind"].as_str().unwrap();
    match (doc["apiVersion"].as_str().unwrap(), kind) {
        ("v1", "Namespace") => "/api/v1/namespaces".to_owned(),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions".to_owned()
        }
        ("tollgate.dev/v1alpha1", "ClusterImagePolicy") => {
            "/apis/tollgate.dev/v1alpha1/clusterimagepolicies".to_owned()
        }
        ("tollgate.dev/v1alpha1", "TrustRoot") => "/apis/tollgate.dev/v1alpha1/trustroots".to_owned(),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
            "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies".to_owned()
        }
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
            "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings".to_owned()
        }
        ("v1", "Pod") => format!("/api/v1/namespaces/{}/pods", doc["metadata"]["namespace"].as_str().unwrap()),
        ("v1", "ConfigMap") => {
            format!("/api/v1/namespaces/{}/configmaps", doc["metadata"]["namespace"].as_str().unwrap())
        }
        ("v1", "ServiceAccount") => {
            format!("/api/v1/namespaces/{}/serviceaccounts", doc["metadata"]["namespace"].as_str().unwrap())
        }
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations".to_owned()
        }
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations".to_owned()
        }
        ("apps/v1", "Deployment") => {
            format!("/apis/apps/v1/namespaces/{}/deployments", doc["metadata"]["namespace"].as_str().unwrap())
        }
        ("tollgate.dev/v1alpha1", "ImagePolicy") => format!(
            "/apis/tollgate.dev/v1alpha1/namespaces/{}/imagepolicies",
            doc["metadata"]["namespace"].as_str().unwrap()
        ),
        ("v1", "Service") => {
            format!("/api/v1/namespaces/{}/services", doc["metadata"]["namespace"].as_str().unwrap())
        }
        ("apps/v1", "DaemonSet") => {
            format!("/apis/apps/v1/namespaces/{}/daemonsets", doc["metadata"]["namespace"].as_str().unwrap())
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => "/apis/rbac.authorization.k8s.io/v1/clusterroles".to_owned(),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_owned()
        }
        ("rbac.authorization.k8s.io/v1", "Role") => {
            format!(
                "/apis/rbac.authorization.k8s.io/v1/namespaces/{}/roles",
                doc["metadata"]["namespace"].as_str().unwrap()
            )
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => format!(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{}/rolebindings",
            doc["metadata"]["namespace"].as_str().unwrap()
        ),
        other => panic!("no path for {other:?}"),
    }
}

/// `tollgate manifests` is what `kubectl apply -f` accepts, and the API server enforces the CEL rules
/// with their messages, as `validate_cel` does client-side.
fn the_manifests_apply_and_the_api_server_enforces_the_crds_rules(api: &KubeApi) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate")).arg("manifests").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut created = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        let (status, body) = create(api, &doc);
        // The namespace may exist from the harness test above.
        assert!(status == 201 || (status == 409 && doc["kind"] == "Namespace"), "{status}: {body}");
        created.push(format!("{}/{}", doc["kind"].as_str().unwrap(), doc["metadata"]["name"].as_str().unwrap()));
    }
    assert_eq!(created.len(), 4, "{created:?}");
    // The compiled bundle's ConfigMap is what the API server stores, with its hash annotation.
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/kubernetes/compile.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["policy", "compile", examples, "--configmap"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cm: serde_json::Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    let (status, body) = create(api, &cm);
    assert_eq!(status, 201, "{body}");
    let stored: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        stored["metadata"]["annotations"]["tollgate.dev/bundle-hash"],
        cm["metadata"]["annotations"]["tollgate.dev/bundle-hash"]
    );
    assert!(stored["data"]["namespace.payments.yaml"].is_string(), "{body}");
    // A node policy imported as objects (`policy import --to crd`) is what the API server accepts.
    let node_policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/node/policy.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["policy", "import", "--to", "crd", node_policy])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut imported = 0;
    for doc in serde_yaml_ng::Deserializer::from_slice(&out.stdout) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        let (status, body) = create(api, &doc);
        assert_eq!(status, 201, "{body}");
        imported += 1;
    }
    assert!(imported >= 1);
    // The node agent: accepted by a server-side dry run, then created.
    let image = "registry.example.com/tollgate/tollgate@sha256:0000000000000000000000000000000000000000000000000000000000000002";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["manifests", "--image", image])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut agent = 0;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        if doc["metadata"]["name"] != "tollgate-node" {
            continue;
        }
        agent += 1;
        let (status, body) = dry_run(api, &doc);
        assert_eq!(status, 201, "dry run of {}: {body}", doc["kind"]);
        let (status, body) = create(api, &doc);
        assert_eq!(status, 201, "{}: {body}", doc["kind"]);
        if doc["kind"] == "DaemonSet" {
            let stored: serde_json::Value = serde_json::from_str(&body).unwrap();
            let spec = &stored["spec"]["template"]["spec"];
            assert_eq!(spec["automountServiceAccountToken"], false, "the nodes need no API credentials");
            assert_eq!(spec["containers"][0]["image"], image);
            assert_eq!(spec["initContainers"][0]["args"][1], "install");
            // The NRI plugin runs in these pods: they start while it is away, and without the CNI.
            let annotations = &stored["spec"]["template"]["metadata"]["annotations"];
            assert_eq!(annotations["nri.tollgate.dev/tolerate-missing-plugins"], "true", "{body}");
            assert_eq!(spec["hostNetwork"], true, "{body}");
        }
    }
    assert_eq!(agent, 3, "ServiceAccount, ConfigMap and DaemonSet:\n{text}");
    // The in-cluster webhook, with a certificate made without cert-manager: its Deployment, Service and
    // the rest are created; the configurations that call it through the Service pass a server-side dry
    // run (created, they would refuse every later pod here, where no kubelet runs the webhook).
    let certs = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["webhook-cert", "--out", certs.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["manifests", "--webhook-service", "--image", image, "--ca-file"])
        .arg(certs.path().join("ca.crt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut kinds = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        let kind = doc["kind"].as_str().unwrap().to_owned();
        if kind.ends_with("WebhookConfiguration") {
            assert_eq!(doc["webhooks"][0]["clientConfig"]["service"]["name"], "tollgate-webhook", "{doc}");
            let (status, body) = dry_run(api, &doc);
            assert_eq!(status, 201, "dry run of {kind}: {body}");
            kinds.push(kind);
        } else if doc["metadata"]["name"] == "tollgate-webhook" {
            let (status, body) = dry_run(api, &doc);
            assert_eq!(status, 201, "dry run of {kind}: {body}");
            let (status, body) = create(api, &doc);
            assert_eq!(status, 201, "{kind}: {body}");
            kinds.push(kind);
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "MutatingWebhookConfiguration",
            "Service",
            "ServiceAccount",
            "ValidatingWebhookConfiguration"
        ],
        "{text}"
    );
    let unpinned = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["manifests", "--image", "registry.example.com/tollgate/tollgate:v1"])
        .output()
        .unwrap();
    assert_eq!(unpinned.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unpinned.stderr).contains("is not pinned"));
    for crd in ["clusterimagepolicies", "imagepolicies", "trustroots"] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (_, body) = api
                .get(
                    &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}.tollgate.dev"),
                    Some(ADMIN_TOKEN),
                )
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let conditions = v["status"]["conditions"].as_array().cloned().unwrap_or_default();
            if conditions.iter().any(|c| c["type"] == "Established" && c["status"] == "True") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{crd} not established: {body}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let digest = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    let policy = |name: &str, spec: serde_json::Value| serde_json::json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "ClusterImagePolicy", "metadata": {"name": name}, "spec": spec});
    let good = policy(
        "team",
        serde_json::json!({"images": ["registry.example.com/team", "*.example.org"], "mode": "warn", "authorities": [
            {"name": "release", "keyless": {"issuer": "https://accounts.google.com", "subject": "ci@example.com", "trustRootRef": "public-good"}},
            {"digests": [digest]}
        ], "exemptions": [{"digest": digest, "reason": "the sandbox"}]}),
    );
    let (status, body) = create(api, &good);
    assert_eq!(status, 201, "{body}");
    let notation = policy(
        "notary",
        serde_json::json!({"images": ["registry.example.com/signed"], "authorities": [{"notation": {
            "trustPolicy": r#"{"version":"1.0","trustPolicies":[]}"#,
            "trustStores": [{"name": "ca:acme", "certificates": ["-----BEGIN CERTIFICATE-----"]}],
            "checkRevocation": {"timeoutSeconds": 3}}}]}),
    );
    let (status, body) = create(api, &notation);
    assert_eq!(status, 201, "a notation authority is accepted: {body}");
    // Each bad object is refused with its rule's message, exactly as validate_cel says it.
    for (name, spec, message) in [
        (
            "two-kinds",
            serde_json::json!({"images": ["r.example/a"], "authorities": [{"digests": [digest], "static": {"action": "pass"}}]}),
            "each authority has exactly one of key, keyless, sigstoreBundle, notation, digests or static",
        ),
        (
            "bad-notation-store",
            serde_json::json!({"images": ["r.example/a"], "authorities": [{"notation": {"trustPolicy": "{}",
                "trustStores": [{"name": "x509/ca/acme", "certificates": ["PEM"]}]}}]}),
            "a trust store is ca:NAME, signingAuthority:NAME or tsa:NAME",
        ),
        (
            "bad-scope",
            serde_json::json!({"images": ["https://r.example/a"], "authorities": [{"static": {"action": "pass"}}]}),
            "each image scope is HOST[:PORT][/PATH] or *.DOMAIN",
        ),
        (
            "bad-mode",
            serde_json::json!({"images": ["r.example/a"], "mode": "audit", "authorities": [{"static": {"action": "pass"}}]}),
            "mode is enforce or warn",
        ),
        (
            "bad-digest",
            serde_json::json!({"images": ["r.example/a"], "authorities": [{"digests": ["sha256:abc"]}]}),
            "digests are sha256:<64 hex>",
        ),
        (
            "bad-override",
            serde_json::json!({"images": ["r.example/a"], "authorities": [{"static": {"action": "pass"}}],
                "enforcementOverrides": [{"namespace": "kube-system", "name": "*", "reason": "everything"}]}),
            "name is a pod name, or a prefix of one followed by * (etcd-*)",
        ),
    ] {
        let client_side = tollgate_kube::crd::ClusterImagePolicySpec::validate_cel(&spec, None);
        assert!(format!("{client_side:?}").contains(message), "{name}: client-side: {client_side:?}");
        let (status, body) = create(api, &policy(name, spec));
        assert_eq!(status, 422, "{name}: {body}");
        let said = serde_json::from_str::<serde_json::Value>(&body).unwrap()["message"].as_str().unwrap().to_owned();
        assert!(said.contains(message), "{name}: the API server's error names the rule: {said}");
    }
    // A namespaced ImagePolicy lives in its namespace.
    let (status, _) = api
        .request(
            Method::POST,
            "/api/v1/namespaces",
            Some(ADMIN_TOKEN),
            Some(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}}"#),
        )
        .unwrap();
    assert_eq!(status, 201);
    let ns_policy = serde_json::json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "ImagePolicy", "metadata": {"name": "stricter", "namespace": "shop"},
        "spec": {"images": ["registry.example.com"], "authorities": [{"key": {"secretRef": {"name": "shop-key", "key": "cosign.pub"}}}]}});
    let (status, body) = create(api, &ns_policy);
    assert_eq!(status, 201, "{body}");
    let mut relaxing = ns_policy.clone();
    relaxing["metadata"]["name"] = serde_json::json!("relaxing");
    relaxing["spec"]["exemptions"] = serde_json::json!([{"digest": digest, "reason": "mine"}]);
    let (status, body) = create(api, &relaxing);
    assert_eq!(status, 422, "a namespace cannot exempt: {body}");
    assert!(body.contains("an ImagePolicy cannot exempt"), "{body}");
    let mut overriding = ns_policy.clone();
    overriding["metadata"]["name"] = serde_json::json!("overriding");
    overriding["spec"]["enforcementOverrides"] =
        serde_json::json!([{"namespace": "shop", "name": "p", "reason": "mine"}]);
    let (status, body) = create(api, &overriding);
    assert_eq!(status, 422, "a namespace cannot switch node enforcement off: {body}");
    assert!(body.contains("an ImagePolicy cannot allow enforcement overrides"), "{body}");
    let (status, body) = create(
        api,
        &serde_json::json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "TrustRoot", "metadata": {"name": "none"}, "spec": {}}),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("a TrustRoot has exactly one of sigstore or keys"), "{body}");
    the_generated_admission_policy_refuses_unpinned_and_uncovered_images(api);
}

/// `tollgate manifests --policies` generates a ValidatingAdmissionPolicy that the real API server
/// type-checks and enforces without any webhook: pods whose images are not pinned by digest, or not
/// under a ClusterImagePolicy's scopes, are refused with tollgate's message.
fn the_generated_admission_policy_refuses_unpinned_and_uncovered_images(api: &KubeApi) {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/kubernetes/policies.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["manifests", "--policies", examples])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> =
        serde_yaml_ng::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    for doc in docs.iter().filter(|d| d["apiVersion"] == "admissionregistration.k8s.io/v1") {
        let (status, body) = create(api, doc);
        assert_eq!(status, 201, "{body}");
    }
    // The ServiceAccount admission plugin wants the namespace's default account (no controller-manager runs here).
    let sa = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "shop"}});
    let (status, body) = create(api, &sa);
    assert!(status == 201 || status == 409, "{body}");
    let pod = |name: &str, image: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"automountServiceAccountToken": false, "containers": [{"name": "c", "image": image}]}})
    };
    let pinned = "registry.k8s.io/pause:3.10.2@sha256:f548e0e8e3dc1896ca956272154dde3314e8cc4fde0a57577ee9fa1c63f5baf4";
    // The policy takes effect once the API server has loaded and type-checked it: bounded wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut attempt = 0;
    let refused = loop {
        attempt += 1;
        let (status, body) = create(api, &pod(&format!("tag-only-{attempt}"), "registry.k8s.io/pause:3.10.2"));
        if status != 201 {
            break (status, body);
        }
        assert!(std::time::Instant::now() < deadline, "the admission policy never took effect");
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    let message = |body: &str| {
        serde_json::from_str::<serde_json::Value>(body).unwrap()["message"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(refused.0, 403, "{}", refused.1);
    assert!(
        message(&refused.1).contains(
            "tollgate: every image must be pinned by digest (NAME@sha256:...); not pinned: registry.k8s.io/pause:3.10.2"
        ),
        "{}",
        refused.1
    );
    let (status, body) =
        create(api, &pod("elsewhere", &format!("quay.io/someone/tool@{}", &pinned[pinned.len() - 71..])));
    assert_eq!(status, 403, "{body}");
    assert!(
        message(&body).contains(
            "images must come from a scope a ClusterImagePolicy covers (registry.example.com/team, registry.k8s.io)"
        ),
        "{body}"
    );
    let (status, body) =
        create(api, &pod("lookalike", &format!("registry.example.com/teammate/app@{}", &pinned[pinned.len() - 71..])));
    assert_eq!(status, 403, "a scope is a path prefix, not a string prefix: {body}");
    let (status, body) = create(api, &pod("pinned", pinned));
    assert_eq!(status, 201, "a pinned image under a covered scope is admitted: {body}");
    // The NRI toleration, on a pod no kubelet created, is refused, and so is NRI's own annotation.
    // (NRI's container-scoped forms, KEY/container.NAME, are not valid annotation keys for the API server.)
    for annotation in ["nri.tollgate.dev/tolerate-missing-plugins", "required-plugins.noderesource.dev"] {
        let mut tolerating = pod("tolerating", pinned);
        tolerating["metadata"]["annotations"] = serde_json::json!({annotation: "true"});
        let (status, body) = create(api, &tolerating);
        assert_eq!(status, 403, "{annotation}: {body}");
        assert!(
            message(&body).contains(
                "tollgate: only static pods and the pods a ClusterImagePolicy names under \
                                     enforcementOverrides may carry nri.tollgate.dev/tolerate-missing-plugins"
            ),
            "{body}"
        );
    }
    // Except on the pods the policies name (kube-system/kube-proxy-*), and on tollgate's node agent.
    for (ns, name, admitted) in [
        ("kube-system", "kube-proxy-7xq2d", true),
        ("kube-system", "kube-proxyish", false),
        ("tollgate-system", "tollgate-node-9fz4k", true),
        ("shop", "kube-proxy-7xq2d", false),
    ] {
        let sa = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
        let (status, body) = create(api, &sa);
        assert!(status == 201 || status == 409, "{body}");
        let mut named = pod(name, pinned);
        named["metadata"]["namespace"] = serde_json::json!(ns);
        named["metadata"]["annotations"] = serde_json::json!({"nri.tollgate.dev/tolerate-missing-plugins": "true"});
        let (status, body) = create(api, &named);
        assert_eq!(status == 201, admitted, "{ns}/{name}: {body}");
    }
    the_webhook_decides_pods_and_pins_tags(api);
}

fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body).unwrap()["message"].as_str().unwrap_or_default().to_owned()
}

/// `tollgate webhook --kubeconfig`, as the identity that may only `get` the bundle's ConfigMap
/// (`tollgate-webhook`, READER_TOKEN), with a node config for `registry` in `dir` (reloadSeconds 1,
/// one-second verdicts) and a serving certificate.
struct ReaderWebhook {
    dir: std::path::PathBuf,
    config: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
    ca: String,
}

impl ReaderWebhook {
    fn new(api: &KubeApi, dir: &std::path::Path, registry: &str) -> ReaderWebhook {
        let ca = tollgate_testkit::serving_cert(dir);
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "socket: {}\ninsecureRegistries: [\"{registry}\"]\nauditLog:\n  path: {}\nbreakGlassFile: {}\nreloadSeconds: 1\ncache: {{allowTtlSeconds: 1, denyTtlSeconds: 1}}\n",
                dir.join("run/tollgate.sock").display(),
                dir.join("audit.log").display(),
                dir.join("break-glass").display(),
            ),
        )
        .unwrap();
        let kubeconfig = api.kubeconfig_for("tollgate-webhook", tollgate_testkit::kube::READER_TOKEN);
        ReaderWebhook { dir: dir.to_owned(), config, kubeconfig, ca }
    }

    /// Starts it on `port` reading ConfigMap `configmap`, its log in `log`.
    fn spawn(&self, configmap: &str, log: &std::path::Path, port: u16) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["webhook", "--config", self.config.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--configmap", configmap])
            .arg("--tls-cert")
            .arg(self.dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(self.dir.join("tls.key"))
            .env("TOLLGATE_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }

    /// Starts it on a free port reading the bundle's ConfigMap and waits (at most 10 s) until it listens.
    fn listening(&self, log: &std::path::Path) -> (Option<std::process::Child>, u16) {
        let port = tollgate_testkit::free_port();
        let child = Some(self.spawn("tollgate-system/tollgate-policy", log, port));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let said = std::fs::read_to_string(log).unwrap_or_default();
            assert!(std::time::Instant::now() < deadline, "tollgate webhook did not listen:\n{said}");
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        (child, port)
    }

    /// The response to the review of a pod in `namespace` whose only image is `image`, at `endpoint`.
    fn answer(
        &self,
        rt: &tokio::runtime::Runtime,
        port: u16,
        endpoint: &str,
        namespace: &str,
        image: &str,
    ) -> serde_json::Value {
        let review = serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "someone"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace},
                "spec": {"containers": [{"name": "c", "image": image}]}}}});
        rt.block_on(async {
            let client = tollgate_testkit::https_client(&self.ca, std::time::Duration::from_secs(10)).unwrap();
            let resp = client
                .post(format!("https://127.0.0.1:{port}/{endpoint}"))
                .header("Content-Type", "application/json")
                .body(review.to_string())
                .send()
                .await
                .unwrap();
            serde_json::from_str::<serde_json::Value>(&resp.text().await.unwrap()).unwrap()["response"].clone()
        })
    }
}

/// `tollgate webhook`, called by the real API server over TLS on 127.0.0.1 through the configurations
/// `tollgate manifests --webhook-url` writes: a signed image is admitted and its tag pinned to the
/// verified digest (pods and Deployments), an unsigned one and one signed by an untrusted key are
/// denied with the reason in the API error, a namespace's policy tightens only that namespace, a
/// warn-mode namespace admits with the warning, the NRI toleration is refused; with the webhook
/// stopped `failurePolicy: Fail` blocks what its matchConditions send (not a label edit), and with
/// its configurations removed the generated ValidatingAdmissionPolicy still refuses tag-only images.
fn the_webhook_decides_pods_and_pins_tags(api: &KubeApi) {
    use tollgate_oci::Reference;
    use tollgate_testkit::sign::{Attached, TestKey, attach};
    use tollgate_testkit::{Registry, image};
    // The generated admission policy would refuse this test's registry (no ClusterImagePolicy covers it).
    let binding = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/images.tollgate.dev";
    let (status, body) = api.request(Method::DELETE, binding, Some(ADMIN_TOKEN), None).unwrap();
    assert_eq!(status, 200, "{body}");

    let reg = Registry::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reg.client();
    let repo = |name: &str| Reference::parse_normalized(&format!("{}/team/{name}", reg.addr)).unwrap();
    let signed = rt.block_on(image::push_index(&client, &repo("app"), "v1", b"app")).digest;
    let key = TestKey::generate();
    rt.block_on(attach(&client, &repo("app"), &signed, &[Attached::cosign(&key, &repo("app").repository(), &signed)]));
    rt.block_on(image::push_index(&client, &repo("unsigned"), "v1", b"unsigned"));

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("trusted.pub"), key.public_pem()).unwrap();
    std::fs::write(
        d.join("policy.yaml"),
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ntrust:\n  trusted: {{publicKeys: [{{path: trusted.pub}}]}}\n\
             enforcementOverrides: [{{namespace: apps, name: agent-*, reason: starts before the NRI plugin}}]\n\
             default: [{{type: reject}}]\ntransports:\n  docker:\n    \"{}/team\": [{{type: sigstoreSigned, trust: trusted, \
             signedIdentity: {{type: matchRepository}}}}]\n",
            reg.addr
        ),
    )
    .unwrap();
    let namespaces = d.join("namespaces");
    std::fs::create_dir(&namespaces).unwrap();
    std::fs::write(namespaces.join("other.pub"), TestKey::generate().public_pem()).unwrap();
    let other_key = "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nmode: MODE\ntrust:\n  other: {publicKeys: [{path: other.pub}]}\ndefault: [{type: sigstoreSigned, trust: other, signedIdentity: {type: matchRepository}}]\n";
    std::fs::write(namespaces.join("strict.yaml"), other_key.replace("MODE", "enforce")).unwrap();
    std::fs::write(namespaces.join("lenient.yaml"), other_key.replace("MODE", "warn")).unwrap();
    let ca = tollgate_testkit::serving_cert(d);
    std::fs::create_dir(d.join("run")).unwrap();
    let config = d.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "policy: {}\nnamespacePolicies: {}\nsocket: {}\ninsecureRegistries: [\"{}\"]\nauditLog:\n  path: {}\nbreakGlassFile: {}\nreloadSeconds: 3600\n",
            d.join("policy.yaml").display(),
            namespaces.display(),
            d.join("run/tollgate.sock").display(),
            reg.addr,
            d.join("audit.log").display(),
            d.join("break-glass").display(),
        ),
    )
    .unwrap();
    let port = tollgate_testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = d.join("webhook.log");
    let mut webhook = Some(
        std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["webhook", "--config", config.to_str().unwrap(), "--listen", &listen, "--deadline-seconds", "5"])
            .arg("--tls-cert")
            .arg(d.join("tls.crt"))
            .arg("--tls-key")
            .arg(d.join("tls.key"))
            .env("TOLLGATE_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(std::time::Instant::now() < deadline, "tollgate webhook did not listen:\n{}", logs());
        std::thread::sleep(std::time::Duration::from_millis(25));
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["manifests", "--webhook-url", &format!("https://{listen}"), "--ca-file"])
        .arg(d.join("ca.crt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("url: https://{listen}/validate"))
            && text.contains(&format!("url: https://{listen}/mutate")),
        "{text}"
    );
    assert!(!ca.is_empty() && text.contains("caBundle: "), "{text}");
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        if doc["kind"].as_str().is_some_and(|k| k.ends_with("WebhookConfiguration")) {
            let (status, body) = create(api, &doc);
            assert_eq!(status, 201, "{body}");
        }
    }
    for ns in ["apps", "strict", "lenient"] {
        let (status, body) =
            create(api, &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        assert_eq!(status, 201, "{body}");
        let sa = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
        let (status, body) = create(api, &sa);
        assert_eq!(status, 201, "{body}");
    }
    let pod = |ns: &str, name: &str, image: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"automountServiceAccountToken": false, "containers": [{"name": "c", "image": image}]}})
    };
    let app = format!("{}/team/app:v1", reg.addr);
    let unsigned = format!("{}/team/unsigned:v1", reg.addr);
    // The configurations take effect once the API server has loaded them: bounded wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut attempt = 0;
    let refused = loop {
        attempt += 1;
        let (status, body) = create(api, &pod("apps", &format!("unsigned-{attempt}"), &unsigned));
        // Until then, the deleted admission policy binding may still answer.
        if status != 201 && message(&body).contains("admission webhook") {
            break (status, body);
        }
        assert!(std::time::Instant::now() < deadline, "the webhook never took effect: {body}\n{}", logs());
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert_eq!(refused.0, 403, "{}\n{}", refused.1, logs());
    let said = message(&refused.1);
    assert!(said.contains(&format!("admission webhook \"images.tollgate.dev\" denied the request: tollgate: image {unsigned} (container c): denied by transports.docker")), "{said}");
    assert!(said.contains("a signature was required, but no signature exists"), "{said}");

    // Signed, but by a key the policy does not trust.
    let stranger = TestKey::generate();
    let forged = rt.block_on(image::push_index(&client, &repo("forged"), "v1", b"forged")).digest;
    rt.block_on(attach(
        &client,
        &repo("forged"),
        &forged,
        &[Attached::cosign(&stranger, &repo("forged").repository(), &forged)],
    ));
    let (status, body) = create(api, &pod("apps", "forged", &format!("{}/team/forged:v1", reg.addr)));
    assert_eq!(status, 403, "{body}");
    let said = message(&body);
    assert!(said.contains("tollgate: image") && said.contains("team/forged:v1"), "{said}");
    assert!(said.contains("none of the 1 signature(s) is acceptable"), "{said}");

    let (status, body) = create(api, &pod("apps", "signed", &app));
    assert_eq!(status, 201, "{body}\n{}", logs());
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        created["spec"]["containers"][0]["image"],
        format!("{app}@{signed}"),
        "the tag is pinned to the verified digest"
    );
    let deployment = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": app}]}}}});
    let (status, body) = create(api, &deployment);
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["spec"]["template"]["spec"]["containers"][0]["image"], format!("{app}@{signed}"));

    // strict wants another key too: refused there, and only there.
    let (status, body) = create(api, &pod("strict", "signed", &app));
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("the policy of namespace strict: denied by default"), "{body}");
    // lenient wants it too, in warn mode: admitted, and the client is told.
    let (status, body, warnings) = api
        .request_with_warnings(
            Method::POST,
            "/api/v1/namespaces/lenient/pods",
            Some(ADMIN_TOKEN),
            Some(&pod("lenient", "signed", &app).to_string()),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    assert!(warnings.iter().any(|w| w.contains("tollgate: ") && w.contains("would be denied")), "{warnings:?}");
    // The NRI toleration on a pod no kubelet created, unless the cluster policy names it.
    let mut tolerating = pod("apps", "tolerating", &app);
    tolerating["metadata"]["annotations"] = serde_json::json!({"nri.tollgate.dev/tolerate-missing-plugins": "true"});
    let (status, body) = create(api, &tolerating);
    assert_eq!(status, 403, "{body}");
    assert!(
        message(&body).contains(
            "tollgate: Pod apps/tolerating carries nri.tollgate.dev/tolerate-missing-plugins: it would let containers \
             start while node enforcement is away"
        ),
        "{body}"
    );
    let mut named = tolerating.clone();
    named["metadata"]["name"] = serde_json::json!("agent-1");
    let (status, body) = create(api, &named);
    assert_eq!(status, 201, "the policy names apps/agent-*: {body}\n{}", logs());
    assert!(logs().contains("enforcement override allowed by the cluster policy"), "{}", logs());
    // A generated name is what is checked: the Deployment's pods are named agent-….
    let mut generated = tolerating;
    generated["metadata"] = serde_json::json!({"generateName": "agent-", "namespace": "apps",
        "annotations": {"nri.tollgate.dev/tolerate-missing-plugins": "true"}});
    let (status, body) = create(api, &generated);
    assert_eq!(status, 201, "{body}");
    let mut generated_elsewhere = generated;
    generated_elsewhere["metadata"]["generateName"] = serde_json::json!("web-");
    let (status, body) = create(api, &generated_elsewhere);
    assert_eq!(status, 403, "{body}");
    let audit = std::fs::read_to_string(d.join("audit.log")).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("\"namespace\":\"strict\"") && l.contains("\"decision\":\"denied\"")),
        "{audit}"
    );

    // The webhook gone: failurePolicy Fail refuses.
    tollgate_testkit::stop_child(&mut webhook, std::time::Duration::from_secs(5));
    let (status, body) = create(api, &pod("apps", "while-down", &app));
    assert_eq!(status, 500, "{body}");
    assert!(message(&body).contains("failed calling webhook \"images.tollgate.dev\""), "{body}");
    // Its matchConditions leave out updates that change neither spec nor annotations: a label edit
    // goes through while it is down; an annotation edit still needs it.
    let path = "/api/v1/namespaces/apps/pods/signed";
    let put = |edit: &dyn Fn(&mut serde_json::Value)| {
        let (status, body) = api.get(path, Some(ADMIN_TOKEN)).unwrap();
        assert_eq!(status, 200, "{body}");
        let mut current: serde_json::Value = serde_json::from_str(&body).unwrap();
        edit(&mut current);
        api.request(Method::PUT, path, Some(ADMIN_TOKEN), Some(&current.to_string())).unwrap()
    };
    let (status, body) = put(&|p| p["metadata"]["labels"] = serde_json::json!({"tier": "web"}));
    assert_eq!(status, 200, "a label edit needed the webhook: {body}");
    let (status, body) = put(&|p| p["metadata"]["annotations"] = serde_json::json!({"team": "shop"}));
    assert_eq!(status, 500, "an annotation edit went around the webhook: {body}");
    assert!(message(&body).contains("failed calling webhook"), "{body}");

    // The webhook's configurations removed (the documented way out of a broken webhook): the generated
    // ValidatingAdmissionPolicy still refuses tag-only images, without any webhook.
    for kind in ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"] {
        let path = format!("/apis/admissionregistration.k8s.io/v1/{kind}/tollgate");
        let (status, body) = api.request(Method::DELETE, &path, Some(ADMIN_TOKEN), None).unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/kubernetes/policies.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["manifests", "--policies", examples])
        .output()
        .unwrap();
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&String::from_utf8(out.stdout).unwrap())
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let binding = docs.iter().find(|d| d["kind"] == "ValidatingAdmissionPolicyBinding").unwrap();
    let (status, body) = create(api, binding);
    assert_eq!(status, 201, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut attempt = 0;
    let (status, body) = loop {
        attempt += 1;
        let (status, body) =
            create(api, &pod("shop", &format!("no-webhook-{attempt}"), "registry.k8s.io/pause:3.10.2"));
        if status != 201 {
            break (status, body);
        }
        assert!(std::time::Instant::now() < deadline, "the admission policy binding never took effect");
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("tollgate: every image must be pinned by digest"), "{body}");
    the_webhook_reads_its_bundle_from_the_configmap(api);
}

/// `tollgate webhook --kubeconfig`: the bundle comes from ConfigMap `tollgate-system/tollgate-policy`
/// through the API server, read by an identity that may only `get` that one ConfigMap, and is
/// followed: a new version decides without a restart. A ConfigMap it may not read stops it at start,
/// with the API server's reason.
fn the_webhook_reads_its_bundle_from_the_configmap(api: &KubeApi) {
    use tollgate_testkit::{Registry, image};
    let (status, body) = create(
        api,
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tollgate-system"}}),
    );
    assert!(status == 201 || status == 409, "{body}");
    let post = |path: &str, doc: serde_json::Value| {
        let (status, body) = api.request(Method::POST, path, Some(ADMIN_TOKEN), Some(&doc.to_string())).unwrap();
        assert_eq!(status, 201, "{body}");
        body
    };
    let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/tollgate-system";
    post(
        &format!("{rbac}/roles"),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "tollgate-bundle-reader", "namespace": "tollgate-system"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["tollgate-policy"], "verbs": ["get"]}]}),
    );
    post(
        &format!("{rbac}/rolebindings"),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "tollgate-bundle-reader", "namespace": "tollgate-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tollgate-bundle-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "tollgate-webhook"}]}),
    );

    let reg = Registry::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let repo = tollgate_oci::Reference::parse_normalized(&format!("{}/team/app", reg.addr)).unwrap();
    rt.block_on(image::push_index(&reg.client(), &repo, "v1", b"app"));
    let policy = |team: &str| {
        format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{}/team":[{{"type":"{team}"}}]}}}}}}"#,
            reg.addr
        )
    };
    let configmap = |team: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "tollgate-policy", "namespace": "tollgate-system"},
            "data": {"policy.yaml": policy(team)}})
    };
    let cm_path = "/api/v1/namespaces/tollgate-system/configmaps";
    // The bundle test earlier stored one; this one is written here.
    let (status, body) =
        api.request(Method::DELETE, &format!("{cm_path}/tollgate-policy"), Some(ADMIN_TOKEN), None).unwrap();
    assert!(status == 200 || status == 404, "{body}");
    post(cm_path, configmap("insecureAcceptAnything"));

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hook = ReaderWebhook::new(api, d, &reg.addr);
    // Another ConfigMap: forbidden to this identity, so the webhook does not start.
    let refused_log = d.join("refused.log");
    let mut refused = hook.spawn("tollgate-system/other", &refused_log, tollgate_testkit::free_port());
    let status = refused.wait().unwrap();
    let said = std::fs::read_to_string(&refused_log).unwrap();
    assert!(
        !status.success() && said.contains("ConfigMap tollgate-system/other") && said.contains("forbidden"),
        "{said}"
    );

    let log = d.join("webhook.log");
    let (mut webhook, port) = hook.listening(&log);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    // One review of a pod whose only image is `image`, at `endpoint`: the response.
    let answer = |endpoint: &str, image: &str| hook.answer(&rt, port, endpoint, "apps", image);
    let tagged = format!("{}/team/app:v1", reg.addr);
    let allowed = || answer("validate", &tagged)["allowed"].as_bool().unwrap();
    assert!(allowed(), "the bundle from the ConfigMap allows team/app:\n{}", logs());
    // /mutate pins the tag once: the pinned image it returns is left as it is (idempotent).
    let mutate = |image: &str| answer("mutate", image);
    let first = mutate(&tagged);
    assert_eq!(first["allowed"], true, "{first}");
    use base64::Engine as _;
    let patch: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD.decode(first["patch"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let pinned = patch[0]["value"].as_str().unwrap().to_owned();
    assert!(pinned.starts_with(&format!("{tagged}@sha256:")), "{patch}");
    let again = mutate(&pinned);
    assert_eq!(again["allowed"], true, "{again}");
    assert!(again.get("patch").is_none_or(serde_json::Value::is_null), "a pinned image was patched again: {again}");
    // A new version of the ConfigMap decides without a restart (bounded wait: reloadSeconds is 1).
    let (status, body) = api.get(&format!("{cm_path}/tollgate-policy"), Some(ADMIN_TOKEN)).unwrap();
    assert_eq!(status, 200, "{body}");
    let mut next = configmap("reject");
    next["metadata"]["resourceVersion"] =
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["metadata"]["resourceVersion"].clone();
    let (status, body) = api
        .request(Method::PUT, &format!("{cm_path}/tollgate-policy"), Some(ADMIN_TOKEN), Some(&next.to_string()))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while allowed() {
        assert!(std::time::Instant::now() < deadline, "the new bundle never took effect:\n{}", logs());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(logs().contains("policy bundle updated from the API server"), "{}", logs());
    tollgate_testkit::stop_child(&mut webhook, std::time::Duration::from_secs(5));
    the_controller_compiles_the_objects_into_the_bundle(api);
}

/// `tollgate controller`, run with its own ServiceAccount's token through the RBAC `tollgate
/// manifests` writes: it compiles the objects with the Secret they name into the bundle ConfigMap
/// (hash annotation, each object `Ready` with that hash), and what it publishes decides as the
/// equivalent file policy does (`tollgate verify`) and, through the daemon's decision function,
/// per namespace: an ImagePolicy tightens its namespace and cannot loosen it. An edit recompiles; a
/// broken edit or a deleted Secret is `Invalid` and the ConfigMap keeps the last good bundle; a
/// second replica stands by until the leader leaves; the token is refused beyond what it needs.
fn the_controller_compiles_the_objects_into_the_bundle(api: &KubeApi) {
    use tollgate_oci::Reference;
    use tollgate_testkit::sign::{Attached, TestKey, attach};
    use tollgate_testkit::{Registry, image};
    let v1 = "/apis/tollgate.dev/v1alpha1";
    let send = |method: Method, path: &str, doc: Option<&serde_json::Value>| {
        api.request(method, path, Some(ADMIN_TOKEN), doc.map(|d| d.to_string()).as_deref()).unwrap()
    };
    // The earlier tests' objects go: the controller compiles all there is in the cluster.
    for kind in ["clusterimagepolicies", "trustroots"] {
        let (status, body) = send(Method::DELETE, &format!("{v1}/{kind}"), None);
        assert_eq!(status, 200, "{body}");
    }
    let (_, body) = send(Method::GET, &format!("{v1}/imagepolicies"), None);
    for item in serde_json::from_str::<serde_json::Value>(&body).unwrap()["items"].as_array().unwrap() {
        let (ns, name) = (item["metadata"]["namespace"].as_str().unwrap(), item["metadata"]["name"].as_str().unwrap());
        let (status, body) = send(Method::DELETE, &format!("{v1}/namespaces/{ns}/imagepolicies/{name}"), None);
        assert_eq!(status, 200, "{body}");
    }

    // Its ServiceAccount and RBAC, as `tollgate manifests --image` writes them.
    let image_ref = "registry.example.com/tollgate/tollgate@sha256:0000000000000000000000000000000000000000000000000000000000000002";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["manifests", "--image", image_ref])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut kinds = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_slice(&out.stdout) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        if !doc["metadata"]["name"].as_str().unwrap().starts_with("tollgate-controller") {
            continue;
        }
        let (status, body) = dry_run(api, &doc);
        assert_eq!(status, 201, "dry run of {}: {body}", doc["kind"]);
        let (status, body) = create(api, &doc);
        assert_eq!(status, 201, "{}: {body}", doc["kind"]);
        kinds.push(doc["kind"].as_str().unwrap().to_owned());
    }
    kinds.sort();
    assert_eq!(
        kinds,
        ["ClusterRole", "ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "ServiceAccount"]
    );
    let request = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}});
    let (status, body) = send(
        Method::POST,
        "/api/v1/namespaces/tollgate-system/serviceaccounts/tollgate-controller/token",
        Some(&request),
    );
    assert_eq!(status, 201, "{body}");
    let token =
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"]["token"].as_str().unwrap().to_owned();
    let kubeconfig = api.kubeconfig_for("tollgate-controller", &token);
    // Beyond what it needs, its token is refused.
    for (method, path) in [
        (Method::GET, "/api/v1/namespaces/kube-system/secrets"),
        (Method::GET, "/api/v1/namespaces/strict/secrets/anything"),
        (Method::GET, "/api/v1/pods"),
        (Method::DELETE, "/api/v1/namespaces/tollgate-system/configmaps/tollgate-policy"),
        (Method::DELETE, "/apis/tollgate.dev/v1alpha1/clusterimagepolicies/x"),
    ] {
        let (status, body) = api.request(method.clone(), path, Some(&token), None).unwrap();
        assert_eq!(status, 403, "{method} {path}: {body}");
    }
    let put_other = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "tollgate-system"}});
    let (status, body) = api
        .request(
            Method::PUT,
            "/api/v1/namespaces/tollgate-system/configmaps/other",
            Some(&token),
            Some(&put_other.to_string()),
        )
        .unwrap();
    assert_eq!(status, 403, "it updates only the bundle's ConfigMap: {body}");

    // A registry with a signed and an unsigned image; the key in a Secret.
    let reg = Registry::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reg.client();
    let repo = |name: &str| Reference::parse_normalized(&format!("{}/team/{name}", reg.addr)).unwrap();
    let signed = rt.block_on(image::push_index(&client, &repo("app"), "v1", b"ctl-app")).digest;
    let key = TestKey::generate();
    rt.block_on(attach(&client, &repo("app"), &signed, &[Attached::cosign(&key, &repo("app").repository(), &signed)]));
    let unsigned_digest = rt.block_on(image::push_index(&client, &repo("unsigned"), "v1", b"ctl-unsigned")).digest;
    use base64::Engine as _;
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "team-cosign", "namespace": "tollgate-system"},
        "data": {"cosign.pub": base64::engine::general_purpose::STANDARD.encode(key.public_pem())}});
    let secrets = "/api/v1/namespaces/tollgate-system/secrets";
    let (status, body) = send(Method::POST, secrets, Some(&secret));
    assert_eq!(status, 201, "{body}");
    let team = |key_name: &str| {
        serde_json::json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "ClusterImagePolicy", "metadata": {"name": "team"},
            "spec": {"images": [format!("{}/team", reg.addr)], "authorities": [{"key": {"secretRef": {"name": "team-cosign", "key": key_name}}}]}})
    };
    let (status, body) = send(Method::POST, &format!("{v1}/clusterimagepolicies"), Some(&team("cosign.pub")));
    assert_eq!(status, 201, "{body}");
    // Authorities of two kinds: either one is enough (compiled to anyOf).
    let elsewhere = |name: &str| Reference::parse_normalized(&format!("{}/either/{name}", reg.addr)).unwrap();
    let golden = rt.block_on(image::push_index(&client, &elsewhere("golden"), "v1", b"ctl-golden")).digest;
    let either_signed = rt.block_on(image::push_index(&client, &elsewhere("signed"), "v1", b"ctl-either")).digest;
    let attached = Attached::cosign(&key, &elsewhere("signed").repository(), &either_signed);
    rt.block_on(attach(&client, &elsewhere("signed"), &either_signed, &[attached]));
    rt.block_on(image::push_index(&client, &elsewhere("stranger"), "v1", b"ctl-stranger"));
    let either = serde_json::json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "ClusterImagePolicy", "metadata": {"name": "either"},
        "spec": {"images": [format!("{}/either", reg.addr)],
            "authorities": [{"key": {"data": key.public_pem()}}, {"digests": [golden.to_string()]}]}});
    let (status, body) = send(Method::POST, &format!("{v1}/clusterimagepolicies"), Some(&either));
    assert_eq!(status, 201, "{body}");
    // strict also wants a key nobody signed with; lenient tries to let anything through.
    let ns_policy = |ns: &str, authorities: serde_json::Value| {
        serde_json::json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "ImagePolicy", "metadata": {"name": "extra", "namespace": ns},
            "spec": {"images": [format!("{}/team", reg.addr)], "authorities": authorities}})
    };
    let other = TestKey::generate();
    for (ns, authorities) in [
        ("strict", serde_json::json!([{"key": {"data": other.public_pem()}}])),
        ("lenient", serde_json::json!([{"static": {"action": "pass"}}])),
    ] {
        let (status, body) =
            send(Method::POST, &format!("{v1}/namespaces/{ns}/imagepolicies"), Some(&ns_policy(ns, authorities)));
        assert_eq!(status, 201, "{body}");
    }

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let start = |identity: &str| {
        let log = d.join(format!("controller-{identity}.log"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("controller")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--identity", identity, "--lease-seconds", "4", "--resync-seconds", "1"])
            .env("TOLLGATE_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (Some(child), log)
    };
    let (mut leader, leader_log) = start("replica-a");
    let logs = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    let cip = |name: &str| -> serde_json::Value {
        let (status, body) = send(Method::GET, &format!("{v1}/clusterimagepolicies/{name}"), None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let bundle = || -> serde_json::Value {
        let (status, body) = send(Method::GET, "/api/v1/namespaces/tollgate-system/configmaps/tollgate-policy", None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let hash_of = |cm: &serde_json::Value| {
        cm["metadata"]["annotations"]["tollgate.dev/bundle-hash"].as_str().unwrap_or_default().to_owned()
    };
    let ready = |o: &serde_json::Value| -> (String, String) {
        let c = o["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
            .unwrap_or_default();
        (c["status"].as_str().unwrap_or_default().to_owned(), c["reason"].as_str().unwrap_or_default().to_owned())
    };
    // Bounded wait for `what` to hold.
    let until = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "{what} never happened:\n{}", logs(&leader_log));
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    until("the policy Ready", &|| ready(&cip("team")).0 == "True" && !hash_of(&bundle()).is_empty());
    let first = bundle();
    let hash = hash_of(&first);
    let team_now = cip("team");
    assert_eq!(team_now["status"]["bundleHash"], hash.as_str(), "{team_now}");
    assert_eq!(team_now["status"]["observedGeneration"], team_now["metadata"]["generation"], "{team_now}");
    assert_eq!(ready(&team_now), ("True".to_owned(), "Compiled".to_owned()));
    let data = first["data"].as_object().unwrap();
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["namespace.lenient.yaml", "namespace.strict.yaml", "policy.yaml"], "{first}");
    let files: Vec<(String, Vec<u8>)> =
        data.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().as_bytes().to_vec())).collect();
    assert_eq!(tollgate_policy::bundle::hash(&files), hash, "the annotation is the hash of what the ConfigMap holds");

    // What it published decides as the equivalent file policy does.
    std::fs::write(d.join("team.pub"), key.public_pem()).unwrap();
    std::fs::write(d.join("bundle-policy.yaml"), data["policy.yaml"].as_str().unwrap()).unwrap();
    std::fs::write(
        d.join("file-policy.json"),
        format!(r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{}/team":[{{"type":"sigstoreSigned","keyPath":"team.pub","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#, reg.addr),
    )
    .unwrap();
    let verify = |policy: &str, image: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["verify", image, "--policy"])
            .arg(d.join(policy))
            .args(["--insecure-registry", &reg.addr])
            .output()
            .unwrap()
            .status
            .code()
    };
    for (image, want) in
        [(format!("{}/team/app:v1", reg.addr), Some(0)), (format!("{}/team/unsigned:v1", reg.addr), Some(1))]
    {
        assert_eq!(verify("bundle-policy.yaml", &image), want, "{image} with the published bundle");
        assert_eq!(verify("file-policy.json", &image), want, "{image} with the file policy");
    }

    // Through the daemon's decision function with the namespaces: the webhook reading the same ConfigMap.
    let hook = ReaderWebhook::new(api, d, &reg.addr);
    let webhook_log = d.join("webhook.log");
    let (mut webhook, port) = hook.listening(&webhook_log);
    let allowed = |ns: &str, image: &str| hook.answer(&rt, port, "validate", ns, image)["allowed"] == true;
    let (app, unsigned) = (format!("{}/team/app:v1", reg.addr), format!("{}/team/unsigned:v1", reg.addr));
    assert!(allowed("apps", &app), "{}", logs(&webhook_log));
    assert!(!allowed("apps", &unsigned));
    assert!(!allowed("strict", &app), "strict's ImagePolicy adds a key nobody signed with");
    assert!(allowed("lenient", &app));
    assert!(!allowed("lenient", &unsigned), "an ImagePolicy cannot loosen what the cluster demands");
    for (name, want) in [("golden", true), ("signed", true), ("stranger", false)] {
        assert_eq!(allowed("apps", &format!("{}/either/{name}:v1", reg.addr)), want, "either/{name}");
    }
    tollgate_testkit::stop_child(&mut webhook, std::time::Duration::from_secs(5));

    // The node agent, reading the bundle as the directory its ConfigMap volume is: the same decisions.
    let bundle_dir = d.join("bundle");
    std::fs::create_dir(&bundle_dir).unwrap();
    for (key, text) in data {
        std::fs::write(bundle_dir.join(key), text.as_str().unwrap()).unwrap();
    }
    let node_config = d.join("node.yaml");
    let socket = d.join("run/node.sock");
    std::fs::write(
        &node_config,
        format!(
            "policyBundle: {}\nsocket: {}\ninsecureRegistries: [\"{}\"]\nauditLog:\n  path: {}\nbreakGlassFile: {}\nlastGoodPolicy: null\n",
            bundle_dir.display(),
            socket.display(),
            reg.addr,
            d.join("node-audit.log").display(),
            d.join("break-glass").display(),
        ),
    )
    .unwrap();
    let serve_log = d.join("serve.log");
    let mut serve = Some(
        std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["serve", "--config", node_config.to_str().unwrap()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&serve_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "tollgate serve did not listen:\n{}", logs(&serve_log));
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let node = |ns: Option<&str>, name: &str, digest: &tollgate_oci::Digest| {
        let req = tollgate_node_api::api::VerifyRequest {
            name: name.to_owned(),
            digest: digest.to_string(),
            namespace: ns.map(str::to_owned),
            media_type: None,
        };
        tollgate_node_api::client::verify(&socket, &req, std::time::Duration::from_secs(10)).unwrap().allowed
    };
    for (ns, image, digest, want) in [
        (None, &app, &signed, true),
        (None, &unsigned, &unsigned_digest, false),
        (Some("strict"), &app, &signed, false),
        (Some("lenient"), &app, &signed, true),
        (Some("lenient"), &unsigned, &unsigned_digest, false),
    ] {
        assert_eq!(node(ns, image, digest), want, "{ns:?} {image}:\n{}", logs(&serve_log));
    }
    tollgate_testkit::stop_child(&mut serve, std::time::Duration::from_secs(5));

    // An edit recompiles: a second scope, a new bundle.
    let mut edited = team_now.clone();
    edited["spec"]["images"] = serde_json::json!([format!("{}/team", reg.addr), "registry.example.com/more"]);
    let (status, body) = send(Method::PUT, &format!("{v1}/clusterimagepolicies/team"), Some(&edited));
    assert_eq!(status, 200, "{body}");
    until("the edit published", &|| {
        let now = hash_of(&bundle());
        now != hash && cip("team")["status"]["bundleHash"] == now.as_str()
    });
    let good = hash_of(&bundle());
    // A broken edit: Invalid with the reason, and the ConfigMap keeps the last good bundle.
    let mut broken = cip("team");
    broken["spec"]["authorities"][0]["key"]["secretRef"]["key"] = serde_json::json!("missing.pub");
    let (status, body) = send(Method::PUT, &format!("{v1}/clusterimagepolicies/team"), Some(&broken));
    assert_eq!(status, 200, "{body}");
    until("Invalid", &|| ready(&cip("team")).1 == "Invalid");
    let invalid = cip("team");
    let said = invalid["status"]["conditions"].to_string();
    assert!(said.contains("Secret tollgate-system/team-cosign key missing.pub: the Secret has no such key"), "{said}");
    assert!(said.contains(&format!("the nodes keep policy bundle {good}")), "{said}");
    assert_eq!(hash_of(&bundle()), good, "a broken object never replaces the last good bundle");
    assert_eq!(invalid["status"]["observedGeneration"], invalid["metadata"]["generation"]);
    // Fixed, then its Secret deleted: reported within a resync, the bundle kept.
    let mut fixed = invalid.clone();
    fixed["spec"]["authorities"][0]["key"]["secretRef"]["key"] = serde_json::json!("cosign.pub");
    let (status, body) = send(Method::PUT, &format!("{v1}/clusterimagepolicies/team"), Some(&fixed));
    assert_eq!(status, 200, "{body}");
    until("Ready again", &|| ready(&cip("team")).0 == "True");
    assert_eq!(hash_of(&bundle()), good, "the same objects make the same bundle");
    let (status, body) = send(Method::DELETE, &format!("{secrets}/team-cosign"), None);
    assert_eq!(status, 200, "{body}");
    until("the deleted Secret reported", &|| {
        cip("team")["status"]
            .to_string()
            .contains("Secret tollgate-system/team-cosign key cosign.pub: the Secret does not exist")
    });
    assert_eq!(hash_of(&bundle()), good);
    // A namespace's Secret is read only where the namespace lets the controller read it.
    let (status, body) = send(Method::POST, secrets, Some(&secret));
    assert_eq!(status, 201, "{body}");
    let from_secret =
        ns_policy("strict", serde_json::json!([{"key": {"secretRef": {"name": "strict-key", "key": "cosign.pub"}}}]));
    let (status, body) = send(
        Method::PUT,
        &format!("{v1}/namespaces/strict/imagepolicies/extra"),
        Some(&{
            let (_, current) = send(Method::GET, &format!("{v1}/namespaces/strict/imagepolicies/extra"), None);
            let mut next = from_secret.clone();
            next["metadata"]["resourceVersion"] =
                serde_json::from_str::<serde_json::Value>(&current).unwrap()["metadata"]["resourceVersion"].clone();
            next
        }),
    );
    assert_eq!(status, 200, "{body}");
    until("the namespace's Secret refused", &|| {
        let (_, body) = send(Method::GET, &format!("{v1}/namespaces/strict/imagepolicies/extra"), None);
        body.contains("bind ClusterRole tollgate-controller-secrets")
    });
    assert_eq!(hash_of(&bundle()), good);

    // A second replica stands by while the first leads, and takes over when it leaves.
    let (mut standby, standby_log) = start("replica-b");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !logs(&standby_log).contains("replica-a leads; standing by") {
        assert!(std::time::Instant::now() < deadline, "{}", logs(&standby_log));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    tollgate_testkit::stop_child(&mut leader, std::time::Duration::from_secs(5));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !logs(&standby_log).contains("leading") {
        assert!(std::time::Instant::now() < deadline, "{}", logs(&standby_log));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (_, lease) =
        send(Method::GET, "/apis/coordination.k8s.io/v1/namespaces/tollgate-system/leases/tollgate-controller", None);
    assert!(lease.contains("\"holderIdentity\":\"replica-b\""), "{lease}");
    tollgate_testkit::stop_child(&mut standby, std::time::Duration::from_secs(5));
}

/// Outside a pod and without `--kubeconfig`, the controller stops at once, in one line that says what
/// to give; a kubeconfig that does not load is named.
#[test]
fn the_controller_without_a_cluster_says_what_to_give() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, said) = run(&["controller"]);
    assert_eq!(code, Some(2), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.starts_with("tollgate: cannot use the pod's ServiceAccount ("), "{said}");
    assert!(said.trim_end().ends_with("); outside a pod, give --kubeconfig FILE"), "{said}");
    let (code, said) = run(&["controller", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.starts_with("tollgate: kubeconfig /nonexistent/kubeconfig:"), "{said}");
}
