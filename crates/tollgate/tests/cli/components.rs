use std::io::Write;

use base64::Engine as _;

use crate::util::{mode, tollgate};

fn sha256_hex(b: &[u8]) -> String {
    tollgate_oci::Digest::sha256_of(b).to_string()
}

fn targz(name: &str, content: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    tar.append_data(&mut h, name, content).unwrap();
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    gz.finish().unwrap()
}

#[test]
fn installs_data_file_and_archive_entries_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let bin = dir.path().join("kubeadm");
    std::fs::write(&bin, b"#!/bin/true\n").unwrap();
    let archive = dir.path().join("cni.tgz");
    std::fs::write(&archive, targz("bridge", b"ELF")).unwrap();
    let patch = base64::engine::general_purpose::STANDARD
        .encode(br#"[{"op":"replace","path":"/spec/containers/0/image","value":"x"}]"#);
    let list = serde_json::json!([
        {"url": format!("data:application/json;base64,{patch}"), "hash": "", "install_path": "/etc/kubernetes/patches/etcd+json.json"},
        {"url": format!("file://{}", bin.display()), "hash": sha256_hex(b"#!/bin/true\n"), "install_path": "/usr/local/bin/kubeadm"},
        {"url": format!("file://{}", archive.display()), "hash": sha256_hex(&std::fs::read(&archive).unwrap()), "install_path": "/opt/cni/bin", "extract": true},
    ]);
    let list_path = dir.path().join("components.json");
    std::fs::write(&list_path, list.to_string()).unwrap();
    let args = ["components", "install", list_path.to_str().unwrap(), "--root", root.to_str().unwrap()];
    let r = tollgate(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mode(&root.join("etc/kubernetes/patches/etcd+json.json")), 0o644);
    assert_eq!(mode(&root.join("usr/local/bin/kubeadm")), 0o755);
    assert_eq!(std::fs::read(root.join("opt/cni/bin/bridge")).unwrap(), b"ELF");
    let again = tollgate(&args);
    assert_eq!(again.code, 0);
    assert!(!again.stdout.contains("installed"), "second run must change nothing:\n{}", again.stdout);
}

#[test]
fn hash_mismatch_exits_1_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let bin = dir.path().join("kubelet");
    std::fs::write(&bin, b"tampered").unwrap();
    let list = serde_json::json!([
        {"url": "data:,ok", "install_path": "/first"},
        {"url": format!("file://{}", bin.display()), "hash": sha256_hex(b"original"), "install_path": "/usr/bin/kubelet"},
    ]);
    let list_path = dir.path().join("c.json");
    std::fs::write(&list_path, list.to_string()).unwrap();
    let r = tollgate(&["components", "install", list_path.to_str().unwrap(), "--root", root.to_str().unwrap()]);
    let line = r.one_line_error(1);
    assert!(
        line.starts_with(&format!(
            "tollgate: component 1 (file://{}): digest mismatch: expected {}",
            bin.display(),
            sha256_hex(b"original")
        )),
        "{line}"
    );
    assert!(!root.exists(), "the valid first entry must not be written either");
}

#[test]
fn archive_traversal_exits_1_and_names_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Vec::new();
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..9].copy_from_slice(b"../escape");
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    raw.extend_from_slice(h.as_bytes());
    raw.extend_from_slice(&[b'x'; 512]);
    raw.extend_from_slice(&[0; 1024]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let evil = dir.path().join("evil.tgz");
    std::fs::write(&evil, gz.finish().unwrap()).unwrap();
    let list = serde_json::json!([{"url": format!("file://{}", evil.display()), "hash": sha256_hex(&std::fs::read(&evil).unwrap()), "install_path": "/opt/x", "extract": true}]);
    let list_path = dir.path().join("c.json");
    std::fs::write(&list_path, list.to_string()).unwrap();
    let r = tollgate(&[
        "components",
        "install",
        list_path.to_str().unwrap(),
        "--root",
        dir.path().join("root").to_str().unwrap(),
    ]);
    assert!(r.one_line_error(1).ends_with("archive entry \"../escape\": path escapes the install directory"));
    assert!(!dir.path().join("escape").exists());
}

#[test]
fn missing_hash_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let list_path = dir.path().join("c.json");
    std::fs::write(&list_path, r#"[{"url":"https://dl.k8s.io/kubeadm","install_path":"/usr/bin/kubeadm"}]"#).unwrap();
    let r = tollgate(&["components", "install", list_path.to_str().unwrap(), "--root", "/nonexistent"]);
    assert_eq!(
        r.one_line_error(2),
        "tollgate: component 0 (https://dl.k8s.io/kubeadm): a sha256 hash is required for non-data: URLs; add \"hash\": \"sha256:<hex>\""
    );
}

#[test]
fn unreachable_https_source_is_transient_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let port = tollgate_testkit::DEAD_PORT;
    let list_path = dir.path().join("c.json");
    let list = serde_json::json!([{"url": format!("https://127.0.0.1:{port}/kubeadm?sig=secret"), "hash": sha256_hex(b"x"), "install_path": "/usr/bin/kubeadm"}]);
    std::fs::write(&list_path, list.to_string()).unwrap();
    let r = tollgate(&[
        "components",
        "install",
        list_path.to_str().unwrap(),
        "--root",
        dir.path().join("r").to_str().unwrap(),
    ]);
    let line = r.one_line_error(3);
    assert!(
        line.starts_with(&format!("tollgate: component 0 (https://127.0.0.1:{port}/kubeadm): cannot reach 127.0.0.1")),
        "{line}"
    );
    assert!(!line.contains("secret"), "query strings may hold credentials: {line}");
    assert!(!line.contains("registry"), "a download server is not a registry: {line}");
}
