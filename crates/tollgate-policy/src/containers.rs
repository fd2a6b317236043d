//! `containers-policy.json`: model and strict parser.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// A policy file was refused. The message names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not valid JSON of the policy shape (unknown field, duplicate key, wrong type…).
    #[error("policy {source_name}: {message}")]
    Parse {
        /// Where the policy came from.
        source_name: String,
        /// What is wrong, with line and column.
        message: String,
    },
    /// Valid JSON, but a requirement is inconsistent.
    #[error("policy {source_name}: {location}: {message}")]
    Invalid {
        /// Where the policy came from.
        source_name: String,
        /// `default[0]`, `transports.docker["example.com"][1]`…
        location: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Where trust material comes from: a file path or inline base64 data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum KeySource {
    /// Path of a file (read at the edge, never by the pure core).
    Path(String),
    /// Inline content, already base64-decoded.
    Data(Vec<u8>),
}

/// `signedIdentity`: how the identity a signature claims must relate to the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum SignedIdentity {
    /// The signature must claim exactly the image reference (tag or digest).
    MatchExact,
    /// Tag references: exact; digest references: same repository. The default.
    #[default]
    MatchRepoDigestOrExact,
    /// The signature must claim the image's repository, any tag.
    MatchRepository,
    /// The signature must claim exactly `dockerReference`.
    #[serde(rename_all = "camelCase")]
    ExactReference {
        /// The fully expanded reference the signature must claim.
        docker_reference: String,
    },
    /// The signature must claim `dockerRepository`.
    #[serde(rename_all = "camelCase")]
    ExactRepository {
        /// The fully expanded repository the signature must claim.
        docker_repository: String,
    },
    /// Rewrite `prefix` in the image reference to `signedPrefix`, then `matchRepoDigestOrExact`.
    #[serde(rename_all = "camelCase")]
    RemapIdentity {
        /// Prefix of the image reference (host[:port]/namespace/repo, fully expanded).
        prefix: String,
        /// What the signature claims instead of `prefix`.
        signed_prefix: String,
    },
}

/// `fulcio` of a `sigstoreSigned` requirement: keyless signing certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fulcio {
    /// Fulcio CA certificates (PEM).
    pub ca: KeySource,
    /// Required OIDC issuer.
    pub oidc_issuer: String,
    /// Required SAN email (or URI), exactly; empty with `subject_reg_exp`.
    pub subject_email: String,
    /// Or a regular expression the whole SAN (email or URI) must match (native format only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
}

/// `pki` of a `sigstoreSigned` requirement: certificates from a private CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pki {
    /// Root CA certificates (PEM).
    pub ca_roots: KeySource,
    /// Intermediate CA certificates (PEM), if any.
    pub ca_intermediates: Option<KeySource>,
    /// Required SAN email, if any.
    pub subject_email: Option<String>,
    /// Required SAN hostname, if any.
    pub subject_hostname: Option<String>,
}

