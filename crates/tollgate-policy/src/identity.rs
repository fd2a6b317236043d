//! `signedIdentity` matching, as containers/image `signature/policy_reference_match.go`.

use tollgate_oci::Reference;

use crate::containers::SignedIdentity;

/// Whether a signature that claims `signed` (its `docker-reference`) satisfies
/// `rule` for the image `image` (normalized, with its tag and/or digest).
/// An image without a docker reference (an OCI layout) can only satisfy
/// `exactReference` and `exactRepository`, as in containers/image.
/// A claim that does not parse never matches.
pub fn matches(rule: &SignedIdentity, image: Option<&Reference>, signed: &str) -> bool {
    let Ok(signature) = Reference::parse_normalized(signed) else { return false };
    let name_only = |r: &Reference| r.tag().is_none() && r.digest().is_none();
    let Some(image) = image else {
        return match rule {
            SignedIdentity::ExactReference { docker_reference } => Reference::parse_normalized(docker_reference)
                .is_ok_and(|want| !name_only(&want) && !name_only(&signature) && want == signature),
            SignedIdentity::ExactRepository { docker_repository } => Reference::parse_normalized(docker_repository)
                .is_ok_and(|want| want.repository() == signature.repository()),
            _ => false,
        };
    };
    match rule {
        SignedIdentity::MatchExact => !name_only(image) && !name_only(&signature) && signature == *image,
        SignedIdentity::MatchRepoDigestOrExact => repo_digest_or_exact(image, &signature),
        SignedIdentity::MatchRepository => signature.repository() == image.repository(),
        SignedIdentity::ExactReference { docker_reference } => match Reference::parse_normalized(docker_reference) {
            Ok(want) => !name_only(&want) && !name_only(&signature) && want == signature,
            Err(_) => false,
        },
        SignedIdentity::ExactRepository { docker_repository } => match Reference::parse_normalized(docker_repository) {
            Ok(want) => want.repository() == signature.repository(),
            Err(_) => false,
        },
        SignedIdentity::RemapIdentity { prefix, signed_prefix } => match remap(image, prefix, signed_prefix) {
            Some(Ok(remapped)) => repo_digest_or_exact(&remapped, &signature),
            Some(Err(())) => false,
            None => repo_digest_or_exact(image, &signature),
        },
    }
}

/// containers/image's `matchRepoDigestOrExactReferenceValues`: a repository-only
/// claim (what cosign writes) never matches, whatever the image reference is;
/// only `matchRepository` and `exactRepository` accept one.
fn repo_digest_or_exact(image: &Reference, signature: &Reference) -> bool {
    if signature.tag().is_none() && signature.digest().is_none() {
        false
    } else if image.tag().is_some() {
        // Includes an image with both tag and digest: the claim must be exact.
        signature == image
    } else if image.digest().is_some() {
        // The digest itself is checked against the signed manifest digest elsewhere.
        signature.repository() == image.repository()
    } else {
        false
    }
}

