//! Evaluating a policy for one image: a pure function from the policy, the
//! image and the signatures found to an explained [`Decision`].

use serde::Serialize;
use tollgate_oci::Digest;
use tollgate_verify::cosign::{self, SignatureLayer, SignatureRejection};
use tollgate_verify::cosign::{FulcioTrust, PkiTrust, VerifiedSignature};
use tollgate_verify::{PublicKey, rekor, x509};

use crate::containers::{Exemption, KeySource, Mode, Policy, PolicyError, Requirement, SignedIdentity};
use crate::identity;
use crate::scope::{self, MatchedScope, Subject};

/// The certificate identity (SAN, email or URI) a keyless requirement demands, loaded.
#[derive(Debug, Clone)]
pub enum SanRule {
    /// Exactly this.
    Exact(String),
    /// Whole SANs this anchored expression matches.
    Pattern(tollgate_verify::x509::Regex),
}

impl SanRule {
    /// From an exact subject, or a regular expression when one is given.
    pub fn load(exact: &str, pattern: Option<&str>) -> Result<SanRule, String> {
        match pattern {
            Some(p) => tollgate_verify::x509::san_pattern(p).map(SanRule::Pattern),
            None => Ok(SanRule::Exact(exact.to_owned())),
        }
    }

    /// As the verifier takes it.
    pub fn san(&self) -> tollgate_verify::x509::San<'_> {
        match self {
            SanRule::Exact(s) => tollgate_verify::x509::San::Exact(s),
            SanRule::Pattern(re) => tollgate_verify::x509::San::Matches(re),
        }
    }
}

/// A requirement with its trust material loaded and parsed.
#[derive(Debug, Clone)]
pub enum Loaded {
    /// `insecureAcceptAnything`.
    AcceptAnything,
    /// `reject`.
    Reject,
    /// A requirement tollgate cannot evaluate; always denies, with this reason.
    Unsupported(String),
    /// `digestAllowlist`.
    DigestAllowlist(Vec<Digest>),
    /// The inner requirement, for the index and every platform manifest.
    PerPlatform(Box<Loaded>),
    /// Any one of these.
    AnyOf(Vec<Loaded>),
    /// `sigstoreSigned` with `fulcio` (keyless).
    SigstoreFulcio {
        /// Fulcio CA certificates (DER).
        roots: Vec<Vec<u8>>,
        /// Required OIDC issuer.
        issuer: String,
        /// Required SAN (email or URI, or a pattern).
        subject: SanRule,
        /// Rekor keys (at least one).
        rekor_keys: Vec<PublicKey>,
        /// Identity rule.
        identity: SignedIdentity,
    },
    /// `sigstoreSigned` with `pki`.
    SigstorePki {
        /// Root certificates (DER).
        roots: Vec<Vec<u8>>,
        /// Intermediate certificates (DER).
        intermediates: Vec<Vec<u8>>,
        /// Required SAN email.
        email: Option<String>,
        /// Required hostname.
        hostname: Option<String>,
        /// Identity rule.
        identity: SignedIdentity,
    },
    /// `sigstoreBundle`: bundles attached as referrers, against a trusted root.
    SigstoreBundle {
        /// The parsed trusted root.
        root: Box<tollgate_verify::bundle::TrustedRoot>,
        /// The signing key (key-signed bundles).
        key: Option<PublicKey>,
        /// SAN rule and OIDC issuer (keyless bundles).
        identity: Option<(SanRule, String)>,
        /// Accepted predicate types (never empty: the default is filled in at load).
        predicate_types: Vec<String>,
    },
    /// `notationSigned`: notation's trust policy and the certificates of its trust stores.
    Notation {
        /// The trust policy, validated.
        document: Box<tollgate_notation::trustpolicy::Document>,
        /// Each store (`TYPE:NAME`) and its certificates (DER), checked as notation checks them.
        stores: std::collections::BTreeMap<String, Vec<Vec<u8>>>,
        /// Online revocation checking, with this timeout per fetch.
        check_revocation: Option<std::time::Duration>,
    },
    /// `sigstoreSigned` with public keys.
    SigstoreKeys {
        /// Signing keys.
        keys: Vec<PublicKey>,
        /// Rekor keys; a verified SET is required when not empty.
        rekor_keys: Vec<PublicKey>,
        /// Identity rule.
        identity: SignedIdentity,
    },
}

/// What a decision needs fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// cosign `.sig` signatures of the digest.
    pub cosign: bool,
    /// Sigstore bundles attached as OCI referrers.
    pub bundles: bool,
    /// Notary Project signatures attached as OCI referrers.
    pub notation: bool,
    /// For an index, the signatures of each platform manifest.
    pub platforms: bool,
    /// The CRLs of notation signing chains, each fetched within this timeout
    /// ([`LoadedPolicy::notation_anchors`] says which chains may be checked).
    pub revocation: Option<std::time::Duration>,
}

impl Needs {
    /// Whether any signature material is needed (and so the manifest too).
    pub fn signatures(self) -> bool {
        self.cosign || self.bundles || self.notation
    }
}

/// A policy whose trust material has been read and parsed.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// The policy as written.
    pub policy: Policy,
    default: Vec<Loaded>,
    scopes: Vec<(&'static str, String, Vec<Loaded>)>,
}