/// One requirement of a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Accept the image; never accepts a signature.
    InsecureAcceptAnything,
    /// Reject the image.
    Reject,
    /// GPG simple signing. Parsed so that files load as-is; evaluation denies it as unsupported.
    SignedBy {
        /// `GPGKeys` and friends.
        key_type: String,
        /// The keyrings.
        keys: Vec<KeySource>,
        /// Identity rule.
        signed_identity: SignedIdentity,
    },
    /// Reserved by containers/image, not implemented there either; evaluation denies it.
    SignedBaseLayer {
        /// Identity of the base layer.
        base_layer_identity: SignedIdentity,
    },
    /// The inner `sigstoreSigned` must hold for the index and for every
    /// platform manifest it lists (native format only; opt-in).
    PerPlatform(Box<Requirement>),
    /// Any one of these must hold (native format only): several ways to trust an image in one
    /// scope, where the scope's list demands all of its requirements. They do not nest.
    AnyOf(Vec<Requirement>),
    /// The image digest must be one of these (native format only).
    DigestAllowlist {
        /// Allowed manifest (or index) digests.
        digests: Vec<tollgate_oci::Digest>,
    },
    /// Sigstore bundles attached to the image as OCI referrers (cosign v3),
    /// verified against a trusted root (native format only).
    SigstoreBundle {
        /// `trusted_root.json`: the Rekor (and Fulcio, CT) keys.
        trusted_root: KeySource,
        /// The signing key, for key-signed bundles.
        public_key: Option<KeySource>,
        /// The Fulcio certificate's SAN and OIDC issuer, for keyless bundles.
        identity: Option<BundleIdentity>,
        /// The in-toto predicate types a DSSE bundle may carry; empty means
        /// only cosign's signature predicate ([`COSIGN_SIGN_PREDICATE`]), so an
        /// SBOM or provenance attestation never counts as a signature.
        predicate_types: Vec<String>,
    },
    /// Notary Project (notation) signatures attached as OCI referrers, under
    /// notation's own `trustpolicy.json` and named trust stores (native format only).
    NotationSigned {
        /// notation's `trustpolicy.json`, verbatim.
        trust_policy: KeySource,
        /// The trust stores its statements name, `TYPE:NAME` (`ca:acme`,
        /// `signingAuthority:acme`, `tsa:acme`), each as certificate files.
        trust_stores: BTreeMap<String, Vec<KeySource>>,
        /// Check the signing chain's CRLs online; `None` (the default) leaves revocation
        /// unchecked, and every decision says so.
        check_revocation: Option<CheckRevocation>,
    },
    /// Sigstore (cosign) signatures.
    SigstoreSigned {
        /// Public keys (PEM), any one of which may have signed.
        keys: Vec<KeySource>,
        /// Keyless: Fulcio CA and identity.
        fulcio: Option<Fulcio>,
        /// Private PKI.
        pki: Option<Pki>,
        /// Rekor public keys; when present a verified SET is required.
        rekor_public_keys: Vec<KeySource>,
        /// Identity rule.
        signed_identity: SignedIdentity,
    },
}

/// Whether trust material is a sigstore `trusted_root.json` (a JSON object)
/// rather than PEM: a keyless trust may name one for both its Fulcio CAs and
/// its Rekor keys (native format).
pub fn is_trusted_root(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The predicate `cosign sign` writes into the in-toto statement of a bundle.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// Who must have signed a keyless bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BundleIdentity {
    /// The certificate's SAN (URI or email), exactly; empty with `san_reg_exp`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub san: String,
    /// Or a regular expression the whole SAN (URI or email) must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub san_reg_exp: Option<String>,
    /// The OIDC issuer, exactly.
    pub issuer: String,
}

/// Online revocation checking of a notation signing chain: each CRL its certificates name is
/// fetched (plain HTTP or HTTPS, no credentials) within the timeout, and the trust policy's level
/// decides what a revoked or unknown status does (`strict` enforces, `permissive` and `audit` log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckRevocation {
    /// Seconds each fetch may take, 1 to 30 (default 5): a CRL that does not arrive in time
    /// leaves the status unknown.
    #[serde(default = "CheckRevocation::default_timeout")]
    pub timeout_seconds: u64,
}

impl CheckRevocation {
    /// The default timeout per fetch, in seconds.
    pub const DEFAULT_TIMEOUT_SECONDS: u64 = 5;
    /// The longest timeout per fetch, in seconds.
    pub const MAX_TIMEOUT_SECONDS: u64 = 30;

    fn default_timeout() -> u64 {
        Self::DEFAULT_TIMEOUT_SECONDS
    }
}

impl Default for CheckRevocation {
    fn default() -> Self {
        CheckRevocation { timeout_seconds: Self::DEFAULT_TIMEOUT_SECONDS }
    }
}

/// Whether denials block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denials block the image.
    #[default]
    Enforce,
    /// Denials are reported and the image is allowed.
    Warn,
}

/// An image that must never be blocked (so the control plane cannot lock itself out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Exemption {
    /// Exempt this exact content (preferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<tollgate_oci::Digest>,
    /// Exempt every image of this fully expanded repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Why; shown in every decision it causes.
    pub reason: String,
}

