//! `tollgate policy import --to crd`: a policy (containers-policy.json, or native) as the
//! ClusterImagePolicies (and TrustRoots) that make the same decisions, keys and certificates inlined,
//! as YAML a user can `kubectl apply`. What the CRDs cannot express with the same meaning is refused,
//! each rule named. Pure: key files are read through `read`.
//!
//! Two semantic differences decide what converts. containers-policy.json applies only the most
//! specific scope's requirements, while every ClusterImagePolicy that covers an image must hold; so a
//! scope inside another converts only when it demands at least what the outer one does. And the
//! cluster policy refuses images no ClusterImagePolicy covers, so only a default of `reject` converts.

use serde_json::{Value, json};
use tollgate_policy::containers::{KeySource, Mode, Policy, Requirement, SignedIdentity};

/// Reads a file a policy names (the edge: relative to the policy's directory).
pub type Read<'a> = &'a dyn Fn(&str) -> Result<Vec<u8>, String>;

fn material(k: &KeySource, what: &str, read: Read<'_>) -> Result<String, String> {
    let bytes = match k {
        KeySource::Path(p) => read(p).map_err(|e| format!("cannot read {what} {p}: {e}"))?,
        KeySource::Data(d) => d.clone(),
    };
    String::from_utf8(bytes).map_err(|_| format!("{what} is not text (PEM or JSON)"))
}

fn identity(i: &SignedIdentity) -> Result<Value, String> {
    Ok(match i {
        SignedIdentity::MatchRepository => json!({"type": "matchRepository"}),
        SignedIdentity::MatchRepoDigestOrExact => json!({"type": "matchRepoDigestOrExact"}),
        SignedIdentity::MatchExact => json!({"type": "matchExact"}),
        SignedIdentity::ExactRepository { docker_repository } => {
            json!({"type": "exactRepository", "dockerRepository": docker_repository})
        }
        SignedIdentity::RemapIdentity { prefix, signed_prefix } => {
            json!({"type": "remapIdentity", "prefix": prefix, "signedPrefix": signed_prefix})
        }
        SignedIdentity::ExactReference { .. } => {
            return Err("signedIdentity exactReference has no CRD form (use exactRepository)".into());
        }
    })
}

/// One requirement as CRD authorities (any one of which satisfies it), the signedIdentity they
/// share, and any TrustRoot they name.
struct Converted {
    authorities: Vec<Value>,
    signed_identity: Option<Value>,
    trust_root: Option<(String, Value)>,
}

