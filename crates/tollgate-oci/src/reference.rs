//! Docker image references, with the grammar and normalization of `distribution/reference`.
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain '/'] path-component ['/' path-component]*
//! domain           := host [':' port-number]
//! host             := domain-name | IPv4address | '[' IPv6address ']'
//! domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! path-component   := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric    := /[a-z0-9]+/
//! separator        := /[_.]|__|[-]+/
//! tag              := /[\w][\w.-]{0,127}/
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{Digest, DigestError};

/// The registry that names without a domain refer to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag that a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";
/// Maximum length of `domain/path`, as in distribution/reference.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const TAG_MAX: usize = 128;

/// Why an image reference was refused. Every variant carries the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The input is empty.
    #[error("invalid image reference: it is empty")]
    Empty,
    /// `domain/path` is longer than 255 characters.
    #[error("invalid image reference {input:?}: the repository name is {len} characters, at most 255 are allowed")]
    NameTooLong {
        /// The refused input.
        input: String,
        /// Length of `domain/path`.
        len: usize,
    },
    /// The registry host or port is malformed.
    #[error("invalid image reference {input:?}: registry {domain:?} is not a valid host[:port]")]
    InvalidDomain {
        /// The refused input.
        input: String,
        /// The domain as written.
        domain: String,
    },
    /// The repository path contains uppercase letters.
    #[error("invalid image reference {input:?}: repository name must be lowercase")]
    Uppercase {
        /// The refused input.
        input: String,
    },
    /// A path component breaks the grammar.
    #[error(
        "invalid image reference {input:?}: repository path component {component:?} must be lowercase \
         letters and digits separated by '.', '_', '__' or '-'"
    )]
    InvalidPathComponent {
        /// The refused input.
        input: String,
        /// The offending component.
        component: String,
    },
    /// The tag breaks the grammar.
    #[error(
        "invalid image reference {input:?}: tag {tag:?} must be 1 to 128 characters of [A-Za-z0-9_.-] \
         and must not start with '.' or '-'"
    )]
    InvalidTag {
        /// The refused input.
        input: String,
        /// The offending tag.
        tag: String,
    },
    /// The digest is malformed or unsupported.
    #[error("invalid image reference {input:?}: {error}")]
    InvalidDigest {
        /// The refused input.
        input: String,
        /// What is wrong with the digest (part of the message, not a `source`).
        error: DigestError,
    },
    /// The input is a bare 64-character hex string, which docker reserves for image IDs.
    #[error("invalid image reference {input:?}: a 64-character hex string is an image ID, not a repository name")]
    HexIdentifier {
        /// The refused input.
        input: String,
    },
}

