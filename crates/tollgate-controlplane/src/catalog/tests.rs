use std::path::PathBuf;

use super::*;

fn v(s: &str) -> KubernetesVersion {
    match KubernetesVersion::parse(s) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

fn shared_facts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/facts/catalog")
}

#[test]
fn embedded_catalog_parses_and_has_every_published_version() {
    let cat = Catalog::embedded();
    assert_eq!(cat.versions().count(), 72);
    assert_eq!(cat.versions().next(), Some(v("v1.26.11")));
    assert_eq!(cat.versions().last(), Some(v("v1.36.4")));
}

/// The supported releases (1.33 to 1.36) come from shared/facts/catalog's
/// catalog-1.33-plus.json: every digest in the catalog for them is one that
/// file records for that image and tag, and what it does not know stays unpinned.
#[test]
fn supported_releases_carry_exactly_the_recorded_digests() {
    let path = shared_facts().join("catalog-1.33-plus.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let facts: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let recorded = |image: &str, tag: &str| {
        facts
            .iter()
            .find(|r| r["image"] == image && r["tag"] == tag)
            .and_then(|r| r["digest"].as_str())
            .filter(|d| d.len() == "sha256:".len() + 64)
            .map(str::to_owned)
    };
    let cat = Catalog::embedded();
    let mut pinned = 0;
    let mut gaps = Vec::new();
    for version in cat.versions().filter(|v| v.at_least(1, 33)) {
        let imgs = cat.images(version, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(imgs.provenance, Provenance::Catalog, "{version}");
        for i in &imgs.images {
            let want = recorded(&i.image.repository(), i.image.tag().unwrap_or_default());
            assert_eq!(i.digest.as_ref().map(ToString::to_string), want, "{version} {}", i.component.name());
            match want {
                Some(_) => pinned += 1,
                None => gaps.push(format!("{version} {}", i.component.name())),
            }
        }
    }
    assert_eq!(pinned, 20 * 7 - gaps.len());
    // The known gaps (shared/facts/catalog/README.md): etcd 3.6.6-0 for 1.35, kube-proxy v1.36.3 and v1.36.4.
    assert_eq!(gaps.len(), 7, "{gaps:?}");
    assert!(
        gaps.iter().all(|g| g.ends_with(" etcd") && g.starts_with("v1.35.") || g.ends_with(" kube-proxy")),
        "{gaps:?}"
    );
}

/// Every digest that `shared/facts/catalog` records is in the embedded catalog,
/// for the same version and image. (The etcd pins there are Constellation's
/// choice of tag; ours follow kubeadm's default tag, so etcd is compared
/// only where the tags agree.)
#[test]
fn embedded_digests_match_the_published_facts() {
    let cat = Catalog::embedded();
    let mut compared = 0;
    for file in ["constellation-pinned-images-history.json", "constellation-pinned-images.json"] {
        let path = shared_facts().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let facts: BTreeMap<String, BTreeMap<String, String>> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        for (version, images) in facts {
            let ours = cat.images(v(&version), None).unwrap_or_else(|e| panic!("{e}"));
            for (name, reference) in images {
                let component = Component::from_name(&name).unwrap_or_else(|| panic!("unknown {name}"));
                let got = ours.get(component).map(|i| i.pinned_reference().to_string());
                let tag_follows_kubeadm = matches!(component, Component::Etcd | Component::Coredns | Component::Pause);
                if tag_follows_kubeadm && got.as_deref() != Some(reference.as_str()) {
                    let tag_in_facts = reference.split('@').next().unwrap_or_default().rsplit(':').next();
                    assert_ne!(ours.get(component).map(|i| i.image.tag()), Some(tag_in_facts), "{version} {name}");
                    continue;
                }
                assert_eq!(got.as_deref(), Some(reference.as_str()), "{version} {name}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 52 * 3, "compared only {compared}");
}

#[test]
fn v1_32_9_matches_kubeadm_defaults_and_records_unknown_digests() {
    let imgs = Catalog::embedded().images(v("v1.32.9"), None).unwrap_or_else(|e| panic!("{e}"));
    let list: Vec<String> = imgs.images.iter().map(|i| i.image.to_string()).collect();
    assert_eq!(
        list,
        [
            "registry.k8s.io/kube-apiserver:v1.32.9",
            "registry.k8s.io/kube-controller-manager:v1.32.9",
            "registry.k8s.io/kube-scheduler:v1.32.9",
            "registry.k8s.io/kube-proxy:v1.32.9",
            "registry.k8s.io/coredns/coredns:v1.11.3",
            "registry.k8s.io/pause:3.10",
            "registry.k8s.io/etcd:3.5.16-0",
        ]
    );
    let unpinned: Vec<&str> = imgs.unpinned().map(|i| i.component.name()).collect();
    assert_eq!(unpinned, ["kube-proxy"], "pause 3.10's published digest is known");
    assert_eq!(imgs.provenance, Provenance::Catalog);
}

#[test]
fn custom_repository_follows_kubeadm_coredns_rule_and_keeps_digests() {
    let imgs =
        Catalog::embedded().images(v("v1.32.9"), Some("mirror.example.com/k8s")).unwrap_or_else(|e| panic!("{e}"));
    let dns = imgs.get(Component::Coredns).map(|i| i.pinned_reference().to_string());
    assert_eq!(
        dns.as_deref(),
        Some(
            "mirror.example.com/k8s/coredns:v1.11.3@sha256:9caabbf6238b189a65d0d6e6ac138de60d6a1c419e5a341fbbb7c78382559c6e"
        )
    );
}

#[test]
fn versions_without_pins_fall_back_to_kubeadm_defaults() {
    let imgs = Catalog::embedded().images(v("v1.37.1"), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(imgs.provenance, Provenance::KubeadmDefaults);
    assert_eq!(imgs.get(Component::Etcd).map(|i| i.image.to_string()).as_deref(), Some("registry.k8s.io/etcd:3.7.0-0"));
    assert_eq!(imgs.unpinned().count(), 7);
    let pinned = Catalog::embedded().images(v("v1.34.2"), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pinned.get(Component::Etcd).map(|i| i.image.to_string()).as_deref(),
        Some("registry.k8s.io/etcd:3.6.5-0")
    );
    assert_eq!(pinned.unpinned().count(), 0, "1.34.2 is fully pinned");
}

#[test]
fn unknown_version_error_says_what_to_do() {
    let err = Catalog::embedded().images(v("v1.40.0"), None).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "Kubernetes version v1.40.0 is not in the catalog (it covers v1.26.11 to v1.36.4 and kubeadm defaults for \
             1.26, 1.27, 1.28, 1.29, 1.30, 1.31, 1.32, 1.33, 1.34, 1.35, 1.36, 1.37); pass a catalog that has it with \
             --catalog, or resolve it with `tollgate images lock --kubernetes-version v1.40.0`"
        )
    );
}

#[test]
fn user_catalog_overrides_single_images_and_adds_versions() {
    let user = br#"{"apiVersion":"tollgate.dev/v1alpha1","kind":"ImageCatalog","versions":{
        "v1.32.9":{"images":{"etcd":{"tag":"3.5.21-0","digest":"sha256:d58c035df557080a27387d687092e3fc2b64c6d0e3162dc51453a115f847d121"}}},
        "v1.33.1":{"images":{"kube-apiserver":{"tag":"v1.33.1","digest":null}}}}}"#;
    let mut cat = Catalog::embedded();
    cat.merge(Catalog::parse(user, "user.json").unwrap_or_else(|e| panic!("{e}")));
    let imgs = cat.images(v("v1.32.9"), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        imgs.get(Component::Etcd).map(|i| i.image.to_string()).as_deref(),
        Some("registry.k8s.io/etcd:3.5.21-0")
    );
    assert!(imgs.get(Component::KubeApiserver).and_then(|i| i.digest.as_ref()).is_some());
    let new = cat.images(v("v1.33.1"), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(new.provenance, Provenance::Catalog);
    assert_eq!(
        new.get(Component::Coredns).map(|i| i.image.to_string()).as_deref(),
        Some("registry.k8s.io/coredns/coredns:v1.12.0")
    );
}

#[test]
fn malformed_catalogs_are_refused_with_the_entry_named() {
    let cases: [(&[u8], &str); 6] = [
        (b"{", "catalog c.json: EOF while parsing an object at line 1 column 1"),
        (
            br#"{"apiVersion":"v1","kind":"ConfigMap"}"#,
            "catalog c.json: expected apiVersion \"tollgate.dev/v1alpha1\" and kind \"ImageCatalog\", found \"v1\" and \"ConfigMap\"",
        ),
        (
            br#"{"apiVersion":"tollgate.dev/v1alpha1","kind":"ImageCatalog","versions":{"v1.32.9":{"images":{"etcd":{"tag":"3.5.16-0"}}}}}"#,
            "catalog c.json: missing field `digest` at line 1 column 118",
        ),
        (
            br#"{"apiVersion":"tollgate.dev/v1alpha1","kind":"ImageCatalog","versions":{"v1.32.9":{"images":{"etcd":{"tag":"-bad","digest":null}}}}}"#,
            "catalog c.json: versions.v1.32.9.images.etcd: invalid tag \"-bad\"",
        ),
        (
            br#"{"apiVersion":"tollgate.dev/v1alpha1","kind":"ImageCatalog","versions":{"v1.32.9":{"images":{"etcd":{"tag":"1","digest":"sha256:00"}}}}}"#,
            "catalog c.json: invalid digest \"sha256:00\": sha256 needs 64 hex characters, found 2 at line 1 column 132",
        ),
        (
            br#"{"apiVersion":"tollgate.dev/v1alpha1","kind":"ImageCatalog","versions":{"latest":{"images":{}}}}"#,
            "catalog c.json: invalid Kubernetes version \"latest\": expected vMAJOR.MINOR.PATCH such as v1.32.9 (labels like 'stable' need network access and are not accepted) at line 1 column 80",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(Catalog::parse(input, "c.json").err().map(|e| e.to_string()).as_deref(), Some(want));
    }
    let unknown_image = br#"{"apiVersion":"tollgate.dev/v1alpha1","kind":"ImageCatalog","versions":{"v1.32.9":{"images":{"kube-foo":{"tag":"1","digest":null}}}}}"#;
    let msg = Catalog::parse(unknown_image, "c.json").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("unknown variant `kube-foo`, expected one of `kube-apiserver`"), "{msg}");
}

#[test]
fn json_round_trips() {
    let cat = Catalog::embedded();
    let again = Catalog::parse(cat.to_json().as_bytes(), "round-trip").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, cat);
}
