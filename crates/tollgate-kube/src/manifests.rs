//! What `tollgate manifests` writes: plain YAML that `kubectl apply -f` accepts. Pure.

use kube::CustomResourceExt as _;

use crate::crd::{ClusterImagePolicy, ImagePolicy, TrustRoot};

/// tollgate's namespace.
pub const NAMESPACE: &str = "tollgate-system";

/// A manifest rendering failed (a serializer error: a bug, reported rather than panicked on).
#[derive(Debug, thiserror::Error)]
#[error("cannot render {what}: {message}")]
pub struct RenderError {
    /// Which manifest.
    pub what: &'static str,
    /// The serializer's reason.
    pub message: String,
}

/// One file of the manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its file name (`00-namespace.yaml`); `kubectl apply -f DIR` applies them in this order.
    pub file: &'static str,
    /// YAML documents.
    pub yaml: String,
}

fn yaml<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, RenderError> {
    serde_yaml_ng::to_string(value).map_err(|e| RenderError { what, message: e.to_string() })
}

/// The namespace, with Pod Security labels: tollgate's own pods run as `restricted`. With the node
/// agent (`node_agent`), whose DaemonSet must mount host paths (containerd's config and bin_dir,
/// `/run/tollgate`, NRI's socket), Pod Security enforces `privileged` and still audits and warns
/// at `restricted`, so anything else that lands there is reported.
pub fn namespace(node_agent: bool) -> String {
    let enforce = if node_agent { "privileged" } else { "restricted" };
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n  labels:\n    \
         app.kubernetes.io/part-of: tollgate\n    \
         pod-security.kubernetes.io/enforce: {enforce}\n    \
         pod-security.kubernetes.io/enforce-version: latest\n    \
         pod-security.kubernetes.io/warn: restricted\n    \
         pod-security.kubernetes.io/audit: restricted\n"
    )
}

/// What the node agent's DaemonSet runs: tollgate's image, pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAgent {
    /// `REPOSITORY[:TAG]@sha256:…`.
    pub image: String,
}

