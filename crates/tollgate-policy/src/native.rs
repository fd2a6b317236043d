//! The native policy format (`tollgate.dev/v1alpha1`, kind `ImagePolicy`), YAML or JSON.
//!
//! It has containers-policy.json's scopes and semantics and adds what that
//! format lacks: named trust material, digest allowlists, `enforce`/`warn`
//! modes and exemptions. [`import`] and [`export`] convert between the two,
//! losslessly where both can express the rule, and refuse (naming the rule)
//! where one cannot.
//!
//! ```yaml
//! apiVersion: tollgate.dev/v1alpha1
//! kind: ImagePolicy
//! mode: enforce
//! trust:
//!   team:
//!     publicKeys: [{path: /etc/tollgate/keys/team.pub}]
//! exemptions:
//!   - digest: sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97
//!     reason: kube-apiserver v1.32.9 (pinned control plane)
//! default:
//!   - type: reject
//! transports:
//!   docker:
//!     registry.example.com/team:
//!       - type: sigstoreSigned
//!         trust: team
//!         signedIdentity: {type: matchRepository}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tollgate_oci::{Digest, Reference};

use crate::containers::{
    EnforcementOverride, Exemption, Fulcio, KeySource, Mode, Pki, Policy, PolicyError, Requirement, SignedIdentity,
};

/// `apiVersion` of native policies.
pub const API_VERSION: &str = "tollgate.dev/v1alpha1";
/// `kind` of native policies.
pub const KIND: &str = "ImagePolicy";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NativeFile {
    api_version: String,
    kind: String,
    #[serde(default)]
    mode: Mode,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    trust: BTreeMap<String, Trust>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exemptions: Vec<Exemption>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    enforcement_overrides: Vec<EnforcementOverride>,
    default: Vec<NativeRequirement>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    transports: BTreeMap<String, BTreeMap<String, Vec<NativeRequirement>>>,
}

/// Key or certificate material: a file, or PEM text inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Material {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pem: Option<String>,
}

/// A document other than PEM (notation's `trustpolicy.json`): a file, or its text inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Text {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inline: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NativeFulcio {
    ca: Material,
    oidc_issuer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    subject_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject_reg_exp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NativePki {
    ca_roots: Material,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_intermediates: Option<Material>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject_hostname: Option<String>,
}