/// Pods that may carry annotations that switch node enforcement off for them (the NRI plugin's
/// toleration, NRI's `required-plugins` annotations): the admission webhook refuses those
/// annotations on every other pod. Only the cluster policy may name them, never a namespace's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnforcementOverride {
    /// The pods' namespace, exactly.
    pub namespace: String,
    /// The pod's (or workload's) name, exactly, or a prefix ending in `*` (`etcd-*`).
    pub name: String,
    /// Why; recorded with every admission it allows.
    pub reason: String,
}

impl EnforcementOverride {
    /// Whether it names the object `name` in `namespace`.
    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        if self.namespace != namespace || name.is_empty() {
            return false;
        }
        match self.name.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.name == name,
        }
    }

    /// What is wrong with it, if anything: a namespace and name as Kubernetes spells them (a
    /// trailing `*` aside), and a reason.
    pub fn problem(&self) -> Option<String> {
        let dns = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        };
        if !dns(&self.namespace) || self.namespace.contains('.') || self.namespace.len() > 63 {
            return Some(format!("namespace {:?} is not a Kubernetes namespace name", self.namespace));
        }
        let name = self.name.strip_suffix('*').unwrap_or(&self.name);
        if !dns(name) {
            return Some(format!("name {:?} is not a pod name, or a prefix of one followed by * (etcd-*)", self.name));
        }
        if self.reason.trim().is_empty() {
            return Some("reason must say why these pods may switch node enforcement off".into());
        }
        None
    }
}

impl Requirement {
    /// The requirement's `type` as written in policy files.
    pub fn type_name(&self) -> &'static str {
        match self {
            Requirement::InsecureAcceptAnything => "insecureAcceptAnything",
            Requirement::Reject => "reject",
            Requirement::SignedBy { .. } => "signedBy",
            Requirement::SignedBaseLayer { .. } => "signedBaseLayer",
            Requirement::PerPlatform(_) => "sigstoreSigned (perPlatform)",
            Requirement::AnyOf(_) => "anyOf",
            Requirement::DigestAllowlist { .. } => "digestAllowlist",
            Requirement::SigstoreSigned { .. } => "sigstoreSigned",
            Requirement::SigstoreBundle { .. } => "sigstoreBundle",
            Requirement::NotationSigned { .. } => "notationSigned",
        }
    }
}

/// A policy: containers-policy.json semantics, plus tollgate's extensions
/// (mode, exemptions, digest allowlists) when loaded from the native format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Requirements when no scope matches.
    pub default: Vec<Requirement>,
    /// Per transport (`docker`, `dir`, …), per scope (`""` is the transport default).
    pub transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
    /// Enforce or warn (native format only).
    pub mode: Mode,
    /// Images never blocked (native format only).
    pub exemptions: Vec<Exemption>,
    /// Pods that may switch node enforcement off (native format only; cluster policy only).
    pub enforcement_overrides: Vec<EnforcementOverride>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default: Vec<RawRequirement>,
    #[serde(default)]
    transports: UniqueMap<UniqueMap<Vec<RawRequirement>>>,
}