/// The node agent: a ServiceAccount with no token and no RBAC (the nodes need no API access), the
/// node config as a ConfigMap (`policyBundle` pointing at the mounted `tollgate-policy`), and a
/// DaemonSet on every node, control plane included, whose init container installs the verifier into
/// containerd (`tollgate containerd install --nri`, which runs the doctor), and whose containers
/// run the daemon (`tollgate serve`) and the NRI plugin (`tollgate nri`). Host paths are mounted
/// where the host has them, so what install writes into containerd's config names host paths.
pub fn node_agent(agent: &NodeAgent) -> Result<String, RenderError> {
    let config = "policyBundle: /etc/tollgate/bundle\nsocket: /run/tollgate/tollgate.sock\n\
                  auditLog:\n  path: /var/log/tollgate/audit.log\nlastGoodPolicy: null\n\
                  nri:\n  socket: /var/run/nri/nri.sock\n";
    let secure = serde_json::json!({
        "runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    });
    let host = |name: &str, path: &str, kind: &str| serde_json::json!({"name": name, "hostPath": {"path": path, "type": kind}});
    let mount = |name: &str, path: &str, ro: bool| serde_json::json!({"name": name, "mountPath": path, "readOnly": ro});
    let container = |name: &str, args: serde_json::Value, mounts: serde_json::Value| {
        serde_json::json!({
            "name": name, "image": agent.image, "args": args, "securityContext": secure, "volumeMounts": mounts,
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
        })
    };
    let mut config_mount_file = mount("config", "/etc/tollgate/config.yaml", true);
    config_mount_file["subPath"] = serde_json::json!("config.yaml");
    let labels =
        serde_json::json!({"app.kubernetes.io/name": "tollgate-node", "app.kubernetes.io/part-of": "tollgate"});
    let docs = [
        yaml(
            "the node agent's ServiceAccount",
            &serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": false,
                "metadata": {"name": "tollgate-node", "namespace": NAMESPACE, "labels": labels}}),
        )?,
        yaml(
            "the node agent's config",
            &serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "tollgate-node", "namespace": NAMESPACE, "labels": labels},
                "data": {"config.yaml": config}}),
        )?,
        yaml(
            "the node agent's DaemonSet",
            &serde_json::json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "tollgate-node", "namespace": NAMESPACE, "labels": labels},
                "spec": {
                    "selector": {"matchLabels": {"app.kubernetes.io/name": "tollgate-node"}},
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                    "template": {
                        // The NRI plugin runs in these pods: with containerd requiring it, they could not
                        // start again while it is away (a restart, an update) without the toleration.
                        "metadata": {"labels": labels, "annotations": {TOLERATION: "true"}},
                        "spec": {
                            "serviceAccountName": "tollgate-node",
                            "automountServiceAccountToken": false,
                            "priorityClassName": "system-node-critical",
                            // The node's network: the CNI plugin's own pods wait for tollgate's plugin,
                            // so tollgate's pods must not wait for the CNI.
                            "hostNetwork": true,
                            "dnsPolicy": "ClusterFirstWithHostNet",
                            "tolerations": [{"operator": "Exists"}],
                            "initContainers": [container(
                                "install",
                                serde_json::json!(["containerd", "install", "--nri",
                                    "--config", "/etc/containerd/config.toml",
                                    "--bin-dir", "/opt/containerd/image-verifier/bin",
                                    "--socket", "/run/tollgate/tollgate.sock"]),
                                serde_json::json!([mount("containerd-config", "/etc/containerd", false),
                                    mount("verifier-bin", "/opt/containerd/image-verifier/bin", false), config_mount_file.clone()]),
                            )],
                            "containers": [
                                container(
                                    "serve",
                                    serde_json::json!(["serve", "--config", "/etc/tollgate/config.yaml"]),
                                    serde_json::json!([config_mount_file.clone(), mount("bundle", "/etc/tollgate/bundle", true),
                                        mount("run", "/run/tollgate", false), mount("audit", "/var/log/tollgate", false)]),
                                ),
                                container(
                                    "nri",
                                    serde_json::json!(["nri", "--config", "/etc/tollgate/config.yaml"]),
                                    serde_json::json!([config_mount_file, mount("run", "/run/tollgate", false),
                                        mount("nri", "/var/run/nri", false)]),
                                ),
                            ],
                            "volumes": [
                                {"name": "config", "configMap": {"name": "tollgate-node"}},
                                // Optional: without a bundle the daemon starts and every decision is
                                // undecidable (refused) until one arrives.
                                {"name": "bundle", "configMap": {"name": POLICY_CONFIGMAP, "optional": true}},
                                host("containerd-config", "/etc/containerd", "DirectoryOrCreate"),
                                host("verifier-bin", "/opt/containerd/image-verifier/bin", "DirectoryOrCreate"),
                                host("run", "/run/tollgate", "DirectoryOrCreate"),
                                host("audit", "/var/log/tollgate", "DirectoryOrCreate"),
                                host("nri", "/var/run/nri", "DirectoryOrCreate"),
                            ],
                        },
                    },
                },
            }),
        )?,
    ];
    Ok(docs.join("---\n"))
}

/// The controller's ServiceAccount, roles, Lease and Deployment name.
pub const CONTROLLER: &str = "tollgate-controller";
/// The ClusterRole a namespace binds to the controller to let its ImagePolicies take keys from its
/// own Secrets (not bound anywhere by default).
pub const CONTROLLER_SECRETS_ROLE: &str = "tollgate-controller-secrets";

