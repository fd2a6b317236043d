//! The files in examples/ work as their README says.

use std::path::PathBuf;

use crate::util::{mode, tollgate};

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name).display().to_string()
}

#[test]
fn catalog_override_example_replaces_etcd_and_pins_pause() {
    let r = tollgate(&[
        "images",
        "list",
        "--kubernetes-version",
        "v1.32.9",
        "--pinned",
        "--catalog",
        &example("catalog-override.json"),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(
        "registry.k8s.io/etcd:3.5.21-0@sha256:d58c035df557080a27387d687092e3fc2b64c6d0e3162dc51453a115f847d121\n"
    ));
    assert!(r.stdout.contains(
        "registry.k8s.io/pause:3.9@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097\n"
    ));
    assert!(r.stderr.contains("no digest known for kube-proxy of v1.32.9"), "{}", r.stderr);
}

#[test]
fn components_example_installs_under_a_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let r = tollgate(&["components", "install", &example("components.yaml"), "--root", root]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let patch =
        std::fs::read_to_string(dir.path().join("etc/kubernetes/tollgate-patches/kube-apiserver+json.json")).unwrap();
    assert!(patch.contains("kube-apiserver:v1.32.9@sha256:6df11cc2"));
    assert_eq!(std::fs::read_to_string(dir.path().join("etc/tollgate/README")).unwrap(), "tollgate was here\n");
    assert_eq!(mode(&dir.path().join("etc/tollgate/README")), 0o640);
}