impl LoadedPolicy {
    /// Loads trust material through `read` (the edge: files, or a map in tests).
    /// Every key is parsed now, so a broken key fails at load, not at pull time.
    pub fn load(
        policy: Policy,
        source_name: &str,
        read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<LoadedPolicy, PolicyError> {
        let default = load_list(&policy.default, "default", source_name, read)?;
        let mut scopes = Vec::new();
        for t in [scope::DOCKER, scope::OCI] {
            for (s, reqs) in policy.transports.get(t).into_iter().flatten() {
                let loaded = load_list(reqs, &format!("transports.{t}[{s:?}]"), source_name, read)?;
                scopes.push((t, s.clone(), loaded));
            }
        }
        Ok(LoadedPolicy { policy, default, scopes })
    }

    fn loaded_for(&self, transport: &str, matched: &MatchedScope) -> &[Loaded] {
        match &matched.scope {
            None => &self.default,
            Some(s) => {
                self.scopes.iter().find(|(t, k, _)| *t == transport && k == s).map_or(&self.default[..], |(_, _, l)| l)
            }
        }
    }

    /// What evaluating `subject` will look at, so the caller fetches only that
    /// (one scope resolution for all of it).
    pub fn needs(&self, subject: &Subject<'_>) -> Needs {
        let (matched, _) = scope::requirements_for(&self.policy, subject);
        let loaded = leaves(self.loaded_for(subject.transport(), &matched));
        let any = |f: fn(&Loaded) -> bool| loaded.iter().any(|l| f(l));
        Needs {
            cosign: any(|l| {
                matches!(
                    l,
                    Loaded::SigstoreKeys { .. }
                        | Loaded::SigstoreFulcio { .. }
                        | Loaded::SigstorePki { .. }
                        | Loaded::PerPlatform(_)
                )
            }),
            bundles: any(|l| matches!(l, Loaded::SigstoreBundle { .. })),
            notation: any(|l| matches!(l, Loaded::Notation { .. })),
            platforms: any(|l| matches!(l, Loaded::PerPlatform(_))),
            revocation: loaded
                .iter()
                .filter_map(|l| match l {
                    Loaded::Notation { check_revocation, .. } => *check_revocation,
                    _ => None,
                })
                .max(),
        }
    }

    /// The certificates of the `ca:` and `signingAuthority:` stores of the `notationSigned`
    /// requirements for `subject` that check revocation online: a signing chain's CRLs are fetched
    /// only when the chain holds one of them, so an untrusted signature never makes a node fetch
    /// the URLs it names.
    pub fn notation_anchors(&self, subject: &Subject<'_>) -> Vec<Vec<u8>> {
        let (matched, _) = scope::requirements_for(&self.policy, subject);
        let mut out = Vec::new();
        for l in leaves(self.loaded_for(subject.transport(), &matched)) {
            if let Loaded::Notation { stores, check_revocation: Some(_), .. } = l {
                let trusted = stores.iter().filter(|(name, _)| !name.starts_with("tsa:"));
                out.extend(trusted.flat_map(|(_, certs)| certs.iter().cloned()));
            }
        }
        out
    }
}

/// The requirements with each `anyOf` replaced by its alternatives: what may be looked at.
fn leaves(loaded: &[Loaded]) -> Vec<&Loaded> {
    loaded
        .iter()
        .flat_map(|l| match l {
            Loaded::AnyOf(all) => all.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .collect()
}

fn load_list(
    reqs: &[Requirement],
    location: &str,
    source_name: &str,
    read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Vec<Loaded>, PolicyError> {
    reqs.iter()
        .enumerate()
        .map(|(i, r)| {
            let loc = format!("{location}[{i}]");
            let err = |message: String| PolicyError::Invalid {
                source_name: source_name.to_owned(),
                location: loc.clone(),
                message,
            };
            let keys = |sources: &[KeySource], what: &str| -> Result<Vec<PublicKey>, PolicyError> {
                sources
                    .iter()
                    .map(|s| {
                        let (bytes, shown) = match s {
                            KeySource::Path(p) => {
                                (read(p).map_err(|e| err(format!("cannot read {what} {p}: {e}")))?, p.clone())
                            }
                            KeySource::Data(d) => (d.clone(), format!("inline {what}")),
                        };
                        // A sigstore trusted_root.json stands for its logs' ECDSA keys.
                        if crate::containers::is_trusted_root(&bytes) {
                            let root = tollgate_verify::bundle::TrustedRoot::parse(&bytes)
                                .map_err(|e| err(format!("{shown}: {e}")))?;
                            return Ok(root.rekor_set_keys());
                        }
                        PublicKey::from_pem(&bytes).map(|k| vec![k]).map_err(|e| err(format!("{shown}: {e}")))
                    })
                    .collect::<Result<Vec<Vec<PublicKey>>, PolicyError>>()
                    .map(|v| v.into_iter().flatten().collect())
            };
            Ok(match r {
                Requirement::InsecureAcceptAnything => Loaded::AcceptAnything,
                Requirement::Reject => Loaded::Reject,
                Requirement::DigestAllowlist { digests } => Loaded::DigestAllowlist(digests.clone()),
                Requirement::SigstoreBundle { trusted_root, public_key, identity, predicate_types } => {
                    let (bytes, shown) = match trusted_root {
                        KeySource::Path(p) => {
                            (read(p).map_err(|e| err(format!("cannot read trusted root {p}: {e}")))?, p.clone())
                        }
                        KeySource::Data(d) => (d.clone(), "inline trusted root".to_owned()),
                    };
                    let root = tollgate_verify::bundle::TrustedRoot::parse(&bytes)
                        .map_err(|e| err(format!("{shown}: {e}")))?;
                    let key = match public_key {
                        Some(k) => keys(std::slice::from_ref(k), "key")?.into_iter().next(),
                        None => None,
                    };
                    let predicate_types = if predicate_types.is_empty() {
                        vec![crate::containers::COSIGN_SIGN_PREDICATE.to_owned()]
                    } else {
                        predicate_types.clone()
                    };
                    let identity = match identity {
                        Some(id) => {
                            Some((SanRule::load(&id.san, id.san_reg_exp.as_deref()).map_err(err)?, id.issuer.clone()))
                        }
                        None => None,
                    };
                    Loaded::SigstoreBundle { root: Box::new(root), key, identity, predicate_types }
                }
                Requirement::NotationSigned { trust_policy, trust_stores, check_revocation } => {
                    load_notation(trust_policy, trust_stores, *check_revocation, read).map_err(err)?
                }
                Requirement::PerPlatform(inner) => {
                    let mut one = load_list(std::slice::from_ref(inner.as_ref()), &loc, source_name, read)?;
                    Loaded::PerPlatform(Box::new(one.remove(0)))
                }
                Requirement::AnyOf(all) => {
                    Loaded::AnyOf(load_list(all, &format!("{loc}.requirements"), source_name, read)?)
                }
                Requirement::SignedBy { .. } => Loaded::Unsupported(
                    "signedBy (GPG simple signing) is not supported by tollgate; use sigstoreSigned".into(),
                ),
                Requirement::SignedBaseLayer { .. } => Loaded::Unsupported(
                    "signedBaseLayer is not implemented (containers/image does not implement it either)".into(),
                ),
                Requirement::SigstoreSigned { fulcio: Some(f), rekor_public_keys, signed_identity, .. } => {
                    let rekor_keys = keys(rekor_public_keys, "Rekor key")?;
                    for key in &rekor_keys {
                        rekor::check_rekor_key(key).map_err(err)?;
                    }
                    Loaded::SigstoreFulcio {
                        roots: certs(&f.ca, "fulcio CA", read, &err)?,
                        issuer: f.oidc_issuer.clone(),
                        subject: SanRule::load(&f.subject_email, f.subject_reg_exp.as_deref()).map_err(err)?,
                        rekor_keys,
                        identity: signed_identity.clone(),
                    }
                }
                Requirement::SigstoreSigned { pki: Some(p), signed_identity, .. } => Loaded::SigstorePki {
                    roots: certs(&p.ca_roots, "pki roots", read, &err)?,
                    intermediates: match &p.ca_intermediates {
                        Some(i) => certs(i, "pki intermediates", read, &err)?,
                        None => Vec::new(),
                    },
                    email: p.subject_email.clone(),
                    hostname: p.subject_hostname.clone(),
                    identity: signed_identity.clone(),
                },
                Requirement::SigstoreSigned { keys: k, rekor_public_keys, signed_identity, .. } => {
                    let rekor_keys = keys(rekor_public_keys, "Rekor key")?;
                    for key in &rekor_keys {
                        rekor::check_rekor_key(key).map_err(err)?;
                    }
                    Loaded::SigstoreKeys { keys: keys(k, "key")?, rekor_keys, identity: signed_identity.clone() }
                }
            })
        })
        .collect()
}

/// Reads and checks a `notationSigned` requirement's material: the trust policy parses and validates,
/// every store a verifying statement names is given, every store given is named, and each store's
/// certificates pass notation's own trust-store checks.
fn load_notation(
    trust_policy: &KeySource,
    trust_stores: &std::collections::BTreeMap<String, Vec<KeySource>>,
    check_revocation: Option<crate::containers::CheckRevocation>,
    read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Loaded, String> {
    use tollgate_notation::{trustpolicy, truststore};
    let (bytes, shown) = match trust_policy {
        KeySource::Path(p) => (read(p).map_err(|e| format!("cannot read trust policy {p}: {e}"))?, p.clone()),
        KeySource::Data(d) => (d.clone(), "inline trust policy".to_owned()),
    };
    let document = trustpolicy::parse(&bytes).map_err(|e| format!("{shown}: {e}"))?;
    let mut named = std::collections::BTreeSet::new();
    for st in &document.trust_policies {
        let skips = st.signature_verification.level().is_ok_and(|l| l.integrity == trustpolicy::Action::Skip);
        for s in st.trust_stores.iter().filter(|_| !skips) {
            if !trust_stores.contains_key(s) {
                return Err(format!(
                    "trust policy statement {:?} names the trust store {s:?}, which trustStores does not give",
                    st.name
                ));
            }
            named.insert(s.as_str());
        }
    }
    let mut stores = std::collections::BTreeMap::new();
    for (name, files) in trust_stores {
        if !named.contains(name.as_str()) {
            return Err(format!("trust store {name:?} is named by no statement of {shown}"));
        }
        let (kind, store) = name.split_once(':').unwrap_or_default();
        let kind =
            truststore::StoreType::parse(kind).ok_or_else(|| format!("trust store {name:?} is not TYPE:NAME"))?;
        let entries = files
            .iter()
            .enumerate()
            .map(|(i, f)| match f {
                KeySource::Path(p) => read(p)
                    .map(|b| truststore::Entry::File(p.clone(), b))
                    .map_err(|e| format!("cannot read {p} of trust store {name}: {e}")),
                KeySource::Data(d) => Ok(truststore::Entry::File(format!("inline certificate {i}"), d.clone())),
            })
            .collect::<Result<Vec<_>, String>>()?;
        stores.insert(name.clone(), truststore::load(kind, store, &entries).map_err(|e| e.to_string())?);
    }
    let check_revocation = check_revocation.map(|c| std::time::Duration::from_secs(c.timeout_seconds));
    Ok(Loaded::Notation { document: Box::new(document), stores, check_revocation })
}

fn certs(
    source: &KeySource,
    what: &str,
    read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
    err: &dyn Fn(String) -> PolicyError,
) -> Result<Vec<Vec<u8>>, PolicyError> {
    let (bytes, shown) = match source {
        KeySource::Path(p) => (read(p).map_err(|e| err(format!("cannot read {what} {p}: {e}")))?, p.clone()),
        KeySource::Data(d) => (d.clone(), format!("inline {what}")),
    };
    // A sigstore trusted_root.json stands for its Fulcio CAs' certificates.
    if crate::containers::is_trusted_root(&bytes) {
        let root = tollgate_verify::bundle::TrustedRoot::parse(&bytes).map_err(|e| err(format!("{shown}: {e}")))?;
        return Ok(root.fulcio_certificates());
    }
    x509::certs_from_pem(&bytes).map_err(|e| err(format!("{shown}: {e}")))
}

/// The image being decided on.
#[derive(Debug, Clone)]
pub struct Image<'a> {
    /// What is pulled: a registry reference as pulled (normalized; tag and/or digest), or an OCI layout.
    pub subject: Subject<'a>,
    /// The digest that will be pulled (for a multi-platform image, the index digest).
    pub digest: &'a Digest,
    /// The manifest bytes, already checked against `digest`, when available.
    pub manifest: Option<&'a [u8]>,
    /// For an index, when the policy asks for them: each platform manifest and its signatures.
    pub platforms: &'a [PlatformSignatures],
}

/// One platform manifest of an index, and the signatures found for it.
#[derive(Debug, Clone)]
pub struct PlatformSignatures {
    /// `linux/amd64`, …
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: Digest,
    /// Its signatures.
    pub signatures: Signatures,
}

/// Signatures as the edge found them.
#[derive(Debug, Clone)]
pub enum Signatures {
    /// The signature layers (their payloads digest-checked by the fetcher).
    Found(Vec<SignatureLayer>),
    /// They could not be fetched.
    Unavailable {
        /// Whether trying again later may succeed (network).
        transient: bool,
        /// Why.
        reason: String,
    },
}

/// Whether a denial may go away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// The image is not acceptable (bad or missing signature, reject rule…).
    Fatal,
    /// Undecidable for now (registry unreachable…).
    Transient,
}

/// What happened to one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureOutcome {
    /// Position among the signatures found.
    pub index: usize,
    /// Whether it satisfied the requirement.
    pub accepted: bool,
    /// Why (or why not).
    pub reason: String,
    /// The key that verified it, when one did.
    #[serde(skip_serializing_if = "Option::is_none", rename = "keyFingerprint")]
    pub key_fingerprint: Option<String>,
    /// When an accepted signature stops being acceptable by itself: the
    /// earliest `notAfter` of a certificate chain checked at "now" (private
    /// PKI). `None` when time cannot end it (keys; Fulcio checked at the log time).
    #[serde(skip)]
    pub valid_until: Option<u64>,
}

/// What happened to one requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequirementOutcome {
    /// `reject`, `insecureAcceptAnything`, `sigstoreSigned (keys: 2, rekor: 1, signedIdentity: matchRepository)`…
    pub requirement: String,
    /// Whether it holds.
    pub satisfied: bool,
    /// Why (or why not).
    pub reason: String,
    /// Per-signature outcomes, for signature requirements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<SignatureOutcome>,
    /// Set when the requirement failed only because material was unavailable.
    #[serde(skip)]
    transient: bool,
}

/// A decision, with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the image may run.
    pub allowed: bool,
    /// The image reference.
    pub image: String,
    /// The digest decided on.
    pub digest: String,
    /// The scope whose requirements applied.
    pub scope: MatchedScope,
    /// Every requirement's outcome, in policy order.
    pub requirements: Vec<RequirementOutcome>,
    /// For denials: fatal or transient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The policy's mode.
    pub mode: Mode,
    /// In warn mode: the policy denied, and the image was allowed anyway.
    #[serde(rename = "wouldDeny")]
    pub would_deny: bool,
    /// The image matched an exemption and was allowed without evaluating requirements.
    pub exempt: bool,
    /// One line: what decided.
    pub reason: String,
    /// An allow that rests on certificates checked at "now" holds only until
    /// the earliest of their `notAfter` (Unix seconds): caches must not keep it longer.
    #[serde(skip_serializing_if = "Option::is_none", rename = "validUntil")]
    pub valid_until: Option<u64>,
}

