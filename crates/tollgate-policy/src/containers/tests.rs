use std::path::PathBuf;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/containers-image/signature/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn err(json: &str) -> String {
    match Policy::parse(json.as_bytes(), "p.json") {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn containers_image_fixture_loads_as_is_and_round_trips() {
    let p = Policy::parse(&fixture("policy.json"), "policy.json").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.default, [Requirement::Reject]);
    let docker = &p.transports["docker"];
    assert_eq!(docker.len(), 14);
    assert!(matches!(
        &docker["example.com/sigstore/key-path-example"][0],
        Requirement::SigstoreSigned { keys, signed_identity: SignedIdentity::MatchRepository, .. }
            if keys == &[KeySource::Path("/keys/public-key".into())]
    ));
    assert!(matches!(
        &docker["example.com/sigstore/key-data-example"][0],
        Requirement::SigstoreSigned { keys, signed_identity: SignedIdentity::MatchRepoDigestOrExact, .. }
            if keys == &[KeySource::Data(b"nonsense".to_vec())]
    ));
    assert!(matches!(
        &docker["private-mirror:5000/vendor-mirror"][0],
        Requirement::SignedBy { signed_identity: SignedIdentity::RemapIdentity { .. }, .. }
    ));
    let again = Policy::parse(p.to_json().as_bytes(), "again").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, p);
}

#[test]
fn strict_parsing_rejects_the_whole_file() {
    assert!(err(r#"{"default":[{"type":"reject"}],"extra":1}"#).contains("unknown field `extra`"));
    assert!(err(r#"{"default":[{"type":"reject","keyPath":"/x"}]}"#).contains("unknown field `keyPath`"));
    assert!(err(r#"{"default":[{"type":"bogus"}]}"#).contains("unknown variant `bogus`"));
    assert!(err(r#"{"default":[{"type":"reject"}],"default":[]}"#).contains("duplicate field `default`"));
    assert!(
        err(r#"{"default":[{"type":"reject"}],"transports":{"docker":{"a.com":[{"type":"reject"}],"a.com":[{"type":"reject"}]}}}"#)
            .contains("duplicate key \"a.com\"")
    );
    assert_eq!(
        err(r#"{"default":[]}"#),
        "policy p.json: default: must list at least one requirement, e.g. [{\"type\": \"reject\"}]"
    );
    assert!(err(r#"{"transports":{}}"#).contains("missing field `default`"));
}

#[test]
fn sigstore_signed_combinations_are_checked() {
    let base = |body: &str| format!(r#"{{"default":[{{"type":"sigstoreSigned",{body}}}]}}"#);
    let cases = [
        (
            r#""keyPath":"/k","fulcio":{"caPath":"/ca","oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyPath":"/r""#,
            "policy p.json: default[0]: sigstoreSigned takes only one of public keys, fulcio and pki",
        ),
        (
            r#""fulcio":{"caPath":"/ca","oidcIssuer":"i","subjectEmail":"e"},"pki":{"caRootsPath":"/r","subjectEmail":"e"},"rekorPublicKeyPath":"/r""#,
            "policy p.json: default[0]: sigstoreSigned takes only one of public keys, fulcio and pki",
        ),
        (
            r#""pki":{"caRootsPath":"/r","subjectEmail":"e"},"rekorPublicKeyPath":"/r""#,
            "policy p.json: default[0]: pki cannot be combined with Rekor public keys",
        ),
        (
            r#""signedIdentity":{"type":"matchExact"}"#,
            "policy p.json: default[0]: sigstoreSigned needs one of keyPath, keyPaths, keyData, keyDatas, fulcio or pki",
        ),
        (
            r#""keyPath":"/a","keyData":"YQ==""#,
            "policy p.json: default[0]: use only one of keyPath, keyPaths, keyData, keyDatas",
        ),
        (
            r#""fulcio":{"caPath":"/ca","oidcIssuer":"i","subjectEmail":"e"}"#,
            "policy p.json: default[0]: fulcio requires a Rekor public key (rekorPublicKeyPath or rekorPublicKeyData)",
        ),
        (
            r#""fulcio":{"caPath":"/ca","subjectEmail":"e"},"rekorPublicKeyPath":"/r""#,
            "policy p.json: default[0]: fulcio.oidcIssuer is required",
        ),
        (r#""keyData":"%%%""#, "policy p.json: default[0]: keyData is not valid base64: Invalid symbol 37, offset 0."),
        (r#""keyPaths":[]"#, "policy p.json: default[0]: keyPaths must not be empty"),
    ];
    for (body, want) in cases {
        assert_eq!(err(&base(body)), want, "{body}");
    }
}

#[test]
fn signed_by_key_types_are_validated_but_load() {
    let ok = r#"{"default":[{"type":"signedBy","keyType":"GPGKeys","keyData":"bm9uc2Vuc2U="}]}"#;
    assert!(Policy::parse(ok.as_bytes(), "p").is_ok());
    assert_eq!(
        err(r#"{"default":[{"type":"signedBy","keyType":"PGP","keyPath":"/k"}]}"#),
        "policy p.json: default[0]: unknown keyType \"PGP\"; expected one of GPGKeys, signedByGPGKeys, X509Certificates, signedByX509CAs"
    );
}
