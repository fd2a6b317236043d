//! `admission.k8s.io/v1` AdmissionReview, the part the webhook needs: the request's identity, the
//! images of a Pod or of a workload's pod template (with where each one is, as a JSON pointer), the
//! pod's annotations, and the response with its warnings, audit annotations and JSON patch. Pure
//! functions over bytes and values: the server is an edge.
//!
//! Written here rather than taken from kube-core's `admission` feature, which pulls json-patch 4 next
//! to the json-patch 5 the workspace uses; the wire format is small and fixed (`admission.k8s.io/v1`).

use base64::Engine as _;
use serde_json::{Value, json};

/// Largest AdmissionReview read (the API server's own request limit is 3 MiB).
pub const MAX_REVIEW_BYTES: usize = 3 << 20;
/// The only version answered.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Why a body is not a review this webhook can answer (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReviewError(pub String);

/// The parts of an AdmissionReview request the webhook decides on.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `request.uid`, echoed in the response.
    pub uid: String,
    /// `request.kind.kind` (`Pod`, `Deployment`, …).
    pub kind: String,
    /// `request.kind.group` (empty for core).
    pub group: String,
    /// `request.namespace`.
    pub namespace: String,
    /// `request.name` (may be empty on create: `generateName`).
    pub name: String,
    /// `request.operation`.
    pub operation: String,
    /// `request.userInfo.username`: a kubelet is `system:node:NAME`.
    pub user: String,
    /// `request.object`.
    pub object: Value,
}

/// One image of a pod spec and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageAt {
    /// JSON pointer of the `image` field (`/spec/template/spec/containers/0/image`).
    pub pointer: String,
    /// The container's name.
    pub container: String,
    /// The image reference as written.
    pub image: String,
}

/// Parses a review body: capped, `admission.k8s.io/v1`, kind `AdmissionReview`, with a request
/// that has a uid, a kind and an object.
pub fn parse(body: &[u8]) -> Result<Request, ReviewError> {
    let bad = |m: &str| ReviewError(m.to_owned());
    if body.len() > MAX_REVIEW_BYTES {
        return Err(ReviewError(format!("the AdmissionReview is larger than {MAX_REVIEW_BYTES} bytes")));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ReviewError(format!("the body is not a JSON AdmissionReview: {e}")))?;
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if api_version != API_VERSION {
        return Err(ReviewError(format!(
            "apiVersion {api_version:?} is not {API_VERSION} (set admissionReviewVersions: [v1])"
        )));
    }
    if v.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err(bad("kind is not AdmissionReview"));
    }
    let r = v.get("request").ok_or_else(|| bad("the AdmissionReview has no request"))?;
    let s = |p: &str| r.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
    let uid = s("/uid");
    if uid.is_empty() || uid.len() > 128 {
        return Err(bad("request.uid is missing or longer than 128 bytes"));
    }
    let kind = s("/kind/kind");
    if kind.is_empty() {
        return Err(bad("request.kind.kind is missing"));
    }
    let object = r.get("object").cloned().unwrap_or(Value::Null);
    Ok(Request {
        uid,
        kind,
        group: s("/kind/group"),
        namespace: s("/namespace"),
        name: s("/name"),
        operation: s("/operation"),
        user: s("/userInfo/username"),
        object,
    })
}

/// Where the pod spec and pod metadata of `kind` are, as JSON pointers; `None` for kinds the webhook
/// does not handle.
pub fn pod_paths(group: &str, kind: &str) -> Option<(&'static str, &'static str)> {
    match (group, kind) {
        ("", "Pod") => Some(("/spec", "/metadata")),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") | ("batch", "Job") => {
            Some(("/spec/template/spec", "/spec/template/metadata"))
        }
        ("batch", "CronJob") => {
            Some(("/spec/jobTemplate/spec/template/spec", "/spec/jobTemplate/spec/template/metadata"))
        }
        _ => None,
    }
}