/// Decides on `image` at time `now` (Unix seconds; used to check PKI
/// certificates). Every requirement of the most specific scope must hold; a
/// signature requirement holds when any one signature is accepted.
pub fn evaluate(policy: &LoadedPolicy, image: &Image<'_>, signatures: &Signatures, now: u64) -> Decision {
    let mode = policy.policy.mode;
    if let Some(e) = exemption(&policy.policy, image) {
        return Decision {
            allowed: true,
            image: image.subject.display(),
            digest: image.digest.to_string(),
            scope: MatchedScope { name: "exemptions".into(), scope: None },
            requirements: Vec::new(),
            failure: None,
            mode,
            would_deny: false,
            exempt: true,
            reason: format!("exempt: {}", e.reason),
            valid_until: None,
        };
    }
    if let Some(r) = image.subject.docker_reference()
        && let Some(canonical) = r.non_canonical_domain()
    {
        // `DOCKER.IO`, `registry-1.docker.io` and `host:443` reach the same
        // registry as the canonical host, but would miss its scope.
        let reason = format!(
            "denied: registry host {:?} is another spelling of {canonical:?}, the host policy scopes name; \
             refer to the image as {}",
            r.domain(),
            r.with_registry(&canonical).map_or_else(|_| canonical.clone(), |c| c.to_string())
        );
        return Decision {
            allowed: mode == Mode::Warn,
            image: image.subject.display(),
            digest: image.digest.to_string(),
            scope: MatchedScope { name: "canonical registry host".into(), scope: None },
            requirements: Vec::new(),
            failure: (mode != Mode::Warn).then_some(Failure::Fatal),
            mode,
            would_deny: mode == Mode::Warn,
            exempt: false,
            reason: if mode == Mode::Warn { format!("warn mode, allowed; would be {reason}") } else { reason },
            valid_until: None,
        };
    }
    let (matched, raw) = scope::requirements_for(&policy.policy, &image.subject);
    let loaded = policy.loaded_for(image.subject.transport(), &matched);
    let requirements: Vec<RequirementOutcome> =
        raw.iter().zip(loaded).map(|(r, l)| evaluate_one(r, l, image, signatures, now)).collect();
    let passed = !requirements.is_empty() && requirements.iter().all(|r| r.satisfied);
    let failed: Vec<&RequirementOutcome> = requirements.iter().filter(|r| !r.satisfied).collect();
    let reason = if passed {
        format!(
            "allowed by {}: {}",
            matched.name,
            requirements.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>().join("; ")
        )
    } else {
        let first = failed.first().map_or("no requirement", |r| r.reason.as_str());
        format!("denied by {}: {first}", matched.name)
    };
    let warn = !passed && mode == Mode::Warn;
    let holds_until = valid_until(&requirements);
    let failure = if passed || warn {
        None
    } else if !failed.is_empty() && failed.iter().all(|r| r.transient) {
        Some(Failure::Transient)
    } else {
        Some(Failure::Fatal)
    };
    Decision {
        allowed: passed || warn,
        image: image.subject.display(),
        digest: image.digest.to_string(),
        scope: matched,
        requirements,
        failure,
        mode,
        would_deny: warn,
        exempt: false,
        reason: if warn { format!("warn mode, allowed; would be {reason}") } else { reason },
        valid_until: if passed { holds_until } else { None },
    }
}