/// The controller (`tollgate controller`): its ServiceAccount, least-privilege RBAC and a
/// Deployment of two replicas (one leads, through the Lease) running `image` as a non-root user
/// under the `restricted` Pod Security profile.
///
/// What it may do: read and watch the three tollgate.dev kinds cluster-wide and patch their
/// status; in tollgate's namespace, read ConfigMaps (trust roots, the bundle) and Secrets (keys),
/// create ConfigMaps and update only the bundle's, create Leases and read and update only its
/// own. Nothing else: it reads no Secret outside tollgate's namespace unless a namespace binds
/// [`CONTROLLER_SECRETS_ROLE`] to it.
pub fn controller(image: &str) -> Result<String, RenderError> {
    let labels = serde_json::json!({"app.kubernetes.io/name": CONTROLLER, "app.kubernetes.io/part-of": "tollgate"});
    let meta = serde_json::json!({"name": CONTROLLER, "namespace": NAMESPACE, "labels": labels});
    let cluster_meta = serde_json::json!({"name": CONTROLLER, "labels": labels});
    let subject = serde_json::json!([{"kind": "ServiceAccount", "name": CONTROLLER, "namespace": NAMESPACE}]);
    let docs = [
        yaml(
            "the controller's ServiceAccount",
            &serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}),
        )?,
        yaml(
            "the controller's ClusterRole",
            &serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": cluster_meta,
            "rules": [
                {"apiGroups": [crate::crd::GROUP], "resources": ["clusterimagepolicies", "imagepolicies", "trustroots"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": [crate::crd::GROUP],
                 "resources": ["clusterimagepolicies/status", "imagepolicies/status", "trustroots/status"],
                 "verbs": ["patch"]},
            ]}),
        )?,
        yaml(
            "the controller's ClusterRoleBinding",
            &serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": cluster_meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CONTROLLER},
                "subjects": subject}),
        )?,
        yaml(
            "the controller's Role",
            &serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["update"], "resourceNames": [POLICY_CONFIGMAP]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update"],
                 "resourceNames": [CONTROLLER]},
            ]}),
        )?,
        yaml(
            "the controller's RoleBinding",
            &serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CONTROLLER},
                "subjects": subject}),
        )?,
        yaml(
            "the ClusterRole for namespace Secrets",
            &serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": CONTROLLER_SECRETS_ROLE, "labels": labels},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
        )?,
        yaml(
            "the controller's Deployment",
            &serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": CONTROLLER}},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "serviceAccountName": CONTROLLER,
                            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [{
                                "name": "controller",
                                "image": image,
                                "args": ["controller"],
                                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}},
                                "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                            }],
                        },
                    },
                },
            }),
        )?,
    ];
    Ok(docs.join("---\n"))
}

/// The three CustomResourceDefinitions, as one YAML stream.
pub fn crds() -> Result<String, RenderError> {
    let docs = [
        yaml("the ClusterImagePolicy CRD", &ClusterImagePolicy::crd())?,
        yaml("the ImagePolicy CRD", &ImagePolicy::crd())?,
        yaml("the TrustRoot CRD", &TrustRoot::crd())?,
    ];
    Ok(docs.join("---\n"))
}

/// Every manifest, in apply order; with `policies`, also the admission policy generated from them
/// ([`admission_policy`]); with `webhook`, the webhook configurations calling it ([`webhooks`]);
/// with `agent`, the node agent ([`node_agent`]) and the controller ([`controller`]).
pub fn all(
    policies: Option<&[ClusterImagePolicy]>,
    static_manifest: bool,
    webhook: Option<&WebhookEndpoint>,
    agent: Option<&NodeAgent>,
) -> Result<Vec<Manifest>, RenderError> {
    let mut out = vec![
        Manifest { file: "00-namespace.yaml", yaml: namespace(agent.is_some()) },
        Manifest { file: "10-crds.yaml", yaml: crds()? },
    ];
    if let Some(p) = policies {
        out.push(Manifest { file: "20-admission-policy.yaml", yaml: admission_policy(p, static_manifest)? });
    }
    if let Some(w) = webhook {
        out.push(Manifest { file: "30-webhooks.yaml", yaml: webhooks(w)? });
        if let (None, Some(a)) = (&w.url, agent) {
            out.push(Manifest { file: "35-webhook-service.yaml", yaml: webhook_service(&a.image)? });
        }
    }
    if let Some(a) = agent {
        out.push(Manifest { file: "40-node-agent.yaml", yaml: node_agent(a)? });
        out.push(Manifest { file: "50-controller.yaml", yaml: controller(&a.image)? });
    }
    Ok(out)
}

/// Where the API server reaches `tollgate webhook`, and the CA that signed its serving certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// `https://HOST:PORT` (outside the cluster, static manifests, tests), `/validate` and `/mutate`
    /// appended; `None`: the Service `tollgate-webhook` in tollgate's namespace (see [`webhook_service`]).
    pub url: Option<String>,
    /// The CA certificate(s), PEM.
    pub ca_pem: String,
    /// `timeoutSeconds` (the webhook's deadline must be below it).
    pub timeout_seconds: u32,
}

/// The Service (and Deployment, ServiceAccount, ConfigMap) of the in-cluster webhook.
pub const WEBHOOK_SERVICE: &str = "tollgate-webhook";
/// The Secret (type `kubernetes.io/tls`) the in-cluster webhook serves with; the user creates it
/// from `tollgate webhook-cert`.
pub const WEBHOOK_TLS_SECRET: &str = "tollgate-webhook-tls";

