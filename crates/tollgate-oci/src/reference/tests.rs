use proptest::prelude::*;

use super::*;

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn norm(s: &str) -> Result<String, ReferenceError> {
    Reference::parse_normalized(s).map(|r| r.with_default_tag().to_string())
}

#[test]
fn normalizes_like_docker() {
    let cases = [
        ("busybox", "docker.io/library/busybox:latest"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox:1.36", "docker.io/library/busybox:1.36"),
        ("user/repo", "docker.io/user/repo:latest"),
        ("localhost/repo", "localhost/repo:latest"),
        ("localhost:5000/repo:tag", "localhost:5000/repo:tag"),
        ("127.0.0.1:5000/a/b/c:v1", "127.0.0.1:5000/a/b/c:v1"),
        ("[::1]:5000/repo", "[::1]:5000/repo:latest"),
        ("registry.k8s.io/kube-apiserver:v1.32.9", "registry.k8s.io/kube-apiserver:v1.32.9"),
        ("Foo.Example.com/repo", "Foo.Example.com/repo:latest"),
        ("a__b/c-----d/e.f_g", "docker.io/a__b/c-----d/e.f_g:latest"),
    ];
    for (input, want) in cases {
        assert_eq!(norm(input).as_deref(), Ok(want), "input {input}");
    }
}

#[test]
fn digest_only_gets_no_default_tag() {
    let r = Reference::parse_normalized(&format!("busybox@{D}")).ok().map(Reference::with_default_tag);
    assert_eq!(r.map(|r| r.to_string()), Some(format!("docker.io/library/busybox@{D}")));
}

#[test]
fn tag_and_digest_both_kept() {
    let r = Reference::parse_normalized(&format!("registry.k8s.io/etcd:3.5.16-0@{D}"));
    let r = r.ok();
    assert_eq!(r.as_ref().and_then(|r| r.tag()), Some("3.5.16-0"));
    assert_eq!(r.as_ref().and_then(|r| r.digest()).map(|d| d.to_string()), Some(D.to_owned()));
    assert_eq!(r.map(|r| r.familiar()), Some(format!("registry.k8s.io/etcd:3.5.16-0@{D}")));
}

#[test]
fn familiar_strips_docker_hub_prefixes() {
    let r = Reference::parse_normalized("docker.io/library/busybox:1").ok();
    assert_eq!(r.map(|r| r.familiar()).as_deref(), Some("busybox:1"));
}

#[test]
fn moves_to_mirror_registry() {
    let r = Reference::parse_normalized(&format!("registry.k8s.io/coredns/coredns:v1.11.3@{D}")).ok();
    let m = r.and_then(|r| r.with_registry("mirror.local:5000/k8s/").ok());
    assert_eq!(m.map(|m| m.to_string()), Some(format!("mirror.local:5000/k8s/coredns/coredns:v1.11.3@{D}")));
}

#[test]
fn rejects_with_precise_errors() {
    let long = format!("a/{}", "b".repeat(260));
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "invalid image reference: it is empty"),
        ("Busybox".into(), "invalid image reference \"Busybox\": repository name must be lowercase"),
        (
            "busybox:".into(),
            "invalid image reference \"busybox:\": tag \"\" must be 1 to 128 characters of [A-Za-z0-9_.-] and must not start with '.' or '-'",
        ),
        (
            "busybox:-x".into(),
            "invalid image reference \"busybox:-x\": tag \"-x\" must be 1 to 128 characters of [A-Za-z0-9_.-] and must not start with '.' or '-'",
        ),
        (
            "a/-b".into(),
            "invalid image reference \"a/-b\": repository path component \"-b\" must be lowercase letters and digits separated by '.', '_', '__' or '-'",
        ),
        (
            "a//b".into(),
            "invalid image reference \"a//b\": repository path component \"\" must be lowercase letters and digits separated by '.', '_', '__' or '-'",
        ),
        (
            "a___b".into(),
            "invalid image reference \"a___b\": repository path component \"a___b\" must be lowercase letters and digits separated by '.', '_', '__' or '-'",
        ),
        ("-bad.io/x".into(), "invalid image reference \"-bad.io/x\": registry \"-bad.io\" is not a valid host[:port]"),
        (
            "host.io:abc/x".into(),
            "invalid image reference \"host.io:abc/x\": registry \"host.io:abc\" is not a valid host[:port]",
        ),
        (
            "busybox@sha256:abc".into(),
            "invalid image reference \"busybox@sha256:abc\": invalid digest \"sha256:abc\": sha256 needs 64 hex characters, found 3",
        ),
        (
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            "invalid image reference \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\": a 64-character hex string is an image ID, not a repository name",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(Reference::parse_normalized(&input).err().map(|e| e.to_string()).as_deref(), Some(want), "{input}");
    }
    assert!(matches!(Reference::parse_normalized(&long), Err(ReferenceError::NameTooLong { len: 262, .. })));
    assert!(matches!(
        Reference::parse_normalized(&format!("busybox:{}", "t".repeat(129))),
        Err(ReferenceError::InvalidTag { .. })
    ));
    assert!(Reference::parse_normalized(&format!("busybox:{}", "t".repeat(128))).is_ok());
}

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}(([._]|__|-{1,3})[a-z0-9]{1,6}){0,2}"
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("docker.io".to_owned()),
        Just("localhost".to_owned()),
        "[a-z][a-z0-9-]{0,8}[a-z0-9]\\.[a-z]{2,6}",
        "[a-z]{1,8}\\.[a-z]{2,4}:[0-9]{1,5}",
        "127\\.0\\.0\\.1:[0-9]{2,5}",
    ]
}

