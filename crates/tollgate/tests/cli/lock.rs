//! `images lock` against a real docker-registry on 127.0.0.1.

use tollgate_oci::Reference;
use tollgate_testkit::{Registry, image};

use crate::util::tollgate;

/// Pushes the seven images kubeadm v1.37.0 (in the catalog by its default tags only) uses under `<registry>/k8s` and returns
/// (component, digest) pairs.
pub(crate) fn push_v1_37_0(reg: &Registry) -> Vec<(String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reg.client();
        let mut out = Vec::new();
        for (name, tag) in [
            ("kube-apiserver", "v1.37.0"),
            ("kube-controller-manager", "v1.37.0"),
            ("kube-scheduler", "v1.37.0"),
            ("kube-proxy", "v1.37.0"),
            ("coredns", "v1.14.6"),
            ("pause", "3.10.2"),
            ("etcd", "3.7.0-0"),
        ] {
            let repo = Reference::parse_normalized(&format!("{}/k8s/{name}", reg.addr)).unwrap();
            let built = if name == "kube-apiserver" {
                image::push_index(&client, &repo, tag, name.as_bytes()).await
            } else {
                image::push_image(&client, &repo, Some(tag), "amd64", name.as_bytes()).await
            };
            out.push((name.to_owned(), built.digest.to_string()));
        }
        out
    })
}

fn lock(reg: &Registry, out: &std::path::Path, extra: &[&str]) -> crate::util::Run {
    let mirror = format!("{}/k8s", reg.addr);
    let mut args = vec![
        "images",
        "lock",
        "--kubernetes-version",
        "v1.37.0",
        "--registry",
        &mirror,
        "--insecure-registry",
        &reg.addr,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    tollgate(&args)
}

#[test]
fn lock_resolves_every_image_writes_a_catalog_and_patches_use_it() {
    let reg = Registry::start();
    let pushed = push_v1_37_0(&reg);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("catalog.json");
    let r = lock(&reg, &out, &["-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    let images = j["images"].as_array().unwrap();
    assert_eq!(images.len(), 7);
    for (name, digest) in &pushed {
        let got = images.iter().find(|i| i["component"] == name.as_str()).unwrap();
        assert_eq!(got["digest"], digest.as_str(), "{name}");
    }
    let api = images.iter().find(|i| i["component"] == "kube-apiserver").unwrap();
    assert_eq!(api["mediaType"], "application/vnd.oci.image.index.v1+json", "multi-arch resolves to the index");

    let listed = tollgate(&[
        "images",
        "list",
        "--kubernetes-version",
        "v1.37.0",
        "--pinned",
        "--catalog",
        out.to_str().unwrap(),
    ]);
    assert_eq!(listed.code, 0);
    assert_eq!(listed.stderr, "", "every image is pinned now");
    assert!(listed.stdout.contains(&format!("registry.k8s.io/etcd:3.7.0-0@{}", pushed[6].1)));

    let patches = dir.path().join("patches");
    let p = tollgate(&[
        "kubeadm",
        "patches",
        "--kubernetes-version",
        "v1.37.0",
        "--out",
        patches.to_str().unwrap(),
        "--catalog",
        out.to_str().unwrap(),
    ]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let etcd = std::fs::read_to_string(patches.join("etcd+json.json")).unwrap();
    assert!(etcd.contains(&pushed[6].1));

    // Locking again changes nothing; the file is rewritten with the same content.
    let before = std::fs::read(&out).unwrap();
    assert_eq!(lock(&reg, &out, &[]).code, 0);
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

#[test]
fn a_moved_tag_is_refused_unless_accepted() {
    let reg = Registry::start();
    push_v1_37_0(&reg);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("catalog.json");
    assert_eq!(lock(&reg, &out, &[]).code, 0);
    // Someone re-pushes etcd under the same tag.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let moved = rt.block_on(async {
        let repo = Reference::parse_normalized(&format!("{}/k8s/etcd", reg.addr)).unwrap();
        image::push_image(&reg.client(), &repo, Some("3.7.0-0"), "amd64", b"backdoored etcd").await
    });
    let before = std::fs::read(&out).unwrap();
    let r = lock(&reg, &out, &[]);
    let line = r.one_line_error(1);
    assert!(line.contains("tag moved for 1 image(s); nothing was written"), "{line}");
    assert!(line.contains(&format!("/k8s/etcd:3.7.0-0 now serves {}", moved.digest)), "{line}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let r = lock(&reg, &out, &["--accept-changes"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("(changed: tag moved)"));
}

#[test]
fn lock_through_bearer_token_auth() {
    let reg = Registry::start_with_token_auth();
    push_v1_37_0(&reg);
    let dir = tempfile::tempdir().unwrap();
    let r = lock(&reg, &dir.path().join("c.json"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("wrote 7 pins"));
}

#[test]
fn missing_images_and_unreachable_registries_write_nothing() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.json");
    let r = lock(&reg, &out, &[]);
    let line = r.one_line_error(2);
    assert!(line.starts_with("tollgate: 7 of 7 images could not be resolved; nothing was written: "), "{line}");
    assert!(line.contains("not found in registry"), "{line}");
    assert!(!out.exists());

    let port = tollgate_testkit::DEAD_PORT;
    let addr = format!("127.0.0.1:{port}");
    let r = tollgate(&[
        "images",
        "lock",
        "--kubernetes-version",
        "v1.37.0",
        "--registry",
        &addr,
        "--insecure-registry",
        &addr,
        "--out",
        out.to_str().unwrap(),
    ]);
    // One cause, said once, for all the images it hit (it was repeated seven times in a 2.5 KB line).
    let line = r.one_line_error(3);
    assert_eq!(line.matches("is unreachable").count(), 1, "{line}");
    assert!(
        line.contains(&format!("registry {addr} is unreachable")) && line.ends_with("(for all 7 images)"),
        "{line}"
    );
    assert!(!out.exists());
}

#[test]
fn plain_http_needs_an_explicit_insecure_registry() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let mirror = format!("{}/k8s", reg.addr);
    let r = tollgate(&[
        "images",
        "lock",
        "--kubernetes-version",
        "v1.37.0",
        "--registry",
        &mirror,
        "--out",
        dir.path().join("c.json").to_str().unwrap(),
    ]);
    let line = r.one_line_error(2);
    assert!(
        line.contains("TLS with registry") && line.contains("--insecure-registry"),
        "TLS to a plain-HTTP registry fails: {line}"
    );
}