/// The in-cluster webhook: a ServiceAccount with no token and no RBAC (it reads the mounted policy
/// bundle, never the API), its config, a Deployment of two replicas running `image` as a non-root
/// user under the `restricted` Pod Security profile, and the Service the configurations call. The
/// serving certificate comes from the Secret [`WEBHOOK_TLS_SECRET`].
pub fn webhook_service(image: &str) -> Result<String, RenderError> {
    let labels =
        serde_json::json!({"app.kubernetes.io/name": WEBHOOK_SERVICE, "app.kubernetes.io/part-of": "tollgate"});
    let meta = serde_json::json!({"name": WEBHOOK_SERVICE, "namespace": NAMESPACE, "labels": labels});
    let config =
        "socket: /run/tollgate/unused.sock\nauditLog:\n  path: /var/log/tollgate/audit.log\nlastGoodPolicy: null\n";
    let mount = |name: &str, path: &str| serde_json::json!({"name": name, "mountPath": path, "readOnly": true});
    let mut config_mount = mount("config", "/etc/tollgate/config.yaml");
    config_mount["subPath"] = serde_json::json!("config.yaml");
    let docs = [
        yaml(
            "the webhook's ServiceAccount",
            &serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": false, "metadata": meta}),
        )?,
        yaml(
            "the webhook's config",
            &serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"config.yaml": config}}),
        )?,
        yaml(
            "the webhook's Deployment",
            &serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": WEBHOOK_SERVICE}},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "serviceAccountName": WEBHOOK_SERVICE,
                            "automountServiceAccountToken": false,
                            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [{
                                "name": "webhook",
                                "image": image,
                                "args": ["webhook", "--config", "/etc/tollgate/config.yaml",
                                    "--policy-bundle", "/etc/tollgate/bundle",
                                    "--tls-cert", "/etc/tollgate/tls/tls.crt", "--tls-key", "/etc/tollgate/tls/tls.key",
                                    "--listen", "0.0.0.0:8443"],
                                "ports": [{"name": "https", "containerPort": 8443}],
                                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8443, "scheme": "HTTPS"}},
                                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}},
                                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                                "volumeMounts": [config_mount, mount("bundle", "/etc/tollgate/bundle"),
                                    mount("tls", "/etc/tollgate/tls"),
                                    {"name": "audit", "mountPath": "/var/log/tollgate"}],
                            }],
                            "volumes": [
                                {"name": "config", "configMap": {"name": WEBHOOK_SERVICE}},
                                {"name": "bundle", "configMap": {"name": POLICY_CONFIGMAP}},
                                {"name": "tls", "secret": {"secretName": WEBHOOK_TLS_SECRET}},
                                {"name": "audit", "emptyDir": {}},
                            ],
                        },
                    },
                },
            }),
        )?,
        yaml(
            "the webhook's Service",
            &serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {
                "selector": {"app.kubernetes.io/name": WEBHOOK_SERVICE},
                "ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}),
        )?,
    ];
    Ok(docs.join("---\n"))
}

/// The name of the validating and the mutating webhook.
pub const WEBHOOK_NAME: &str = "images.tollgate.dev";

/// The webhooks' match condition: every create, and the updates that change the spec or the
/// annotations.
pub const MATCH_CONDITION: &str = "request.operation != 'UPDATE' || object.spec != oldObject.spec || \
     object.metadata.?annotations != oldObject.metadata.?annotations";