/// How long an allow holds by itself: each satisfied requirement holds while
/// its longest-lived accepted signature does; the decision while all of them do.
fn valid_until(requirements: &[RequirementOutcome]) -> Option<u64> {
    requirements
        .iter()
        .filter_map(|r| {
            let accepted: Vec<Option<u64>> =
                r.signatures.iter().filter(|s| s.accepted).map(|s| s.valid_until).collect();
            if accepted.is_empty() || accepted.contains(&None) { None } else { accepted.into_iter().flatten().max() }
        })
        .min()
}

fn exemption<'p>(policy: &'p Policy, image: &Image<'_>) -> Option<&'p Exemption> {
    policy.exemptions.iter().find(|e| {
        let by_digest = e.digest.as_ref().is_some_and(|d| d == image.digest);
        let by_repo = match (&e.repository, image.subject.docker_reference()) {
            (Some(r), Some(img)) => *r == img.repository(),
            _ => false,
        };
        by_digest || by_repo
    })
}

fn describe(r: &Requirement) -> String {
    match r {
        Requirement::InsecureAcceptAnything => "insecureAcceptAnything".into(),
        Requirement::Reject => "reject".into(),
        Requirement::SignedBy { key_type, .. } => format!("signedBy ({key_type})"),
        Requirement::SignedBaseLayer { .. } => "signedBaseLayer".into(),
        Requirement::DigestAllowlist { digests } => format!("digestAllowlist ({} digests)", digests.len()),
        Requirement::SigstoreBundle { public_key, identity, .. } => match (public_key, identity) {
            (_, Some(id)) => match &id.san_reg_exp {
                Some(p) => format!("sigstoreBundle (a SAN matching {p:?} via {})", id.issuer),
                None => format!("sigstoreBundle ({} via {})", id.san, id.issuer),
            },
            _ => "sigstoreBundle (key)".to_owned(),
        },
        Requirement::PerPlatform(inner) => format!("{}, per platform", describe(inner)),
        Requirement::AnyOf(all) => format!("anyOf ({})", all.iter().map(describe).collect::<Vec<_>>().join(" | ")),
        Requirement::NotationSigned { trust_stores, .. } => {
            format!("notationSigned (trust stores: {})", trust_stores.keys().cloned().collect::<Vec<_>>().join(", "))
        }
        Requirement::SigstoreSigned { keys, fulcio, pki, rekor_public_keys, signed_identity } => {
            let material = if fulcio.is_some() {
                "fulcio".to_owned()
            } else if pki.is_some() {
                "pki".to_owned()
            } else {
                format!("keys: {}", keys.len())
            };
            let id = serde_json::to_value(signed_identity)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
                .unwrap_or_default();
            format!("sigstoreSigned ({material}, rekor keys: {}, signedIdentity: {id})", rekor_public_keys.len())
        }
    }
}

