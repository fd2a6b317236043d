//! Compiling the `tollgate.dev` objects into the node's policy files: the cluster policy (native
//! format) that every decision uses, and one policy per namespace that only adds requirements
//! (`namespacePolicies` on the node). Pure: objects in, YAML out, each output parsed back by the
//! policy engine before it is returned.
//!
//! Semantics, as policy-controller's: an image must satisfy **every** ClusterImagePolicy whose
//! scopes cover it (any one authority of each). The native format decides by the most specific
//! matching scope, so each scope gets the requirements of every policy that covers it. Images no
//! policy covers are refused (the node fails closed).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::crd::{Authority, ClusterImagePolicy, ImagePolicy, SignedIdentity, TrustRoot};

/// What kind of object a [`KeyRef`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefKind {
    /// A Secret (`data`, base64 in the API).
    Secret,
    /// A ConfigMap (`data`).
    ConfigMap,
}

/// One key of a Secret or ConfigMap that an object names: what the controller reads for the
/// compiler, which itself reads nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyRef {
    /// Secret or ConfigMap.
    pub kind: RefKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The key in its data.
    pub key: String,
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            RefKind::Secret => "Secret",
            RefKind::ConfigMap => "ConfigMap",
        };
        write!(f, "{kind} {}/{} key {}", self.namespace, self.name, self.key)
    }
}

/// The text of each referenced key, as the edge read it, or why it could not be read (a message
/// that never holds the value). A reference missing from the map was not read at all (an offline
/// `policy compile`).
pub type Materials = BTreeMap<KeyRef, Result<String, String>>;

/// Where the objects' references point by default, and what a namespaced object may name.
#[derive(Clone, Copy)]
struct Scope<'a> {
    /// The namespace a reference without one means.
    default_namespace: &'a str,
    /// For a namespaced object: the only namespace it may name (its own).
    only: Option<&'a str>,
}

fn secret_ref(r: &crate::crd::SecretKeyRef, scope: Scope<'_>) -> Result<KeyRef, String> {
    let namespace = r.namespace.clone().unwrap_or_else(|| scope.default_namespace.to_owned());
    if let Some(own) = scope.only.filter(|own| *own != namespace) {
        return Err(format!(
            "its secretRef names namespace {namespace}; an ImagePolicy may only name Secrets of its own namespace ({own})"
        ));
    }
    Ok(KeyRef { kind: RefKind::Secret, namespace, name: r.name.clone(), key: r.key.clone() })
}

fn configmap_ref(r: &crate::crd::ConfigMapKeyRef) -> KeyRef {
    KeyRef {
        kind: RefKind::ConfigMap,
        namespace: r.namespace.clone().unwrap_or_else(|| crate::manifests::NAMESPACE.to_owned()),
        name: r.name.clone(),
        key: r.key.clone(),
    }
}

/// Every Secret and ConfigMap key the objects name (the ones they may name): what the controller
/// reads before it compiles.
pub fn references(cluster: &[ClusterImagePolicy], namespaced: &[ImagePolicy], roots: &[TrustRoot]) -> BTreeSet<KeyRef> {
    let cluster_scope = Scope { default_namespace: crate::manifests::NAMESPACE, only: None };
    let keys = |authorities: &[Authority], scope: Scope<'_>| -> Vec<KeyRef> {
        authorities
            .iter()
            .filter_map(|a| a.key.as_ref()?.secret_ref.as_ref())
            .filter_map(|r| secret_ref(r, scope).ok())
            .collect()
    };
    let mut out = BTreeSet::new();
    for p in cluster {
        out.extend(keys(&p.spec.authorities, cluster_scope));
    }
    for p in namespaced {
        let ns = p.metadata.namespace.as_deref().unwrap_or_default();
        out.extend(keys(&p.spec.authorities, Scope { default_namespace: ns, only: Some(ns) }));
    }
    for t in roots {
        if let Some(r) = t.spec.sigstore.as_ref().and_then(|s| s.config_map_ref.as_ref()) {
            out.insert(configmap_ref(r));
        }
    }
    out
}

/// The text of `r`, or why there is none.
fn material(r: &KeyRef, materials: &Materials, inline_field: &str) -> Result<String, String> {
    match materials.get(r) {
        Some(Ok(text)) => Ok(text.clone()),
        Some(Err(why)) => Err(why.clone()),
        None => Err(format!(
            "{r} is read by `tollgate controller` in the cluster; to compile offline, give {inline_field} inline"
        )),
    }
}

/// One object that cannot be compiled, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {message}")]
pub struct CompileError {
    /// `ClusterImagePolicy/NAME` or `ImagePolicy/NAMESPACE/NAME`.
    pub object: String,
    /// What cannot be compiled, and what to do.
    pub message: String,
}

/// The compiled policy files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The cluster policy (native YAML): the node config's `policy`.
    pub cluster: String,
    /// Per namespace, its policy (native YAML): files `NAMESPACE.yaml` of `namespacePolicies`.
    pub namespaces: BTreeMap<String, String>,
}

impl Compiled {
    /// The bundle's files: `policy.yaml` and `namespace.NS.yaml` (the ConfigMap's keys).
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = vec![(tollgate_policy::bundle::POLICY_KEY.to_owned(), self.cluster.clone().into_bytes())];
        files.extend(
            self.namespaces
                .iter()
                .map(|(ns, yaml)| (tollgate_policy::bundle::namespace_key(ns), yaml.clone().into_bytes())),
        );
        files
    }

    /// The bundle's hash ([`tollgate_policy::bundle::hash`] of [`Compiled::files`]).
    pub fn hash(&self) -> String {
        tollgate_policy::bundle::hash(&self.files())
    }
}