/// Keyless signatures checked against a sigstore `trusted_root.json`: its
/// Fulcio CAs and its Rekor logs' keys, for cosign `.sig` signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NativeSigstore {
    trusted_root: Material,
    oidc_issuer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    subject_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject_reg_exp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Trust {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sigstore: Option<NativeSigstore>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    public_keys: Vec<Material>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fulcio: Option<NativeFulcio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pki: Option<NativePki>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rekor_public_keys: Vec<Material>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum NativeRequirement {
    InsecureAcceptAnything {},
    Reject {},
    #[serde(rename_all = "camelCase")]
    SigstoreSigned {
        trust: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signed_identity: Option<SignedIdentity>,
        /// Also require a signature on every platform manifest of an index.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        per_platform: bool,
    },
    #[serde(rename_all = "camelCase")]
    DigestAllowlist {
        digests: Vec<Digest>,
    },
    /// Sigstore bundles attached as OCI referrers, checked against a trusted root.
    #[serde(rename_all = "camelCase")]
    SigstoreBundle {
        trusted_root: Material,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_key: Option<Material>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<crate::containers::BundleIdentity>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        predicate_types: Vec<String>,
    },
    /// Any one of these holds (they do not nest).
    #[serde(rename_all = "camelCase")]
    AnyOf {
        requirements: Vec<NativeRequirement>,
    },
    /// Notary Project signatures attached as referrers, under notation's trust policy.
    #[serde(rename_all = "camelCase")]
    NotationSigned {
        trust_policy: Text,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        trust_stores: BTreeMap<String, Vec<Material>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check_revocation: Option<crate::containers::CheckRevocation>,
    },
}

/// Whether `bytes` look like a native policy (a top-level `apiVersion`).
pub fn is_native(bytes: &[u8]) -> bool {
    serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(bytes)
        .ok()
        .and_then(|v| v.get("apiVersion").map(|_| ()))
        .is_some()
}

/// Loads either format: native when the document has `apiVersion`,
/// containers-policy.json when it is JSON (starts with `{`). Anything else is
/// reported as YAML, with the YAML parser's own message and position: a YAML
/// typo must not read as a JSON error at line 1 column 1.
pub fn parse_any(bytes: &[u8], source_name: &str) -> Result<Policy, PolicyError> {
    if is_native(bytes) {
        return parse(bytes, source_name);
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return Policy::parse(bytes, source_name);
    }
    let message = match serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(bytes) {
        Err(e) => format!("not valid YAML: {e}"),
        Ok(_) => "a YAML policy needs `apiVersion: tollgate.dev/v1alpha1` and `kind: ImagePolicy`; \
                  a containers-policy.json is a JSON object"
            .to_owned(),
    };
    Err(PolicyError::Parse { source_name: source_name.to_owned(), message })
}

/// Parses a native policy (YAML or JSON).
pub fn parse(bytes: &[u8], source_name: &str) -> Result<Policy, PolicyError> {
    let file: NativeFile = serde_yaml_ng::from_slice(bytes)
        .map_err(|e| PolicyError::Parse { source_name: source_name.to_owned(), message: e.to_string() })?;
    let invalid = |location: &str, message: String| PolicyError::Invalid {
        source_name: source_name.to_owned(),
        location: location.to_owned(),
        message,
    };
    if file.api_version != API_VERSION || file.kind != KIND {
        return Err(invalid(
            "apiVersion",
            format!("expected {API_VERSION}/{KIND}, found {}/{}", file.api_version, file.kind),
        ));
    }
    let mut trust = BTreeMap::new();
    for (name, t) in &file.trust {
        trust.insert(name.clone(), convert_trust(t).map_err(|m| invalid(&format!("trust.{name}"), m))?);
    }
    for (i, e) in file.exemptions.iter().enumerate() {
        let loc = format!("exemptions[{i}]");
        match (&e.digest, &e.repository) {
            (Some(_), None) => {}
            (None, Some(r)) => {
                if Reference::parse_normalized(r).map(|p| p.repository()).as_deref() != Ok(r.as_str()) {
                    return Err(invalid(
                        &loc,
                        format!("repository {r:?} must be a fully expanded name such as docker.io/library/busybox"),
                    ));
                }
            }
            _ => return Err(invalid(&loc, "give exactly one of digest (preferred) and repository".into())),
        }
        if e.reason.trim().is_empty() {
            return Err(invalid(&loc, "reason must say why the image is exempt".into()));
        }
    }
    for (i, o) in file.enforcement_overrides.iter().enumerate() {
        if let Some(problem) = o.problem() {
            return Err(invalid(&format!("enforcementOverrides[{i}]"), problem));
        }
    }
    // One requirement (`loc[i]`), not an anyOf.
    let single = |r: &NativeRequirement, loc: &str, i: usize| -> Result<Requirement, PolicyError> {
        Ok(match r {
            NativeRequirement::AnyOf { .. } => {
                return Err(invalid(&format!("{loc}[{i}]"), "anyOf cannot hold another anyOf".into()));
            }
            NativeRequirement::InsecureAcceptAnything {} => Requirement::InsecureAcceptAnything,
            NativeRequirement::Reject {} => Requirement::Reject,
            NativeRequirement::DigestAllowlist { digests } => {
                if digests.is_empty() {
                    return Err(invalid(&format!("{loc}[{i}]"), "digestAllowlist needs at least one digest".into()));
                }
                Requirement::DigestAllowlist { digests: digests.clone() }
            }
            NativeRequirement::SigstoreBundle { trusted_root, public_key, identity, predicate_types } => {
                let here = format!("{loc}[{i}]");
                if predicate_types.iter().any(String::is_empty) {
                    return Err(invalid(&here, "predicateTypes must not contain an empty string".into()));
                }
                if public_key.is_some() == identity.is_some() {
                    return Err(invalid(&here, "sigstoreBundle needs exactly one of publicKey and identity".into()));
                }
                if let Some(id) = identity {
                    match (id.san.is_empty(), id.san_reg_exp.as_deref()) {
                        (false, None) => {}
                        (true, Some(p)) => {
                            tollgate_verify::x509::san_pattern(p).map_err(|e| invalid(&here, e))?;
                        }
                        _ => return Err(invalid(&here, "identity needs exactly one of san and sanRegExp".into())),
                    }
                }
                let src = |m: &Material| source(m).map_err(|e| invalid(&here, e));
                Requirement::SigstoreBundle {
                    trusted_root: src(trusted_root)?,
                    public_key: public_key.as_ref().map(src).transpose()?,
                    identity: identity.clone(),
                    predicate_types: predicate_types.clone(),
                }
            }
            NativeRequirement::NotationSigned { trust_policy, trust_stores, check_revocation } => {
                let here = format!("{loc}[{i}]");
                use crate::containers::CheckRevocation as C;
                if let Some(c) = check_revocation
                    && !(1..=C::MAX_TIMEOUT_SECONDS).contains(&c.timeout_seconds)
                {
                    return Err(invalid(
                        &here,
                        format!(
                            "checkRevocation.timeoutSeconds is {}; give 1 to {} (default {})",
                            c.timeout_seconds,
                            C::MAX_TIMEOUT_SECONDS,
                            C::DEFAULT_TIMEOUT_SECONDS
                        ),
                    ));
                }
                let trust_policy = match (&trust_policy.path, &trust_policy.inline) {
                    (Some(p), None) => KeySource::Path(p.clone()),
                    (None, Some(t)) => KeySource::Data(t.clone().into_bytes()),
                    _ => return Err(invalid(&here, "trustPolicy needs exactly one of path and inline".into())),
                };
                let mut stores = BTreeMap::new();
                for (name, files) in trust_stores {
                    let (kind, store) = name.split_once(':').unwrap_or_default();
                    if !["ca", "signingAuthority", "tsa"].contains(&kind) || store.is_empty() {
                        return Err(invalid(
                            &here,
                            format!("trust store {name:?} is not TYPE:NAME with TYPE ca, signingAuthority or tsa"),
                        ));
                    }
                    if files.is_empty() {
                        return Err(invalid(&here, format!("trust store {name:?} lists no certificate files")));
                    }
                    let files = files.iter().map(source).collect::<Result<Vec<_>, _>>();
                    stores.insert(name.clone(), files.map_err(|e| invalid(&here, e))?);
                }
                Requirement::NotationSigned { trust_policy, trust_stores: stores, check_revocation: *check_revocation }
            }
            NativeRequirement::SigstoreSigned { trust: name, signed_identity, per_platform } => {
                let builtin;
                let t: &TrustParts = match trust.get(name) {
                    Some(t) => t,
                    None if name == KUBERNETES_RELEASE => {
                        builtin = kubernetes_release();
                        &builtin
                    }
                    None => {
                        return Err(invalid(
                            &format!("{loc}[{i}]"),
                            format!("unknown trust {name:?}; define it under trust: (built in: {KUBERNETES_RELEASE})"),
                        ));
                    }
                };
                let r = Requirement::SigstoreSigned {
                    keys: t.keys.clone(),
                    fulcio: t.fulcio.clone(),
                    pki: t.pki.clone(),
                    rekor_public_keys: t.rekor.clone(),
                    signed_identity: signed_identity.clone().unwrap_or_default(),
                };
                if *per_platform { Requirement::PerPlatform(Box::new(r)) } else { r }
            }
        })
    };
    let list = |reqs: &[NativeRequirement], loc: &str| -> Result<Vec<Requirement>, PolicyError> {
        if reqs.is_empty() {
            return Err(invalid(loc, "must list at least one requirement".into()));
        }
        reqs.iter()
            .enumerate()
            .map(|(i, r)| match r {
                NativeRequirement::AnyOf { requirements } => {
                    let here = format!("{loc}[{i}]");
                    if requirements.len() < 2 {
                        return Err(invalid(
                            &here,
                            "anyOf lists at least two requirements, any one of which holds".into(),
                        ));
                    }
                    let inner = format!("{here}.requirements");
                    let all = requirements.iter().enumerate().map(|(j, c)| single(c, &inner, j));
                    all.collect::<Result<Vec<_>, _>>().map(Requirement::AnyOf)
                }
                other => single(other, loc, i),
            })
            .collect()
    };
    let default = list(&file.default, "default")?;
    let mut transports = BTreeMap::new();
    for (t, scopes) in &file.transports {
        let mut out = BTreeMap::new();
        for (s, reqs) in scopes {
            out.insert(s.clone(), list(reqs, &format!("transports.{t}[{s:?}]"))?);
        }
        transports.insert(t.clone(), out);
    }
    Ok(Policy {
        default,
        transports,
        mode: file.mode,
        exemptions: file.exemptions,
        enforcement_overrides: file.enforcement_overrides,
    })
}

struct TrustParts {
    keys: Vec<KeySource>,
    fulcio: Option<Fulcio>,
    pki: Option<Pki>,
    rekor: Vec<KeySource>,
}

fn source(m: &Material) -> Result<KeySource, String> {
    match (&m.path, &m.pem) {
        (Some(p), None) => Ok(KeySource::Path(p.clone())),
        (None, Some(pem)) => Ok(KeySource::Data(pem.clone().into_bytes())),
        _ => Err("each key or certificate needs exactly one of path and pem".into()),
    }
}

/// The name of the built-in trust for official Kubernetes images.
pub const KUBERNETES_RELEASE: &str = "kubernetes-release";
/// Who signs Kubernetes release images (keyless, cosign `.sig` tags).
pub const KUBERNETES_RELEASE_SIGNER: &str = "krel-trust@k8s-releng-prod.iam.gserviceaccount.com";
/// The OIDC issuer of that identity.
pub const KUBERNETES_RELEASE_ISSUER: &str = "https://accounts.google.com";
/// The Sigstore public-good `trusted_root.json` tollgate embeds (usable offline; a
/// policy that defines the `kubernetes-release` trust itself replaces it).
pub const PUBLIC_GOOD_TRUSTED_ROOT: &[u8] = include_bytes!("../trust/sigstore-public-good-trusted_root.json");

/// The built-in `kubernetes-release` trust: Kubernetes' release identity via
/// Google, against the embedded public-good trusted root.
fn kubernetes_release() -> TrustParts {
    let root = KeySource::Data(PUBLIC_GOOD_TRUSTED_ROOT.to_vec());
    TrustParts {
        keys: Vec::new(),
        fulcio: Some(Fulcio {
            ca: root.clone(),
            oidc_issuer: KUBERNETES_RELEASE_ISSUER.into(),
            subject_email: KUBERNETES_RELEASE_SIGNER.into(),
            subject_reg_exp: None,
        }),
        pki: None,
        rekor: vec![root],
    }
}

/// Exactly one of an exact subject and a regular expression that compiles.
fn subject_rule(exact: &str, pattern: Option<&str>) -> Result<(), String> {
    match (exact.is_empty(), pattern) {
        (false, None) => Ok(()),
        (true, Some(p)) => tollgate_verify::x509::san_pattern(p).map(|_| ()),
        _ => Err("give exactly one of subjectEmail and subjectRegExp".into()),
    }
}

fn convert_trust(t: &Trust) -> Result<TrustParts, String> {
    if let Some(s) = &t.sigstore {
        subject_rule(&s.subject_email, s.subject_reg_exp.as_deref())?;
        if !t.public_keys.is_empty() || t.fulcio.is_some() || t.pki.is_some() || !t.rekor_public_keys.is_empty() {
            return Err("sigstore (a trusted root) stands alone: no publicKeys, fulcio, pki or rekorPublicKeys".into());
        }
        let root = source(&s.trusted_root)?;
        return Ok(TrustParts {
            keys: Vec::new(),
            fulcio: Some(Fulcio {
                ca: root.clone(),
                oidc_issuer: s.oidc_issuer.clone(),
                subject_email: s.subject_email.clone(),
                subject_reg_exp: s.subject_reg_exp.clone(),
            }),
            pki: None,
            rekor: vec![root],
        });
    }
    let keys = t.public_keys.iter().map(source).collect::<Result<Vec<_>, _>>()?;
    let rekor = t.rekor_public_keys.iter().map(source).collect::<Result<Vec<_>, _>>()?;
    let fulcio = match &t.fulcio {
        Some(f) => {
            subject_rule(&f.subject_email, f.subject_reg_exp.as_deref())?;
            Some(Fulcio {
                ca: source(&f.ca)?,
                oidc_issuer: f.oidc_issuer.clone(),
                subject_email: f.subject_email.clone(),
                subject_reg_exp: f.subject_reg_exp.clone(),
            })
        }
        None => None,
    };
    let pki = match &t.pki {
        Some(p) => {
            if p.subject_email.is_none() && p.subject_hostname.is_none() {
                return Err("pki needs subjectEmail or subjectHostname".into());
            }
            Some(Pki {
                ca_roots: source(&p.ca_roots)?,
                ca_intermediates: p.ca_intermediates.as_ref().map(source).transpose()?,
                subject_email: p.subject_email.clone(),
                subject_hostname: p.subject_hostname.clone(),
            })
        }
        None => None,
    };
    let kinds = [!keys.is_empty(), fulcio.is_some(), pki.is_some()].iter().filter(|k| **k).count();
    if kinds != 1 {
        return Err("give exactly one of publicKeys, fulcio and pki".into());
    }
    if fulcio.is_some() && rekor.is_empty() {
        return Err("fulcio requires rekorPublicKeys".into());
    }
    if pki.is_some() && !rekor.is_empty() {
        return Err("pki cannot be combined with rekorPublicKeys".into());
    }
    Ok(TrustParts { keys, fulcio, pki, rekor })
}

/// A conversion that would lose meaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot convert {source_name}: {}; {fix}", .rules.join("; "))]
pub struct ConversionError {
    /// Which policy.
    pub source_name: String,
    /// The rules the target format cannot express.
    pub rules: Vec<String>,
    /// What to do.
    pub fix: &'static str,
}

/// Converts a policy to the native format (YAML), naming trust material
/// `trust-1`, `trust-2`, … GPG `signedBy` and `signedBaseLayer` cannot be imported.
pub fn import(policy: &Policy, source_name: &str) -> Result<String, ConversionError> {
    fn convert_list(
        reqs: &[Requirement],
        loc: String,
        trust: &mut BTreeMap<String, Trust>,
        refused: &mut Vec<String>,
    ) -> Vec<NativeRequirement> {
        let mut out = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            match r {
                Requirement::AnyOf(all) => out.push(NativeRequirement::AnyOf {
                    requirements: convert_list(all, format!("{loc}[{i}].requirements"), trust, refused),
                }),
                Requirement::InsecureAcceptAnything => out.push(NativeRequirement::InsecureAcceptAnything {}),
                Requirement::Reject => out.push(NativeRequirement::Reject {}),
                Requirement::DigestAllowlist { digests } => {
                    out.push(NativeRequirement::DigestAllowlist { digests: digests.clone() })
                }
                Requirement::SigstoreBundle { trusted_root, public_key, identity, predicate_types } => {
                    out.push(NativeRequirement::SigstoreBundle {
                        trusted_root: material(trusted_root),
                        public_key: public_key.as_ref().map(material),
                        identity: identity.clone(),
                        predicate_types: predicate_types.clone(),
                    })
                }
                Requirement::NotationSigned { trust_policy, trust_stores, check_revocation } => {
                    out.push(NativeRequirement::NotationSigned {
                        check_revocation: *check_revocation,
                        trust_policy: match trust_policy {
                            KeySource::Path(p) => Text { path: Some(p.clone()), inline: None },
                            KeySource::Data(d) => {
                                Text { path: None, inline: Some(String::from_utf8_lossy(d).into_owned()) }
                            }
                        },
                        trust_stores: trust_stores
                            .iter()
                            .map(|(k, v)| (k.clone(), v.iter().map(material).collect()))
                            .collect(),
                    })
                }
                Requirement::SignedBy { .. } => {
                    refused.push(format!("{loc}[{i}]: signedBy (GPG) is not supported by tollgate"))
                }
                Requirement::SignedBaseLayer { .. } => {
                    refused.push(format!("{loc}[{i}]: signedBaseLayer is not implemented"))
                }
                Requirement::PerPlatform(inner) => match inner.as_ref() {
                    Requirement::SigstoreSigned { keys, fulcio, pki, rekor_public_keys, signed_identity } => {
                        let name = name_for(trust, trust_of(keys, fulcio, pki, rekor_public_keys));
                        out.push(NativeRequirement::SigstoreSigned {
                            trust: name,
                            signed_identity: Some(signed_identity.clone()),
                            per_platform: true,
                        });
                    }
                    _ => refused.push(format!("{loc}[{i}]: perPlatform wraps a requirement other than sigstoreSigned")),
                },
                Requirement::SigstoreSigned { keys, fulcio, pki, rekor_public_keys, signed_identity } => {
                    let name = name_for(trust, trust_of(keys, fulcio, pki, rekor_public_keys));
                    out.push(NativeRequirement::SigstoreSigned {
                        trust: name,
                        signed_identity: Some(signed_identity.clone()),
                        per_platform: false,
                    });
                }
            }
        }
        out
    }
    let mut trust: BTreeMap<String, Trust> = BTreeMap::new();
    let mut refused = Vec::new();
    let mut convert = |reqs: &[Requirement], loc: String| -> Vec<NativeRequirement> {
        convert_list(reqs, loc, &mut trust, &mut refused)
    };
    let default = convert(&policy.default, "default".into());
    let mut transports = BTreeMap::new();
    for (t, scopes) in &policy.transports {
        let mut out = BTreeMap::new();
        for (s, reqs) in scopes {
            out.insert(s.clone(), convert(reqs, format!("transports.{t}[{s:?}]")));
        }
        transports.insert(t.clone(), out);
    }
    if !refused.is_empty() {
        return Err(ConversionError {
            source_name: source_name.to_owned(),
            rules: refused,
            fix: "tollgate cannot enforce these: remove them, or keep this policy for containers/image",
        });
    }
    let file = NativeFile {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        mode: policy.mode,
        trust,
        exemptions: policy.exemptions.clone(),
        enforcement_overrides: policy.enforcement_overrides.clone(),
        default,
        transports,
    };
    let yaml = serde_yaml_ng::to_string(&file).unwrap_or_default();
    Ok(format!("# tollgate image policy (imported from {source_name})\n{yaml}"))
}