/// `Some(Ok(ref))` when `prefix` matches `image` (whole path components), `None` when it does not.
fn remap(image: &Reference, prefix: &str, signed_prefix: &str) -> Option<Result<Reference, ()>> {
    let full = image.to_string();
    let name = image.repository();
    let matches = name == prefix || name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'));
    if !matches {
        return None;
    }
    let rewritten = format!("{signed_prefix}{}", &full[prefix.len()..]);
    // containers/image parses the rewritten name with `ParseNamed`, which
    // refuses anything not already in canonical form (`busybox`, `docker.io/busybox`).
    Some(match Reference::parse_normalized(&rewritten) {
        Ok(r) if r.to_string() == rewritten => Ok(r),
        _ => Err(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn r(s: &str) -> Reference {
        Reference::parse_normalized(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn match_exact() {
        let rule = SignedIdentity::MatchExact;
        assert!(matches(&rule, Some(&r("example.com/a:1")), "example.com/a:1"));
        assert!(!matches(&rule, Some(&r("example.com/a:1")), "example.com/a:2"));
        assert!(!matches(&rule, Some(&r("example.com/a:1")), "example.com/a"), "a repository-only claim is not exact");
        assert!(!matches(&rule, Some(&r(&format!("example.com/a@{D}"))), "example.com/a:1"));
    }

    #[test]
    fn match_repo_digest_or_exact() {
        let rule = SignedIdentity::MatchRepoDigestOrExact;
        assert!(matches(&rule, Some(&r("example.com/a:1")), "example.com/a:1"));
        assert!(!matches(&rule, Some(&r("example.com/a:1")), "example.com/a"), "cosign claims need matchRepository");
        assert!(matches(&rule, Some(&r(&format!("example.com/a@{D}"))), "example.com/a:anything"));
        assert!(!matches(&rule, Some(&r(&format!("example.com/a@{D}"))), "example.com/b:1"));
    }

    /// containers/image refuses a name-only claim before it looks at the image;
    /// kubelet pulls digest-pinned images as `repo@sha256:…`, so accepting it
    /// there let cosign signatures through a policy CRI-O would enforce.
    #[test]
    fn repository_only_claims_never_satisfy_repo_digest_or_exact_or_remap() {
        let by_digest = r(&format!("example.com/a@{D}"));
        let tag_and_digest = r(&format!("example.com/a:1@{D}"));
        for image in [&by_digest, &tag_and_digest, &r("example.com/a:1")] {
            assert!(!matches(&SignedIdentity::MatchRepoDigestOrExact, Some(image), "example.com/a"), "{image}");
            assert!(matches(&SignedIdentity::MatchRepository, Some(image), "example.com/a"), "{image}");
        }
        assert!(matches(&SignedIdentity::MatchRepoDigestOrExact, Some(&by_digest), &format!("example.com/a@{D}")));
        let remap = SignedIdentity::RemapIdentity {
            prefix: "mirror.local/vendor".into(),
            signed_prefix: "vendor.example.com".into(),
        };
        let mirrored = r(&format!("mirror.local/vendor/app@{D}"));
        assert!(!matches(&remap, Some(&mirrored), "vendor.example.com/app"), "remapped, then the same rule");
        assert!(matches(&remap, Some(&mirrored), "vendor.example.com/app:v1"));
        assert!(!matches(&remap, Some(&by_digest), "example.com/a"), "no prefix match: still refused");
    }

    #[test]
    fn remap_to_a_non_canonical_name_never_matches() {
        // `docker.io/busybox` is not canonical (`docker.io/library/busybox`): ParseNamed refuses it.
        let rule =
            SignedIdentity::RemapIdentity { prefix: "mirror.local/hub".into(), signed_prefix: "docker.io".into() };
        assert!(!matches(&rule, Some(&r("mirror.local/hub/busybox:1")), "docker.io/library/busybox:1"));
        assert!(matches(&rule, Some(&r("mirror.local/hub/library/busybox:1")), "docker.io/library/busybox:1"));
    }

    #[test]
    fn match_repository_and_normalization() {
        let rule = SignedIdentity::MatchRepository;
        assert!(matches(&rule, Some(&r("busybox:1")), "docker.io/library/busybox"));
        assert!(!matches(&rule, Some(&r("example.com/a:1")), "example.com/ab"));
        assert!(!matches(&rule, Some(&r("example.com/a:1")), "not a reference"));
    }

    #[test]
    fn exact_reference_and_repository() {
        let rule = SignedIdentity::ExactReference { docker_reference: "example.com/golden:v1".into() };
        assert!(matches(&rule, Some(&r("mirror.local/anything:2")), "example.com/golden:v1"));
        assert!(!matches(&rule, Some(&r("mirror.local/anything:2")), "example.com/golden:v2"));
        let rule = SignedIdentity::ExactRepository { docker_repository: "example.com/golden".into() };
        assert!(matches(&rule, Some(&r("mirror.local/x:2")), "example.com/golden:v9"));
        assert!(!matches(&rule, Some(&r("mirror.local/x:2")), "example.com/other:v9"));
    }

    #[test]
    fn remap_identity() {
        let rule = SignedIdentity::RemapIdentity {
            prefix: "private-mirror:5000/vendor-mirror".into(),
            signed_prefix: "vendor.example.com".into(),
        };
        assert!(matches(&rule, Some(&r("private-mirror:5000/vendor-mirror/app:1")), "vendor.example.com/app:1"));
        assert!(!matches(
            &rule,
            Some(&r("private-mirror:5000/vendor-mirror/app:1")),
            "private-mirror:5000/vendor-mirror/app:2"
        ));
        assert!(!matches(&rule, Some(&r("private-mirror:5000/vendor-mirrorx/app:1")), "vendor.example.comx/app:1"));
        assert!(
            matches(&rule, Some(&r("other.example.com/app:1")), "other.example.com/app:1"),
            "no prefix: plain rule"
        );
    }
}

#[cfg(test)]
mod oci_tests {
    use super::*;

    #[test]
    fn layouts_only_satisfy_exact_rules() {
        let exact = SignedIdentity::ExactReference { docker_reference: "example.com/demo/hello:v1".into() };
        assert!(matches(&exact, None, "example.com/demo/hello:v1"));
        assert!(!matches(&exact, None, "example.com/demo/hello:v2"));
        let repo = SignedIdentity::ExactRepository { docker_repository: "example.com/demo/hello".into() };
        assert!(matches(&repo, None, "example.com/demo/hello"));
        assert!(!matches(&SignedIdentity::MatchRepository, None, "example.com/demo/hello"));
    }
}
