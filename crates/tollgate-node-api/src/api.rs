//! The daemon's JSON API over its unix socket (HTTP/1.1):
//! `POST /v1/verify` takes a [`VerifyRequest`] and answers a [`VerifyResponse`];
//! `GET /healthz` answers a [`Health`]; `GET /metrics` answers OpenMetrics text.

use serde::{Deserialize, Serialize};

/// Largest request body the daemon reads.
pub const MAX_REQUEST_BYTES: usize = 64 << 10;
/// Largest response body the client reads.
pub const MAX_RESPONSE_BYTES: usize = 256 << 10;

/// Asks whether an image may be pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    /// The reference being pulled (`-name`).
    pub name: String,
    /// The digest that will be pulled (`-digest`; the index digest for multi-platform images).
    pub digest: String,
    /// The Kubernetes namespace, when known (recorded in the audit log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The media type containerd's descriptor gives the digest, when known: the
    /// manifest's own bytes must agree (index or image manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// What the daemon decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The policy allows it.
    Allowed,
    /// The policy denies it.
    Denied,
    /// No decision for now (registry unreachable, deadline passed).
    Undecidable,
    /// The policy would deny it; warn mode allowed it.
    Warned,
    /// An exemption allowed it without evaluating requirements.
    Exempt,
    /// The break-glass file allowed it without evaluating anything.
    BreakGlass,
}

impl Outcome {
    /// The name used in audit records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Undecidable => "undecidable",
            Outcome::Warned => "warned",
            Outcome::Exempt => "exempt",
            Outcome::BreakGlass => "break-glass",
        }
    }
}

/// The answer to a [`VerifyRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    /// Whether the pull may go ahead. This is the only field that decides.
    pub allowed: bool,
    /// What happened (an undecidable image may be allowed by `failOpen`).
    pub outcome: Outcome,
    /// One line: why.
    pub reason: String,
    /// The policy rule (scope) that decided.
    pub rule: String,
    /// Whether the verdict came from the cache.
    pub cached: bool,
    /// The hash of the policy in force.
    pub policy_hash: String,
}

/// An error answer (bad request, unknown path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What was wrong.
    pub error: String,
}

/// The daemon's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`, or `degraded` when a policy reload failed or break-glass is on.
    pub status: String,
    /// The policy in force.
    pub policy: PolicyStatus,
    /// Why the last reload failed, while the last good policy stays in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
    /// Whether the break-glass file exists.
    pub break_glass: bool,
    /// Verdicts cached.
    pub cached_verdicts: usize,
    /// Which policy is enforced: `configured`, `last-good` (the configured
    /// one does not load; see `reloadError`) or `none` (every decision is
    /// undecidable until a policy loads).
    #[serde(default)]
    pub enforcing: String,
    /// The hash of the policy bundle in force (`policyBundle`), as `tollgate policy compile
    /// --configmap` annotates its ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_hash: Option<String>,
}

/// The policy in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The file.
    pub path: String,
    /// Its hash (with its trust material).
    pub hash: String,
    /// When it was loaded (RFC 3339).
    pub loaded_at: String,
}