fn outcome(requirement: String, satisfied: bool, reason: impl Into<String>) -> RequirementOutcome {
    RequirementOutcome { requirement, satisfied, reason: reason.into(), signatures: Vec::new(), transient: false }
}

fn evaluate_one(
    raw: &Requirement,
    loaded: &Loaded,
    image: &Image<'_>,
    signatures: &Signatures,
    now: u64,
) -> RequirementOutcome {
    type Check<'a> = Box<dyn Fn(&SignatureLayer) -> Result<VerifiedSignature, SignatureRejection> + 'a>;
    let name = describe(raw);
    if let (Loaded::PerPlatform(inner), Requirement::PerPlatform(raw_inner)) = (loaded, raw) {
        let index = evaluate_one(raw_inner, inner, image, signatures, now);
        if !index.satisfied {
            return RequirementOutcome { requirement: name, ..index };
        }
        for p in image.platforms {
            let sub = Image { subject: image.subject, digest: &p.digest, manifest: None, platforms: &[] };
            let o = evaluate_one(raw_inner, inner, &sub, &p.signatures, now);
            if !o.satisfied {
                let reason = format!("platform {} ({}): {}", p.platform, p.digest, o.reason);
                return RequirementOutcome {
                    requirement: name,
                    satisfied: false,
                    reason,
                    signatures: o.signatures,
                    transient: o.transient,
                };
            }
        }
        let reason =
            format!("{}; and each of the {} platform manifests is signed", index.reason, image.platforms.len());
        return RequirementOutcome { requirement: name, reason, ..index };
    }
    if let (Loaded::AnyOf(all), Requirement::AnyOf(raw_all)) = (loaded, raw) {
        let outcomes: Vec<RequirementOutcome> =
            raw_all.iter().zip(all).map(|(r, l)| evaluate_one(r, l, image, signatures, now)).collect();
        if let Some(ok) = outcomes.iter().find(|o| o.satisfied) {
            let reason = format!("one of {} alternatives holds: {}", outcomes.len(), ok.reason);
            return RequirementOutcome {
                requirement: name,
                satisfied: true,
                reason,
                signatures: ok.signatures.clone(),
                transient: false,
            };
        }
        let reasons: Vec<&str> = outcomes.iter().map(|o| o.reason.as_str()).collect();
        return RequirementOutcome {
            requirement: name,
            satisfied: false,
            reason: format!("none of {} alternatives holds: {}", outcomes.len(), reasons.join("; nor ")),
            // One that could not be checked for now might still hold: undecidable, not denied.
            transient: outcomes.iter().any(|o| o.transient),
            signatures: outcomes.into_iter().flat_map(|o| o.signatures).collect(),
        };
    }
    let (rule, check): (&SignedIdentity, Check<'_>) = match loaded {
        Loaded::AnyOf(_) => return outcome(name, false, "malformed anyOf requirement"),
        Loaded::AcceptAnything => return outcome(name, true, "insecureAcceptAnything accepts any image"),
        Loaded::Reject => return outcome(name, false, "the policy rejects every image in this scope"),
        Loaded::Unsupported(why) => return outcome(name, false, why.clone()),
        Loaded::PerPlatform(_) => return outcome(name, false, "malformed per-platform requirement"),
        Loaded::DigestAllowlist(digests) => {
            let listed = digests.iter().any(|d| {
                d == image.digest
                    || (d.algorithm() != image.digest.algorithm()
                        && image.manifest.is_some_and(|m| d.verify(m).is_ok()))
            });
            let reason = if listed {
                format!("digest {} is on the allowlist", image.digest)
            } else {
                format!("digest {} is not on the allowlist", image.digest)
            };
            return outcome(name, listed, reason);
        }
        Loaded::SigstoreBundle { root, key, identity, predicate_types } => {
            let trust = BundleTrust { root, key: key.as_ref(), identity: identity.as_ref(), predicate_types };
            return evaluate_bundles(name, &trust, image, signatures, now);
        }
        Loaded::Notation { document, stores, check_revocation } => {
            let online = check_revocation.is_some();
            return evaluate_notation(name, document, stores, online, image, signatures, now);
        }
        Loaded::SigstoreKeys { keys, rekor_keys, identity } => {
            (identity, Box::new(move |l| cosign::verify_with_keys(l, keys, rekor_keys)))
        }
        Loaded::SigstoreFulcio { roots, issuer, subject, rekor_keys, identity } => {
            let trust = FulcioTrust { roots, issuer, subject: subject.san(), rekor_keys };
            (identity, Box::new(move |l| cosign::verify_with_fulcio(l, &trust)))
        }
        Loaded::SigstorePki { roots, intermediates, email, hostname, identity } => {
            let trust = PkiTrust { roots, intermediates, email: email.as_deref(), hostname: hostname.as_deref() };
            (identity, Box::new(move |l| cosign::verify_with_pki(l, &trust, now)))
        }
    };
    let layers = match found(&name, signatures, "signatures") {
        Err(o) => return o,
        Ok(l) => l,
    };
    // In the order listed, up to the first accepted one: one valid signature
    // satisfies the requirement, and checking more would only cost time.
    let sigs = until_accepted(
        layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.media_type == cosign::SIMPLE_SIGNING)
            .map(|(i, l)| check_signature(i, check(l), rule, image)),
    );
    let satisfied = sigs.iter().any(|s| s.accepted);
    let reason = if satisfied {
        let s = sigs.iter().find(|s| s.accepted).map(|s| format!("{} {}", s.index, s.reason)).unwrap_or_default();
        format!("signature {s}")
    } else if sigs.is_empty() {
        "a signature was required, but no signature exists".to_owned()
    } else {
        // The first rejection, so that a one-line reason (containerd's, kubelet's) says why.
        let first = sigs.first().map(|s| format!(" (signature {}: {})", s.index, s.reason)).unwrap_or_default();
        format!("none of the {} signature(s) is acceptable{first}", sigs.len())
    };
    RequirementOutcome { requirement: name, satisfied, reason, signatures: sigs, transient: false }
}