/// A ValidatingWebhookConfiguration and a MutatingWebhookConfiguration for `tollgate webhook`:
/// Pods and the workloads with pod templates, on create and update, `failurePolicy: Fail`, in every
/// namespace but tollgate's own (`kube-system` included: its pods are checked like any other),
/// `sideEffects: None`, admission review v1, and [`MATCH_CONDITION`] (updates that change neither
/// spec nor annotations are not sent). The mutating one pins verified tags to digests and never
/// denies; it is reinvoked if another mutation changes an image.
pub fn webhooks(w: &WebhookEndpoint) -> Result<String, RenderError> {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(w.ca_pem.as_bytes());
    let client = |path: &str| match &w.url {
        Some(url) => serde_json::json!({"url": format!("{}{path}", url.trim_end_matches('/')), "caBundle": ca}),
        None => serde_json::json!({
            "service": {"name": WEBHOOK_SERVICE, "namespace": NAMESPACE, "path": path, "port": 443},
            "caBundle": ca,
        }),
    };
    let rules = serde_json::json!([
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["pods", "pods/ephemeralcontainers"], "scope": "Namespaced"},
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
         "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"], "scope": "Namespaced"},
        {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["jobs", "cronjobs"], "scope": "Namespaced"},
    ]);
    // tollgate's own namespace is left out so that the webhook can always be (re)started; nothing
    // else is, kube-system included.
    let selector = serde_json::json!({"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NAMESPACE]}]});
    // An update that changes neither the spec (images, pod templates, ephemeral containers) nor
    // the annotations (the NRI toleration) cannot change a decision: the API server does not call
    // the webhook for it, so label edits and the like go through while the webhook is down.
    let conditions = serde_json::json!([{"name": "spec-or-annotations-changed", "expression": MATCH_CONDITION}]);
    let hook = |path: &str| {
        serde_json::json!({
            "name": WEBHOOK_NAME,
            "clientConfig": client(path),
            "rules": rules,
            "namespaceSelector": selector,
            "matchConditions": conditions,
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": w.timeout_seconds,
            "matchPolicy": "Equivalent",
        })
    };
    let mut mutating = hook("/mutate");
    mutating["reinvocationPolicy"] = serde_json::json!("IfNeeded");
    let validating = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "tollgate", "labels": {"app.kubernetes.io/part-of": "tollgate"}},
        "webhooks": [hook("/validate")],
    });
    let mutating = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "tollgate", "labels": {"app.kubernetes.io/part-of": "tollgate"}},
        "webhooks": [mutating],
    });
    Ok([
        yaml("the mutating webhook configuration", &mutating)?,
        yaml("the validating webhook configuration", &validating)?,
    ]
    .join("---\n"))
}

/// The ConfigMap that carries the compiled policy bundle to the nodes.
pub const POLICY_CONFIGMAP: &str = "tollgate-policy";

/// The ConfigMap `tollgate-system/tollgate-policy` holding a compiled bundle (`files`: key and
/// bytes, from `tollgate_policy::bundle`), with `hash` as its `tollgate.dev/bundle-hash` annotation.
pub fn policy_configmap(files: &[(String, Vec<u8>)], hash: &str) -> Result<String, RenderError> {
    let data: serde_json::Map<String, serde_json::Value> = files
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(String::from_utf8_lossy(v).into_owned())))
        .collect();
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": POLICY_CONFIGMAP, "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "tollgate"},
            "annotations": {tollgate_policy::bundle::HASH_ANNOTATION: hash}},
        "data": data,
    });
    yaml("the policy ConfigMap", &cm)
}

/// A file of policy objects could not be read as such.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: document {index}: {message}")]
pub struct PoliciesError {
    /// The file.
    pub source_name: String,
    /// Which YAML document (1-based).
    pub index: usize,
    /// What is wrong.
    pub message: String,
}

/// kube's CEL errors as one line: "N validation error(s):" then one "- path: message" line each.
pub(crate) fn one_line(text: &str) -> String {
    let items: Vec<&str> =
        text.lines().skip(1).map(|l| l.trim().trim_start_matches("- ")).filter(|l| !l.is_empty()).collect();
    if items.is_empty() { text.trim().to_owned() } else { items.join("; ") }
}

/// The ClusterImagePolicies in a multi-document YAML file (other kinds are skipped), each checked
/// against the CRD's CEL rules as the API server would.
pub fn cluster_policies(text: &str, source_name: &str) -> Result<Vec<ClusterImagePolicy>, PoliciesError> {
    read(text, source_name, &["ClusterImagePolicy"]).map(|o| o.cluster)
}

/// The tollgate.dev objects of a YAML stream, each checked against its CRD's rules.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// ClusterImagePolicies.
    pub cluster: Vec<ClusterImagePolicy>,
    /// ImagePolicies (each with its namespace).
    pub namespaced: Vec<crate::crd::ImagePolicy>,
    /// TrustRoots.
    pub trust_roots: Vec<crate::crd::TrustRoot>,
}

