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

/// `examples/signed-layout` verifies with `examples/policy.json`. Set
/// TOLLGATE_UPDATE_EXAMPLES=1 to regenerate the layout and key.
#[test]
fn signed_layout_example_verifies_and_a_tampered_copy_does_not() {
    let layout = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/signed-layout");
    if std::env::var_os("TOLLGATE_UPDATE_EXAMPLES").is_some() {
        let _ = std::fs::remove_dir_all(&layout);
        std::fs::create_dir_all(&layout).unwrap();
        let key = tollgate_testkit::sign::TestKey::generate();
        std::fs::write(layout.with_extension("pub"), key.public_pem()).unwrap();
        tollgate_testkit::image::write_signed_layout(&layout, "v1", &key, "registry.example.com/demo/hello");
    }
    let policy = example("policy.json");
    let r = tollgate(&["verify", &format!("oci:{}:v1", example("signed-layout")), "--policy", &policy]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("ALLOWED oci:"), "{}", r.stdout);
    // Each fact once: the scope on the verdict's line, the verifying key on the requirement's.
    assert!(r.stdout.contains("\n  allowed by transports.oci[\"\"]\n  ok   sigstoreSigned ("), "{}", r.stdout);
    assert_eq!(r.stdout.matches("verified with key").count(), 1, "{}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);

    // Copy, then swap the signed image's layer for other bytes under the same name.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("layout");
    copy_dir(&layout, &copy);
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(copy.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
    std::fs::write(copy.join("blobs/sha256").join(&manifest_digest), b"{}").unwrap();
    let r = tollgate(&["verify", &format!("oci:{}:v1", copy.display()), "--policy", &policy]);
    assert!(r.one_line_error(1).contains("the layout was modified"), "{}", r.stderr);

    // An unsigned image in the same place is denied.
    let unsigned = dir.path().join("unsigned");
    copy_dir(&layout, &unsigned);
    let mut index = index.clone();
    index["manifests"].as_array_mut().unwrap().truncate(1);
    std::fs::write(unsigned.join("index.json"), index.to_string()).unwrap();
    let r = tollgate(&["verify", &format!("oci:{}:v1", unsigned.display()), "--policy", &policy]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("a signature was required, but no signature exists"), "{}", r.stdout);
    assert!(r.stdout.contains("\n  denied by transports.oci[\"\"]\n  FAIL sigstoreSigned"), "{}", r.stdout);
    assert_eq!(r.stdout.matches("no signature exists").count(), 1, "{}", r.stdout);
}

/// `examples/bundle` verifies with `tollgate verify-bundle`: a file, its
/// sigstore bundle in the Rekor v2 form (a `dsse` 0.0.2 entry timed by an
/// RFC 3161 timestamp), the trusted root of the stand-in log and timestamp
/// authority, and the signer's key. TOLLGATE_UPDATE_EXAMPLES=1 regenerates it.
#[test]
fn bundle_example_verifies_and_another_file_does_not() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle");
    if std::env::var_os("TOLLGATE_UPDATE_EXAMPLES").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        let artifact = b"tollgate example artifact: sign releases, verify before use\n";
        std::fs::write(dir.join("artifact.txt"), artifact).unwrap();
        let log = tollgate_testkit::bundle::TestLog::with_tsa();
        let key = tollgate_testkit::sign::TestKey::generate();
        let digest = tollgate_oci::Digest::sha256_of(artifact);
        let bundle = log.dsse_bundle_v2(&key, "artifact.txt", &digest, "20260101000000Z");
        let pretty =
            |b: &[u8]| serde_json::to_string_pretty(&serde_json::from_slice::<serde_json::Value>(b).unwrap()).unwrap();
        std::fs::write(dir.join("artifact.txt.sigstore.json"), pretty(&bundle) + "\n").unwrap();
        std::fs::write(dir.join("trusted_root.json"), pretty(log.trusted_root().as_bytes()) + "\n").unwrap();
        std::fs::write(dir.join("signer.pub"), key.public_pem()).unwrap();
    }
    let verify = |artifact: &str| {
        tollgate(&[
            "verify-bundle",
            "--bundle",
            &example("bundle/artifact.txt.sigstore.json"),
            "--trusted-root",
            &example("bundle/trusted_root.json"),
            "--key",
            &example("bundle/signer.pub"),
            artifact,
        ])
    };
    let r = verify(&example("bundle/artifact.txt"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("timestamped at 2026-01-01T00:00:00Z"), "{}", r.stdout);
    let r = verify(&example("bundle/signer.pub"));
    assert!(r.one_line_error(1).contains("the artifact is not a subject of the in-toto statement"), "{}", r.stderr);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn node_config_example_spells_out_every_default_and_the_unit_runs_serve_with_it() {
    let text = std::fs::read_to_string(example("node/config.yaml")).unwrap();
    let parsed = tollgate_node::config::NodeConfig::parse(text.as_bytes(), "examples/node/config.yaml").unwrap();
    assert_eq!(parsed, tollgate_node::config::NodeConfig::default(), "the example documents the defaults");
    let unit = std::fs::read_to_string(example("node/tollgate.service")).unwrap();
    assert!(unit.contains("\nExecStart=/usr/local/bin/tollgate serve --config /etc/tollgate/config.yaml\n"));
    assert!(unit.contains(&format!("\nRuntimeDirectory={}\n", "tollgate")), "the socket's directory");
    let r = tollgate(&["serve", "--help"]);
    assert!(r.stdout.contains("--config <FILE>") && r.stdout.contains("SIGHUP"), "{}", r.stdout);
    let nri = std::fs::read_to_string(example("node/tollgate-nri.service")).unwrap();
    assert!(nri.contains("\nExecStart=/usr/local/bin/tollgate nri --config /etc/tollgate/config.yaml\n"));
    assert!(nri.contains("ReadWritePaths=/run/nri /run/tollgate"), "it reaches both sockets");
}

/// The example node policy loads, and its exemptions are exactly the digests
/// the catalog publishes for v1.36.2's seven images: never a stranger, none missing.
#[test]
fn the_example_node_policy_exempts_exactly_the_catalogs_digests() {
    let policy = example("node/policy.yaml");
    let r = tollgate(&["policy", "check", &policy]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("valid (enforce mode, 7 exemption(s))"), "{}", r.stdout);
    let listed = tollgate(&["images", "list", "--kubernetes-version", "v1.36.2", "--pinned"]).stdout;
    let mut pinned: Vec<&str> = listed.lines().filter_map(|l| l.split('@').nth(1)).collect();
    let text = std::fs::read_to_string(&policy).unwrap();
    let mut exempt: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("- digest: ")).collect();
    pinned.sort_unstable();
    exempt.sort_unstable();
    assert_eq!(exempt, pinned);
}

/// A README line matches a printed line; `…` in the README stands for any text (a cut digest, a path).
fn shown_as(readme: &str, printed: &str) -> bool {
    let mut parts = readme.split('…');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = printed.strip_prefix(first) else { return false };
    for part in parts {
        match rest.find(part) {
            Some(i) if !part.is_empty() => rest = &rest[i + part.len()..],
            _ if part.is_empty() => rest = "",
            _ => return false,
        }
    }
    rest.is_empty()
}

/// The README's "Five minutes" shows what its commands print (stdout, then stderr), run as written from the
/// repository root (`kubeadm patches` in a scratch directory, as its `./patches` is relative). `kubeadm audit`
/// reads the node's /etc/kubernetes and is not run here; its lines are the audit tests' subject.
#[test]
fn readme_shows_what_its_commands_print() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme.find("## Five minutes").unwrap()..];
    let section = &section[..section.find("\nAnd on a containerd node").unwrap()];
    let lines: Vec<&str> = section.lines().collect();
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(command) = line.strip_prefix("$ tollgate ") else { continue };
        if command.starts_with("kubeadm audit") {
            continue;
        }
        let expected: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| !l.starts_with("$ ") && !l.starts_with("# ") && !l.starts_with("```"))
            .copied()
            .collect();
        let expected: Vec<&str> =
            expected.iter().rev().skip_while(|l| l.is_empty()).collect::<Vec<_>>().into_iter().rev().copied().collect();
        let cwd = if command.contains("./patches") { scratch.path().to_path_buf() } else { root.clone() };
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(command.split_whitespace())
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
        let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let printed: Vec<&str> = printed.lines().collect();
        assert_eq!(printed.len(), expected.len(), "`tollgate {command}` prints:\n{}", printed.join("\n"));
        for (want, got) in expected.iter().zip(&printed) {
            assert!(shown_as(want, got), "`tollgate {command}`: the README shows\n{want}\nbut it prints\n{got}");
        }
        checked += 1;
    }
    assert_eq!(checked, 3, "images list, kubeadm patches and verify are checked");
}

/// `examples/kubernetes/compile.yaml` compiles, and both files it gives pass `policy check`.
#[test]
fn the_kubernetes_compile_example_compiles_into_policies_that_load() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("compiled");
    let r = tollgate(&["policy", "compile", &example("kubernetes/compile.yaml"), "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for file in ["policy.yaml", "namespace.payments.yaml"] {
        let check = tollgate(&["policy", "check", out.join(file).to_str().unwrap()]);
        assert_eq!(check.code, 0, "{file}: {}", check.stderr);
    }
    let cluster = std::fs::read_to_string(out.join("policy.yaml")).unwrap();
    assert!(cluster.contains("registry.example.com/team") && cluster.contains("registry.k8s.io"), "{cluster}");
}
