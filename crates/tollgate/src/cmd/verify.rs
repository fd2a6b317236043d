//! `tollgate verify`: the imperative shell around policy evaluation.

use std::path::Path;

use anyhow::Context as _;
use tollgate_node::engine::{self, Sources, to_layers};
use tollgate_oci::Digest;
use tollgate_policy::evaluate::{Failure, Image, LoadedPolicy, Signatures};
use tollgate_policy::scope::Subject;
use tollgate_policy::{Decision, evaluate};
use tollgate_registry::layout::Layout;
use tollgate_registry::{Client, ClientConfig};

use crate::cli::VerifyArgs;
use crate::exit::Outcome;
use crate::output::{Format, print, print_json};

/// Reads and loads a policy; relative key paths are resolved against the policy's directory.
pub fn load_policy(path: &Path) -> anyhow::Result<LoadedPolicy> {
    Ok(tollgate_node::engine::load_policy(path)?.policy)
}

pub async fn verify(a: &VerifyArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let given = a.digest.as_deref().map(Digest::parse).transpose()?;
    let policy = load_policy(&a.policy)?;
    let decision = match a.image.strip_prefix("oci:") {
        Some(spec) => verify_layout(spec, given.as_ref(), &policy)?,
        None => verify_registry(a, given.as_ref(), &policy).await?,
    };
    match fmt {
        Format::Json => print_json(&decision)?,
        Format::Text => print(&render(&decision))?,
    }
    Ok(match decision.failure {
        None => Outcome::Ok,
        Some(Failure::Fatal) => Outcome::Findings,
        Some(Failure::Transient) => Outcome::Undecidable,
    })
}

async fn verify_registry(a: &VerifyArgs, given: Option<&Digest>, policy: &LoadedPolicy) -> anyhow::Result<Decision> {
    let cfg = ClientConfig {
        request_timeout: std::time::Duration::from_secs(a.timeout),
        connect_timeout: std::time::Duration::from_secs(a.timeout.min(10)),
        ..super::client_config(&a.access)?
    };
    let sources = Sources::new(Client::new(cfg)?);
    // `docker://host/repo:tag` is skopeo's spelling of the same registry image.
    let image = a.image.strip_prefix("docker://").unwrap_or(&a.image);
    Ok(engine::decide(image, given.map(engine::Given::from), policy, &sources, super::now_unix()).await?)
}

fn verify_layout(spec: &str, given: Option<&Digest>, policy: &LoadedPolicy) -> anyhow::Result<Decision> {
    // oci:DIR[:NAME]; a NAME never contains '/'.
    let (dir, name) = match spec.rsplit_once(':') {
        Some((d, n)) if !n.contains('/') && !d.is_empty() => (d, Some(n)),
        _ => (spec, None),
    };
    let dir = std::fs::canonicalize(dir).with_context(|| format!("cannot open OCI layout {dir}"))?;
    let layout = Layout::open(&dir, tollgate_registry::MAX_MANIFEST_BYTES)?;
    let desc = layout.resolve(name)?;
    if let Some(g) = given {
        anyhow::ensure!(*g == desc.digest, "--digest {g} is not the digest of {spec} ({})", desc.digest);
    }
    let manifest = layout.manifest(&desc)?;
    let dir_text = dir.display().to_string();
    let subject = Subject::Oci { dir: &dir_text, name };
    let signatures = match layout.signature_layers(&desc.digest) {
        Ok(found) => Signatures::Found(to_layers(found)),
        Err(e) => Signatures::Unavailable { transient: false, reason: e.to_string() },
    };
    let image = Image { subject, digest: &desc.digest, manifest: Some(&manifest), platforms: &[] };
    Ok(evaluate(policy, &image, &signatures, super::now_unix()))
}

/// The human form of a decision. Each fact is said once: the verdict line names the scope, each
/// requirement line says why it holds or fails, and a signature line is added only when it says
/// something its requirement's line does not (the one-line `reason` repeats them for logs).
pub fn render(d: &Decision) -> String {
    let verdict = match (d.allowed, d.would_deny, d.exempt) {
        (_, _, true) => "EXEMPT",
        (true, true, _) => "WARN",
        (true, false, _) => "ALLOWED",
        (false, _, _) => "DENIED",
    };
    let why = match (d.requirements.is_empty() || d.exempt, d.allowed, d.would_deny) {
        (true, _, _) => d.reason.clone(),
        (false, true, false) => format!("allowed by {}", d.scope.name),
        (false, true, true) => format!("warn mode, allowed; would be denied by {}", d.scope.name),
        (false, false, _) => format!("denied by {}", d.scope.name),
    };
    let mut s = format!("{verdict} {}\n  digest {}\n  {why}\n", d.image, d.digest);
    for r in &d.requirements {
        let mark = if r.satisfied { "ok  " } else { "FAIL" };
        s.push_str(&format!("  {mark} {}: {}\n", r.requirement, r.reason));
        for sig in r.signatures.iter().filter(|sig| !r.reason.contains(&sig.reason)) {
            let m = if sig.accepted { "accepted" } else { "rejected" };
            s.push_str(&format!("         signature {}: {m}: {}\n", sig.index, sig.reason));
        }
    }
    s
}