fn canonical() -> impl Strategy<Value = String> {
    (
        domain(),
        proptest::collection::vec(component(), 2..4),
        proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        proptest::option::of("[0-9a-f]{64}"),
    )
        .prop_map(|(d, path, tag, hex)| {
            let mut s = format!("{d}/{}", path.join("/"));
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(h) = hex {
                s.push_str("@sha256:");
                s.push_str(&h);
            }
            s
        })
}

proptest! {
    /// A fully qualified reference prints back exactly as it was written.
    #[test]
    fn canonical_round_trips(s in canonical()) {
        let r = Reference::parse_normalized(&s);
        prop_assert_eq!(r.map(|r| r.to_string()), Ok(s));
    }

    /// Normalization is idempotent: parsing the printed form gives the same value.
    #[test]
    fn normalization_is_idempotent(s in "[a-z0-9./:@_-]{1,40}") {
        if let Ok(r) = Reference::parse_normalized(&s) {
            prop_assert_eq!(Reference::parse_normalized(&r.to_string()), Ok(r));
        }
    }

    /// No input panics, and every accepted reference has a domain and a path.
    #[test]
    fn never_panics(s in "\\PC{0,80}") {
        if let Ok(r) = Reference::parse_normalized(&s) {
            prop_assert!(!r.domain().is_empty());
            prop_assert!(!r.path().is_empty());
        }
    }
}

#[test]
fn registry_hosts_have_one_canonical_spelling() {
    for (given, canonical) in [
        ("docker.io", "docker.io"),
        ("DOCKER.IO", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("Registry.Example.com:443", "registry.example.com"),
        ("registry.example.com:5000", "registry.example.com:5000"),
        ("[::1]:443", "[::1]"),
        ("[::1]", "[::1]"),
        ("127.0.0.1:443", "127.0.0.1"),
    ] {
        assert_eq!(canonical_domain(given), canonical, "{given}");
    }
    let r = |s: &str| Reference::parse_normalized(s).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r("DOCKER.IO/library/busybox:1").non_canonical_domain().as_deref(), Some("docker.io"));
    assert_eq!(r("registry-1.docker.io/library/busybox").non_canonical_domain().as_deref(), Some("docker.io"));
    assert_eq!(r("busybox").non_canonical_domain(), None);
    assert_eq!(r("registry.example.com:5000/a").non_canonical_domain(), None);
}
