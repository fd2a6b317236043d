use crate::util::tollgate;

#[test]
fn list_prints_kubeadm_order_for_v1_32_9() {
    let r = tollgate(&["images", "list", "--kubernetes-version", "v1.32.9"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    eqnice!(
        "registry.k8s.io/kube-apiserver:v1.32.9
registry.k8s.io/kube-controller-manager:v1.32.9
registry.k8s.io/kube-scheduler:v1.32.9
registry.k8s.io/kube-proxy:v1.32.9
registry.k8s.io/coredns/coredns:v1.11.3
registry.k8s.io/pause:3.10
registry.k8s.io/etcd:3.5.16-0
",
        r.stdout
    );
    assert_eq!(r.stderr, "");
}

#[test]
fn list_pinned_names_what_has_no_digest() {
    let r = tollgate(&["images", "list", "--kubernetes-version", "1.30.14", "--pinned"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with(
        "registry.k8s.io/kube-apiserver:v1.30.14@sha256:be079fe85d6b6804b89ab4fdd6a35cd56341e99ea809881cfe37962f440dc1be\n"
    ));
    assert!(r.stdout.contains(
        "registry.k8s.io/pause:3.9@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097\n"
    ));
    eqnice!(
        "tollgate: warning: no digest known for kube-proxy of v1.30.14: printed by tag; resolve with `tollgate images lock --kubernetes-version v1.30.14`\n",
        r.stderr
    );
}

#[test]
fn list_json_and_mirror_repository() {
    let r = tollgate(&[
        "images",
        "list",
        "--kubernetes-version",
        "v1.32.9",
        "--image-repository",
        "mirror.example.com:5000/k8s",
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0);
    let j = r.json();
    assert_eq!(j["kubernetesVersion"], "v1.32.9");
    assert_eq!(j["provenance"], "catalog");
    let images = j["images"].as_array().unwrap();
    assert_eq!(images.len(), 7);
    assert_eq!(images[4]["component"], "coredns");
    assert_eq!(images[4]["image"], "mirror.example.com:5000/k8s/coredns:v1.11.3");
    assert_eq!(
        images[4]["pinned"],
        "mirror.example.com:5000/k8s/coredns:v1.11.3@sha256:9caabbf6238b189a65d0d6e6ac138de60d6a1c419e5a341fbbb7c78382559c6e"
    );
    assert_eq!(images[3]["component"], "kube-proxy");
    assert!(images[3]["digest"].is_null());
    assert!(images[3]["pinned"].is_null());
}

#[test]
fn unknown_version_is_one_clear_line_and_exit_2() {
    let r = tollgate(&["images", "list", "--kubernetes-version", "v1.40.1"]);
    let line = r.one_line_error(2);
    assert!(line.starts_with("tollgate: Kubernetes version v1.40.1 is not in the catalog"), "{line}");
    let r = tollgate(&["images", "list", "--kubernetes-version", "stable"]);
    assert!(r.one_line_error(2).contains("invalid Kubernetes version \"stable\""));
}

#[test]
fn malformed_catalog_names_the_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.json");
    std::fs::write(&f, r#"{"apiVersion":"tollgate.dev/v1alpha1","kind":"ImageCatalog","versions":{"v1.32.9":{"images":{"etcd":{"tag":"x"}}}}}"#).unwrap();
    let r = tollgate(&["images", "list", "--kubernetes-version", "v1.32.9", "--catalog", f.to_str().unwrap()]);
    let line = r.one_line_error(2);
    assert_eq!(line, format!("tollgate: catalog {}: missing field `digest` at line 1 column 111", f.display()));
    let r = tollgate(&["images", "list", "--kubernetes-version", "v1.32.9", "--catalog", "/nonexistent/c.json"]);
    assert_eq!(
        r.one_line_error(2),
        "tollgate: cannot read /nonexistent/c.json: No such file or directory (os error 2)"
    );
}

#[test]
fn help_teaches_and_lists_exit_codes() {
    let r = tollgate(&["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("tollgate kubeadm patches --kubernetes-version v1.36.2 --out ./patches"));
    assert!(r.stdout.contains("3  undecidable for now"));
    let r = tollgate(&["images", "lock", "--help"]);
    let help = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("the tag has moved: lock refuses unless --accept-changes"), "{help}");
    let r = tollgate(&["completions", "bash"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("_tollgate()"));
    let r = tollgate(&["images", "list"]);
    assert_eq!(r.code, 2, "missing required flag is a usage error");
}

/// `tollgate man` prints the manual page; `--out` writes one page per command into a directory that exists,
/// and creates none.
#[test]
fn man_pages_cover_every_command() {
    let r = tollgate(&["man"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(".TH tollgate 1") && r.stdout.contains(".SH NAME"), "{}", r.stdout);
    let dir = tempfile::tempdir().unwrap();
    let r = tollgate(&["man", "--out", dir.path().to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let page = std::fs::read_to_string(dir.path().join("tollgate-images-lock.1")).unwrap();
    assert!(page.contains(".TH tollgate-images-lock 1") && page.contains("\\-\\-accept\\-changes"), "{page}");
    assert_eq!(crate::util::mode(&dir.path().join("tollgate.1")), 0o644);
    // One page per command, the groups included: as many as `--help` lists.
    let written = r.json()["written"].as_array().unwrap().len();
    for page in ["tollgate.1", "tollgate-harden.1", "tollgate-harden-revert.1", "tollgate-verify-bundle.1"] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), written);
    let missing = dir.path().join("no/man1");
    let r = tollgate(&["man", "--out", missing.to_str().unwrap()]);
    let e = r.one_line_error(2);
    assert!(e.contains("no such directory; create it first"), "{e}");
    assert!(!dir.path().join("no").exists(), "a typo creates no directory");
}

/// `tollgate --version` and `tollgate version` name the embedded catalog's range.
#[test]
fn version_names_the_catalogs_range() {
    let r = crate::util::tollgate(&["--version"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout.trim(),
        format!(
            "tollgate {} (catalog: 72 releases v1.26.11–v1.36.4, kubeadm defaults 1.26–1.37)",
            env!("CARGO_PKG_VERSION")
        )
    );
    let j = crate::util::tollgate(&["version", "-o", "json"]).json();
    assert_eq!((j["catalog"]["first"].as_str(), j["catalog"]["last"].as_str()), (Some("v1.26.11"), Some("v1.36.4")));
    assert_eq!(j["catalog"]["defaultMinors"].as_array().map(Vec::len), Some(12));
}

/// Every supported release is pinned offline, so `kubeadm patches` works for it.
#[test]
fn supported_releases_pin_offline() {
    for v in ["v1.33.5", "v1.34.3", "v1.36.2"] {
        let r = crate::util::tollgate(&["images", "list", "--kubernetes-version", v, "--pinned"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout.lines().filter(|l| l.contains("@sha256:")).count(), 7, "{v}: {}", r.stdout);
        assert!(r.stderr.is_empty(), "{v}: {}", r.stderr);
    }
    let r = crate::util::tollgate(&["images", "list", "--kubernetes-version", "v1.35.4", "--pinned"]);
    assert!(r.stderr.contains("no digest known for etcd of v1.35.4"), "the one known gap: {}", r.stderr);
}

/// Every flag that names a registry and prefix takes `HOST[:PORT][/PREFIX]`:
/// a URL scheme is refused under the flag the user typed, with the spelling
/// to use, and never blamed on a flag they did not pass.
#[test]
fn a_scheme_in_a_registry_flag_is_refused_under_that_flag_with_the_fix() {
    let cases: [(&[&str], &str, &str); 5] = [
        (&["images", "lock", "--kubernetes-version", "v1.36.2"], "--registry", "https://127.0.0.1:5000/k8s"),
        (&["images", "list", "--kubernetes-version", "v1.36.2"], "--image-repository", "docker://127.0.0.1:5000/k8s"),
        (
            &["kubeadm", "patches", "--kubernetes-version", "v1.36.2", "--out", "/nonexistent"],
            "--image-repository",
            "https://127.0.0.1:5000/k8s",
        ),
        (&["mirror", "--kubernetes-version", "v1.36.2", "--dry-run"], "--to", "http://127.0.0.1:5000/k8s"),
        (
            &["mirror", "--kubernetes-version", "v1.36.2", "--dry-run", "--to", "127.0.0.1:5000"],
            "--from",
            "https://127.0.0.1:5001/k8s",
        ),
    ];
    for (args, flag, value) in cases {
        let mut all = args.to_vec();
        all.extend([flag, value]);
        let r = tollgate(&all);
        assert_eq!(r.code, 2, "{all:?}: {}", r.stderr);
        let scheme = value.split("://").next().unwrap();
        assert!(r.stderr.contains(&format!("for '{flag} ")), "{all:?}: {}", r.stderr);
        assert!(r.stderr.contains(&format!("without {scheme}://: 127.0.0.1:500")), "{all:?}: {}", r.stderr);
        assert!(!r.stderr.contains("--image-repository") || flag == "--image-repository", "{all:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "nothing is done");
    }
}

/// `tollgate manifests --out DIR` writes each part as a file (mode 0644), creating DIR when its parent
/// exists and refusing a typo'd parent; without --out it prints one YAML stream.
#[test]
fn manifests_are_written_as_files_or_printed() {
    let r = tollgate(&["manifests"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("apiVersion: v1\nkind: Namespace\n"), "{}", r.stdout);
    assert_eq!(r.stdout.matches("kind: CustomResourceDefinition").count(), 3);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("manifests");
    let r = tollgate(&["manifests", "--out", out.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["written"].as_array().unwrap().len(), 2);
    let crds = std::fs::read_to_string(out.join("10-crds.yaml")).unwrap();
    assert!(crds.contains("name: clusterimagepolicies.tollgate.dev") && crds.contains("x-kubernetes-validations"));
    assert_eq!(crate::util::mode(&out.join("00-namespace.yaml")), 0o644);
    // --policies adds the admission policy generated from the ClusterImagePolicies; a bad one is named.
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/kubernetes/policies.yaml");
    let r = tollgate(&["manifests", "--policies", examples, "--static-admission"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.matches("name: tollgate-images.static.k8s.io").count(), 2, "{}", r.stdout);
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "kind: Namespace\n---\napiVersion: tollgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: x}\nspec: {images: [r.example], mode: audit, authorities: [{static: {action: pass}}]}\n").unwrap();
    let r = tollgate(&["manifests", "--policies", bad.to_str().unwrap()]);
    let e = r.one_line_error(2);
    assert!(e.contains("bad.yaml: document 2: ") && e.contains("mode is enforce or warn"), "{e}");
    assert_eq!(tollgate(&["manifests", "--static-admission"]).code, 2, "--static-admission needs --policies");
    let typo = dir.path().join("no/such/manifests");
    let r = tollgate(&["manifests", "--out", typo.to_str().unwrap()]);
    assert!(r.one_line_error(2).contains("does not exist; create it first"), "{}", r.stderr);
    assert!(!dir.path().join("no").exists());
}
