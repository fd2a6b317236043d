//! containerd registry hosts (`/etc/containerd/certs.d/<host>/hosts.toml`):
//! mirrors first, the upstream last. Unlike CRI's legacy `registry.mirrors`,
//! which makes kubelet pulls skip the transfer service and so the image
//! verifier, hosts.toml keeps every pull verified. Pure: values in, text out.

use serde::Serialize;

/// One mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    /// `https://host[:port]`, or `http://…` for a plain-HTTP mirror.
    pub base: String,
    /// Repository prefix under which the mirror holds the upstream's repositories (`tollgate mirror --to HOST/PREFIX`).
    pub prefix: Option<String>,
    /// A CA file to trust for this mirror.
    pub ca: Option<String>,
    /// Skip TLS verification (discouraged: content is still checked against pinned digests, but tags are not).
    pub skip_verify: bool,
}

/// The mirror could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mirror {spec:?}: {message}")]
pub struct MirrorError {
    /// As given.
    pub spec: String,
    /// Why.
    pub message: String,
}

impl Mirror {
    /// Parses `[http://|https://]HOST[:PORT][/PREFIX]` (https when no scheme is given).
    pub fn parse(spec: &str) -> Result<Mirror, MirrorError> {
        let err = |message: &str| MirrorError { spec: spec.into(), message: message.into() };
        let (scheme, rest) = match spec.split_once("://") {
            Some(("https", r)) => ("https", r),
            Some(("http", r)) => ("http", r),
            Some(_) => return Err(err("the scheme must be https:// or http://")),
            None => ("https", spec),
        };
        let rest = rest.trim_end_matches('/');
        let (host, prefix) = match rest.split_once('/') {
            Some((h, p)) => (h, Some(p.to_owned())),
            None => (rest, None),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
        if host.is_empty() || !host.chars().all(valid) {
            return Err(err("expected HOST[:PORT][/PREFIX]"));
        }
        if let Some(p) = &prefix
            && (p.is_empty()
                || p.split('/').any(|s| s.is_empty() || s == "." || s == "..")
                || !p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)))
        {
            return Err(err("the prefix must be a lowercase repository path"));
        }
        Ok(Mirror { base: format!("{scheme}://{host}"), prefix, ca: None, skip_verify: false })
    }
}

/// The upstream server URL containerd uses for a registry host name.
pub fn upstream_server(host: &str) -> String {
    match host {
        "docker.io" => "https://registry-1.docker.io".into(),
        h => format!("https://{h}"),
    }
}

fn quote(s: &str) -> String {
    // TOML basic string: escape backslash and quote; control characters are refused by callers' validation.
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The hosts.toml for `upstream` (a registry host such as `registry.k8s.io`).
pub fn hosts_toml(upstream: &str, mirrors: &[Mirror]) -> String {
    let mut s = format!(
        "# {upstream}: mirrors first, then the upstream. Written by `tollgate containerd mirrors`.\n\
         # Pulls through these hosts still go through containerd's transfer service and its image verifiers.\n\
         server = {}\n",
        quote(&upstream_server(upstream))
    );
    for m in mirrors {
        // With a prefix, containerd must not add /v2 itself: override_path puts the whole path here.
        let (url, override_path) = match &m.prefix {
            Some(p) => (format!("{}/v2/{p}", m.base), true),
            None => (m.base.clone(), false),
        };
        s.push_str(&format!("\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n", quote(&url)));
        if override_path {
            s.push_str("  override_path = true\n");
        }
        if let Some(ca) = &m.ca {
            s.push_str(&format!("  ca = {}\n", quote(ca)));
        }
        if m.skip_verify {
            s.push_str("  skip_verify = true\n");
        }
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_come_first_with_override_path_for_prefixes() {
        let mut m = Mirror::parse("mirror.example.com:5000/k8s").unwrap();
        m.ca = Some("/etc/containerd/certs.d/mirror.example.com:5000/ca.crt".into());
        let plain = Mirror::parse("http://10.0.0.5:5000").unwrap();
        let text = hosts_toml("registry.k8s.io", &[m, plain]);
        assert_eq!(
            text,
            "# registry.k8s.io: mirrors first, then the upstream. Written by `tollgate containerd mirrors`.\n\
             # Pulls through these hosts still go through containerd's transfer service and its image verifiers.\n\
             server = \"https://registry.k8s.io\"\n\
             \n[host.\"https://mirror.example.com:5000/v2/k8s\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n  ca = \"/etc/containerd/certs.d/mirror.example.com:5000/ca.crt\"\n\
             \n[host.\"http://10.0.0.5:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["server"].as_str(), Some("https://registry.k8s.io"));
        assert_eq!(upstream_server("docker.io"), "https://registry-1.docker.io");
    }

    #[test]
    fn bad_mirrors_are_refused() {
        for bad in ["ftp://x", "", "host/../etc", "host/UPPER", "ho st"] {
            assert!(Mirror::parse(bad).is_err(), "{bad}");
        }
    }
}