/// Whether scope `broad` covers scope `specific` (containers-policy.json scopes): equal, a path
/// prefix (`r.example/team` covers `r.example/team/app`), or `*.DOMAIN` covering hosts below DOMAIN.
pub fn covers(broad: &str, specific: &str) -> bool {
    if broad == specific {
        return true;
    }
    let host = specific.split('/').next().unwrap_or_default();
    match broad.strip_prefix("*.") {
        Some(domain) => host.trim_start_matches("*.").ends_with(&format!(".{domain}")),
        None => !specific.starts_with("*.") && specific.starts_with(&format!("{broad}/")),
    }
}

/// What one policy object demands: its native requirements and the trust they name.
struct Demands {
    requirements: Vec<Value>,
    trust: Vec<(String, Value)>,
}

fn identity(i: &SignedIdentity) -> Value {
    let mut v = json!({"type": i.type_});
    for (key, value) in
        [("dockerRepository", &i.docker_repository), ("prefix", &i.prefix), ("signedPrefix", &i.signed_prefix)]
    {
        if let Some(x) = value {
            v[key] = json!(x);
        }
    }
    v
}

/// The requirements of one policy: any one of its authorities. Until the native format has an
/// "any of" requirement, one policy's authorities must be of one kind, whose OR it can express.
/// What `demands` reads besides the object.
struct Context<'a> {
    roots: &'a BTreeMap<String, &'a TrustRoot>,
    materials: &'a Materials,
}

fn kind_of(a: &Authority) -> &'static str {
    if a.key.is_some() {
        "key"
    } else if a.keyless.is_some() {
        "keyless"
    } else if a.sigstore_bundle.is_some() {
        "sigstoreBundle"
    } else if a.notation.is_some() {
        "notation"
    } else if a.digests.is_some() {
        "digests"
    } else {
        "static"
    }
}

/// The requirements of one policy: any one of its authorities. Keys, digests and static actions
/// each merge into one requirement (any key, any digest); every keyless identity, bundle signer and
/// notation trust policy is one of its own. One requirement is the policy's demand; several become
/// one `anyOf`.
fn demands(
    object: &str,
    authorities: &[Authority],
    signed: Option<&SignedIdentity>,
    ctx: &Context<'_>,
    scope: Scope<'_>,
) -> Result<Demands, CompileError> {
    let mut groups: Vec<Vec<Authority>> = Vec::new();
    for kind in ["key", "digests", "static"] {
        let same: Vec<Authority> = authorities.iter().filter(|a| kind_of(a) == kind).cloned().collect();
        if !same.is_empty() {
            groups.push(same);
        }
    }
    for kind in ["keyless", "sigstoreBundle", "notation"] {
        groups.extend(authorities.iter().filter(|a| kind_of(a) == kind).map(|a| vec![a.clone()]));
    }
    let mut requirements = Vec::new();
    let mut trust = Vec::new();
    for (n, group) in groups.iter().enumerate() {
        let mut d = kind_demands(object, group, signed, ctx, scope, n)?;
        requirements.append(&mut d.requirements);
        trust.append(&mut d.trust);
    }
    match requirements.len() {
        0 => Err(CompileError { object: object.to_owned(), message: "it has no authorities".into() }),
        1 => Ok(Demands { requirements, trust }),
        _ => Ok(Demands { requirements: vec![json!({"type": "anyOf", "requirements": requirements})], trust }),
    }
}

/// The trusted root JSON text of TrustRoot `name`.
fn trusted_root_text(name: &str, ctx: &Context<'_>) -> Result<String, String> {
    sigstore_root(name, trust_root(name, ctx)?, ctx)
}

/// The TrustRoot `name` among the objects.
fn trust_root<'a>(name: &str, ctx: &Context<'a>) -> Result<&'a TrustRoot, String> {
    ctx.roots.get(name).copied().ok_or_else(|| format!("trustRootRef {name:?} names no TrustRoot among the objects"))
}

/// The trusted root JSON text `root` (TrustRoot `name`) holds or names.
fn sigstore_root(name: &str, root: &TrustRoot, ctx: &Context<'_>) -> Result<String, String> {
    match root.spec.sigstore.as_ref() {
        Some(s) => match (&s.trusted_root_json, &s.config_map_ref) {
            (Some(text), _) => Ok(text.clone()),
            (None, Some(r)) => material(&configmap_ref(r), ctx.materials, "its trustedRootJson")
                .map_err(|why| format!("TrustRoot {name:?}: {why}")),
            (None, None) => Err(format!("TrustRoot {name:?} has no trusted root")),
        },
        None => Err(format!(
            "TrustRoot {name:?} holds keys, not a sigstore trusted root; sigstore bundles need one (its Rekor and CT logs)"
        )),
    }
}

/// The PEM blocks of `text`: each label (`CERTIFICATE`, `PUBLIC KEY`) with its block.
fn pem_blocks(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let label = after.split("-----").next().unwrap_or_default().to_owned();
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            return Err(format!("a PEM block {label:?} has no end"));
        };
        let block_end = start + end + end_marker.len();
        out.push((label, format!("{}\n", &rest[start..block_end])));
        rest = &rest[block_end..];
    }
    Ok(out)
}

