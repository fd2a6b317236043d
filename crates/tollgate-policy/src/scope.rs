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

/// The transport of registry images.
pub const DOCKER: &str = "docker";
/// The transport of OCI image layouts on disk.
pub const OCI: &str = "oci";

/// What a decision is about: a registry image, or an image in an OCI layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A registry image (`docker` transport).
    Docker(&'a Reference),
    /// An OCI layout: its absolute directory, and the image name (tag) inside it.
    Oci {
        /// Absolute path of the layout directory.
        dir: &'a str,
        /// The `org.opencontainers.image.ref.name`, if one was given.
        name: Option<&'a str>,
    },
}

impl Subject<'_> {
    /// The transport name.
    pub fn transport(&self) -> &'static str {
        match self {
            Subject::Docker(_) => DOCKER,
            Subject::Oci { .. } => OCI,
        }
    }

    /// The docker reference, if the subject has one (OCI layouts do not).
    pub fn docker_reference(&self) -> Option<&Reference> {
        match self {
            Subject::Docker(r) => Some(r),
            Subject::Oci { .. } => None,
        }
    }

    /// The lookup keys, most specific first.
    pub fn candidates(&self) -> Vec<String> {
        match self {
            Subject::Docker(r) => candidates(r),
            Subject::Oci { dir, name } => {
                // containers/image oci transport: "dir:name", then dir and its parents.
                let mut out = Vec::new();
                if let Some(n) = name {
                    out.push(format!("{dir}:{n}"));
                }
                let mut d = dir.trim_end_matches('/');
                while !d.is_empty() {
                    out.push(d.to_owned());
                    d = match d.rfind('/') {
                        Some(i) => &d[..i],
                        None => "",
                    };
                }
                out
            }
        }
    }

    /// How the subject prints in decisions.
    pub fn display(&self) -> String {
        match self {
            Subject::Docker(r) => r.to_string(),
            Subject::Oci { dir, name: Some(n) } => format!("oci:{dir}:{n}"),
            Subject::Oci { dir, name: None } => format!("oci:{dir}"),
        }
    }
}

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

/// The requirements that apply to `subject`, and which scope they came from.
pub fn requirements_for<'p>(policy: &'p Policy, subject: &Subject<'_>) -> (MatchedScope, &'p [Requirement]) {
    let t = subject.transport();
    if let Some(scopes) = policy.transports.get(t) {
        for c in subject.candidates() {
            if let Some(reqs) = scopes.get(&c) {
                return (MatchedScope { name: format!("transports.{t}[{c:?}]"), scope: Some(c) }, reqs);
            }
        }
        if let Some(reqs) = scopes.get("") {
            return (MatchedScope { name: format!("transports.{t}[\"\"]"), scope: Some(String::new()) }, reqs);
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
        let d = |s: &str| r(s);
        let docker = |s: &str| d(s);
        let team = docker("example.com/team/app:1");
        let (s, reqs) = requirements_for(&policy, &Subject::Docker(&team));
        assert_eq!(s.name, "transports.docker[\"example.com/team\"]");
        assert_eq!(reqs, [Requirement::InsecureAcceptAnything]);
        let other = r("example.com/other:1");
        let (s, _) = requirements_for(&policy, &Subject::Docker(&other));
        assert_eq!(s.scope.as_deref(), Some("example.com"));
        let reg = r("registry.example.com/x:1");
        let (s, _) = requirements_for(&policy, &Subject::Docker(&reg));
        assert_eq!(s.scope.as_deref(), Some("*.example.com"));
        let quay = r("quay.io/x:1");
        let (s, _) = requirements_for(&policy, &Subject::Docker(&quay));
        assert_eq!(s.name, "transports.docker[\"\"]");
        Ok(())
    }

    #[test]
    fn oci_layouts_are_scoped_by_directory() {
        let s = Subject::Oci { dir: "/srv/images/app", name: Some("v1") };
        assert_eq!(s.candidates(), ["/srv/images/app:v1", "/srv/images/app", "/srv/images", "/srv"]);
        assert_eq!(s.docker_reference(), None);
        assert_eq!(s.display(), "oci:/srv/images/app:v1");
    }
}
