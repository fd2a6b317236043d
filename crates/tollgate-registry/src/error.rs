//! Registry errors.

use tollgate_oci::Digest;

/// A registry operation failed. [`RegistryError::is_transient`] tells
/// whether trying again later may succeed (network, 5xx, 429) or not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The connection failed or timed out.
    #[error("registry {registry} is unreachable: {message}; check the address, or the network and any proxy")]
    Unreachable {
        /// Registry host[:port].
        registry: String,
        /// What the transport reported.
        message: String,
    },
    /// The registry does not know the manifest or blob.
    #[error("{what} not found in registry {registry} (HTTP 404)")]
    NotFound {
        /// Registry host[:port].
        registry: String,
        /// The manifest reference or blob digest.
        what: String,
    },
    /// Authentication is required and failed.
    #[error(
        "registry {registry} refused access to {what} (HTTP {status}); the repository may be private or the token scope wrong"
    )]
    Unauthorized {
        /// Registry host[:port].
        registry: String,
        /// What was requested.
        what: String,
        /// 401 or 403.
        status: u16,
    },
    /// TLS failed: the certificate is not trusted, or the peer does not speak TLS.
    #[error(
        "TLS with registry {registry} failed: {message}; trust its CA with --ca-file, or list it with --insecure-registry if it serves plain HTTP"
    )]
    Tls {
        /// Registry host[:port].
        registry: String,
        /// What rustls reported.
        message: String,
    },
    /// Any other unexpected HTTP status.
    #[error("registry {registry} answered HTTP {status} for {what}")]
    Status {
        /// Registry host[:port].
        registry: String,
        /// What was requested.
        what: String,
        /// The status code.
        status: u16,
    },
    /// The body exceeded the size cap.
    #[error("{what} from registry {registry} exceeds the {limit}-byte limit; refusing to read it")]
    TooLarge {
        /// Registry host[:port].
        registry: String,
        /// What was requested.
        what: String,
        /// The cap.
        limit: u64,
    },
    /// An image carries more signature material than one decision considers.
    #[error(
        "{what} in registry {registry}: {count} {unit}, more than the {limit} one decision considers; refusing them"
    )]
    TooMany {
        /// Registry host[:port].
        registry: String,
        /// Whose material (`signatures of repo@digest`).
        what: String,
        /// How many there are.
        count: u64,
        /// The cap.
        limit: u64,
        /// What is counted (`signatures`, `bytes of signatures`, `referrers`).
        unit: &'static str,
    },
    /// Content does not hash to the digest it was requested by or announced with.
    #[error("registry {registry} served content for {what} that hashes to {actual}, not {expected}; refusing it")]
    DigestMismatch {
        /// Registry host[:port].
        registry: String,
        /// What was requested.
        what: String,
        /// The digest expected (requested, or announced in `Docker-Content-Digest`).
        expected: String,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// The response is not a manifest tollgate understands.
    #[error("{what} from registry {registry} has media type {media_type:?}, which is not an OCI or docker manifest")]
    UnsupportedMediaType {
        /// Registry host[:port].
        registry: String,
        /// What was requested.
        what: String,
        /// The media type served.
        media_type: String,
    },
    /// A manifest or attachment is not valid JSON of the expected shape.
    #[error("{what} from registry {registry} is malformed: {message}")]
    Malformed {
        /// Registry host[:port].
        registry: String,
        /// What was requested.
        what: String,
        /// The parser's message.
        message: String,
    },
    /// The token endpoint misbehaved.
    #[error("token service {realm} for registry {registry} failed: {message}")]
    Token {
        /// Registry host[:port].
        registry: String,
        /// Token endpoint (without query).
        realm: String,
        /// What went wrong.
        message: String,
    },
    /// The client could not be configured.
    #[error("cannot configure the registry client: {0}")]
    Config(String),
}

impl RegistryError {
    /// Whether the failure may go away on its own (network, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }
}

/// HTTP statuses worth retrying.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_texts_say_what_and_where() {
        let e = RegistryError::Unreachable { registry: "127.0.0.1:1".into(), message: "connection refused".into() };
        assert_eq!(
            e.to_string(),
            "registry 127.0.0.1:1 is unreachable: connection refused; check the address, or the network and any proxy"
        );
        assert!(e.is_transient());
        let e = RegistryError::DigestMismatch {
            registry: "r".into(),
            what: "r/x:1".into(),
            expected: "sha256:aa".into(),
            actual: Digest::sha256_of(b""),
        };
        assert_eq!(
            e.to_string(),
            "registry r served content for r/x:1 that hashes to \
             sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855, not sha256:aa; refusing it"
        );
        assert!(!e.is_transient());
        let e = RegistryError::Status { registry: "r".into(), what: "x".into(), status: 503 };
        assert!(e.is_transient());
        let e = RegistryError::NotFound { registry: "r".into(), what: "r/x:1".into() };
        assert_eq!(e.to_string(), "r/x:1 not found in registry r (HTTP 404)");
        let e = RegistryError::TooLarge { registry: "r".into(), what: "m".into(), limit: 4 };
        assert_eq!(e.to_string(), "m from registry r exceeds the 4-byte limit; refusing to read it");
    }
}
