use std::path::PathBuf;

use super::*;

fn manifests() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/kubeadm-v1.32");
    ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
        .iter()
        .map(|n| {
            let name = format!("{n}.yaml");
            let bytes = std::fs::read(dir.join(&name)).unwrap_or_else(|e| panic!("{e}"));
            (name, bytes)
        })
        .collect()
}

fn pin(ms: &mut [(String, Vec<u8>)], file: &str, from: &str, to: &str) {
    for (name, bytes) in ms.iter_mut() {
        if name == file {
            let text = String::from_utf8_lossy(bytes).replace(from, to);
            *bytes = text.into_bytes();
        }
    }
}

fn kinds(r: &Report) -> Vec<(String, FindingKind)> {
    r.findings.iter().map(|f| (f.container.clone().unwrap_or_default(), f.kind)).collect()
}

#[test]
fn unpinned_kubeadm_manifests_fail_and_name_every_container() {
    let r = audit(&manifests(), &Catalog::embedded(), None);
    assert!(r.failed());
    assert_eq!(r.kubernetes_version.map(|v| v.to_string()).as_deref(), Some("v1.32.9"));
    assert_eq!(r.version_source, "tag of the kube-apiserver image in kube-apiserver.yaml");
    assert_eq!(r.findings.len(), 4);
    assert!(r.findings.iter().all(|f| f.kind == FindingKind::NotPinned && f.severity == Severity::Error));
    let etcd = r.findings.iter().find(|f| f.container.as_deref() == Some("etcd"));
    assert_eq!(
        etcd.and_then(|f| f.expected.as_deref()),
        Some("registry.k8s.io/etcd:3.5.16-0@sha256:c6a9d11cc5c04b114ccdef39a9265eeef818e3d02f5359be035ae784097fdec5")
    );
}

#[test]
fn fully_pinned_manifests_pass() {
    let cat = Catalog::embedded();
    let mut ms = manifests();
    let v = KubernetesVersion::parse("v1.32.9").unwrap_or_else(|e| panic!("{e}"));
    let imgs = cat.images(v, None).unwrap_or_else(|e| panic!("{e}"));
    for c in Component::STATIC_PODS {
        let img = imgs.get(c).unwrap_or_else(|| panic!("{c:?}"));
        let from = format!("image: {}\n", img.image);
        let to = format!("image: {}\n", img.pinned_reference());
        pin(&mut ms, &format!("{}.yaml", c.name()), &from, &to);
    }
    let r = audit(&ms, &cat, None);
    assert!(!r.failed(), "{:?}", r.findings);
    assert!(r.findings.iter().all(|f| f.kind == FindingKind::Pinned), "{:?}", kinds(&r));
}

#[test]
fn a_foreign_digest_is_a_mismatch() {
    let mut ms = manifests();
    let evil = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    pin(
        &mut ms,
        "kube-scheduler.yaml",
        "image: registry.k8s.io/kube-scheduler:v1.32.9\n",
        &format!("image: registry.k8s.io/kube-scheduler:v1.32.9@{evil}\n"),
    );
    let r = audit(&ms, &Catalog::embedded(), None);
    let f = r.findings.iter().find(|f| f.container.as_deref() == Some("kube-scheduler"));
    assert_eq!(f.map(|f| f.kind), Some(FindingKind::DigestMismatch));
    assert_eq!(
        f.map(|f| f.message.as_str()),
        Some(
            "pinned to sha256:0000000000000000000000000000000000000000000000000000000000000000, but the catalog expects \
             sha256:50c49520dbd0e8b4076b6a5c77d8014df09ea3d59a73e8bafd2678d51ebb92d5 for registry.k8s.io/kube-scheduler:v1.32.9; \
             regenerate the patches and re-run kubeadm"
        )
    );
}

#[test]
fn garbage_and_non_pods_are_findings_not_crashes() {
    let ms = vec![
        ("broken.yaml".to_owned(), b"spec: [unclosed".to_vec()),
        ("deploy.yaml".to_owned(), b"kind: Deployment\n".to_vec()),
        ("huge.yaml".to_owned(), vec![b' '; MAX_MANIFEST_BYTES + 1]),
        ("bad-ref.yaml".to_owned(), b"kind: Pod\nspec:\n  containers:\n  - name: x\n    image: a//b\n".to_vec()),
    ];
    let r = audit(&ms, &Catalog::embedded(), None);
    let got: Vec<FindingKind> = r.findings.iter().map(|f| f.kind).collect();
    assert_eq!(
        got,
        [
            FindingKind::Unreadable,
            FindingKind::Unreadable,
            FindingKind::Unreadable,
            FindingKind::BadReference,
            FindingKind::VersionUnknown
        ]
    );
    assert!(r.failed());
}

#[test]
fn given_version_overrides_detection() {
    let v = KubernetesVersion::parse("v1.31.13").unwrap_or_else(|e| panic!("{e}"));
    let r = audit(&manifests(), &Catalog::embedded(), Some(v));
    assert_eq!(r.version_source, "given with --kubernetes-version");
    let api = r.findings.iter().find(|f| f.container.as_deref() == Some("kube-apiserver"));
    assert!(
        api.and_then(|f| f.expected.as_deref())
            .is_some_and(|e| e.starts_with("registry.k8s.io/kube-apiserver:v1.31.13@"))
    );
}