/// The trust of a keyless identity from TrustRoot `name`: its sigstore trusted root, or its keys
/// (PEM `CERTIFICATE` blocks are the Fulcio CAs, `PUBLIC KEY` blocks the Rekor keys, at least one
/// of each: a private sigstore without a `trusted_root.json`), with the issuer and `subject` rule.
fn keyless_trust(name: &str, ctx: &Context<'_>, subject: (&str, Value)) -> Result<Value, String> {
    let root = trust_root(name, ctx)?;
    let Some(keys) = root.spec.keys.as_ref().filter(|_| root.spec.sigstore.is_none()) else {
        let json_text = sigstore_root(name, root, ctx)?;
        let mut sigstore = json!({"trustedRoot": {"pem": json_text}});
        sigstore[subject.0] = subject.1;
        return Ok(json!({ "sigstore": sigstore }));
    };
    let (mut cas, mut rekor) = (String::new(), Vec::new());
    for block in keys.iter().map(|k| pem_blocks(k)).collect::<Result<Vec<_>, _>>()?.into_iter().flatten() {
        match block.0.as_str() {
            "CERTIFICATE" => cas.push_str(&block.1),
            "PUBLIC KEY" => rekor.push(json!({"pem": block.1})),
            other => {
                return Err(format!(
                    "TrustRoot {name:?}: its keys are CERTIFICATE (Fulcio CA) and PUBLIC KEY (Rekor) PEM blocks, not {other}"
                ));
            }
        }
    }
    if cas.is_empty() || rekor.is_empty() {
        return Err(format!(
            "TrustRoot {name:?}: a keyless identity needs its Fulcio CA certificates and Rekor public keys, at least \
             one of each (PEM CERTIFICATE and PUBLIC KEY blocks), or a sigstore trusted root"
        ));
    }
    let mut fulcio = json!({"ca": {"pem": cas}});
    fulcio[subject.0] = subject.1;
    Ok(json!({"fulcio": fulcio, "rekorPublicKeys": rekor}))
}

