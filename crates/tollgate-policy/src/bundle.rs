//! The policy bundle: what `tollgate policy compile --configmap` writes into the ConfigMap
//! `tollgate-system/tollgate-policy` and what a node reads from it mounted as a volume
//! (`policyBundle: DIR`). Flat, because a ConfigMap's keys are file names: `policy.yaml` is the
//! cluster policy, `namespace.NAMESPACE.yaml` the part of each namespace (a namespace name has no
//! dot, so the key says whose it is). Its hash names one version of the whole bundle. Pure.

use sha2::{Digest as _, Sha256};

/// The key (file name) of the cluster policy.
pub const POLICY_KEY: &str = "policy.yaml";
/// The prefix of a namespace's key.
const NAMESPACE_PREFIX: &str = "namespace.";
/// The suffix of a namespace's key.
const NAMESPACE_SUFFIX: &str = ".yaml";
/// The annotation on the ConfigMap that carries [`hash`].
pub const HASH_ANNOTATION: &str = "tollgate.dev/bundle-hash";

/// Whether `ns` is a Kubernetes namespace name (an RFC 1123 label).
pub fn is_namespace(ns: &str) -> bool {
    !ns.is_empty()
        && ns.len() <= 63
        && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-')
}

/// The key of `ns`'s part: `namespace.NS.yaml`.
pub fn namespace_key(ns: &str) -> String {
    format!("{NAMESPACE_PREFIX}{ns}{NAMESPACE_SUFFIX}")
}

/// The namespace whose part `key` is, if it is one.
pub fn namespace_of(key: &str) -> Option<&str> {
    key.strip_prefix(NAMESPACE_PREFIX).and_then(|k| k.strip_suffix(NAMESPACE_SUFFIX)).filter(|ns| is_namespace(ns))
}

/// The hash of a bundle: SHA-256 over each file's key and bytes, in key order, each length-prefixed
/// so that no two bundles share it. `sha256:<hex>`.
pub fn hash(files: &[(String, Vec<u8>)]) -> String {
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (key, bytes) in sorted {
        h.update((key.len() as u64).to_be_bytes());
        h.update(key.as_bytes());
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_namespace_and_nothing_else_is_one() {
        assert_eq!(namespace_of(&namespace_key("shop")), Some("shop"));
        for key in [POLICY_KEY, "namespace..yaml", "namespace.Shop.yaml", "namespace.a.b.yaml", "..data", "shop.yaml"] {
            assert_eq!(namespace_of(key), None, "{key}");
        }
    }

    #[test]
    fn the_hash_covers_names_and_bytes_in_any_order() {
        let a = vec![("policy.yaml".to_owned(), b"x".to_vec()), ("namespace.a.yaml".to_owned(), b"y".to_vec())];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(hash(&a), hash(&b));
        let moved = vec![("policy.yaml".to_owned(), b"xn".to_vec()), ("amespace.a.yaml".to_owned(), b"y".to_vec())];
        assert_ne!(hash(&a), hash(&moved));
        assert!(hash(&a).starts_with("sha256:") && hash(&a).len() == 71);
    }
}