// Lives only during parsing; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum RawRequirement {
    // Empty struct variants, not unit variants: serde ignores extra fields of
    // internally tagged unit variants even with deny_unknown_fields.
    InsecureAcceptAnything {},
    Reject {},
    #[serde(rename_all = "camelCase")]
    SignedBy {
        key_type: String,
        key_path: Option<String>,
        key_paths: Option<Vec<String>>,
        key_data: Option<String>,
        #[serde(default)]
        signed_identity: Option<SignedIdentity>,
    },
    #[serde(rename_all = "camelCase")]
    SignedBaseLayer {
        base_layer_identity: SignedIdentity,
    },
    #[serde(rename_all = "camelCase")]
    SigstoreSigned {
        key_path: Option<String>,
        key_paths: Option<Vec<String>>,
        key_data: Option<String>,
        key_datas: Option<Vec<String>>,
        fulcio: Option<RawFulcio>,
        pki: Option<RawPki>,
        rekor_public_key_path: Option<String>,
        rekor_public_key_paths: Option<Vec<String>>,
        rekor_public_key_data: Option<String>,
        rekor_public_key_datas: Option<Vec<String>>,
        #[serde(default)]
        signed_identity: Option<SignedIdentity>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawFulcio {
    ca_path: Option<String>,
    ca_data: Option<String>,
    oidc_issuer: Option<String>,
    subject_email: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPki {
    ca_roots_path: Option<String>,
    ca_roots_data: Option<String>,
    ca_intermediates_path: Option<String>,
    ca_intermediates_data: Option<String>,
    subject_email: Option<String>,
    subject_hostname: Option<String>,
}

/// A JSON object whose duplicate keys are an error, as in containers/image's paranoid parser.
struct UniqueMap<V>(BTreeMap<String, V>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        UniqueMap(BTreeMap::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    let value = map.next_value()?;
                    out.insert(key, value);
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(V2(std::marker::PhantomData))
    }
}

impl Policy {
    /// Rewrites every file path the policy names (keys, CAs, trusted roots)
    /// with `f`; inline material is left alone. A converter uses it to keep
    /// relative paths pointing at the same files from another directory.
    pub fn map_key_paths(&mut self, f: &dyn Fn(&str) -> String) {
        fn source(k: &mut KeySource, f: &dyn Fn(&str) -> String) {
            if let KeySource::Path(p) = k {
                *p = f(p);
            }
        }
        fn requirement(r: &mut Requirement, f: &dyn Fn(&str) -> String) {
            match r {
                Requirement::SignedBy { keys, .. } => keys.iter_mut().for_each(|k| source(k, f)),
                Requirement::PerPlatform(inner) => requirement(inner, f),
                Requirement::AnyOf(all) => all.iter_mut().for_each(|r| requirement(r, f)),
                Requirement::SigstoreBundle { trusted_root, public_key, .. } => {
                    source(trusted_root, f);
                    public_key.iter_mut().for_each(|k| source(k, f));
                }
                Requirement::NotationSigned { trust_policy, trust_stores, .. } => {
                    source(trust_policy, f);
                    trust_stores.values_mut().flatten().for_each(|k| source(k, f));
                }
                Requirement::SigstoreSigned { keys, fulcio, pki, rekor_public_keys, .. } => {
                    keys.iter_mut().chain(rekor_public_keys.iter_mut()).for_each(|k| source(k, f));
                    if let Some(fu) = fulcio {
                        source(&mut fu.ca, f);
                    }
                    if let Some(pk) = pki {
                        source(&mut pk.ca_roots, f);
                        pk.ca_intermediates.iter_mut().for_each(|k| source(k, f));
                    }
                }
                Requirement::InsecureAcceptAnything
                | Requirement::Reject
                | Requirement::SignedBaseLayer { .. }
                | Requirement::DigestAllowlist { .. } => {}
            }
        }
        let scopes = self.transports.values_mut().flat_map(|t| t.values_mut());
        for r in self.default.iter_mut().chain(scopes.flatten()) {
            requirement(r, f);
        }
    }

    /// Parses a `containers-policy.json`. `source_name` names it in errors.
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = serde_json::from_slice(bytes)
            .map_err(|e| PolicyError::Parse { source_name: source_name.to_owned(), message: e.to_string() })?;
        let ctx = |location: String| Ctx { source_name, location };
        if raw.default.is_empty() {
            return Err(ctx("default".into()).err("must list at least one requirement, e.g. [{\"type\": \"reject\"}]"));
        }
        let default = convert_list(raw.default, &ctx("default".into()))?;
        let mut transports = BTreeMap::new();
        for (transport, scopes) in raw.transports.0 {
            let mut out = BTreeMap::new();
            for (scope, reqs) in scopes.0 {
                let c = ctx(format!("transports.{transport}[{scope:?}]"));
                if reqs.is_empty() {
                    return Err(c.err("must list at least one requirement"));
                }
                out.insert(scope, convert_list(reqs, &c)?);
            }
            transports.insert(transport, out);
        }
        Ok(Policy {
            default,
            transports,
            mode: Mode::Enforce,
            exemptions: Vec::new(),
            enforcement_overrides: Vec::new(),
        })
    }

    /// Serializes back to `containers-policy.json` (canonical field order, pretty).
    /// Extensions that format cannot express are left out; see [`Policy::containers_incompatibilities`].
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.to_value()).unwrap_or_default();
        s.push('\n');
        s
    }

    /// What this policy uses that `containers-policy.json` cannot express.
    pub fn containers_incompatibilities(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.mode == Mode::Warn {
            out.push("mode: warn".to_owned());
        }
        for (i, e) in self.exemptions.iter().enumerate() {
            let what = match (&e.digest, &e.repository) {
                (Some(d), _) => format!("digest {d}"),
                (None, Some(r)) => format!("repository {r}"),
                (None, None) => "no digest or repository".to_owned(),
            };
            out.push(format!("exemptions[{i}] ({what})"));
        }
        for (i, o) in self.enforcement_overrides.iter().enumerate() {
            out.push(format!("enforcementOverrides[{i}] ({}/{})", o.namespace, o.name));
        }
        let mut check = |where_: String, reqs: &[Requirement]| {
            for (i, r) in reqs.iter().enumerate() {
                match r {
                    Requirement::DigestAllowlist { .. } => out.push(format!("{where_}[{i}]: digestAllowlist")),
                    Requirement::SigstoreBundle { .. } => out.push(format!("{where_}[{i}]: sigstoreBundle")),
                    Requirement::NotationSigned { .. } => out.push(format!("{where_}[{i}]: notationSigned")),
                    Requirement::PerPlatform(_) => out.push(format!("{where_}[{i}]: perPlatform signatures")),
                    Requirement::AnyOf(_) => out.push(format!("{where_}[{i}]: anyOf")),
                    Requirement::SigstoreSigned { keys, rekor_public_keys, fulcio, .. } => {
                        let mixed = |k: &[KeySource]| {
                            k.iter().any(|s| matches!(s, KeySource::Path(_)))
                                && k.iter().any(|s| matches!(s, KeySource::Data(_)))
                        };
                        if mixed(keys) || mixed(rekor_public_keys) {
                            out.push(format!("{where_}[{i}]: key files mixed with inline keys"));
                        }
                        if fulcio.as_ref().is_some_and(|f| f.subject_reg_exp.is_some()) {
                            out.push(format!("{where_}[{i}]: fulcio subjectRegExp"));
                        }
                        // containers/image reads PEM there, not a sigstore trusted root.
                        let root = |s: &KeySource| match s {
                            KeySource::Data(d) => is_trusted_root(d),
                            KeySource::Path(p) => p.ends_with(".json"),
                        };
                        if fulcio.as_ref().is_some_and(|f| root(&f.ca)) || rekor_public_keys.iter().any(root) {
                            out.push(format!(
                                "{where_}[{i}]: a trusted_root.json as trust (sigstore, or the built-in kubernetes-release)"
                            ));
                        }
                    }
                    _ => {}
                }
            }
        };
        check("default".into(), &self.default);
        for (t, scopes) in &self.transports {
            for (sc, reqs) in scopes {
                check(format!("transports.{t}[{sc:?}]"), reqs);
            }
        }
        out
    }

    fn to_value(&self) -> serde_json::Value {
        let list = |reqs: &[Requirement]| serde_json::Value::Array(reqs.iter().map(requirement_json).collect());
        let transports: serde_json::Map<String, serde_json::Value> = self
            .transports
            .iter()
            .map(|(t, scopes)| {
                let s: serde_json::Map<String, serde_json::Value> =
                    scopes.iter().map(|(k, v)| (k.clone(), list(v))).collect();
                (t.clone(), serde_json::Value::Object(s))
            })
            .collect();
        let mut top = serde_json::Map::new();
        top.insert("default".into(), list(&self.default));
        if !transports.is_empty() {
            top.insert("transports".into(), serde_json::Value::Object(transports));
        }
        serde_json::Value::Object(top)
    }
}