/// The outcomes up to and including the first accepted one (lazily: the rest
/// are never computed). Deterministic: the order is the order listed.
fn until_accepted(outcomes: impl Iterator<Item = SignatureOutcome>) -> Vec<SignatureOutcome> {
    let mut out = Vec::new();
    for o in outcomes {
        let done = o.accepted;
        out.push(o);
        if done {
            break;
        }
    }
    out
}

/// The artifact type of a Notary Project signature (a referrer manifest).
pub const NOTATION_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// The envelope media types of notation signature layers: JWS and COSE_Sign1.
pub const NOTATION_ENVELOPES: [&str; 2] = ["application/jose+json", "application/cose"];

/// The media types of what is fetched for a notation signing chain's revocation status (a CRL,
/// RFC 5280's; an OCSP response, RFC 6960's): material the caller adds with [`revocation_layer`],
/// never a layer a registry served (the caller drops those).
pub const REVOCATION_MEDIA_TYPES: [&str; 2] = ["application/pkix-crl", "application/ocsp-response"];
const REVOCATION_KEY: &str = "tollgate.dev/revocation-query";
const REVOCATION_ERROR: &str = "tollgate.dev/revocation-error";

/// The material layer of what `query` fetched, or of why it could not be.
pub fn revocation_layer(query: &Query, fetched: Result<Vec<u8>, String>) -> SignatureLayer {
    let media_type = match query {
        Query::Crl(_) => REVOCATION_MEDIA_TYPES[0],
        Query::Ocsp { .. } => REVOCATION_MEDIA_TYPES[1],
    };
    let mut annotations = std::collections::BTreeMap::from([(REVOCATION_KEY.to_owned(), query.key())]);
    let payload = match fetched {
        Ok(bytes) => bytes,
        Err(why) => {
            annotations.insert(REVOCATION_ERROR.to_owned(), why);
            Vec::new()
        }
    };
    SignatureLayer { media_type: media_type.to_owned(), payload, annotations }
}

pub use tollgate_notation::revocation::Query;

/// Most revocation fetches (CRLs and OCSP requests) for one decision.
pub const MAX_REVOCATION_QUERIES: usize = 8;

/// What to fetch for the revocation status of the notation envelopes among `layers`: what the
/// chains holding one of `anchors` ([`LoadedPolicy::notation_anchors`]) name, each once, at most
/// [`MAX_REVOCATION_QUERIES`].
pub fn revocation_queries(layers: &[SignatureLayer], anchors: &[Vec<u8>]) -> Vec<Query> {
    let mut out: Vec<Query> = Vec::new();
    for l in layers.iter().filter(|l| NOTATION_ENVELOPES.contains(&l.media_type.as_str())) {
        for q in tollgate_notation::jws::revocation_queries(&l.payload, &l.media_type, anchors) {
            if !out.contains(&q) && out.len() < MAX_REVOCATION_QUERIES {
                out.push(q);
            }
        }
    }
    out
}