/// The objects of the `kinds` listed in a multi-document YAML stream, in one pass, each checked
/// against its CRD's CEL rules; other kinds are skipped.
pub(crate) fn read(text: &str, source_name: &str, kinds: &[&str]) -> Result<Objects, PoliciesError> {
    let mut out = Objects::default();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let err = |message: String| PoliciesError { source_name: source_name.to_owned(), index: i + 1, message };
        let value: serde_json::Value = serde::Deserialize::deserialize(doc).map_err(|e| err(e.to_string()))?;
        let Some(kind) = value["kind"].as_str().filter(|k| kinds.contains(k)) else { continue };
        let cel = |r: Result<(), kube::core::cel::ValidationErrors>| r.map_err(|e| err(one_line(&e.to_string())));
        match kind {
            "ClusterImagePolicy" => {
                let p: ClusterImagePolicy = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
                cel(p.validate_cel())?;
                out.cluster.push(p);
            }
            "ImagePolicy" => {
                let p: crate::crd::ImagePolicy = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
                if p.metadata.namespace.as_deref().is_none_or(str::is_empty) {
                    return Err(err("an ImagePolicy needs metadata.namespace".into()));
                }
                cel(p.validate_cel())?;
                out.namespaced.push(p);
            }
            "TrustRoot" => {
                let t: crate::crd::TrustRoot = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
                cel(t.validate_cel())?;
                out.trust_roots.push(t);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The pod annotation (prefix) containerd's NRI default validator reads to let a pod start while
/// required plugins are missing (`tollgate containerd install --nri` names it).
pub const TOLERATION: &str = "nri.tollgate.dev/tolerate-missing-plugins";

/// The prefix of NRI's own pod annotations that name the plugins a container requires.
pub const REQUIRED_PLUGINS: &str = "required-plugins.noderesource.dev";

/// The name prefix of the node agent's pods (the DaemonSet `tollgate-node`'s generated names).
pub const NODE_AGENT_PODS: &str = "tollgate-node-";

/// Whether the object `name` of `namespace` is the node agent's DaemonSet or one of its pods, which
/// carry the NRI toleration: the NRI plugin runs in them, so they must start while it is away.
pub fn is_node_agent_pod(namespace: &str, name: &str) -> bool {
    namespace == NAMESPACE && (name.starts_with(NODE_AGENT_PODS) || Some(name) == NODE_AGENT_PODS.strip_suffix('-'))
}

/// The CEL alternatives (` || (…)` each) that let the node agent's pods and the pods the policies
/// name under `enforcementOverrides` carry the override annotations.
fn overrides_cel(policies: &[ClusterImagePolicy]) -> Result<String, RenderError> {
    let mut out = format!(
        " || (request.namespace == '{NAMESPACE}' && has(object.metadata.name) && \
         object.metadata.name.startsWith('{NODE_AGENT_PODS}'))"
    );
    for o in policies.iter().flat_map(|p| &p.spec.enforcement_overrides) {
        // They go into CEL string literals: only what the CRD's rules admit may get there.
        let plain = |s: &str| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
        };
        let name = o.name.strip_suffix('*');
        if !plain(&o.namespace) || !plain(name.unwrap_or(&o.name)) {
            return Err(RenderError {
                what: "the admission policy",
                message: format!("enforcement override {}/{} is not NAMESPACE/NAME[*]", o.namespace, o.name),
            });
        }
        let test = match name {
            Some(prefix) => format!("object.metadata.name.startsWith('{prefix}')"),
            None => format!("object.metadata.name == '{}'", o.name),
        };
        out.push_str(&format!(" || (request.namespace == '{}' && has(object.metadata.name) && {test})", o.namespace));
    }
    Ok(out)
}

/// The name of the generated admission policy and its binding.
pub const ADMISSION_POLICY: &str = "images.tollgate.dev";
/// The same, for `AdmissionConfiguration.staticManifestsDir` (Kubernetes 1.36+), which requires the
/// `.static.k8s.io` suffix; the API cannot delete such objects.
pub const STATIC_ADMISSION_POLICY: &str = "tollgate-images.static.k8s.io";

/// A CEL expression that holds when `i` (an image reference as written in a pod) is under `scope`
/// with containers-policy.json semantics: `HOST[:PORT][/PATH]` is a prefix ending at a path, tag or
/// digest separator; `*.DOMAIN` matches registry hosts below DOMAIN.
fn scope_cel(scope: &str) -> String {
    // Scopes passed the CRD's own rule: lower-case host, port and path characters, no quotes.
    if let Some(domain) = scope.strip_prefix("*.") {
        return format!("(i.contains('/') && i.split('/')[0].endsWith('.{domain}'))");
    }
    if scope.contains('/') {
        format!("(i.startsWith('{scope}/') || i.startsWith('{scope}:') || i.startsWith('{scope}@'))")
    } else {
        format!("i.startsWith('{scope}/')")
    }
}

/// A ValidatingAdmissionPolicy and its binding, generated from the ClusterImagePolicies: every image of
/// every pod must be pinned by digest and come from a scope one of them covers. It needs no network call,
/// so it keeps holding when tollgate's webhook or nodes are down. Denials are enforced (`Deny`) when any of
/// the policies enforces, and only warned (`Warn`, `Audit`) when all of them warn. With `static_manifest`
/// the names end in `.static.k8s.io`, for `staticManifestsDir`.
pub fn admission_policy(policies: &[ClusterImagePolicy], static_manifest: bool) -> Result<String, RenderError> {
    let mut scopes: Vec<&str> = policies.iter().flat_map(|p| p.spec.images.iter().map(String::as_str)).collect();
    scopes.sort_unstable();
    scopes.dedup();
    // The scopes go into CEL string literals: only what the CRD's scope rule admits may get there.
    if let Some(bad) = scopes.iter().find(|s| {
        s.is_empty() || !s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._:/*".contains(c))
    }) {
        return Err(RenderError {
            what: "the admission policy",
            message: format!("image scope {bad:?} is not HOST[:PORT][/PATH] or *.DOMAIN"),
        });
    }
    if scopes.is_empty() {
        return Err(RenderError {
            what: "the admission policy",
            message: "no ClusterImagePolicy names an image scope, so every image would be refused".into(),
        });
    }
    let overrides = overrides_cel(policies)?;
    let enforce = policies.iter().any(|p| p.spec.mode.as_deref() != Some("warn"));
    let allowed = scopes.iter().map(|s| scope_cel(s)).collect::<Vec<_>>().join(" || ");
    let listed = scopes.join(", ");
    let name = if static_manifest { STATIC_ADMISSION_POLICY } else { ADMISSION_POLICY };
    let policy = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "tollgate"}},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["pods"]
            }]},
            "variables": [{
                "name": "images",
                "expression": "object.spec.containers.map(c, c.image) \
                    + (has(object.spec.initContainers) ? object.spec.initContainers.map(c, c.image) : []) \
                    + (has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers.map(c, c.image) : [])"
            }],
            "validations": [
                {
                    "expression": "variables.images.all(i, i.contains('@sha256:'))",
                    "messageExpression": "'tollgate: every image must be pinned by digest (NAME@sha256:...); not pinned: ' + variables.images.filter(i, !i.contains('@sha256:')).join(', ')",
                    "reason": "Forbidden"
                },
                {
                    // Only the kubelet's mirror pods (static pods) and the pods the policies name may tolerate a
                    // missing NRI plugin or change which plugins are required: on any other pod the annotations
                    // would let its containers start unchecked while the plugin is away.
                    "expression": format!(
                        "!has(object.metadata.annotations) || \
                         !object.metadata.annotations.exists(k, k.startsWith('{TOLERATION}') || k.startsWith('{REQUIRED_PLUGINS}')) || \
                         request.userInfo.username.startsWith('system:node:'){overrides}"
                    ),
                    "message": format!("tollgate: only static pods and the pods a ClusterImagePolicy names under enforcementOverrides may carry {TOLERATION} or {REQUIRED_PLUGINS}*: they let containers start unchecked while tollgate's NRI plugin is away"),
                    "reason": "Forbidden"
                },
                {
                    "expression": format!("variables.images.all(i, {allowed})"),
                    "messageExpression": format!("'tollgate: images must come from a scope a ClusterImagePolicy covers ({listed}), written with their registry: ' + variables.images.filter(i, !({allowed})).join(', ')"),
                    "reason": "Forbidden"
                }
            ]
        }
    });
    let actions = if enforce { serde_json::json!(["Deny"]) } else { serde_json::json!(["Warn", "Audit"]) };
    let binding = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "tollgate"}},
        "spec": {"policyName": name, "validationActions": actions}
    });
    Ok(format!("{}---\n{}", yaml("the admission policy", &policy)?, yaml("the admission policy binding", &binding)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::ClusterImagePolicySpec;

    fn cip(images: &[&str], mode: Option<&str>) -> ClusterImagePolicy {
        let spec: ClusterImagePolicySpec = serde_json::from_value(serde_json::json!({
            "images": images, "mode": mode, "authorities": [{"static": {"action": "pass"}}]
        }))
        .unwrap();
        ClusterImagePolicy::new("p", spec)
    }

    /// Least privilege, as written: no wildcard, writes only to status, the bundle's ConfigMap and
    /// the Lease by name, Secrets read only in tollgate's namespace.
    #[test]
    fn the_controllers_rbac_names_what_it_needs_and_nothing_more() {
        let text =
            controller("r.example/tollgate@sha256:0000000000000000000000000000000000000000000000000000000000000002")
                .unwrap();
        assert!(!text.contains('*'), "{text}");
        let docs: Vec<serde_json::Value> =
            serde_yaml_ng::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
        for doc in docs.iter().filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole") {
            for rule in doc["rules"].as_array().unwrap() {
                let verbs: Vec<&str> = rule["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
                let resources = rule["resources"].to_string();
                if verbs.iter().any(|v| ["update", "patch", "delete"].contains(v)) {
                    assert!(
                        rule["resourceNames"].is_array() || resources.contains("/status"),
                        "{} writes {resources} by any name",
                        doc["metadata"]["name"]
                    );
                }
                assert!(!verbs.contains(&"delete") && !verbs.contains(&"deletecollection"), "{rule}");
                if resources.contains("secrets") {
                    assert!(doc["kind"] == "Role" || doc["metadata"]["name"] == CONTROLLER_SECRETS_ROLE, "{doc}");
                }
            }
        }
        let binds_secrets_role = docs.iter().any(|d| d["roleRef"]["name"] == CONTROLLER_SECRETS_ROLE);
        assert!(!binds_secrets_role, "no namespace's Secrets are readable until that namespace binds the role");
    }

    #[test]
    fn scopes_become_prefix_rules_that_end_at_a_separator() {
        assert_eq!(scope_cel("r.example"), "i.startsWith('r.example/')");
        assert_eq!(
            scope_cel("r.example/team"),
            "(i.startsWith('r.example/team/') || i.startsWith('r.example/team:') || i.startsWith('r.example/team@'))"
        );
        assert_eq!(scope_cel("*.example.com"), "(i.contains('/') && i.split('/')[0].endsWith('.example.com'))");
    }

    #[test]
    fn the_binding_enforces_unless_every_policy_warns_and_static_names_end_in_static_k8s_io() {
        let text = admission_policy(&[cip(&["r.example"], Some("warn")), cip(&["q.example"], None)], false).unwrap();
        assert!(text.contains("- Deny") && text.contains("name: images.tollgate.dev"), "{text}");
        assert!(text.contains("q.example, r.example"), "the scopes are listed once each: {text}");
        let text = admission_policy(&[cip(&["r.example"], Some("warn"))], true).unwrap();
        assert!(text.contains("- Warn") && !text.contains("- Deny"), "{text}");
        assert_eq!(text.matches("name: tollgate-images.static.k8s.io").count(), 2, "{text}");
        assert!(admission_policy(&[], false).unwrap_err().message.contains("every image would be refused"));
        let mut named = cip(&["r.example"], None);
        named.spec.enforcement_overrides = serde_json::from_value(serde_json::json!([
            {"namespace": "kube-system", "name": "etcd-*", "reason": "r"}, {"namespace": "infra", "name": "agent", "reason": "r"}
        ]))
        .unwrap();
        let text = admission_policy(std::slice::from_ref(&named), false).unwrap();
        // YAML doubles the quotes inside a quoted scalar.
        let want = "|| (request.namespace == 'kube-system' && has(object.metadata.name) && object.metadata.name.startsWith('etcd-')) || (request.namespace == 'infra' && has(object.metadata.name) && object.metadata.name == 'agent')";
        assert!(text.contains(&want.replace('\'', "''")), "{text}");
        named.spec.enforcement_overrides[1].name = "a') || true || ('".into();
        assert!(admission_policy(&[named], false).unwrap_err().message.contains("is not NAMESPACE/NAME[*]"));
        let injected = cip(&["r.example') || true || ('"], None);
        assert!(admission_policy(&[injected], false).unwrap_err().message.contains("is not HOST[:PORT][/PATH]"));
    }
}