/// Loads `req` (with `trust`) on its own, so that material the nodes would refuse is an error of
/// this object rather than of the whole bundle.
fn loads_alone(object: &str, req: &Value, trust: &[(String, Value)]) -> Result<(), String> {
    let mut alone = json!({"apiVersion": tollgate_policy::native::API_VERSION, "kind": tollgate_policy::native::KIND,
                           "default": [req]});
    if !trust.is_empty() {
        alone["trust"] = Value::Object(trust.iter().cloned().collect());
    }
    tollgate_policy::native::parse(alone.to_string().as_bytes(), object)
        .and_then(|p| {
            tollgate_policy::LoadedPolicy::load(p, object, &|p| Err(format!("no file {p} (all material is inline)")))
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The requirement of authorities of one kind (`n` numbers the trust it names within the policy).
fn kind_demands(
    object: &str,
    authorities: &[Authority],
    signed: Option<&SignedIdentity>,
    ctx: &Context<'_>,
    scope: Scope<'_>,
    n: usize,
) -> Result<Demands, CompileError> {
    let err = |message: String| CompileError { object: object.to_owned(), message };
    let trust_name = {
        let base = format!("policy-{}", object.replace('/', "-").to_lowercase());
        if n == 0 { base } else { format!("{base}-{n}") }
    };
    match authorities.first().map(kind_of) {
        Some("key") => {
            let mut keys = Vec::new();
            for a in authorities {
                let Some(k) = &a.key else { continue };
                let pem = match (&k.data, &k.secret_ref) {
                    (Some(pem), _) => pem.clone(),
                    (None, Some(r)) => {
                        let r = secret_ref(r, scope).map_err(err)?;
                        let pem = material(&r, ctx.materials, "the PEM in key.data")
                            .map_err(|why| err(format!("a key from a Secret (secretRef): {why}")))?;
                        // Never say what the key holds: it may not be a public key at all.
                        if !pem.contains("-----BEGIN PUBLIC KEY-----") {
                            return Err(err(format!(
                                "{r} does not hold a PEM public key (-----BEGIN PUBLIC KEY-----)"
                            )));
                        }
                        pem
                    }
                    (None, None) => return Err(err("a key authority with neither data nor secretRef".into())),
                };
                keys.push(json!({"pem": pem}));
            }
            let name = trust_name.clone();
            // The CRD's default identity rule is matchRepository (the native default is containers/image's).
            let rule = signed.map_or_else(|| json!({"type": "matchRepository"}), identity);
            let req = json!({"type": "sigstoreSigned", "trust": name, "signedIdentity": rule});
            Ok(Demands { requirements: vec![req], trust: vec![(name, json!({"publicKeys": keys}))] })
        }
        Some("keyless") => {
            let [one] = authorities else { return Err(err("several keyless identities in one requirement".into())) };
            let Some(k) = &one.keyless else { return Err(err("a keyless authority without keyless".into())) };
            let name = trust_name;
            let rule = signed.map_or_else(|| json!({"type": "matchRepository"}), identity);
            let subject = match (&k.subject, &k.subject_reg_exp) {
                // An email, exactly; any other exact subject (a URI) as an escaped, anchored pattern.
                (Some(s), _) if s.contains('@') && !s.contains("://") => ("subjectEmail", json!(s)),
                (Some(s), _) => ("subjectRegExp", json!(regex::escape(s))),
                (None, Some(p)) => ("subjectRegExp", json!(p)),
                (None, None) => return Err(err("a keyless authority needs subject or subjectRegExp".into())),
            };
            let mut t = keyless_trust(&k.trust_root_ref, ctx, subject).map_err(err)?;
            let material = if t.get("sigstore").is_some() { "sigstore" } else { "fulcio" };
            t[material]["oidcIssuer"] = json!(k.issuer);
            let trust = vec![(name.clone(), t)];
            let req = json!({"type": "sigstoreSigned", "trust": name, "signedIdentity": rule});
            loads_alone(object, &req, &trust).map_err(|e| err(format!("its keyless authority does not load: {e}")))?;
            Ok(Demands { requirements: vec![req], trust })
        }
        Some("sigstoreBundle") => {
            let [one] = authorities else { return Err(err("several bundle signers in one requirement".into())) };
            let Some(b) = &one.sigstore_bundle else {
                return Err(err("a sigstoreBundle authority without one".into()));
            };
            let json_text = trusted_root_text(&b.keyless.trust_root_ref, ctx).map_err(err)?;
            let who = match (&b.keyless.subject, &b.keyless.subject_reg_exp) {
                (Some(s), _) => json!({"san": s, "issuer": b.keyless.issuer}),
                (None, Some(p)) => json!({"sanRegExp": p, "issuer": b.keyless.issuer}),
                (None, None) => return Err(err("a sigstoreBundle authority needs subject or subjectRegExp".into())),
            };
            let mut req = json!({"type": "sigstoreBundle", "trustedRoot": {"pem": json_text}, "identity": who});
            if !b.predicate_types.is_empty() {
                req["predicateTypes"] = json!(b.predicate_types);
            }
            loads_alone(object, &req, &[])
                .map_err(|e| err(format!("its sigstoreBundle authority does not load: {e}")))?;
            Ok(Demands { requirements: vec![req], trust: Vec::new() })
        }
        Some("notation") => {
            let [one] = authorities else { return Err(err("several notation authorities in one requirement".into())) };
            let Some(n) = &one.notation else { return Err(err("a notation authority without notation".into())) };
            let stores: serde_json::Map<String, serde_json::Value> = n
                .trust_stores
                .iter()
                .map(|s| (s.name.clone(), json!(s.certificates.iter().map(|c| json!({"pem": c})).collect::<Vec<_>>())))
                .collect();
            let mut req =
                json!({"type": "notationSigned", "trustPolicy": {"inline": n.trust_policy}, "trustStores": stores});
            if let Some(c) = &n.check_revocation {
                req["checkRevocation"] = match c.timeout_seconds {
                    Some(t) => json!({"timeoutSeconds": t}),
                    None => json!({}),
                };
            }
            // Its trust policy and certificates are checked now, so a broken object is Invalid with the reason
            // instead of breaking the node's load of the whole bundle.
            loads_alone(object, &req, &[]).map_err(|e| err(format!("its notation authority does not load: {e}")))?;
            Ok(Demands { requirements: vec![req], trust: Vec::new() })
        }
        Some("digests") => {
            let digests: Vec<&String> = authorities.iter().flat_map(|a| a.digests.iter().flatten()).collect();
            Ok(Demands {
                requirements: vec![json!({"type": "digestAllowlist", "digests": digests})],
                trust: Vec::new(),
            })
        }
        Some("static") => {
            let pass = authorities.iter().any(|a| a.static_.as_ref().is_some_and(|s| s.action == "pass"));
            let t = if pass { "insecureAcceptAnything" } else { "reject" };
            Ok(Demands { requirements: vec![json!({"type": t})], trust: Vec::new() })
        }
        Some(other) => Err(err(format!("{other} authorities are not compiled in this release"))),
        None => Err(err("it has no authorities".into())),
    }
}

/// One policy object, as the compiler sees it.
struct Part<'a> {
    object: String,
    images: &'a [String],
    mode: Option<&'a str>,
    demands: Demands,
}

/// A native policy from `parts`: each scope demands what every part covering it demands.
/// What the cluster policy adds besides scopes: exemptions and enforcement overrides.
#[derive(Default)]
struct Extras {
    exemptions: Vec<Value>,
    overrides: Vec<Value>,
}

fn render(parts: &[Part<'_>], default: Value, extras: Extras, what: &str) -> Result<String, CompileError> {
    let err = |message: String| CompileError { object: what.to_owned(), message };
    let warn = parts.iter().filter(|p| p.mode == Some("warn")).count();
    if warn != 0 && warn != parts.len() {
        return Err(err(
            "some policies are in mode warn and some enforce; a node policy has one mode until tollgate compiles \
             per-scope modes: make them agree"
                .into(),
        ));
    }
    let mut scopes: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for p in parts {
        for s in p.images {
            scopes.entry(s.as_str()).or_default();
        }
    }
    for (scope, reqs) in scopes.iter_mut() {
        for p in parts.iter().filter(|p| p.images.iter().any(|b| covers(b, scope))) {
            reqs.extend(p.demands.requirements.iter().cloned());
        }
    }
    let trust: serde_json::Map<String, Value> = parts.iter().flat_map(|p| p.demands.trust.iter().cloned()).collect();
    let mut doc = json!({
        "apiVersion": tollgate_policy::native::API_VERSION,
        "kind": tollgate_policy::native::KIND,
        "mode": if warn == 0 { "enforce" } else { "warn" },
        "default": [default],
        "transports": {"docker": scopes},
    });
    if !trust.is_empty() {
        doc["trust"] = Value::Object(trust);
    }
    if !extras.exemptions.is_empty() {
        doc["exemptions"] = json!(extras.exemptions);
    }
    if !extras.overrides.is_empty() {
        doc["enforcementOverrides"] = json!(extras.overrides);
    }
    let yaml = serde_yaml_ng::to_string(&doc).map_err(|e| err(e.to_string()))?;
    // What the node will load, loaded here first.
    tollgate_policy::native::parse(yaml.as_bytes(), what)
        .map_err(|e| err(format!("the compiled policy does not load: {e}")))?;
    Ok(yaml)
}

/// Compiles the cluster policies and the namespaced ones, with no Secret or ConfigMap read (a
/// reference to one is an error that says so). See [`compile_with`].
pub fn compile(
    cluster: &[ClusterImagePolicy],
    namespaced: &[ImagePolicy],
    trust_roots: &[TrustRoot],
) -> Result<Compiled, Vec<CompileError>> {
    compile_with(cluster, namespaced, trust_roots, &Materials::new())
}

/// Compiles the cluster policies and the namespaced ones, with the referenced keys the edge read
/// ([`references`]). Every object that cannot be compiled is reported; nothing is returned then, so
/// a bad object never replaces a good bundle.
pub fn compile_with(
    cluster: &[ClusterImagePolicy],
    namespaced: &[ImagePolicy],
    trust_roots: &[TrustRoot],
    materials: &Materials,
) -> Result<Compiled, Vec<CompileError>> {
    let mut errors = Vec::new();
    let roots: BTreeMap<String, &TrustRoot> =
        trust_roots.iter().map(|t| (t.metadata.name.clone().unwrap_or_default(), t)).collect();
    let ctx = Context { roots: &roots, materials };
    let cluster_scope = Scope { default_namespace: crate::manifests::NAMESPACE, only: None };
    let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| m.name.clone().unwrap_or_default();
    let mut parts = Vec::new();
    let mut extras = Extras::default();
    for p in cluster {
        let object = format!("ClusterImagePolicy/{}", name(&p.metadata));
        match demands(&object, &p.spec.authorities, p.spec.signed_identity.as_ref(), &ctx, cluster_scope) {
            Ok(d) => parts.push(Part { object, images: &p.spec.images, mode: p.spec.mode.as_deref(), demands: d }),
            Err(e) => errors.push(e),
        }
        extras.exemptions.extend(p.spec.exemptions.iter().map(|e| json!({"digest": e.digest, "reason": e.reason})));
        extras.overrides.extend(
            p.spec
                .enforcement_overrides
                .iter()
                .map(|o| json!({"namespace": o.namespace, "name": o.name, "reason": o.reason})),
        );
    }
    let mut by_namespace: BTreeMap<String, Vec<Part<'_>>> = BTreeMap::new();
    for p in namespaced {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let object = format!("ImagePolicy/{ns}/{}", name(&p.metadata));
        // The API server's rule refuses these; a file compiled offline gets the same answer.
        if !p.spec.enforcement_overrides.is_empty() || !p.spec.exemptions.is_empty() {
            errors.push(CompileError {
                object,
                message: "an ImagePolicy cannot exempt images or allow enforcement overrides: only a \
                          ClusterImagePolicy can relax what nodes enforce"
                    .into(),
            });
            continue;
        }
        let scope = Scope { default_namespace: &ns, only: Some(&ns) };
        match demands(&object, &p.spec.authorities, p.spec.signed_identity.as_ref(), &ctx, scope) {
            Ok(d) => by_namespace.entry(ns).or_default().push(Part {
                object,
                images: &p.spec.images,
                mode: p.spec.mode.as_deref(),
                demands: d,
            }),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    parts.sort_by(|a, b| a.object.cmp(&b.object));
    let cluster = render(&parts, json!({"type": "reject"}), extras, "the cluster policy").map_err(|e| vec![e])?;
    let mut namespaces = BTreeMap::new();
    for (ns, mut parts) in by_namespace {
        parts.sort_by(|a, b| a.object.cmp(&b.object));
        // A namespace adds requirements for its scopes; elsewhere the cluster policy alone decides.
        let yaml =
            render(&parts, json!({"type": "insecureAcceptAnything"}), Extras::default(), &format!("namespace {ns}"))
                .map_err(|e| vec![e])?;
        namespaces.insert(ns, yaml);
    }
    Ok(Compiled { cluster, namespaces })
}

pub use crate::manifests::Objects;

/// The objects in a multi-document YAML stream: ClusterImagePolicies, ImagePolicies and TrustRoots,
/// each checked against its CRD's CEL rules; other kinds are skipped.
pub fn objects(text: &str, source_name: &str) -> Result<Objects, crate::manifests::PoliciesError> {
    crate::manifests::read(text, source_name, &["ClusterImagePolicy", "ImagePolicy", "TrustRoot"])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0oTXaTArg3MSBzK3Zs+m0y6xsDKUiQUSFyNCVm+XH7OyXjBDRrt9FHhM9ssmNVtIF1t8ngw7HcyNg0Iv/Dq79g==\n-----END PUBLIC KEY-----\n";
    const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    fn cip(name: &str, spec: Value) -> ClusterImagePolicy {
        ClusterImagePolicy::new(name, serde_json::from_value(spec).unwrap())
    }

    #[test]
    fn scopes_cover_by_path_prefix_and_wildcard_host() {
        assert!(covers("r.example", "r.example/team/app"));
        assert!(covers("r.example/team", "r.example/team/app"));
        assert!(!covers("r.example/team", "r.example/teammate"));
        assert!(!covers("r.example", "r.example:5000/app"));
        assert!(covers("*.example.com", "a.example.com/app"));
        assert!(covers("*.example.com", "*.a.example.com"));
        assert!(!covers("*.example.com", "example.com/app"));
        assert!(!covers("a.example.com", "*.example.com"));
    }

    /// Every policy covering an image must hold: the narrower scope carries the broader policy too.
    #[test]
    fn each_scope_demands_every_policy_that_covers_it() {
        let broad = cip("registry", json!({"images": ["r.example"], "authorities": [{"key": {"data": PEM}}]}));
        let narrow = cip(
            "team",
            json!({"images": ["r.example/team"], "authorities": [{"digests": [DIGEST]}],
            "exemptions": [{"digest": DIGEST, "reason": "sandbox"}]}),
        );
        let c = compile(&[broad, narrow], &[], &[]).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&c.cluster).unwrap();
        let scopes = &doc["transports"]["docker"];
        assert_eq!(scopes["r.example"].as_array().unwrap().len(), 1, "{}", c.cluster);
        let team: Vec<&str> =
            scopes["r.example/team"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
        assert_eq!(team, ["sigstoreSigned", "digestAllowlist"], "{}", c.cluster);
        assert_eq!(doc["default"][0]["type"], "reject", "what no policy covers is refused");
        assert_eq!(doc["exemptions"][0]["reason"], "sandbox");
        assert_eq!(doc["trust"]["policy-clusterimagepolicy-registry"]["publicKeys"][0]["pem"], PEM);
        assert!(c.namespaces.is_empty());
    }

    /// Enforcement overrides go into the cluster policy, which loads them; a namespace's policy cannot
    /// carry them (nor exemptions), whatever the file it came from.
    #[test]
    fn enforcement_overrides_are_cluster_policy_only() {
        let spec = json!({"images": ["r.example"], "authorities": [{"static": {"action": "pass"}}],
            "enforcementOverrides": [{"namespace": "infra", "name": "agent-*", "reason": "runs before NRI"}]});
        let c = compile(&[cip("all", spec.clone())], &[], &[]).unwrap();
        let p = tollgate_policy::native::parse(c.cluster.as_bytes(), "cluster").unwrap();
        assert!(p.enforcement_overrides[0].matches("infra", "agent-x"), "{}", c.cluster);
        let mut ip = ImagePolicy::new("sneaky", serde_json::from_value(spec).unwrap());
        ip.metadata.namespace = Some("infra".into());
        let errors = compile(&[], &[ip], &[]).unwrap_err();
        assert_eq!(errors[0].object, "ImagePolicy/infra/sneaky");
        assert!(errors[0].message.contains("cannot exempt images or allow enforcement overrides"), "{errors:?}");
    }

    #[test]
    fn a_namespace_policy_adds_for_its_scopes_and_accepts_the_rest() {
        let base = cip("all", json!({"images": ["r.example"], "authorities": [{"static": {"action": "pass"}}]}));
        let mut ip = ImagePolicy::new(
            "strict",
            serde_json::from_value(json!({"images": ["r.example/vault"], "authorities": [{"key": {"data": PEM}}]}))
                .unwrap(),
        );
        ip.metadata.namespace = Some("shop".into());
        let c = compile(&[base], &[ip], &[]).unwrap();
        let shop: Value = serde_yaml_ng::from_str(&c.namespaces["shop"]).unwrap();
        assert_eq!(shop["default"][0]["type"], "insecureAcceptAnything", "{}", c.namespaces["shop"]);
        assert_eq!(shop["transports"]["docker"]["r.example/vault"][0]["type"], "sigstoreSigned");
    }

    /// A keyless identity with an inline trusted root compiles to sigstore trust the policy engine loads.
    #[test]
    fn a_keyless_email_identity_compiles_to_sigstore_trust() {
        let root_json = include_str!("../../tollgate-policy/trust/sigstore-public-good-trusted_root.json");
        let root = TrustRoot::new(
            "public-good",
            serde_json::from_value(json!({"sigstore": {"trustedRootJson": root_json}})).unwrap(),
        );
        let k8s = cip(
            "k8s",
            json!({"images": ["registry.k8s.io"], "authorities": [{"keyless": {
            "issuer": "https://accounts.google.com", "subject": "krel-trust@k8s-releng-prod.iam.gserviceaccount.com",
            "trustRootRef": "public-good"}}]}),
        );
        let c = compile(std::slice::from_ref(&k8s), &[], std::slice::from_ref(&root)).unwrap();
        let policy = tollgate_policy::native::parse(c.cluster.as_bytes(), "compiled").unwrap();
        let loaded = tollgate_policy::LoadedPolicy::load(policy, "compiled", &|p| Err(format!("no file {p}")));
        assert!(loaded.is_ok(), "the inline trusted root loads: {loaded:?}");
        assert!(
            c.cluster.contains("subjectEmail: krel-trust@k8s-releng-prod.iam.gserviceaccount.com"),
            "{}",
            c.cluster
        );
        let mut uri = k8s;
        uri.spec.authorities[0].keyless.as_mut().unwrap().subject =
            Some("https://github.com/x/y/.github/workflows/r.yml@refs/heads/main".into());
        // Any other exact subject (a workflow URI) becomes an escaped, anchored pattern.
        let c = compile(std::slice::from_ref(&uri), &[], std::slice::from_ref(&root)).unwrap();
        assert!(
            c.cluster.contains(r"subjectRegExp: https://github\.com/x/y/\.github/workflows/r\.yml@refs/heads/main"),
            "{}",
            c.cluster
        );
        let mut bad = uri;
        let k = bad.spec.authorities[0].keyless.as_mut().unwrap();
        (k.subject, k.subject_reg_exp) = (None, Some("https://github.com/x/(".into()));
        let e = compile(&[bad], &[], &[root]).unwrap_err();
        assert!(e[0].message.starts_with("its keyless authority does not load:"), "{e:?}");
        assert!(e[0].message.contains("subject regular expression \"https://github.com/x/(\""), "{e:?}");
    }

    /// The keys and trusted roots the objects name are what the controller reads; given their text,
    /// they compile; a missing, unreadable or non-PEM value is named (never shown), and a namespace's
    /// policy may only name its own namespace's Secrets.
    #[test]
    fn referenced_keys_compile_from_what_the_edge_read() {
        let from_secret = cip(
            "team",
            json!({"images": ["r.example/team"], "authorities": [{"key": {"secretRef": {"name": "k", "key": "cosign.pub"}}}]}),
        );
        let root_json = include_str!("../../tollgate-policy/trust/sigstore-public-good-trusted_root.json");
        let root = TrustRoot::new(
            "public-good",
            serde_json::from_value(
                json!({"sigstore": {"configMapRef": {"name": "roots", "key": "trusted_root.json"}}}),
            )
            .unwrap(),
        );
        let keyless = cip(
            "k8s",
            json!({"images": ["registry.k8s.io"], "authorities": [{"keyless": {
            "issuer": "https://accounts.google.com", "subject": "krel-trust@k8s-releng-prod.iam.gserviceaccount.com",
            "trustRootRef": "public-good"}}]}),
        );
        let mut own = ImagePolicy::new(
            "own",
            serde_json::from_value(json!({"images": ["r.example/team"], "authorities": [{"key": {"secretRef": {"name": "shop-key", "key": "k"}}}]}))
                .unwrap(),
        );
        own.metadata.namespace = Some("shop".into());
        let mut foreign = own.clone();
        foreign.metadata.name = Some("foreign".into());
        foreign.spec.authorities[0].key.as_mut().unwrap().secret_ref.as_mut().unwrap().namespace =
            Some("kube-system".into());
        let cluster = [from_secret, keyless];
        let refs: Vec<String> = references(&cluster, &[own.clone(), foreign.clone()], std::slice::from_ref(&root))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            refs,
            [
                "Secret shop/shop-key key k",
                "Secret tollgate-system/k key cosign.pub",
                "ConfigMap tollgate-system/roots key trusted_root.json",
            ],
            "a foreign namespace's Secret is never read"
        );
        let key_ref = |ns: &str, name: &str, key: &str| KeyRef {
            kind: RefKind::Secret,
            namespace: ns.into(),
            name: name.into(),
            key: key.into(),
        };
        let root_ref = KeyRef { kind: RefKind::ConfigMap, ..key_ref("tollgate-system", "roots", "trusted_root.json") };
        let mut materials = Materials::new();
        materials.insert(key_ref("tollgate-system", "k", "cosign.pub"), Ok(PEM.into()));
        materials.insert(key_ref("shop", "shop-key", "k"), Ok(PEM.into()));
        materials.insert(root_ref.clone(), Ok(root_json.into()));
        let c = compile_with(&cluster, std::slice::from_ref(&own), std::slice::from_ref(&root), &materials).unwrap();
        assert!(c.cluster.contains("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0oTXaTArg3MSBzK3Zs"), "{}", c.cluster);
        assert!(c.namespaces["shop"].contains("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0oTXaTArg3MSBzK3Zs"));
        assert_eq!(c.hash(), tollgate_policy::bundle::hash(&c.files()));
        assert_eq!(c.files().iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["policy.yaml", "namespace.shop.yaml"]);

        let errors = compile_with(&cluster, &[foreign], std::slice::from_ref(&root), &materials).unwrap_err();
        assert!(errors[0].message.contains("may only name Secrets of its own namespace (shop)"), "{errors:?}");
        materials.insert(key_ref("tollgate-system", "k", "cosign.pub"), Ok("secret-token-value".into()));
        materials.insert(root_ref, Err("ConfigMap tollgate-system/roots does not exist".into()));
        let errors = compile_with(&cluster, &[], std::slice::from_ref(&root), &materials).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "ClusterImagePolicy/team: Secret tollgate-system/k key cosign.pub does not hold a PEM public key (-----BEGIN PUBLIC KEY-----)",
                "ClusterImagePolicy/k8s: TrustRoot \"public-good\": ConfigMap tollgate-system/roots does not exist",
            ]
        );
        assert!(!text.concat().contains("secret-token-value"), "a value is never said");
    }

    /// Any one authority of a policy is enough, whatever their kinds: keys (and digests, and static
    /// actions) merge into one requirement each, and several requirements become one anyOf.
    #[test]
    fn authorities_of_several_kinds_compile_to_any_of() {
        let root_json = include_str!("../../tollgate-policy/trust/sigstore-public-good-trusted_root.json");
        let root = TrustRoot::new(
            "public-good",
            serde_json::from_value(json!({"sigstore": {"trustedRootJson": root_json}})).unwrap(),
        );
        let keyless = |subject: &str| json!({"keyless": {"issuer": "https://token.actions.githubusercontent.com", "subject": subject, "trustRootRef": "public-good"}});
        let p = cip(
            "many",
            json!({"images": ["r.example"], "authorities": [
                {"key": {"data": PEM}}, {"digests": [DIGEST]}, {"key": {"data": PEM}},
                keyless("a@example.com"), keyless("b@example.com"),
                {"sigstoreBundle": {"keyless": {"issuer": "https://token.actions.githubusercontent.com",
                    "subject": "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main",
                    "trustRootRef": "public-good"}}}]}),
        );
        let c = compile(&[p], &[], std::slice::from_ref(&root)).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&c.cluster).unwrap();
        let reqs = doc["transports"]["docker"]["r.example"].as_array().unwrap();
        assert_eq!(reqs.len(), 1, "{}", c.cluster);
        assert_eq!(reqs[0]["type"], "anyOf");
        let kinds: Vec<&str> =
            reqs[0]["requirements"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["sigstoreSigned", "digestAllowlist", "sigstoreSigned", "sigstoreSigned", "sigstoreBundle"]);
        assert_eq!(reqs[0]["requirements"][0]["trust"], "policy-clusterimagepolicy-many");
        assert_eq!(doc["trust"]["policy-clusterimagepolicy-many"]["publicKeys"].as_array().unwrap().len(), 2);
        assert_eq!(
            reqs[0]["requirements"][3]["trust"], "policy-clusterimagepolicy-many-3",
            "each identity its own trust"
        );
        assert_eq!(
            reqs[0]["requirements"][4]["identity"]["san"],
            "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main"
        );
        let policy = tollgate_policy::native::parse(c.cluster.as_bytes(), "compiled").unwrap();
        assert!(tollgate_policy::LoadedPolicy::load(policy, "compiled", &|p| Err(format!("no file {p}"))).is_ok());
        let regexp = cip(
            "regexp",
            json!({"images": ["r.example"], "authorities": [{"sigstoreBundle": {"keyless": {"issuer": "https://i",
                "subjectRegExp": ".*", "trustRootRef": "public-good"}}}]}),
        );
        let c = compile(std::slice::from_ref(&regexp), &[], std::slice::from_ref(&root)).unwrap();
        assert!(c.cluster.contains("sanRegExp: .*"), "{}", c.cluster);
        let mut bad = regexp;
        bad.spec.authorities[0].sigstore_bundle.as_mut().unwrap().keyless.subject_reg_exp = Some("[".into());
        let e = compile(&[bad], &[], &[root]).unwrap_err();
        assert!(e[0].message.starts_with("its sigstoreBundle authority does not load:"), "{e:?}");
    }

    /// A TrustRoot of keys stands for a private sigstore: its certificates are the Fulcio CAs, its
    /// public keys the Rekor keys; both are needed.
    #[test]
    fn a_trust_root_of_keys_gives_keyless_identities_fulcio_and_rekor() {
        let fixture = |f: &str| {
            std::fs::read_to_string(format!(
                "{}/../../../shared/conformance/containers-image/signature/fixtures/{f}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let (ca, rekor) = (fixture("fulcio_v1.crt.pem"), fixture("rekor.pub"));
        let root = |keys: Vec<&str>| TrustRoot::new("private", serde_json::from_value(json!({"keys": keys})).unwrap());
        let p = cip(
            "private",
            json!({"images": ["r.example"], "authorities": [{"keyless": {"issuer": "https://github.com/login/oauth",
                "subject": "mitr@redhat.com", "trustRootRef": "private"}}]}),
        );
        let c = compile(std::slice::from_ref(&p), &[], &[root(vec![&ca, &rekor])]).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&c.cluster).unwrap();
        let t = &doc["trust"]["policy-clusterimagepolicy-private"];
        assert_eq!(t["fulcio"]["subjectEmail"], "mitr@redhat.com", "{}", c.cluster);
        assert_eq!(t["fulcio"]["oidcIssuer"], "https://github.com/login/oauth");
        assert_eq!(t["rekorPublicKeys"].as_array().unwrap().len(), 1);
        let policy = tollgate_policy::native::parse(c.cluster.as_bytes(), "compiled").unwrap();
        assert!(tollgate_policy::LoadedPolicy::load(policy, "compiled", &|p| Err(format!("no file {p}"))).is_ok());
        let e = compile(std::slice::from_ref(&p), &[], &[root(vec![&ca])]).unwrap_err();
        assert!(e[0].message.contains("needs its Fulcio CA certificates and Rekor public keys"), "{e:?}");
        let e =
            compile(&[p], &[], &[root(vec![&ca, &rekor, "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----"])])
                .unwrap_err();
        assert!(e[0].message.contains("not PRIVATE KEY"), "{e:?}");
    }

    #[test]
    fn what_cannot_be_compiled_is_named_and_nothing_is_returned() {
        let mixed = cip(
            "mixed",
            json!({"images": ["r.example"], "authorities": [{"key": {"data": PEM}}, {"keyless": {"issuer": "https://i", "subjectRegExp": ".*", "trustRootRef": "r"}}]}),
        );
        let secret = cip(
            "secret",
            json!({"images": ["q.example"], "authorities": [{"key": {"secretRef": {"name": "k", "key": "cosign.pub"}}}]}),
        );
        let keyless = cip(
            "keyless",
            json!({"images": ["k.example"], "authorities": [{"keyless": {"issuer": "https://i", "subject": "s", "trustRootRef": "r"}}]}),
        );
        let errors = compile(&[mixed, secret, keyless], &[], &[]).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].starts_with("ClusterImagePolicy/mixed: trustRootRef \"r\" names no TrustRoot among the objects"),
            "{}",
            text[0]
        );
        assert!(text[1].starts_with("ClusterImagePolicy/secret: a key from a Secret (secretRef)"), "{}", text[1]);
        assert!(
            text[2].starts_with("ClusterImagePolicy/keyless: trustRootRef \"r\" names no TrustRoot"),
            "{}",
            text[2]
        );
        let warn =
            cip("w", json!({"images": ["w.example"], "mode": "warn", "authorities": [{"static": {"action": "pass"}}]}));
        let enforce = cip("e", json!({"images": ["e.example"], "authorities": [{"static": {"action": "pass"}}]}));
        assert!(compile(&[warn, enforce], &[], &[]).unwrap_err()[0].message.contains("some policies are in mode warn"));
    }
}