/// Every image of the pod spec at `spec` (init, regular and ephemeral containers, in that order). A
/// container without an image string is an error: the API server would refuse it, and an image the
/// webhook cannot see must not pass.
pub fn images(object: &Value, spec: &str) -> Result<Vec<ImageAt>, ReviewError> {
    let Some(pod) = object.pointer(spec) else {
        return Err(ReviewError(format!("the object has no pod spec at {spec}")));
    };
    let mut out = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(items) = pod.get(list) else { continue };
        let items = items.as_array().ok_or_else(|| ReviewError(format!("{spec}/{list} is not a list")))?;
        for (i, c) in items.iter().enumerate() {
            let pointer = format!("{spec}/{list}/{i}/image");
            let image = c
                .get("image")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ReviewError(format!("{pointer} is missing or not a string")))?;
            let container = c.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
            out.push(ImageAt { pointer, container, image: image.to_owned() });
        }
    }
    Ok(out)
}

/// The annotations of the pod metadata at `metadata`.
pub fn annotations(object: &Value, metadata: &str) -> Vec<(String, String)> {
    object
        .pointer(&format!("{metadata}/annotations"))
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned())).collect())
        .unwrap_or_default()
}

/// Annotations that would switch node enforcement off for the pod, or tamper with it: tollgate's NRI
/// toleration and NRI's own `required-plugins.noderesource.dev` annotations. Only a kubelet's mirror
/// pods (its static pods, see [`is_mirror_pod_by_kubelet`]) and the pods the cluster policy names
/// under `enforcementOverrides` may carry them.
pub fn enforcement_overrides(annotations: &[(String, String)]) -> Vec<String> {
    annotations
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(crate::manifests::TOLERATION) || k.starts_with(crate::manifests::REQUIRED_PLUGINS))
        .cloned()
        .collect()
}

/// The object's name: `request.name`, or the object's `metadata.name` (a generated name is there by
/// the time validating webhooks run).
pub fn object_name(r: &Request) -> String {
    if !r.name.is_empty() {
        return r.name.clone();
    }
    r.object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// Whether the request is a kubelet (`system:node:NAME`) creating the mirror pod of one of its static
/// pods (annotation `kubernetes.io/config.mirror`): the static control-plane pods that start before the
/// NRI plugin and need the toleration.
pub fn is_mirror_pod_by_kubelet(r: &Request) -> bool {
    r.kind == "Pod"
        && r.group.is_empty()
        && r.user.starts_with("system:node:")
        && r.object.pointer("/metadata/annotations/kubernetes.io~1config.mirror").is_some()
}

/// The answer to one review.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    /// Whether the object is admitted.
    pub allowed: bool,
    /// For a denial: the message the client sees.
    pub message: String,
    /// Warnings shown to the client (warn mode).
    pub warnings: Vec<String>,
    /// Audit annotations (`key` → value) recorded by the API server.
    pub audit: Vec<(String, String)>,
    /// JSON patch operations (mutating webhook).
    pub patch: Vec<Value>,
}