/// The revocation material among the layers, by query key.
fn fetched_revocation(layers: &[SignatureLayer]) -> tollgate_notation::revocation::Fetched {
    layers
        .iter()
        .filter(|l| REVOCATION_MEDIA_TYPES.contains(&l.media_type.as_str()))
        .filter_map(|l| {
            let key = l.annotations.get(REVOCATION_KEY)?.clone();
            Some(match l.annotations.get(REVOCATION_ERROR) {
                Some(why) => (key, Err(why.clone())),
                None => (key, Ok(l.payload.clone())),
            })
        })
        .collect()
}

/// The media type of a sigstore bundle (the layer of a referrer artifact).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// `sigstoreBundle`: any one bundle must verify for this image's digest (the
/// DSSE statement's subject, or the message digest), logged in a trusted
/// Rekor, signed by the key or by the Fulcio identity.
struct BundleTrust<'a> {
    root: &'a tollgate_verify::bundle::TrustedRoot,
    key: Option<&'a PublicKey>,
    identity: Option<&'a (SanRule, String)>,
    predicate_types: &'a [String],
}

/// The DSSE payload type of an in-toto statement.
const IN_TOTO_PAYLOAD: &str = "application/vnd.in-toto+json";
/// The in-toto statement types cosign writes (v1) and reads (v0.1).
const IN_TOTO_STATEMENTS: [&str; 2] = ["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"];

/// Whether a verified bundle is a signature by the policy's measure: a DSSE
/// in-toto statement whose predicate type the requirement accepts. An SBOM,
/// provenance or scan attestation by the same identity is not a signature.
fn statement_accepted(v: &tollgate_verify::bundle::Verified, accepted: &[String]) -> Result<(), String> {
    let Some(s) = &v.statement else {
        return Err("a message signature, not an in-toto statement; cosign signs images with DSSE".into());
    };
    if s.payload_type != IN_TOTO_PAYLOAD {
        return Err(format!("DSSE payloadType {:?} is not {IN_TOTO_PAYLOAD:?}", s.payload_type));
    }
    if !IN_TOTO_STATEMENTS.contains(&s.statement_type.as_str()) {
        return Err(format!("statement _type {:?} is not an in-toto statement", s.statement_type));
    }
    if !accepted.contains(&s.predicate_type) {
        return Err(format!(
            "an attestation with predicateType {:?}, not a signature (accepted: {}); list it under predicateTypes to accept it",
            s.predicate_type,
            accepted.join(", ")
        ));
    }
    Ok(())
}

fn evaluate_bundles(
    name: String,
    trust: &BundleTrust<'_>,
    image: &Image<'_>,
    signatures: &Signatures,
    now: u64,
) -> RequirementOutcome {
    let BundleTrust { root, key, identity, predicate_types } = *trust;
    use tollgate_verify::bundle::{self, Artifact, Expected};
    let layers = match found(&name, signatures, "bundles") {
        Err(o) => return o,
        Ok(l) => l,
    };
    let expected = match (key, identity) {
        (Some(k), _) => Expected::Key(k),
        (None, Some((san, issuer))) => Expected::Identity { san: san.san(), issuer },
        (None, None) => return outcome(name, false, "sigstoreBundle has neither a key nor an identity"),
    };
    let digest: Option<[u8; 32]> = (image.digest.algorithm() == tollgate_oci::Algorithm::Sha256)
        .then(|| hex::decode(image.digest.hex()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()))
        .flatten();
    let Some(digest) = digest else {
        return outcome(name, false, format!("bundles sign SHA-256 digests, not {}", image.digest));
    };
    let sigs = until_accepted(layers.iter().enumerate().filter(|(_, l)| l.media_type == BUNDLE_MEDIA_TYPE).map(
        |(index, l)| match bundle::verify(&l.payload, root, Artifact::Sha256(&digest), expected, now) {
            Ok(v) if let Err(why) = statement_accepted(&v, predicate_types) => SignatureOutcome {
                index,
                accepted: false,
                reason: format!("bundle rejected: {why}"),
                key_fingerprint: None,
                valid_until: None,
            },
            Ok(v) => SignatureOutcome {
                index,
                accepted: true,
                reason: format!(
                    "bundle verified: signed by {}, {} {}",
                    v.signer,
                    v.time_source,
                    tollgate_verify::tlog::format_rfc3339(v.signed_at)
                ),
                key_fingerprint: None,
                valid_until: None,
            },
            Err(e) => SignatureOutcome {
                index,
                accepted: false,
                reason: format!("bundle rejected: {e}"),
                key_fingerprint: None,
                valid_until: None,
            },
        },
    ));
    referrer_verdict(name, sigs, "a sigstore bundle", "bundle", "bundle")
}

/// The signature layers found, or the outcome of a requirement whose `what` could not be fetched
/// (transient when trying again may help).
fn found<'s>(name: &str, signatures: &'s Signatures, what: &str) -> Result<&'s [SignatureLayer], RequirementOutcome> {
    match signatures {
        Signatures::Found(l) => Ok(l),
        Signatures::Unavailable { transient, reason } => {
            let mut o = outcome(name.to_owned(), false, format!("{what} could not be fetched: {reason}"));
            o.transient = *transient;
            Err(o)
        }
    }
}

/// The outcome of a requirement met by any one referrer (a bundle, a notation signature): the
/// accepted one's reason, or why none was (`kind` names one, `noun` counts them, `label` numbers them).
fn referrer_verdict(
    name: String,
    sigs: Vec<SignatureOutcome>,
    kind: &str,
    noun: &str,
    label: &str,
) -> RequirementOutcome {
    let satisfied = sigs.iter().any(|s| s.accepted);
    let reason = match sigs.iter().find(|s| s.accepted) {
        Some(s) => s.reason.clone(),
        None if sigs.is_empty() => format!("{kind} was required, but none is attached"),
        None => {
            let first = sigs.first().map(|s| format!(" ({label} {}: {})", s.index, s.reason)).unwrap_or_default();
            format!("none of the {} {noun}(s) is acceptable{first}", sigs.len())
        }
    };
    RequirementOutcome { requirement: name, satisfied, reason, signatures: sigs, transient: false }
}

