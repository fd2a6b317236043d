//! Warnings about a valid policy that probably does not do what its author meant.
//!
//! `tollgate policy check` prints these. None of them makes a policy invalid:
//! each names a place where tollgate (and containers/image) would decide in a
//! way that surprises, and says what to write instead.

use tollgate_oci::Reference;

use crate::containers::{Policy, Requirement, SignedIdentity};
use crate::scope::DOCKER;

/// Every warning for `policy`, in a stable order (default first, then transports and scopes sorted).
pub fn warnings(policy: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    requirements("default", &policy.default, &mut out);
    for (transport, scopes) in &policy.transports {
        if transport != DOCKER {
            out.push(format!(
                "transport {transport:?} is kept but not evaluated: tollgate decides on registry (docker) images"
            ));
        }
        for (scope, reqs) in scopes {
            let place = format!("transports.{transport}[{scope:?}]");
            if transport == DOCKER && !scope.is_empty() && !scope_can_match(scope) {
                out.push(format!(
                    "{place}: scope is not a fully expanded name (e.g. docker.io/library/busybox), so it never matches"
                ));
            }
            requirements(&place, reqs, &mut out);
        }
    }
    looser_default(policy, &mut out);
    out
}

fn requirements(place: &str, reqs: &[Requirement], out: &mut Vec<String>) {
    for r in reqs {
        match r {
            Requirement::SignedBy { .. } => {
                out.push(format!("{place}: signedBy (GPG) is not supported; tollgate denies these images"))
            }
            Requirement::SignedBaseLayer { .. } => {
                out.push(format!("{place}: signedBaseLayer is not implemented; tollgate denies these images"))
            }
            Requirement::SigstoreSigned { signed_identity, .. } => cosign_identity(place, signed_identity, out),
            Requirement::PerPlatform(inner) => requirements(place, std::slice::from_ref(inner.as_ref()), out),
            Requirement::AnyOf(all) => requirements(place, all, out),
            _ => {}
        }
    }
}

/// cosign signs the repository name alone (`docker-reference: host/repo`, no tag
/// or digest). containers/image refuses such a claim under every identity rule
/// but `matchRepository` and `exactRepository`; so does tollgate.
fn cosign_identity(place: &str, identity: &SignedIdentity, out: &mut Vec<String>) {
    let rule = match identity {
        SignedIdentity::MatchExact => "matchExact",
        SignedIdentity::MatchRepoDigestOrExact => "matchRepoDigestOrExact (the default)",
        SignedIdentity::ExactReference { .. } => "exactReference",
        SignedIdentity::RemapIdentity { .. } => "remapIdentity",
        SignedIdentity::MatchRepository | SignedIdentity::ExactRepository { .. } => return,
    };
    out.push(format!(
        "{place}: sigstoreSigned with signedIdentity {rule} never accepts a signature made by `cosign sign`, \
         which claims only the repository; set \"signedIdentity\": {{\"type\": \"matchRepository\"}} for cosign \
         (signatures made by `skopeo copy --sign-by-sigstore-private-key` claim the tag and are accepted)"
    ));
}

/// A default that accepts what a host scope would check: every other spelling of
/// that registry (an IP address, a CNAME, a mirror host) reaches the looser default.
fn looser_default(policy: &Policy, out: &mut Vec<String>) {
    let docker = policy.transports.get(DOCKER);
    let (default_place, default) = match docker.and_then(|t| t.get("")) {
        Some(reqs) => (format!("transports.{DOCKER}[\"\"]"), reqs.as_slice()),
        None => ("default".to_owned(), policy.default.as_slice()),
    };
    if !default.iter().any(|r| matches!(r, Requirement::InsecureAcceptAnything)) || default.len() != 1 {
        return;
    }
    let Some(scopes) = docker else { return };
    let strict: Vec<&str> = scopes
        .iter()
        .filter(|(scope, reqs)| {
            !scope.is_empty() && !reqs.iter().all(|r| matches!(r, Requirement::InsecureAcceptAnything))
        })
        .map(|(scope, _)| scope.as_str())
        .collect();
    if strict.is_empty() {
        return;
    }
    out.push(format!(
        "{default_place} accepts any image, while {} check(s) more: the same registry reached under another \
         name (an IP address, an alias, a mirror) gets the default; prefer a default of reject and list what \
         may run",
        strict.join(", ")
    ));
}

/// Whether a docker scope can ever match: a `*.` wildcard, a host, or a fully expanded name or reference.
fn scope_can_match(scope: &str) -> bool {
    if scope.starts_with("*.") {
        return true;
    }
    if !scope.contains('/') {
        return scope.contains(['.', ':']) || scope == "localhost";
    }
    Reference::parse_normalized(scope).is_ok_and(|r| r.repository() == scope || r.to_string() == scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(json: &str) -> Vec<String> {
        let p = Policy::parse(json.as_bytes(), "test").unwrap_or_else(|e| panic!("{e}"));
        warnings(&p)
    }

    const KEY: &str = r#""keyData": "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KLS0tLS1FTkQgUFVCTElDIEtFWS0tLS0tCg==""#;

    #[test]
    fn the_default_identity_warns_that_cosign_signatures_never_match() {
        let w = lint(&format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"example.com":[{{"type":"sigstoreSigned",{KEY}}}]}}}}}}"#
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("transports.docker[\"example.com\"]: sigstoreSigned with signedIdentity matchRepoDigestOrExact (the default) never accepts a signature made by `cosign sign`"), "{}", w[0]);
        assert!(w[0].contains(r#""signedIdentity": {"type": "matchRepository"}"#));
    }

    #[test]
    fn match_repository_does_not_warn() {
        let w = lint(&format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"example.com":[{{"type":"sigstoreSigned",{KEY},"signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#
        ));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn an_accepting_default_beside_a_checked_host_warns() {
        let w = lint(
            r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"docker.io":[{"type":"reject"}],"quay.io":[{"type":"insecureAcceptAnything"}]}}}"#,
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("default accepts any image, while docker.io check(s) more"), "{}", w[0]);
        let w = lint(
            r#"{"default":[{"type":"reject"}],"transports":{"docker":{"":[{"type":"insecureAcceptAnything"}],"docker.io":[{"type":"reject"}]}}}"#,
        );
        assert!(w[0].starts_with("transports.docker[\"\"] accepts any image"), "{w:?}");
        assert!(
            lint(r#"{"default":[{"type":"reject"}],"transports":{"docker":{"docker.io":[{"type":"reject"}]}}}"#)
                .is_empty()
        );
    }

    #[test]
    fn unsupported_requirements_and_dead_scopes_warn() {
        let w = lint(
            r#"{"default":[{"type":"reject"}],"transports":{"docker":{"busybox":[{"type":"reject"}]},"dir":{"":[{"type":"reject"}]}}}"#,
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|w| w.contains("transport \"dir\" is kept but not evaluated")));
        assert!(w.iter().any(|w| w.contains("[\"busybox\"]: scope is not a fully expanded name")));
    }
}
