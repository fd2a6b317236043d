//! notation's OCI trust policy document, `trustpolicy.json` (or `trustpolicy.oci.json`), accepted as
//! notation-go reads it (`verifier/trustpolicy`): version `1.0`; statements with unique names; registry
//! scopes that are fully qualified repositories, or `*` alone, each in one statement only; a verification
//! level (`strict`, `permissive`, `audit`, `skip`) with overrides; `TYPE:NAME` trust stores; and
//! trusted identities (`*` alone, or `x509.subject:DN` entries that do not overlap). Pure.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::identity;
use crate::truststore::StoreType;

/// Largest trust policy read.
pub const MAX_BYTES: usize = 1 << 20;

/// A trust policy document notation would refuse, or an artifact it does not cover.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// The document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// `1.0`.
    #[serde(default)]
    pub version: String,
    /// The statements.
    #[serde(default)]
    pub trust_policies: Vec<Statement>,
}

/// One trust policy statement.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Repositories it covers (`registry.example.com/team/app`), or `*`.
    #[serde(default)]
    pub registry_scopes: Vec<String>,
    /// How strictly.
    #[serde(default)]
    pub signature_verification: SignatureVerification,
    /// `ca:NAME`, `signingAuthority:NAME`, `tsa:NAME`.
    #[serde(default)]
    pub trust_stores: Vec<String>,
    /// `*`, or `x509.subject:DN` (other prefixes are for plugins).
    #[serde(default)]
    pub trusted_identities: Vec<String>,
}

/// `signatureVerification`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureVerification {
    /// `strict`, `permissive`, `audit` or `skip`.
    #[serde(default)]
    pub level: String,
    /// Per verification type, another action.
    #[serde(default)]
    pub r#override: BTreeMap<String, String>,
    /// `always` (default) or `afterCertExpiry`.
    #[serde(default)]
    pub verify_timestamp: String,
}

/// What a failed verification of one type does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It fails the verification.
    Enforce,
    /// It is logged; the verification goes on.
    Log,
    /// It is not checked.
    Skip,
}

/// A verification level: an action per verification type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// `strict`, `permissive`, `audit`, `skip`, or `custom` with overrides.
    pub name: &'static str,
    /// The envelope's signature and format.
    pub integrity: Action,
    /// The signer chains to a trust store and matches a trusted identity.
    pub authenticity: Action,
    /// The signing time is vouched for (a timestamp, or the signing authority's own time).
    pub authentic_timestamp: Action,
    /// The signature has not expired.
    pub expiry: Action,
    /// No certificate is revoked.
    pub revocation: Action,
}

impl Level {
    fn base(name: &str) -> Option<Level> {
        use Action::*;
        let l = |name, a: [Action; 5]| Level {
            name,
            integrity: a[0],
            authenticity: a[1],
            authentic_timestamp: a[2],
            expiry: a[3],
            revocation: a[4],
        };
        Some(match name {
            "strict" => l("strict", [Enforce; 5]),
            "permissive" => l("permissive", [Enforce, Enforce, Log, Log, Log]),
            "audit" => l("audit", [Enforce, Log, Log, Log, Log]),
            "skip" => l("skip", [Skip; 5]),
            _ => return None,
        })
    }
}

impl SignatureVerification {
    /// The level with its overrides applied, as notation-go's `GetVerificationLevel`.
    pub fn level(&self) -> Result<Level, PolicyError> {
        if self.level.is_empty() {
            return Err(PolicyError(
                "signature verification level is empty or missing in the trust policy statement".into(),
            ));
        }
        let mut level = Level::base(&self.level)
            .ok_or_else(|| PolicyError(format!("invalid signature verification level {:?}", self.level)))?;
        if self.r#override.is_empty() {
            return Ok(level);
        }
        if level.name == "skip" {
            return Err(PolicyError(
                "signature verification level \"skip\" can't be used to customize signature verification".into(),
            ));
        }
        level.name = "custom";
        for (kind, action) in &self.r#override {
            let action = match action.as_str() {
                "enforce" => Action::Enforce,
                "log" => Action::Log,
                "skip" => Action::Skip,
                other => {
                    return Err(PolicyError(format!(
                        "verification action {other:?} in custom signature verification is not supported, supported values are enforce, log, skip"
                    )));
                }
            };
            if kind == "integrity" {
                return Err(PolicyError(
                    "\"integrity\" verification can not be overridden in custom signature verification".into(),
                ));
            }
            if kind != "revocation" && action == Action::Skip {
                return Err(PolicyError(format!(
                    "{kind:?} verification can not be skipped in custom signature verification"
                )));
            }
            match kind.as_str() {
                "authenticity" => level.authenticity = action,
                "authenticTimestamp" => level.authentic_timestamp = action,
                "expiry" => level.expiry = action,
                "revocation" => level.revocation = action,
                other => {
                    return Err(PolicyError(format!(
                        "verification type {other:?} in custom signature verification is not supported, supported values are integrity, authenticity, authenticTimestamp, expiry, revocation"
                    )));
                }
            }
        }
        Ok(level)
    }
}