struct Ctx<'a> {
    source_name: &'a str,
    location: String,
}

impl Ctx<'_> {
    fn err(&self, message: &str) -> PolicyError {
        PolicyError::Invalid {
            source_name: self.source_name.to_owned(),
            location: self.location.clone(),
            message: message.to_owned(),
        }
    }
}

fn convert_list(raw: Vec<RawRequirement>, ctx: &Ctx<'_>) -> Result<Vec<Requirement>, PolicyError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| convert(r, &Ctx { source_name: ctx.source_name, location: format!("{}[{i}]", ctx.location) }))
        .collect()
}

fn b64(data: &str, what: &str, ctx: &Ctx<'_>) -> Result<Vec<u8>, PolicyError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| ctx.err(&format!("{what} is not valid base64: {e}")))
}

/// Exactly one of path / paths / data / datas.
fn one_of_keys(
    path: Option<String>,
    paths: Option<Vec<String>>,
    data: Option<String>,
    datas: Option<Vec<String>>,
    names: [&str; 4],
    required: bool,
    ctx: &Ctx<'_>,
) -> Result<Vec<KeySource>, PolicyError> {
    let given = [path.is_some(), paths.is_some(), data.is_some(), datas.is_some()];
    let count = given.iter().filter(|g| **g).count();
    if count > 1 {
        return Err(ctx.err(&format!("use only one of {}", names.join(", "))));
    }
    if count == 0 {
        return if required { Err(ctx.err(&format!("one of {} is required", names.join(", ")))) } else { Ok(vec![]) };
    }
    let mut out = Vec::new();
    if let Some(p) = path {
        out.push(KeySource::Path(p));
    }
    if let Some(ps) = paths {
        if ps.is_empty() {
            return Err(ctx.err(&format!("{} must not be empty", names[1])));
        }
        out.extend(ps.into_iter().map(KeySource::Path));
    }
    if let Some(d) = data {
        out.push(KeySource::Data(b64(&d, names[2], ctx)?));
    }
    if let Some(ds) = datas {
        if ds.is_empty() {
            return Err(ctx.err(&format!("{} must not be empty", names[3])));
        }
        for d in ds {
            out.push(KeySource::Data(b64(&d, names[3], ctx)?));
        }
    }
    Ok(out)
}

