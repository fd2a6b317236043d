use super::*;

const CONTAINERS: &str = r#"{"default":[{"type":"reject"}],"transports":{"docker":{
    "registry.example.com/team":[{"type":"sigstoreSigned","keyPath":"/keys/team.pub","signedIdentity":{"type":"matchRepository"}}],
    "registry.example.com/other":[{"type":"sigstoreSigned","keyPath":"/keys/team.pub","signedIdentity":{"type":"matchRepository"}}],
    "quay.io/keyless":[{"type":"sigstoreSigned","fulcio":{"caPath":"/ca.pem","oidcIssuer":"https://issuer","subjectEmail":"a@b.c"},"rekorPublicKeyPath":"/rekor.pub"}],
    "example.com/open":[{"type":"insecureAcceptAnything"}]}}}"#;

const NATIVE: &str = "
apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
mode: warn
trust:
  team:
    publicKeys: [{path: /keys/team.pub}]
exemptions:
  - digest: sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97
    reason: kube-apiserver v1.32.9
  - repository: registry.k8s.io/pause
    reason: sandbox image
default:
  - type: reject
transports:
  docker:
    registry.example.com/team:
      - type: sigstoreSigned
        trust: team
        signedIdentity: {type: matchRepository}
      - type: digestAllowlist
        digests: [sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855]
";