/// Parses and validates a trust policy document.
pub fn parse(bytes: &[u8]) -> Result<Document, PolicyError> {
    if bytes.len() > MAX_BYTES {
        return Err(PolicyError(format!("the trust policy is larger than {MAX_BYTES} bytes")));
    }
    let doc: Document =
        serde_json::from_slice(bytes).map_err(|e| PolicyError(format!("malformed trust policy: {e}")))?;
    doc.validate()?;
    Ok(doc)
}

impl Document {
    /// notation-go's `OCIDocument.Validate`.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.version.is_empty() {
            return Err(PolicyError("oci trust policy document has empty version, version must be specified".into()));
        }
        if self.version != "1.0" {
            return Err(PolicyError(format!("oci trust policy document uses unsupported version {:?}", self.version)));
        }
        if self.trust_policies.is_empty() {
            return Err(PolicyError("oci trust policy document can not have zero trust policy statements".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.trust_policies {
            if !names.insert(s.name.as_str()) {
                return Err(PolicyError(format!(
                    "multiple oci trust policy statements use the same name {:?}, statement names must be unique",
                    s.name
                )));
            }
            s.validate_core().map_err(|e| PolicyError(format!("oci trust policy: {}", e.0)))?;
        }
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for s in &self.trust_policies {
            if s.registry_scopes.is_empty() {
                return Err(PolicyError(format!(
                    "oci trust policy statement {:?} has zero registry scopes, it must specify registry scopes with at least one value",
                    s.name
                )));
            }
            if s.registry_scopes.len() > 1 && s.registry_scopes.iter().any(|r| r == "*") {
                return Err(PolicyError(format!(
                    "oci trust policy statement {:?} uses wildcard registry scope '*', a wildcard scope cannot be used in conjunction with other scope values",
                    s.name
                )));
            }
            for scope in &s.registry_scopes {
                if scope != "*" {
                    scope_format(scope)?;
                }
                if owner.insert(scope, &s.name).is_some() {
                    return Err(PolicyError(format!(
                        "registry scope {scope:?} is present in multiple oci trust policy statements, one registry scope value can only be associated with one statement"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The statement for `artifact` (`REPOSITORY@DIGEST`): the one naming its repository, else the
    /// `*` one.
    pub fn applicable(&self, artifact: &str) -> Result<&Statement, PolicyError> {
        let unparsed = || {
            PolicyError(format!(
                "artifact URI {artifact:?} could not be parsed, make sure it is the fully qualified oci artifact URI without the scheme/protocol. e.g domain.com:80/my/repository@sha256:digest"
            ))
        };
        let (path, digest) = artifact.rsplit_once('@').ok_or_else(unparsed)?;
        let hex_ok =
            |h: &str, n: usize| h.len() == n && h.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        let digest_ok = match digest.split_once(':') {
            Some(("sha256", h)) => hex_ok(h, 64),
            Some(("sha384", h)) => hex_ok(h, 96),
            Some(("sha512", h)) => hex_ok(h, 128),
            _ => false,
        };
        if !digest_ok {
            return Err(unparsed());
        }
        scope_format(path)?;
        let exact = self.trust_policies.iter().find(|s| s.registry_scopes.iter().any(|r| r == path));
        let wildcard = self.trust_policies.iter().find(|s| s.registry_scopes.iter().any(|r| r == "*"));
        exact.or(wildcard).ok_or_else(|| {
            PolicyError(format!(
                "artifact {artifact:?} has no applicable oci trust policy statement. Trust policy applicability for a given artifact is determined by registryScopes"
            ))
        })
    }
}

impl Statement {
    fn validate_core(&self) -> Result<(), PolicyError> {
        let name = &self.name;
        if name.is_empty() {
            return Err(PolicyError(
                "a trust policy statement is missing a name, every statement requires a name".into(),
            ));
        }
        let level = self.signature_verification.level().map_err(|e| {
            PolicyError(format!("trust policy statement {name:?} has invalid signatureVerification: {}", e.0))
        })?;
        let ts = &self.signature_verification.verify_timestamp;
        if !ts.is_empty() && ts != "always" && ts != "afterCertExpiry" {
            return Err(PolicyError(format!(
                "trust policy statement {name:?} has invalid signatureVerification: verifyTimestamp must be \"always\" or \"afterCertExpiry\", but got {ts:?}"
            )));
        }
        if level.name == "skip" {
            if !self.trust_stores.is_empty() || !self.trusted_identities.is_empty() {
                return Err(PolicyError(format!(
                    "trust policy statement {name:?} is set to skip signature verification but configured with trust stores and/or trusted identities, remove them if signature verification needs to be skipped"
                )));
            }
            return Ok(());
        }
        if self.trust_stores.is_empty() || self.trusted_identities.is_empty() {
            return Err(PolicyError(format!(
                "trust policy statement {name:?} is either missing trust stores or trusted identities, both must be specified"
            )));
        }
        for store in &self.trust_stores {
            let Some((kind, store_name)) = store.split_once(':') else {
                return Err(PolicyError(format!(
                    "trust policy statement {name:?} has malformed trust store value {store:?}. The required format is <TrustStoreType>:<TrustStoreName>"
                )));
            };
            if StoreType::parse(kind).is_none() {
                return Err(PolicyError(format!(
                    "trust policy statement {name:?} uses an unsupported trust store type {kind:?} in trust store value {store:?}"
                )));
            }
            if store_name.is_empty() || !store_name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                return Err(PolicyError(format!(
                    "trust policy statement {name:?} uses an unsupported trust store name {store_name:?} in trust store value {store:?}. Named store name needs to follow [a-zA-Z0-9_.-]+ format"
                )));
            }
        }
        let ids = &self.trusted_identities;
        if ids.len() > 1 && ids.iter().any(|i| i == "*") {
            return Err(PolicyError(format!(
                "trust policy statement {name:?} uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with other values"
            )));
        }
        let mut dns = Vec::new();
        for id in ids {
            if id.is_empty() {
                return Err(PolicyError(format!("trust policy statement {name:?} has an empty trusted identity")));
            }
            if id == "*" {
                continue;
            }
            let Some((prefix, value)) = id.split_once(':') else {
                return Err(PolicyError(format!(
                    "trust policy statement {name:?} has trusted identity {id:?} missing separator"
                )));
            };
            if prefix == identity::X509_SUBJECT {
                if value.is_empty() {
                    return Err(PolicyError(format!(
                        "trust policy statement {name:?} has trusted identity {id:?} without an identity value"
                    )));
                }
                let dn = identity::parse_dn(value).map_err(|e| {
                    PolicyError(format!(
                        "trust policy statement {name:?} has trusted identity {id:?} with invalid identity value: {}",
                        e.0
                    ))
                })?;
                dns.push((id, dn));
            }
        }
        for (i, (a, dn_a)) in dns.iter().enumerate() {
            for (j, (b, dn_b)) in dns.iter().enumerate() {
                if i != j && identity::is_subset(dn_a, dn_b) {
                    return Err(PolicyError(format!(
                        "trust policy statement {name:?} has overlapping x509 trustedIdentities, {a:?} overlaps with {b:?}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// notation-go's `validateRegistryScopeFormat`: `DOMAIN[:PORT]/REPOSITORY`, no scheme, tag or wildcard.
fn scope_format(scope: &str) -> Result<(), PolicyError> {
    let ensure = "make sure it is a fully qualified repository without the scheme, protocol or tag. For example domain.com/my/repository or a local scope like local/myOCILayout";
    if scope.len() > 1 && scope.contains('*') {
        return Err(PolicyError(format!("registry scope {scope:?} with wild card(s) is not valid, {ensure}")));
    }
    let bad = || PolicyError(format!("registry scope {scope:?} is not valid, {ensure}"));
    let (domain, repository) = scope.split_once('/').ok_or_else(bad)?;
    if !domain_ok(domain) || !repository_ok(repository) {
        return Err(bad());
    }
    Ok(())
}

fn domain_ok(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !host.is_empty()
        && host.split('.').all(label)
        && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*` per path component.
fn repository_ok(r: &str) -> bool {
    let component = |c: &str| {
        let b = c.as_bytes();
        let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            // A separator run: ".", "_", "__", or any number of "-".
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &c[start..i];
            if !(sep == "." || sep == "_" || sep == "__" || sep.chars().all(|x| x == '-')) {
                return false;
            }
        }
        true
    };
    !r.is_empty() && r.split('/').all(component)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"version":"1.0","trustPolicies":[{"name":"a","registryScopes":["registry.acme-rockets.io/software/net-monitor"],
        "signatureVerification":{"level":"strict"},"trustStores":["ca:valid-trust-store"],"trustedIdentities":["x509.subject:C=US,ST=WA,O=Notary"]},
        {"name":"b","registryScopes":["*"],"signatureVerification":{"level":"skip"}}]}"#;

    #[test]
    fn a_valid_document_picks_the_statement_for_an_artifact() {
        let doc = parse(GOOD.as_bytes()).unwrap();
        let d = "@sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e";
        assert_eq!(doc.applicable(&format!("registry.acme-rockets.io/software/net-monitor{d}")).unwrap().name, "a");
        assert_eq!(doc.applicable(&format!("other.io/x{d}")).unwrap().name, "b", "the wildcard");
        assert!(doc.applicable("no-digest.io/x:tag").is_err());
    }

    #[test]
    fn levels_and_overrides_are_notations() {
        let sv = |level: &str, o: &[(&str, &str)]| SignatureVerification {
            level: level.into(),
            r#override: o.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            verify_timestamp: String::new(),
        };
        assert_eq!(sv("audit", &[]).level().unwrap().authenticity, Action::Log);
        let custom = sv("strict", &[("expiry", "log"), ("revocation", "skip")]).level().unwrap();
        assert_eq!((custom.name, custom.expiry, custom.revocation), ("custom", Action::Log, Action::Skip));
        assert!(sv("strict", &[("integrity", "log")]).level().unwrap_err().0.contains("can not be overridden"));
        assert!(sv("strict", &[("expiry", "skip")]).level().unwrap_err().0.contains("can not be skipped"));
        assert!(sv("skip", &[("expiry", "log")]).level().is_err());
        assert!(sv("lenient", &[]).level().is_err());
    }

    #[test]
    fn each_rule_refuses_the_document() {
        for (change, needle) in [
            (GOOD.replace("\"1.0\"", "\"2.0\""), "unsupported version"),
            (GOOD.replace("\"name\":\"b\"", "\"name\":\"a\""), "use the same name"),
            (
                GOOD.replace("\"registryScopes\":[\"*\"]", "\"registryScopes\":[\"*\",\"x.io/y\"]"),
                "cannot be used in conjunction",
            ),
            (GOOD.replace("\"*\"]", "\"registry.acme-rockets.io/software/net-monitor\"]"), "present in multiple"),
            (GOOD.replace("software/net-monitor\"]", "software/*\"]"), "with wild card(s)"),
            (GOOD.replace("registry.acme-rockets.io/", "https://registry.acme-rockets.io/"), "is not valid"),
            (GOOD.replace("ca:valid-trust-store", "valid-trust-store"), "malformed trust store value"),
            (GOOD.replace("ca:valid-trust-store", "x509:s"), "unsupported trust store type"),
            (GOOD.replace("x509.subject:C=US,ST=WA,O=Notary", "x509.subject:"), "without an identity value"),
            (
                GOOD.replace(
                    "\"x509.subject:C=US,ST=WA,O=Notary\"",
                    "\"x509.subject:C=US,ST=WA,O=Notary\",\"x509.subject:C=US,ST=WA,O=Notary,CN=x\"",
                ),
                "overlapping",
            ),
            (GOOD.replace("{\"level\":\"skip\"}", "{\"level\":\"skip\"},\"trustStores\":[\"ca:x\"]"), "set to skip"),
        ] {
            let e = parse(change.as_bytes()).unwrap_err();
            assert!(e.0.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn scope_components_follow_the_distribution_grammar() {
        for ok in ["local/myOCILayout".to_lowercase().as_str(), "domain.com:80/my/repository", "a.b/c__d/e--f"] {
            assert!(scope_format(ok).is_ok(), "{ok}");
        }
        for bad in ["domain.com", "domain.com/", "-a.com/x", "a.com/X", "a.com/x.", "a.com/x..y", "a.com:/x"] {
            assert!(scope_format(bad).is_err(), "{bad}");
        }
    }
}
