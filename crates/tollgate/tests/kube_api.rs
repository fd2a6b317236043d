//! The real API server harness (etcd + kube-apiserver from ../shared/peers)
//! that the cluster layer's tests build on: it comes up, authenticates the
//! admin token, refuses anonymous requests, and enforces RBAC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tollgate_testkit::kube::{ADMIN_TOKEN, KubeApi};

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
}
