//! Which scope of a policy applies to an image (docker transport).
//!
//! As containers/image `docker/policyconfiguration/naming.go`: the image's
//! identity (`name:tag` or `name@digest`), then `name`, each parent namespace
//! up to `host[:port]`, then `*.`-wildcards of the host without its port, then
//! the transport's `""` scope, then the global default. Only the first match
//! applies; requirements are never merged.

use serde::Serialize;
use tollgate_oci::Reference;

use crate::containers::{Policy, Requirement};

/// The transport tollgate evaluates: registry images.
pub const DOCKER: &str = "docker";

/// Which scope matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedScope {
    /// `transports.docker["<scope>"]`, `transports.docker[""]` or `default`.
    pub name: String,
    /// The scope key, or `None` for the global default.
    pub scope: Option<String>,
}

/// The lookup keys for `reference`, most specific first.
pub fn candidates(reference: &Reference) -> Vec<String> {
    let name = reference.repository();
    let mut out = Vec::new();
    if let Some(t) = reference.tag() {
        out.push(format!("{name}:{t}"));
    }
    if let Some(d) = reference.digest() {
        out.push(format!("{name}@{d}"));
    }
    let mut n = name.as_str();
    loop {
        out.push(n.to_owned());
        match n.rfind('/') {
            Some(i) => n = &n[..i],
            None => break,
        }
    }
    let mut host = match n.find(':') {
        Some(i) if !n.starts_with('[') => &n[..i],
        _ => n,
    };
    while let Some(i) = host.find('.') {
        host = &host[i + 1..];
        out.push(format!("*.{host}"));
    }
    out
}

/// The requirements that apply to `reference`, and which scope they came from.
pub fn requirements_for<'p>(policy: &'p Policy, reference: &Reference) -> (MatchedScope, &'p [Requirement]) {
    if let Some(scopes) = policy.transports.get(DOCKER) {
        for c in candidates(reference) {
            if let Some(reqs) = scopes.get(&c) {
                return (MatchedScope { name: format!("transports.docker[{c:?}]"), scope: Some(c) }, reqs);
            }
        }
        if let Some(reqs) = scopes.get("") {
            return (MatchedScope { name: "transports.docker[\"\"]".into(), scope: Some(String::new()) }, reqs);
        }
    }
    (MatchedScope { name: "default".into(), scope: None }, &policy.default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse_normalized(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn candidates_follow_containers_image_naming() {
        assert_eq!(
            candidates(&r("example.com:5000/ns1/ns2/repo:tag")),
            [
                "example.com:5000/ns1/ns2/repo:tag",
                "example.com:5000/ns1/ns2/repo",
                "example.com:5000/ns1/ns2",
                "example.com:5000/ns1",
                "example.com:5000",
                "*.com",
            ]
        );
        assert_eq!(candidates(&r("busybox")), ["docker.io/library/busybox", "docker.io/library", "docker.io", "*.io"]);
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(candidates(&r(&format!("a.b.example.com/x@{d}")))[0], format!("a.b.example.com/x@{d}"));
        assert_eq!(candidates(&r("a.b.example.com/x:1"))[3..], ["*.b.example.com", "*.example.com", "*.com"]);
    }

    #[test]
    fn most_specific_scope_wins_without_merging() -> Result<(), Box<dyn std::error::Error>> {
        let policy = Policy::parse(
            br#"{"default":[{"type":"reject"}],"transports":{"docker":{
                "example.com":[{"type":"reject"}],
                "example.com/team":[{"type":"insecureAcceptAnything"}],
                "*.example.com":[{"type":"insecureAcceptAnything"}],
                "":[{"type":"reject"}]}}}"#,
            "p",
        )?;
        let (s, reqs) = requirements_for(&policy, &r("example.com/team/app:1"));
        assert_eq!(s.name, "transports.docker[\"example.com/team\"]");
        assert_eq!(reqs, [Requirement::InsecureAcceptAnything]);
        let (s, _) = requirements_for(&policy, &r("example.com/other:1"));
        assert_eq!(s.scope.as_deref(), Some("example.com"));
        let (s, _) = requirements_for(&policy, &r("registry.example.com/x:1"));
        assert_eq!(s.scope.as_deref(), Some("*.example.com"));
        let (s, _) = requirements_for(&policy, &r("quay.io/x:1"));
        assert_eq!(s.name, "transports.docker[\"\"]");
        Ok(())
    }
}