/// The AdmissionReview response for `uid`.
pub fn respond(uid: &str, a: &Answer) -> Vec<u8> {
    let mut response = json!({"uid": uid, "allowed": a.allowed});
    if !a.allowed {
        response["status"] = json!({"code": 403, "reason": "Forbidden", "message": a.message});
    }
    if !a.warnings.is_empty() {
        response["warnings"] = json!(a.warnings);
    }
    if !a.audit.is_empty() {
        let map: serde_json::Map<String, Value> = a.audit.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        response["auditAnnotations"] = Value::Object(map);
    }
    if a.allowed && !a.patch.is_empty() {
        let patch = serde_json::to_vec(&a.patch).unwrap_or_default();
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}).to_string().into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn review(object: Value, kind: (&str, &str)) -> Vec<u8> {
        json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": {
            "uid": "u-1", "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
            "namespace": "shop", "operation": "CREATE", "object": object}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn every_container_list_of_pods_and_templates_is_read_with_its_pointer() {
        let pod = json!({"spec": {"initContainers": [{"name": "i", "image": "r/i:1"}],
            "containers": [{"name": "a", "image": "r/a:1"}, {"name": "b", "image": "r/b@sha256:00"}],
            "ephemeralContainers": [{"name": "e", "image": "r/e:1"}]}});
        let r = parse(&review(pod.clone(), ("", "Pod"))).unwrap();
        assert_eq!((r.uid.as_str(), r.namespace.as_str(), r.kind.as_str()), ("u-1", "shop", "Pod"));
        let (spec, _) = pod_paths(&r.group, &r.kind).unwrap();
        let got: Vec<(String, String)> =
            images(&r.object, spec).unwrap().into_iter().map(|i| (i.pointer, i.image)).collect();
        assert_eq!(
            got,
            [
                ("/spec/initContainers/0/image".into(), "r/i:1".into()),
                ("/spec/containers/0/image".into(), "r/a:1".into()),
                ("/spec/containers/1/image".into(), "r/b@sha256:00".into()),
                ("/spec/ephemeralContainers/0/image".into(), "r/e:1".into()),
            ]
        );
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"annotations": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "r/c:1"}]}}}}}});
        let (spec, meta) = pod_paths("batch", "CronJob").unwrap();
        assert_eq!(images(&cron, spec).unwrap()[0].pointer, "/spec/jobTemplate/spec/template/spec/containers/0/image");
        assert_eq!(annotations(&cron, meta), [("a".to_owned(), "b".to_owned())]);
        assert_eq!(pod_paths("", "ConfigMap"), None);
    }

    #[test]
    fn malformed_reviews_are_refused_with_the_reason() {
        for (body, why) in [
            (b"{".to_vec(), "not a JSON AdmissionReview"),
            (
                br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#.to_vec(),
                "is not admission.k8s.io/v1",
            ),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), "has no request"),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"}}}"#
                    .to_vec(),
                "request.uid",
            ),
            (vec![b' '; MAX_REVIEW_BYTES + 1], "larger than"),
        ] {
            let e = parse(&body).unwrap_err();
            assert!(e.0.contains(why), "{e}");
        }
        let pod = json!({"spec": {"containers": [{"name": "a"}]}});
        assert!(images(&pod, "/spec").unwrap_err().0.contains("/spec/containers/0/image is missing"));
        assert!(images(&json!({}), "/spec").is_err(), "no pod spec is not an empty list of images");
    }

    #[test]
    fn enforcement_overrides_are_found_by_key() {
        let a = vec![
            ("nri.tollgate.dev/tolerate-missing-plugins".to_owned(), "true".to_owned()),
            ("required-plugins.noderesource.dev/container.c".to_owned(), "[]".to_owned()),
            ("app".to_owned(), "x".to_owned()),
        ];
        assert_eq!(enforcement_overrides(&a).len(), 2);
    }

    #[test]
    fn responses_carry_the_uid_the_status_warnings_and_a_patch_only_when_allowed() {
        let deny = Answer { allowed: false, message: "no".into(), ..Answer::default() };
        let v: Value = serde_json::from_slice(&respond("u", &deny)).unwrap();
        assert_eq!(v["response"]["uid"], "u");
        assert_eq!(v["response"]["status"]["message"], "no");
        let patch = vec![json!({"op": "replace", "path": "/spec/containers/0/image", "value": "r/a:1@sha256:00"})];
        let allow = Answer { allowed: true, warnings: vec!["w".into()], patch, ..Answer::default() };
        let v: Value = serde_json::from_slice(&respond("u", &allow)).unwrap();
        assert_eq!(v["response"]["warnings"][0], "w");
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(v["response"]["patch"].as_str().unwrap()).unwrap();
        assert!(String::from_utf8(decoded).unwrap().contains("@sha256:00"));
    }
}