fn material(k: &KeySource) -> Material {
    match k {
        KeySource::Path(p) => Material { path: Some(p.clone()), pem: None },
        KeySource::Data(d) => Material { path: None, pem: Some(String::from_utf8_lossy(d).into_owned()) },
    }
}

fn trust_of(keys: &[KeySource], fulcio: &Option<Fulcio>, pki: &Option<Pki>, rekor: &[KeySource]) -> Trust {
    Trust {
        sigstore: None,
        public_keys: keys.iter().map(material).collect(),
        fulcio: fulcio.as_ref().map(|f| NativeFulcio {
            ca: material(&f.ca),
            oidc_issuer: f.oidc_issuer.clone(),
            subject_email: f.subject_email.clone(),
            subject_reg_exp: f.subject_reg_exp.clone(),
        }),
        pki: pki.as_ref().map(|p| NativePki {
            ca_roots: material(&p.ca_roots),
            ca_intermediates: p.ca_intermediates.as_ref().map(material),
            subject_email: p.subject_email.clone(),
            subject_hostname: p.subject_hostname.clone(),
        }),
        rekor_public_keys: rekor.iter().map(material).collect(),
    }
}

/// The name of identical trust material already collected, or a new `trust-N`.
fn name_for(trust: &mut BTreeMap<String, Trust>, t: Trust) -> String {
    if let Some((k, _)) = trust.iter().find(|(_, v)| **v == t) {
        return k.clone();
    }
    let k = format!("trust-{}", trust.len() + 1);
    trust.insert(k.clone(), t);
    k
}

/// Converts a policy to containers-policy.json, refusing what that format cannot express.
pub fn export(policy: &Policy, source_name: &str) -> Result<String, ConversionError> {
    let rules = policy.containers_incompatibilities();
    if rules.is_empty() {
        Ok(policy.to_json())
    } else {
        Err(ConversionError {
            source_name: source_name.to_owned(),
            rules,
            fix: "containers-policy.json cannot express these: keep the native policy for tollgate, or remove them to \
                  export",
        })
    }
}

#[cfg(test)]
mod tests;