fn path_or_data(
    path: Option<String>,
    data: Option<String>,
    names: [&str; 2],
    ctx: &Ctx<'_>,
) -> Result<Option<KeySource>, PolicyError> {
    match (path, data) {
        (Some(_), Some(_)) => Err(ctx.err(&format!("use only one of {} and {}", names[0], names[1]))),
        (Some(p), None) => Ok(Some(KeySource::Path(p))),
        (None, Some(d)) => Ok(Some(KeySource::Data(b64(&d, names[1], ctx)?))),
        (None, None) => Ok(None),
    }
}

fn convert(raw: RawRequirement, ctx: &Ctx<'_>) -> Result<Requirement, PolicyError> {
    Ok(match raw {
        RawRequirement::InsecureAcceptAnything {} => Requirement::InsecureAcceptAnything,
        RawRequirement::Reject {} => Requirement::Reject,
        RawRequirement::SignedBy { key_type, key_path, key_paths, key_data, signed_identity } => {
            const TYPES: [&str; 4] = ["GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs"];
            if !TYPES.contains(&key_type.as_str()) {
                return Err(ctx.err(&format!("unknown keyType {key_type:?}; expected one of {}", TYPES.join(", "))));
            }
            let keys =
                one_of_keys(key_path, key_paths, key_data, None, ["keyPath", "keyPaths", "keyData", "-"], true, ctx)?;
            Requirement::SignedBy { key_type, keys, signed_identity: signed_identity.unwrap_or_default() }
        }
        RawRequirement::SignedBaseLayer { base_layer_identity } => Requirement::SignedBaseLayer { base_layer_identity },
        RawRequirement::SigstoreSigned {
            key_path,
            key_paths,
            key_data,
            key_datas,
            fulcio,
            pki,
            rekor_public_key_path,
            rekor_public_key_paths,
            rekor_public_key_data,
            rekor_public_key_datas,
            signed_identity,
        } => {
            let keys = one_of_keys(
                key_path,
                key_paths,
                key_data,
                key_datas,
                ["keyPath", "keyPaths", "keyData", "keyDatas"],
                false,
                ctx,
            )?;
            let rekor_public_keys = one_of_keys(
                rekor_public_key_path,
                rekor_public_key_paths,
                rekor_public_key_data,
                rekor_public_key_datas,
                ["rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas"],
                false,
                ctx,
            )?;
            let fulcio = match fulcio {
                None => None,
                Some(f) => {
                    let ca = path_or_data(f.ca_path, f.ca_data, ["fulcio.caPath", "fulcio.caData"], ctx)?
                        .ok_or_else(|| ctx.err("fulcio needs caPath or caData"))?;
                    let oidc_issuer = f.oidc_issuer.ok_or_else(|| ctx.err("fulcio.oidcIssuer is required"))?;
                    let subject_email = f.subject_email.ok_or_else(|| ctx.err("fulcio.subjectEmail is required"))?;
                    Some(Fulcio { ca, oidc_issuer, subject_email, subject_reg_exp: None })
                }
            };
            let pki = match pki {
                None => None,
                Some(p) => {
                    let ca_roots =
                        path_or_data(p.ca_roots_path, p.ca_roots_data, ["pki.caRootsPath", "pki.caRootsData"], ctx)?
                            .ok_or_else(|| ctx.err("pki needs caRootsPath or caRootsData"))?;
                    let ca_intermediates = path_or_data(
                        p.ca_intermediates_path,
                        p.ca_intermediates_data,
                        ["pki.caIntermediatesPath", "pki.caIntermediatesData"],
                        ctx,
                    )?;
                    if p.subject_email.is_none() && p.subject_hostname.is_none() {
                        return Err(ctx.err("pki needs subjectEmail or subjectHostname"));
                    }
                    Some(Pki {
                        ca_roots,
                        ca_intermediates,
                        subject_email: p.subject_email,
                        subject_hostname: p.subject_hostname,
                    })
                }
            };
            let kinds = [!keys.is_empty(), fulcio.is_some(), pki.is_some()].iter().filter(|k| **k).count();
            if kinds == 0 {
                return Err(ctx.err("sigstoreSigned needs one of keyPath, keyPaths, keyData, keyDatas, fulcio or pki"));
            }
            if kinds > 1 {
                return Err(ctx.err("sigstoreSigned takes only one of public keys, fulcio and pki"));
            }
            if fulcio.is_some() && rekor_public_keys.is_empty() {
                return Err(ctx.err("fulcio requires a Rekor public key (rekorPublicKeyPath or rekorPublicKeyData)"));
            }
            if pki.is_some() && !rekor_public_keys.is_empty() {
                return Err(ctx.err("pki cannot be combined with Rekor public keys"));
            }
            Requirement::SigstoreSigned {
                keys,
                fulcio,
                pki,
                rekor_public_keys,
                signed_identity: signed_identity.unwrap_or_default(),
            }
        }
    })
}