#[test]
fn containers_policies_import_and_export_losslessly() {
    let original = Policy::parse(CONTAINERS.as_bytes(), "c.json").unwrap_or_else(|e| panic!("{e}"));
    let yaml = import(&original, "c.json").unwrap_or_else(|e| panic!("{e}"));
    assert!(yaml.contains("trust-1:") && !yaml.contains("trust-3:"), "identical key material is shared:\n{yaml}");
    let native = parse(yaml.as_bytes(), "n.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(native, original);
    let json = export(&native, "n.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Policy::parse(json.as_bytes(), "again").ok(), Some(original));
}

#[test]
fn native_extensions_parse_and_refuse_export() {
    let p = parse(NATIVE.as_bytes(), "n.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.mode, Mode::Warn);
    assert_eq!(p.exemptions.len(), 2);
    assert!(matches!(p.transports["docker"]["registry.example.com/team"][1], Requirement::DigestAllowlist { .. }));
    assert_eq!(
        export(&p, "n.yaml").err().map(|e| e.to_string()).as_deref(),
        Some(
            "cannot convert n.yaml: mode: warn; exemptions[0] (digest sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97); \
             exemptions[1] (repository registry.k8s.io/pause); transports.docker[\"registry.example.com/team\"][1]: digestAllowlist; \
             containers-policy.json cannot express these: keep the native policy for tollgate, or remove them to export"
        )
    );
    assert!(is_native(NATIVE.as_bytes()));
    assert!(!is_native(CONTAINERS.as_bytes()));
    assert_eq!(parse_any(NATIVE.as_bytes(), "n").ok(), Some(p));
}

#[test]
fn gpg_rules_cannot_be_imported() {
    let p = Policy::parse(br#"{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k"}]}"#, "c")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        import(&p, "c").err().map(|e| e.to_string()).as_deref(),
        Some(
            "cannot convert c: default[0]: signedBy (GPG) is not supported by tollgate; tollgate cannot enforce these: remove them, or keep this policy for containers/image"
        )
    );
}

#[test]
fn native_mistakes_are_named() {
    let cases = [
        (NATIVE.replace("trust: team", "trust: missing"), "unknown trust \"missing\"; define it under trust:"),
        (
            NATIVE.replace("reason: sandbox image", "reason: ' '"),
            "exemptions[1]: reason must say why the image is exempt",
        ),
        (NATIVE.replace("repository: registry.k8s.io/pause", "repository: pause"), "must be a fully expanded name"),
        (NATIVE.replace("kind: ImagePolicy", "kind: Policy"), "expected tollgate.dev/v1alpha1/ImagePolicy"),
        (NATIVE.replace("mode: warn", "mode: loud"), "unknown variant `loud`"),
        (
            NATIVE.replace("publicKeys: [{path: /keys/team.pub}]", "publicKeys: [{path: /a, pem: b}]"),
            "exactly one of path and pem",
        ),
    ];
    for (text, want) in cases {
        let got = parse(text.as_bytes(), "n.yaml").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(got.contains(want), "{got}\n  wanted {want}");
    }
}

#[test]
fn per_platform_round_trips_natively_and_refuses_export() {
    let text = NATIVE.replace(
        "        signedIdentity: {type: matchRepository}\n",
        "        signedIdentity: {type: matchRepository}\n        perPlatform: true\n",
    );
    let p = parse(text.as_bytes(), "n.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(p.transports["docker"]["registry.example.com/team"][0], Requirement::PerPlatform(_)));
    let again = parse(import(&p, "n.yaml").unwrap_or_else(|e| panic!("{e}")).as_bytes(), "again")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, p);
    let err = export(&p, "n.yaml").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("[0]: perPlatform signatures"), "{err}");
}

#[test]
fn sigstore_bundle_requirements_need_one_signer_round_trip_and_refuse_export() {
    let base = "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault:\n  - type: sigstoreBundle\n    trustedRoot: {path: /etc/tollgate/trusted_root.json}\n";
    let keyless = format!(
        "{base}    identity: {{san: \"https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main\", issuer: \"https://token.actions.githubusercontent.com\"}}\n"
    );
    let p = parse(keyless.as_bytes(), "b.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&p.default[0], Requirement::SigstoreBundle { identity: Some(_), public_key: None, .. }));
    let again = parse(import(&p, "b.yaml").unwrap_or_else(|e| panic!("{e}")).as_bytes(), "again")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, p);
    assert!(export(&p, "b.yaml").err().map(|e| e.to_string()).unwrap_or_default().contains("sigstoreBundle"));
    let both = format!("{keyless}    publicKey: {{path: /k.pub}}\n");
    for bad in [base.to_owned(), both] {
        let err = parse(bad.as_bytes(), "b.yaml").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("exactly one of publicKey and identity"), "{err}");
    }
}

/// Regression: a YAML typo was reported as "expected value at line 1 column 1"
/// (the JSON parser's complaint), which names neither the problem nor the line.
#[test]
fn yaml_errors_are_reported_by_the_yaml_parser_with_their_position() {
    let err = |bytes: &[u8], name: &str| match parse_any(bytes, name) {
        Ok(_) => panic!("{name} parsed"),
        Err(e) => e.to_string(),
    };
    let broken = "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault: [{type: reject}\n";
    let e = err(broken.as_bytes(), "p.yaml");
    assert!(e.starts_with("policy p.yaml: not valid YAML: ") && e.contains("line 4"), "{e}");
    assert!(!e.contains("expected value at line 1 column 1"), "{e}");
    let no_api = err(b"default: [{type: reject}]\n", "p.yaml");
    assert!(no_api.contains("needs `apiVersion: tollgate.dev/v1alpha1`"), "{no_api}");
    let json = err(b"{\"default\": [{\"type\": \"nope\"}]}", "p.json");
    assert!(json.contains("nope"), "JSON is still parsed as containers-policy.json: {json}");
}

/// The built-in `kubernetes-release` trust: Kubernetes' release identity
/// against the embedded public-good trusted root, loaded offline; and a
/// `sigstore` trust against another trusted root replaces it.
#[test]
fn the_kubernetes_release_trust_is_built_in_and_replaceable() {
    let yaml = "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault: [{type: reject}]\ntransports:\n  docker:\n    registry.k8s.io:\n      - type: sigstoreSigned\n        trust: kubernetes-release\n        signedIdentity: {type: matchRepository}\n";
    let p = parse(yaml.as_bytes(), "p.yaml").unwrap_or_else(|e| panic!("{e}"));
    let Some(Requirement::SigstoreSigned { fulcio: Some(f), rekor_public_keys, .. }) =
        p.transports.get("docker").and_then(|t| t.get("registry.k8s.io")).and_then(|r| r.first())
    else {
        panic!("{p:?}")
    };
    assert_eq!(
        (f.oidc_issuer.as_str(), f.subject_email.as_str()),
        (KUBERNETES_RELEASE_ISSUER, KUBERNETES_RELEASE_SIGNER)
    );
    assert_eq!(f.ca, KeySource::Data(PUBLIC_GOOD_TRUSTED_ROOT.to_vec()));
    assert_eq!(rekor_public_keys.len(), 1);
    let loaded = crate::LoadedPolicy::load(p, "p.yaml", &|_| Err("no files".into()));
    assert!(loaded.is_ok(), "the embedded root loads offline: {:?}", loaded.err());

    let own = yaml.replace(
        "kind: ImagePolicy\n",
        "kind: ImagePolicy\ntrust:\n  kubernetes-release:\n    sigstore:\n      trustedRoot: {path: /etc/tollgate/trusted_root.json}\n      oidcIssuer: https://accounts.google.com\n      subjectEmail: krel-trust@k8s-releng-prod.iam.gserviceaccount.com\n",
    );
    let p = parse(own.as_bytes(), "p.yaml").unwrap_or_else(|e| panic!("{e}"));
    let Some(Requirement::SigstoreSigned { fulcio: Some(f), .. }) =
        p.transports.get("docker").and_then(|t| t.get("registry.k8s.io")).and_then(|r| r.first())
    else {
        panic!("{p:?}")
    };
    assert_eq!(f.ca, KeySource::Path("/etc/tollgate/trusted_root.json".into()));
    let exported = export(&parse(yaml.as_bytes(), "p.yaml").unwrap_or_else(|e| panic!("{e}")), "p.yaml");
    assert!(
        exported.is_err_and(|e| e.to_string().contains("a trusted_root.json as trust")),
        "containers/image cannot read a trusted root as caData"
    );
    let unknown = parse(yaml.replace("kubernetes-release", "nope").as_bytes(), "p.yaml").map(|_| ()).err();
    assert!(unknown.is_some_and(|e| e.to_string().contains("built in: kubernetes-release")));
}

#[test]
fn enforcement_overrides_name_pods_and_refuse_export() {
    let text = NATIVE.replace(
        "default:\n",
        "enforcementOverrides:\n  - {namespace: kube-system, name: etcd-*, reason: starts before the NRI plugin}\n  - {namespace: infra, name: agent, reason: node agent}\ndefault:\n",
    );
    let p = parse(text.as_bytes(), "n.yaml").unwrap_or_else(|e| panic!("{e}"));
    let [etcd, agent] = &p.enforcement_overrides[..] else { panic!("{:?}", p.enforcement_overrides) };
    assert!(etcd.matches("kube-system", "etcd-node1") && etcd.matches("kube-system", "etcd-"));
    assert!(!etcd.matches("default", "etcd-node1") && !etcd.matches("kube-system", "etc"));
    assert!(agent.matches("infra", "agent") && !agent.matches("infra", "agent-2") && !agent.matches("infra", ""));
    let err = export(&p, "n.yaml").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("enforcementOverrides[0] (kube-system/etcd-*); enforcementOverrides[1] (infra/agent)"),
        "{err}"
    );
    let back = import(&p, "n.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parse(back.as_bytes(), "back").ok().as_ref(), Some(&p), "{back}");
    for (entry, want) in [
        (
            "{namespace: Kube-System, name: x, reason: r}",
            "namespace \"Kube-System\" is not a Kubernetes namespace name",
        ),
        ("{namespace: a.b, name: x, reason: r}", "namespace \"a.b\" is not a Kubernetes namespace name"),
        ("{namespace: ns, name: '*', reason: r}", "name \"*\" is not a pod name, or a prefix"),
        ("{namespace: ns, name: 'a*b', reason: r}", "name \"a*b\" is not a pod name"),
        ("{namespace: ns, name: x, reason: ' '}", "enforcementOverrides[0]: reason must say why"),
        ("{namespace: ns, name: x}", "missing field `reason`"),
    ] {
        let text = NATIVE.replace("default:\n", &format!("enforcementOverrides: [{entry}]\ndefault:\n"));
        let got = parse(text.as_bytes(), "n.yaml").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(got.contains(want), "{entry}: {got}\n  wanted {want}");
    }
}