fn convert(r: &Requirement, name: &str, read: Read<'_>) -> Result<Converted, String> {
    let plain = |authorities: Vec<Value>| Converted { authorities, signed_identity: None, trust_root: None };
    match r {
        Requirement::InsecureAcceptAnything => Ok(plain(vec![json!({"static": {"action": "pass"}})])),
        Requirement::Reject => Ok(plain(vec![json!({"static": {"action": "fail"}})])),
        Requirement::DigestAllowlist { digests } => {
            if let Some(d) = digests.iter().find(|d| d.algorithm() != tollgate_oci::Algorithm::Sha256) {
                return Err(format!("digestAllowlist: {d} is not sha256, which the CRDs take"));
            }
            Ok(plain(vec![json!({"digests": digests.iter().map(ToString::to_string).collect::<Vec<_>>()})]))
        }
        Requirement::SigstoreSigned { keys, fulcio: None, pki: None, rekor_public_keys, signed_identity } => {
            if !rekor_public_keys.is_empty() {
                return Err("sigstoreSigned with Rekor keys: the CRDs' key authority checks no Rekor SET".into());
            }
            let authorities = keys
                .iter()
                .map(|k| material(k, "key", read).map(|pem| json!({"key": {"data": pem}})))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Converted { authorities, signed_identity: Some(identity(signed_identity)?), trust_root: None })
        }
        Requirement::SigstoreSigned { fulcio: Some(f), pki: None, signed_identity, .. } => {
            let root = material(&f.ca, "Fulcio CA", read)?;
            if !tollgate_policy::containers::is_trusted_root(root.as_bytes()) {
                return Err("sigstoreSigned keyless with a Fulcio CA file: the CRDs take a TrustRoot with a \
                            sigstore trusted_root.json (its Fulcio CAs and Rekor keys); name one in the policy"
                    .into());
            }
            let root_name = format!("{name}-root");
            Ok(Converted {
                authorities: vec![json!({"keyless": {"issuer": f.oidc_issuer, "subject": f.subject_email,
                                                    "trustRootRef": root_name}})],
                signed_identity: Some(identity(signed_identity)?),
                trust_root: Some((root_name, json!({"sigstore": {"trustedRootJson": root}}))),
            })
        }
        Requirement::NotationSigned { trust_policy, trust_stores, check_revocation } => {
            let stores = trust_stores
                .iter()
                .map(|(store, files)| {
                    let certificates = files
                        .iter()
                        .map(|f| material(f, &format!("certificate of {store}"), read))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(json!({"name": store, "certificates": certificates}))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let policy = material(trust_policy, "trust policy", read)?;
            let mut notation = json!({"trustPolicy": policy, "trustStores": stores});
            if let Some(c) = check_revocation {
                notation["checkRevocation"] = json!({"timeoutSeconds": c.timeout_seconds});
            }
            Ok(plain(vec![json!({ "notation": notation })]))
        }
        // Any one of them: the authorities of one policy.
        Requirement::AnyOf(all) => {
            let mut out = plain(Vec::new());
            for (j, c) in all.iter().enumerate() {
                let one =
                    convert(c, &format!("{name}-{j}"), read).map_err(|e| format!("anyOf requirements[{j}]: {e}"))?;
                if let Some(id) = one.signed_identity {
                    if out.signed_identity.as_ref().is_some_and(|seen| *seen != id) {
                        return Err("anyOf: its alternatives claim different signedIdentity rules, and a \
                                    ClusterImagePolicy has one"
                            .into());
                    }
                    out.signed_identity = Some(id);
                }
                if one.trust_root.is_some() && out.trust_root.is_some() {
                    return Err("anyOf: several keyless trust roots; give each its own policy".into());
                }
                out.trust_root = out.trust_root.or(one.trust_root);
                out.authorities.extend(one.authorities);
            }
            Ok(out)
        }
        other => Err(format!("{} has no CRD form in this release", other.type_name())),
    }
}

/// A DNS-1123 name for the object of `scope`'s requirement `i`.
fn object_name(scope: &str, i: usize) -> String {
    let mut base: String = scope
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    base.truncate(180);
    // Two scopes can sanitize alike (`a/b`, `a-b`): a few bytes of the scope's hash keep names apart.
    let hash = tollgate_oci::Digest::sha256_of(scope.as_bytes());
    format!("imported-{base}-{}-{i}", &hash.hex()[..8])
}

/// The objects for `policy`, or every rule that cannot be converted, each named.
pub fn to_crds(policy: &Policy, read: Read<'_>) -> Result<String, Vec<String>> {
    let mut refused = Vec::new();
    if policy.default != [Requirement::Reject] {
        refused.push(
            "default: the cluster refuses every image no ClusterImagePolicy covers, so only a default of [reject] \
             converts; give what it should accept its own scopes"
                .to_owned(),
        );
    }
    let mut scopes: Vec<(&String, &Vec<Requirement>)> = Vec::new();
    for (transport, entries) in &policy.transports {
        if transport != "docker" {
            if !entries.is_empty() {
                refused.push(format!("transports.{transport}: a cluster decides registry (docker) images only"));
            }
            continue;
        }
        for (scope, reqs) in entries {
            if scope.is_empty() {
                if reqs.as_slice() != [Requirement::Reject] {
                    refused.push("transports.docker[\"\"]: as default, only [reject] converts".into());
                }
                continue;
            }
            let host = scope.split('/').next().unwrap_or_default();
            if scope.contains('@') || scope.rsplit('/').next().is_some_and(|last| last.contains(':') && last != host) {
                refused.push(format!("transports.docker[{scope:?}]: a scope with a tag or digest has no CRD form"));
                continue;
            }
            scopes.push((scope, reqs));
        }
    }
    for (outer, outer_reqs) in &scopes {
        for (inner, inner_reqs) in &scopes {
            if outer != inner
                && crate::compile::covers(outer, inner)
                && !outer_reqs.iter().all(|r| inner_reqs.contains(r))
            {
                refused.push(format!(
                    "transports.docker[{inner:?}]: containers-policy.json applies only its requirements under it, \
                     but the ClusterImagePolicy for {outer:?} would apply there too; list {outer:?}'s requirements \
                     in it as well"
                ));
            }
        }
    }
    let mut exemptions = Vec::new();
    for (i, e) in policy.exemptions.iter().enumerate() {
        match &e.digest {
            Some(d) => exemptions.push(json!({"digest": d.to_string(), "reason": e.reason})),
            None => refused.push(format!("exemptions[{i}]: the CRDs exempt by digest only")),
        }
    }
    let mut docs = Vec::new();
    for (scope, reqs) in &scopes {
        for (i, r) in reqs.iter().enumerate() {
            let name = object_name(scope, i);
            match convert(r, &name, read) {
                Err(why) => refused.push(format!("transports.docker[{scope:?}][{i}]: {why}")),
                Ok(c) => {
                    let mut spec = json!({"images": [scope], "authorities": c.authorities});
                    if let Some(id) = c.signed_identity {
                        spec["signedIdentity"] = id;
                    }
                    if policy.mode == Mode::Warn {
                        spec["mode"] = json!("warn");
                    }
                    // Cluster-wide lists ride on the first policy.
                    if docs.is_empty() && !exemptions.is_empty() {
                        spec["exemptions"] = json!(exemptions);
                    }
                    if docs.is_empty() && !policy.enforcement_overrides.is_empty() {
                        spec["enforcementOverrides"] = json!(policy.enforcement_overrides);
                    }
                    if let Some((root, root_spec)) = c.trust_root {
                        docs.push(json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "TrustRoot",
                                         "metadata": {"name": root}, "spec": root_spec}));
                    }
                    docs.push(json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "ClusterImagePolicy",
                                     "metadata": {"name": name}, "spec": spec}));
                }
            }
        }
    }
    if scopes.is_empty() && refused.is_empty() {
        refused.push("the policy has no docker scope: the cluster would refuse every image".into());
    }
    if !refused.is_empty() {
        return Err(refused);
    }
    let text = docs
        .iter()
        .map(|d| serde_yaml_ng::to_string(d).map_err(|e| vec![format!("cannot render: {e}")]))
        .collect::<Result<Vec<_>, _>>()?
        .join("---\n");
    // What is written must compile, with the CRDs' own rules.
    let objects = crate::compile::objects(&text, "the imported objects").map_err(|e| vec![e.to_string()])?;
    crate::compile::compile(&objects.cluster, &objects.namespaced, &objects.trust_roots)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    Ok(text)
}
