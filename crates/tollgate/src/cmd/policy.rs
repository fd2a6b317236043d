//! `tollgate policy check`.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use tollgate_policy::Requirement;

use super::verify::load_policy;
use crate::exit::Outcome;
use crate::output::{Format, print, print_json, warn};

#[derive(Serialize)]
struct ScopeSummary {
    transport: String,
    scope: String,
    requirements: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckOutput {
    valid: bool,
    mode: tollgate_policy::containers::Mode,
    exemptions: usize,
    default: Vec<String>,
    scopes: Vec<ScopeSummary>,
    warnings: Vec<String>,
}

fn describe(r: &Requirement) -> String {
    r.type_name().to_owned()
}

pub fn check(path: &Path, fmt: Format) -> anyhow::Result<Outcome> {
    let loaded = load_policy(path)?;
    let p = &loaded.policy;
    let warnings = tollgate_policy::lint::warnings(p);
    let scopes = p
        .transports
        .iter()
        .flat_map(|(transport, map)| {
            map.iter().map(move |(scope, reqs)| ScopeSummary {
                transport: transport.clone(),
                scope: scope.clone(),
                requirements: reqs.iter().map(describe).collect(),
            })
        })
        .collect();
    let out = CheckOutput {
        valid: true,
        mode: p.mode,
        exemptions: p.exemptions.len(),
        default: p.default.iter().map(describe).collect(),
        scopes,
        warnings,
    };
    match fmt {
        Format::Json => print_json(&out)?,
        Format::Text => {
            let mode = match out.mode {
                tollgate_policy::containers::Mode::Enforce => "enforce",
                tollgate_policy::containers::Mode::Warn => "warn",
            };
            let mut s = format!(
                "{}: valid ({mode} mode, {} exemption(s))\n  default: {}\n",
                path.display(),
                out.exemptions,
                out.default.join(", ")
            );
            for sc in &out.scopes {
                s.push_str(&format!("  {}[{:?}]: {}\n", sc.transport, sc.scope, sc.requirements.join(", ")));
            }
            print(&s)?;
            for w in &out.warnings {
                warn(w);
            }
        }
    }
    Ok(Outcome::Ok)
}

/// `policy import` (to native) and `policy export` (to containers-policy.json).
pub fn convert(path: &Path, out: Option<&Path>, to_native: bool, fmt: Format) -> anyhow::Result<Outcome> {
    let name = path.display().to_string();
    let bytes = super::read_capped(path)?;
    let mut policy = if to_native {
        anyhow::ensure!(!tollgate_policy::native::is_native(&bytes), "{name} is already a native policy");
        tollgate_policy::Policy::parse(&bytes, &name)?
    } else {
        tollgate_policy::native::parse_any(&bytes, &name)?
    };
    // Relative key paths are read from the policy's directory: written to
    // another directory, they are rewritten to reach the same files.
    let src_dir = dir_of(path)?;
    if let Some(o) = out {
        super::out_dir_exists(o)?;
    }
    let out_dir = out.map(dir_of).transpose()?.unwrap_or_else(|| src_dir.clone());
    if out_dir != src_dir {
        policy.map_key_paths(&|p| match Path::new(p).is_relative() {
            true => relative_to(&out_dir, &normalize(&src_dir.join(p))).display().to_string(),
            false => p.to_owned(),
        });
    }
    let text = if to_native {
        tollgate_policy::native::import(&policy, &name)?
    } else {
        tollgate_policy::native::export(&policy, &name)?
    };
    // The result must load where it goes, keys included, as `policy check` would.
    let shown = out.unwrap_or(path);
    tollgate_node::engine::load_policy_with(shown, text.clone().into_bytes(), &|p| {
        tollgate_node::engine::read_limited(&out_dir.join(p), tollgate_node::engine::MAX_FILE_BYTES)
            .map_err(|e| e.to_string())
    })?;
    match (out, fmt) {
        (Some(o), _) => {
            super::write_out(o, text.as_bytes(), 0o644)?;
            match fmt {
                Format::Json => print_json(&serde_json::json!({"wrote": o.display().to_string()}))?,
                Format::Text => print(&format!("wrote {}\n", o.display()))?,
            }
        }
        // -o json means JSON: the native document as JSON (it is YAML otherwise).
        (None, Format::Json) if to_native => {
            let doc: serde_json::Value = serde_yaml_ng::from_str(&text)?;
            print_json(&doc)?;
        }
        (None, _) => print(&text)?,
    }
    Ok(Outcome::Ok)
}

/// `policy import --to crd`: the ClusterImagePolicies (and TrustRoots) of a policy of either format,
/// keys read from the policy's directory and inlined.
pub fn import_crd(path: &Path, out: Option<&Path>, fmt: Format) -> anyhow::Result<Outcome> {
    let name = path.display().to_string();
    let policy = tollgate_policy::native::parse_any(&super::read_capped(path)?, &name)?;
    let src_dir = dir_of(path)?;
    let read = |p: &str| {
        tollgate_node::engine::read_limited(&src_dir.join(p), tollgate_node::engine::MAX_FILE_BYTES)
            .map_err(|e| e.to_string())
    };
    let text = tollgate_kube::import::to_crds(&policy, &read).map_err(|refused| {
        anyhow::anyhow!(
            "cannot convert {} rule(s) of {name} to CRDs, nothing was written: {}",
            refused.len(),
            refused.join("; ")
        )
    })?;
    match (out, fmt) {
        (Some(o), _) => {
            super::out_dir_exists(o)?;
            super::write_out(o, text.as_bytes(), 0o644)?;
            match fmt {
                Format::Json => print_json(&serde_json::json!({"wrote": o.display().to_string()}))?,
                Format::Text => {
                    print(&format!("wrote {}\napply with: kubectl apply -f {}\n", o.display(), o.display()))?
                }
            }
        }
        (None, Format::Json) => {
            let docs = serde_yaml_ng::Deserializer::from_str(&text)
                .map(serde::Deserialize::deserialize)
                .collect::<Result<Vec<serde_json::Value>, _>>()?;
            print_json(&docs)?;
        }
        (None, Format::Text) => print(&text)?,
    }
    Ok(Outcome::Ok)
}

/// `policy default`: a complete node policy for official Kubernetes images.
pub fn default_policy() -> anyhow::Result<Outcome> {
    print(&default_policy_text())?;
    Ok(Outcome::Ok)
}

/// The policy `policy default` prints: keyless release signatures for
/// registry.k8s.io, the catalog's digests for the control plane, DNS and
/// kube-proxy, the sandbox exempt by digest, everything else refused.
fn default_policy_text() -> String {
    use std::collections::BTreeMap;
    use tollgate_controlplane::catalog::{Catalog, Component};
    let catalog = Catalog::embedded();
    let mut digests: BTreeMap<&'static str, Vec<(String, String)>> = BTreeMap::new();
    for v in catalog.versions() {
        let Ok(imgs) = catalog.images(v, None) else { continue };
        for i in imgs.images {
            if let Some(d) = &i.digest {
                let list = digests.entry(i.component.name()).or_default();
                let tag = i.image.tag().unwrap_or_default().to_owned();
                if !list.iter().any(|(x, _)| *x == d.to_string()) {
                    list.push((d.to_string(), tag));
                }
            }
        }
    }
    let coverage = catalog.coverage();
    let mut out = format!(
        "# A node policy for official Kubernetes images, from `tollgate policy default` (tollgate {}, catalog: {coverage}).\n\
         # Add scopes for your own images; everything else is refused.\n\
         apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\ndefault: [{{type: reject}}]\n",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str("exemptions:   # the pod sandbox runs in every pod: never blocked\n");
    for (d, tag) in digests.get(Component::Pause.name()).into_iter().flatten() {
        out.push_str(&format!("  - digest: {d}\n    reason: pod sandbox, registry.k8s.io/pause:{tag}\n"));
    }
    out.push_str(&format!(
        "transports:\n  docker:\n    # Kubernetes release images: signed keyless by {} (via {}), logged in Rekor.\n\
         \x20   registry.k8s.io:\n      - type: sigstoreSigned\n        trust: {}\n        \
         signedIdentity: {{type: matchRepository}}   # the signatures claim registry.k8s.io/<repository>\n",
        tollgate_policy::native::KUBERNETES_RELEASE_SIGNER,
        tollgate_policy::native::KUBERNETES_RELEASE_ISSUER,
        tollgate_policy::native::KUBERNETES_RELEASE,
    ));
    for c in [
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::Etcd,
        Component::Coredns,
        Component::KubeProxy,
    ] {
        let Some(list) = digests.get(c.name()) else { continue };
        out.push_str(&format!(
            "    {}:   # exactly the published digests (tollgate's catalog)\n      - type: digestAllowlist\n        digests:\n",
            c.repository("registry.k8s.io")
        ));
        for (d, tag) in list {
            out.push_str(&format!("          - {d}   # {tag}\n"));
        }
    }
    out
}

/// The directory a policy file is in, absolute and with symlinks resolved.
fn dir_of(file: &Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).with_context(|| format!("cannot open directory {}", dir.display()))
}

/// `p` with `.` and `..` resolved lexically (`/a/b/../k` is `/a/k`).
fn normalize(p: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// `target` as a path relative to the directory `base` (both absolute and
/// normalized), e.g. `/a/b` and `/a/keys/k.pub` give `../keys/k.pub`.
fn relative_to(base: &Path, target: &Path) -> std::path::PathBuf {
    let (b, t): (Vec<_>, Vec<_>) = (base.components().collect(), target.components().collect());
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

/// `tollgate policy compile`: the tollgate.dev objects as the node's policy files.
pub fn compile(
    file: &std::path::Path,
    out: Option<&std::path::Path>,
    configmap: bool,
    fmt: Format,
) -> anyhow::Result<Outcome> {
    use tollgate_policy::bundle;
    let text = String::from_utf8(super::read_capped(file)?)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", file.display()))?;
    let objects = tollgate_kube::compile::objects(&text, &file.display().to_string())?;
    let (cluster, namespaced) = (&objects.cluster, &objects.namespaced);
    anyhow::ensure!(
        !cluster.is_empty(),
        "{} has no ClusterImagePolicy: the node would refuse every image; add one that covers your registries",
        file.display()
    );
    let compiled = tollgate_kube::compile::compile(cluster, namespaced, &objects.trust_roots).map_err(|errors| {
        let n = errors.len();
        let each = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        anyhow::anyhow!("cannot compile {n} object(s), nothing was written: {each}")
    })?;
    // The bundle: policy.yaml and namespace.NS.yaml, on disk and in the ConfigMap alike.
    let files = compiled.files();
    let hash = compiled.hash();
    if configmap {
        let yaml = tollgate_kube::manifests::policy_configmap(&files, &hash)?;
        match out {
            None => print(&yaml)?,
            Some(path) => {
                super::write_out(path, yaml.as_bytes(), 0o644)?;
                match fmt {
                    Format::Json => {
                        print_json(&serde_json::json!({ "configMap": path.display().to_string(), "bundleHash": hash }))?
                    }
                    Format::Text => print(&format!(
                        "wrote {} (ConfigMap {}/{}, bundle {hash})\napply with: kubectl apply -f {}\n",
                        path.display(),
                        tollgate_kube::manifests::NAMESPACE,
                        tollgate_kube::manifests::POLICY_CONFIGMAP,
                        path.display()
                    ))?,
                }
            }
        }
        return Ok(Outcome::Ok);
    }
    let Some(out) = out else {
        anyhow::bail!("give --out DIR for the bundle's files, or --configmap for its ConfigMap on stdout")
    };
    if !out.is_dir() {
        super::out_dir_exists(out)?;
        std::fs::create_dir(out).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    }
    let mut written = Vec::new();
    for (key, bytes) in &files {
        let path = out.join(key);
        super::write_out(&path, bytes, 0o644)?;
        written.push(path.display().to_string());
    }
    // A namespace whose ImagePolicies are gone must not keep its old part.
    for entry in std::fs::read_dir(out).map_err(|e| anyhow::anyhow!("cannot list {}: {e}", out.display()))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if bundle::namespace_of(&name).is_some_and(|ns| !compiled.namespaces.contains_key(ns)) {
            let path = entry.path();
            std::fs::remove_file(&path)
                .map_err(|e| anyhow::anyhow!("cannot remove the stale {}: {e}", path.display()))?;
        }
    }
    let cluster_path = out.join(bundle::POLICY_KEY);
    match fmt {
        Format::Json => print_json(&serde_json::json!({
            "policy": cluster_path.display().to_string(),
            "namespaces": &written[1..],
            "bundleHash": hash,
        }))?,
        Format::Text => {
            let mut s = format!("wrote {} ({} ClusterImagePolicies)\n", cluster_path.display(), cluster.len());
            for w in &written[1..] {
                s.push_str(&format!("wrote {w}\n"));
            }
            s.push_str(&format!("bundle {hash}\nnode config: policyBundle: {}\n", out.display()));
            print(&s)?;
        }
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{normalize, relative_to};

    #[test]
    fn relative_paths_climb_to_the_common_directory() {
        let r = |b: &str, t: &str| relative_to(Path::new(b), Path::new(t)).display().to_string();
        assert_eq!(r("/a/b", "/a/keys/k.pub"), "../keys/k.pub");
        assert_eq!(r("/a", "/a/keys/k.pub"), "keys/k.pub");
        assert_eq!(r("/x/y/z", "/a/k.pub"), "../../../a/k.pub");
        assert_eq!(r("/a/b/c", "/a/b/k.pub"), "../k.pub");
        assert_eq!(normalize(Path::new("/a/out/../../src/./k.pub")), Path::new("/src/k.pub"));
    }
}