/// `notationSigned`: the trust policy statement for this repository decides, as `notation verify`
/// would: any one JWS envelope attached as a referrer must verify for this very manifest (digest,
/// and media type and size when the manifest was fetched) under its level, trust stores and
/// trusted identities. A `skip` statement accepts without a signature, as notation's does.
fn evaluate_notation(
    name: String,
    document: &tollgate_notation::trustpolicy::Document,
    stores: &std::collections::BTreeMap<String, Vec<Vec<u8>>>,
    online: bool,
    image: &Image<'_>,
    signatures: &Signatures,
    now: u64,
) -> RequirementOutcome {
    use tollgate_notation::{jws, trustpolicy};
    let Some(reference) = image.subject.docker_reference() else {
        return outcome(name, false, "notation trust policies scope registry repositories; this image has none");
    };
    let artifact = format!("{}@{}", reference.repository(), image.digest);
    let statement = match document.applicable(&artifact) {
        Ok(s) => s,
        Err(e) => return outcome(name, false, format!("notation: {e}")),
    };
    if statement.signature_verification.level().is_ok_and(|l| l.integrity == trustpolicy::Action::Skip) {
        return outcome(
            name,
            true,
            format!("notation trust policy {:?} skips signature verification (level skip)", statement.name),
        );
    }
    let layers = match found(&name, signatures, "notation signatures") {
        Err(o) => return o,
        Ok(l) => l,
    };
    let crls = fetched_revocation(layers);
    let of = |kind: &str| -> Vec<Vec<u8>> {
        statement
            .trust_stores
            .iter()
            .filter(|s| s.split_once(':').is_some_and(|(k, _)| k == kind))
            .filter_map(|s| stores.get(s))
            .flatten()
            .cloned()
            .collect()
    };
    let (ca, signing_authority, tsa) = (of("ca"), of("signingAuthority"), of("tsa"));
    // The manifest's own media type, when its bytes were fetched (and so digest-checked).
    let media_type = image.manifest.and_then(|m| {
        serde_json::from_slice::<serde_json::Value>(m)
            .ok()
            .and_then(|v| v.get("mediaType").and_then(serde_json::Value::as_str).map(str::to_owned))
            .map(|t| (t, m.len() as u64))
    });
    let inputs = jws::Inputs {
        media_type: jws::MEDIA_TYPE,
        digest: &image.digest.to_string(),
        policy: statement,
        ca: &ca,
        signing_authority: &signing_authority,
        now: i64::try_from(now).unwrap_or(i64::MAX),
        user_metadata: &[],
        tsa: &tsa,
        target: media_type.as_ref().map(|(t, size)| jws::Target { media_type: t, size: *size }),
        revocation: online.then_some(&crls),
    };
    let sigs = until_accepted(
        layers.iter().enumerate().filter(|(_, l)| NOTATION_ENVELOPES.contains(&l.media_type.as_str())).map(
            |(index, l)| {
                // JWS or COSE_Sign1, by the layer's media type.
                let o = jws::verify(&l.payload, &jws::Inputs { media_type: &l.media_type, ..inputs });
                let enforced: Vec<String> = o
                    .failures
                    .iter()
                    .filter(|f| f.action == trustpolicy::Action::Enforce)
                    .map(|f| format!("{}: {}", f.kind, f.reason))
                    .collect();
                let logged: Vec<String> = o
                    .failures
                    .iter()
                    .filter(|f| f.action != trustpolicy::Action::Enforce)
                    .map(|f| format!("{} (logged): {}", f.kind, f.reason))
                    .collect();
                let reason = if o.verified {
                    let mut r =
                        format!("notation signature verified under trust policy {:?} ({})", statement.name, o.scheme);
                    for x in logged.iter().chain(o.notes.iter()) {
                        r.push_str("; ");
                        r.push_str(x);
                    }
                    r
                } else {
                    format!("notation signature rejected: {}", enforced.join("; "))
                };
                SignatureOutcome { index, accepted: o.verified, reason, key_fingerprint: None, valid_until: None }
            },
        ),
    );
    referrer_verdict(name, sigs, "a notation signature", "notation signature", "signature")
}

fn check_signature(
    index: usize,
    verified: Result<VerifiedSignature, SignatureRejection>,
    rule: &SignedIdentity,
    image: &Image<'_>,
) -> SignatureOutcome {
    let reject = |reason: String, fp: Option<String>| SignatureOutcome {
        index,
        accepted: false,
        reason,
        key_fingerprint: fp,
        valid_until: None,
    };
    let verified = match verified {
        Ok(v) => v,
        Err(SignatureRejection::NotASignature(m)) => return reject(format!("not a signature ({m})"), None),
        Err(e) => return reject(e.to_string(), None),
    };
    let fp = Some(verified.key_fingerprint.clone());
    let signed = &verified.payload.manifest_digest;
    let digest_ok = if signed.algorithm() == image.digest.algorithm() {
        signed == image.digest
    } else {
        image.manifest.is_some_and(|m| signed.verify(m).is_ok())
    };
    if !digest_ok {
        return reject(format!("signed for manifest {signed}, not {}", image.digest), fp);
    }
    if !identity::matches(rule, image.subject.docker_reference(), &verified.payload.docker_reference) {
        return reject(
            format!(
                "signed identity {:?} does not satisfy signedIdentity for {}",
                verified.payload.docker_reference,
                image.subject.display()
            ),
            fp,
        );
    }
    let rekor = verified.integrated_time.map(|t| format!(", logged in Rekor at {t}")).unwrap_or_default();
    let who = verified.certificate_identity.as_ref().map(|c| format!(" ({c})")).unwrap_or_default();
    SignatureOutcome {
        index,
        accepted: true,
        reason: format!("verified with key {}{who}{rekor}", short(&verified.key_fingerprint)),
        key_fingerprint: fp,
        valid_until: verified.valid_until,
    }
}

fn short(fp: &str) -> &str {
    fp.get(..16).unwrap_or(fp)
}

#[cfg(test)]
mod tests;