fn requirement_json(r: &Requirement) -> serde_json::Value {
    use base64::Engine as _;
    use serde_json::{Value, json};
    let b64 = |d: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(d));
    let identity = |i: &SignedIdentity| serde_json::to_value(i).unwrap_or(Value::Null);
    let keys_into = |o: &mut serde_json::Map<String, Value>, keys: &[KeySource], names: [&str; 4]| {
        let paths: Vec<&String> =
            keys.iter().filter_map(|k| if let KeySource::Path(p) = k { Some(p) } else { None }).collect();
        let datas: Vec<&Vec<u8>> =
            keys.iter().filter_map(|k| if let KeySource::Data(d) = k { Some(d) } else { None }).collect();
        match (paths.as_slice(), datas.as_slice()) {
            ([p], []) => {
                o.insert(names[0].into(), json!(p));
            }
            ([], [d]) => {
                o.insert(names[2].into(), b64(d));
            }
            (ps, []) if !ps.is_empty() => {
                o.insert(names[1].into(), json!(ps));
            }
            ([], ds) if !ds.is_empty() => {
                o.insert(names[3].into(), Value::Array(ds.iter().map(|d| b64(d)).collect()));
            }
            _ => {}
        }
    };
    let mut o = serde_json::Map::new();
    match r {
        Requirement::InsecureAcceptAnything => {
            o.insert("type".into(), json!("insecureAcceptAnything"));
        }
        Requirement::Reject => {
            o.insert("type".into(), json!("reject"));
        }
        Requirement::SignedBy { key_type, keys, signed_identity } => {
            o.insert("type".into(), json!("signedBy"));
            o.insert("keyType".into(), json!(key_type));
            keys_into(&mut o, keys, ["keyPath", "keyPaths", "keyData", "keyData"]);
            o.insert("signedIdentity".into(), identity(signed_identity));
        }
        Requirement::SignedBaseLayer { base_layer_identity } => {
            o.insert("type".into(), json!("signedBaseLayer"));
            o.insert("baseLayerIdentity".into(), identity(base_layer_identity));
        }
        Requirement::PerPlatform(inner) => {
            let mut v = requirement_json(inner);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("perPlatform".into(), json!(true));
            }
            return v;
        }
        Requirement::SigstoreBundle { .. } => {
            // Not expressible in containers-policy.json; export refuses it before this.
            o.insert("type".into(), json!("sigstoreBundle"));
        }
        Requirement::NotationSigned { .. } => {
            // Not expressible in containers-policy.json; export refuses it before this.
            o.insert("type".into(), json!("notationSigned"));
        }
        Requirement::AnyOf(all) => {
            // Not expressible in containers-policy.json; export refuses it before this.
            o.insert("type".into(), json!("anyOf"));
            o.insert("requirements".into(), Value::Array(all.iter().map(requirement_json).collect()));
        }
        Requirement::DigestAllowlist { digests } => {
            o.insert("type".into(), json!("digestAllowlist"));
            o.insert("digests".into(), json!(digests.iter().map(ToString::to_string).collect::<Vec<_>>()));
        }
        Requirement::SigstoreSigned { keys, fulcio, pki, rekor_public_keys, signed_identity } => {
            o.insert("type".into(), json!("sigstoreSigned"));
            keys_into(&mut o, keys, ["keyPath", "keyPaths", "keyData", "keyDatas"]);
            let src = |o: &mut serde_json::Map<String, Value>, k: &KeySource, names: [&str; 2]| match k {
                KeySource::Path(p) => {
                    o.insert(names[0].into(), json!(p));
                }
                KeySource::Data(d) => {
                    o.insert(names[1].into(), b64(d));
                }
            };
            if let Some(f) = fulcio {
                let mut fo = serde_json::Map::new();
                src(&mut fo, &f.ca, ["caPath", "caData"]);
                fo.insert("oidcIssuer".into(), json!(f.oidc_issuer));
                fo.insert("subjectEmail".into(), json!(f.subject_email));
                o.insert("fulcio".into(), Value::Object(fo));
            }
            if let Some(p) = pki {
                let mut po = serde_json::Map::new();
                src(&mut po, &p.ca_roots, ["caRootsPath", "caRootsData"]);
                if let Some(i) = &p.ca_intermediates {
                    src(&mut po, i, ["caIntermediatesPath", "caIntermediatesData"]);
                }
                if let Some(e) = &p.subject_email {
                    po.insert("subjectEmail".into(), json!(e));
                }
                if let Some(h) = &p.subject_hostname {
                    po.insert("subjectHostname".into(), json!(h));
                }
                o.insert("pki".into(), Value::Object(po));
            }
            keys_into(
                &mut o,
                rekor_public_keys,
                ["rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas"],
            );
            o.insert("signedIdentity".into(), identity(signed_identity));
        }
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests;
