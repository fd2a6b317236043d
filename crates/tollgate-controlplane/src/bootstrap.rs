//! TLS bootstrap material: a bootstrap token, its Secret, the three
//! ClusterRoleBindings that let nodes join and renew, and a bootstrap
//! kubeconfig. Pure: the random bytes and the clock are passed in.

use serde::Serialize;
use serde_json::{Value, json};

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The public part.
    pub id: String,
    /// The secret part.
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Token").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Token {
    /// Draws 22 characters from `[a-z0-9]` uniformly: bytes from `random`
    /// (a CSPRNG at the edge) are rejected above 251 (= 36 × 7 − 1) so that
    /// `byte % 36` has no bias.
    pub fn generate(random: &mut dyn FnMut() -> u8) -> Token {
        let mut draw = |n: usize| -> String {
            let mut s = String::with_capacity(n);
            while s.len() < n {
                let b = random();
                if b < 252 {
                    s.push(ALPHABET[usize::from(b % 36)] as char);
                }
            }
            s
        };
        let id = draw(6);
        let secret = draw(16);
        Token { id, secret }
    }

    /// `id.secret`, as kubelets present it.
    pub fn value(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// Whether `s` has the bootstrap token format.
    pub fn is_valid(s: &str) -> bool {
        let ok = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| ALPHABET.contains(&b));
        s.split_once('.').is_some_and(|(a, b)| ok(a, 6) && ok(b, 16))
    }
}

/// What the Secret says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenOptions {
    /// `description`.
    pub description: String,
    /// RFC 3339 expiration, if any.
    pub expiration: Option<String>,
    /// `auth-extra-groups` (each `system:bootstrappers:…`).
    pub extra_groups: Vec<String>,
}

/// The `bootstrap-token-<id>` Secret (type `bootstrap.kubernetes.io/token`).
pub fn secret(token: &Token, o: &TokenOptions) -> Value {
    let mut data = json!({
        "description": o.description,
        "token-id": token.id,
        "token-secret": token.secret,
        "usage-bootstrap-authentication": "true",
    });
    if let Some(e) = &o.expiration {
        data["expiration"] = json!(e);
    }
    if !o.extra_groups.is_empty() {
        data["auth-extra-groups"] = json!(o.extra_groups.join(","));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{}", token.id), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": data,
    })
}

/// The three ClusterRoleBindings: bootstrappers may create CSRs, their node
/// client CSRs are approved, and nodes' renewals are approved.
pub fn cluster_role_bindings() -> Vec<Value> {
    let crb = |name: &str, role: &str, group: &str| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        })
    };
    vec![
        crb("tollgate:node-bootstrapper", "system:node-bootstrapper", "system:bootstrappers"),
        crb(
            "tollgate:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "system:bootstrappers",
        ),
        crb(
            "tollgate:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "system:nodes",
        ),
    ]
}

/// The kubelet's bootstrap kubeconfig for `server`, trusting `ca_pem`.
pub fn kubeconfig(token: &Token, server: &str, ca_pem: &[u8]) -> Value {
    use base64::Engine as _;
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {
            "server": server,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca_pem),
        }}],
        "users": [{"name": "tls-bootstrap-token-user", "user": {"token": token.value()}}],
        "contexts": [{"name": "tls-bootstrap-token-user@kubernetes", "context": {"cluster": "kubernetes", "user": "tls-bootstrap-token-user"}}],
        "current-context": "tls-bootstrap-token-user@kubernetes",
    })
}

/// Parses a TTL (`30m`, `24h`, `7d`, `3600s`, `0` for none) into seconds.
pub fn parse_ttl(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0 && *v <= 366 * 86_400)
}

/// RFC 3339 UTC for `now + ttl` (Unix seconds), as the Secret's `expiration`.
pub fn expiration(now: u64, ttl: u64) -> Option<String> {
    let at = i64::try_from(now.checked_add(ttl)?).ok()?;
    time::OffsetDateTime::from_unix_timestamp(at).ok()?.format(&time::format_description::well_known::Rfc3339).ok()
}

/// Values as a YAML stream (`---` between documents).
pub fn yaml_stream(docs: &[Value]) -> String {
    docs.iter().map(|d| serde_yaml_ng::to_string(d).unwrap_or_default()).collect::<Vec<_>>().join("---\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_format_and_use_every_character_without_bias() {
        let mut n = 0u32;
        let mut counter = || {
            n += 1;
            (n % 256) as u8
        };
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..1000 {
            let t = Token::generate(&mut counter);
            assert!(Token::is_valid(&t.value()), "{}", t.value());
            for c in t.value().chars().filter(|c| *c != '.') {
                *seen.entry(c).or_insert(0u32) += 1;
            }
        }
        assert_eq!(seen.len(), 36, "every character of [a-z0-9] appears");
        // Bytes 252..=255 are rejected, so every character is drawn exactly as often from a full cycle.
        let (min, max) = (seen.values().min().unwrap(), seen.values().max().unwrap());
        assert!(max - min <= 1, "{seen:?}");
        let t = Token::generate(&mut counter);
        assert!(!format!("{t:?}").contains(&t.secret), "Debug hides the secret");
        assert_eq!(parse_ttl("24h"), Some(86_400));
        assert_eq!(parse_ttl("0"), Some(0));
        assert_eq!(parse_ttl("5y"), None);
        assert_eq!(expiration(0, 86_400).as_deref(), Some("1970-01-02T00:00:00Z"));
        for bad in ["abcdef.0123456789abcdeF", "abcde.0123456789abcdef", "abcdef0123456789abcdef1"] {
            assert!(!Token::is_valid(bad), "{bad}");
        }
    }
}