/// A normalized image reference: registry domain, repository path, optional tag and digest.
///
/// The domain is always present (`docker.io` when the input had none), and
/// docker.io single-component paths carry `library/`. `Display` prints the
/// fully qualified form, which parses back to an equal value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference the way `docker pull`, containerd and CRI-O read it:
    /// a missing domain means `docker.io`, `index.docker.io` is rewritten to
    /// `docker.io`, and official images gain `library/`. No default tag is
    /// added; see [`Reference::with_default_tag`].
    pub fn parse_normalized(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.len() == 64 && input.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ReferenceError::HexIdentifier { input: input.to_owned() });
        }
        let err_input = || input.to_owned();

        let (name_and_tag, digest) = match input.split_once('@') {
            Some((left, d)) => {
                let digest =
                    Digest::parse(d).map_err(|error| ReferenceError::InvalidDigest { input: err_input(), error })?;
                (left, Some(digest))
            }
            None => (input, None),
        };
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::InvalidTag { input: err_input(), tag: t.to_owned() });
            }
        }
        if name.is_empty() {
            return Err(ReferenceError::InvalidPathComponent { input: err_input(), component: String::new() });
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong { input: err_input(), len: name.len() });
        }

        let (domain, path) = split_docker_domain(name);
        if !valid_domain(&domain) {
            return Err(ReferenceError::InvalidDomain { input: err_input(), domain });
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase { input: err_input() });
        }
        if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
            return Err(ReferenceError::InvalidPathComponent { input: err_input(), component: bad.to_owned() });
        }
        let full_len = domain.len() + 1 + path.len();
        if full_len > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong { input: err_input(), len: full_len });
        }
        Ok(Reference { domain, path, tag: tag.map(str::to_owned), digest })
    }

    /// Adds the `latest` tag when the reference has neither tag nor digest,
    /// as `docker pull busybox` does.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// Returns this reference with `digest` set (keeping the tag, if any).
    pub fn with_digest(mut self, digest: Digest) -> Reference {
        self.digest = Some(digest);
        self
    }

    /// Returns this reference without its digest.
    pub fn without_digest(mut self) -> Reference {
        self.digest = None;
        self
    }

    /// Returns this reference moved to another registry domain and optional
    /// path prefix, keeping path, tag and digest. Used for mirrors.
    pub fn with_registry(&self, domain_and_prefix: &str) -> Result<Reference, ReferenceError> {
        let mut s = format!("{}/{}", domain_and_prefix.trim_end_matches('/'), self.path);
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        Reference::parse_normalized(&s)
    }

    /// Registry domain, with port if any (`registry.k8s.io`, `127.0.0.1:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `domain/path`, the repository without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The canonical spelling of this reference's registry host when it is
    /// spelled otherwise (see [`canonical_domain`]), else `None`.
    pub fn non_canonical_domain(&self) -> Option<String> {
        let c = canonical_domain(&self.domain);
        (c != self.domain).then_some(c)
    }

    /// The short form docker prints: `busybox:latest` for `docker.io/library/busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut out = if self.domain == DEFAULT_DOMAIN {
            self.path.strip_prefix(OFFICIAL_REPO_PREFIX).unwrap_or(&self.path).to_owned()
        } else {
            self.repository()
        };
        self.push_suffix(&mut out);
        out
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(t) = &self.tag {
            out.push(':');
            out.push_str(t);
        }
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(&d.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.repository();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse_normalized(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse_normalized(&s).map_err(serde::de::Error::custom)
    }
}

/// distribution/reference `splitDockerDomain`: the first component is a
/// domain only if it contains `.` or `:`, is `localhost`, or has uppercase.
/// The canonical spelling of a registry host, the one policy scopes are
/// written in: lower case, without a trailing dot or the default HTTPS port
/// `:443`, and `docker.io` for Docker Hub's API host `registry-1.docker.io`.
/// Container runtimes reach the same registry under every one of these
/// spellings, so a policy must never see them as different hosts.
pub fn canonical_domain(domain: &str) -> String {
    let lower = domain.to_ascii_lowercase();
    let (host, port) = match lower.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h.to_owned(), Some(p.to_owned())),
        _ => (lower.clone(), None),
    };
    let host = host.strip_suffix('.').map_or(host.clone(), str::to_owned);
    let host =
        if host == "registry-1.docker.io" || host == LEGACY_DEFAULT_DOMAIN { DEFAULT_DOMAIN.to_owned() } else { host };
    match port {
        Some(p) if p != "443" => format!("{host}:{p}"),
        _ => host,
    }
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN { DEFAULT_DOMAIN.to_owned() } else { domain };
    let path =
        if domain == DEFAULT_DOMAIN && !path.contains('/') { format!("{OFFICIAL_REPO_PREFIX}{path}") } else { path };
    (domain, path)
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match bytes.split_first() {
        Some((first, rest)) => {
            word(*first) && rest.len() < TAG_MAX && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        }
        None => false,
    }
}

fn valid_path_component(c: &str) -> bool {
    // alpha-numeric (separator alpha-numeric)*, separator := [_.] | __ | -+
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        match bytes[i] {
            b'.' => i += 1,
            b'_' => i += if bytes.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    match host {
        None => true,
        Some(h) => !h.is_empty() && h.split('.').all(valid_domain_component),
    }
}

fn valid_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
