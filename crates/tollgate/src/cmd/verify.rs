//! `tollgate verify`: the imperative shell around policy evaluation.

use std::path::Path;

use anyhow::Context as _;
use tollgate_oci::{Digest, Reference};
use tollgate_policy::evaluate::{Failure, Image, LoadedPolicy, Signatures};
use tollgate_policy::{Decision, Policy, evaluate};
use tollgate_registry::{Client, ClientConfig};
use tollgate_verify::SignatureLayer;

use super::read_capped;
use crate::cli::VerifyArgs;
use crate::exit::Outcome;
use crate::output::{Format, print, print_json};

/// Reads and loads a policy; relative key paths are resolved against the policy's directory.
pub fn load_policy(path: &Path) -> anyhow::Result<LoadedPolicy> {
    let name = path.display().to_string();
    let policy = Policy::parse(&read_capped(path)?, &name)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let read = |p: &str| -> Result<Vec<u8>, String> {
        let full = base.join(p);
        read_capped(&full).map_err(|e| format!("{e:#}"))
    };
    Ok(LoadedPolicy::load(policy, &name, &read)?)
}

pub async fn verify(a: &VerifyArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let reference = Reference::parse_normalized(&a.image)?.with_default_tag();
    let given = a.digest.as_deref().map(Digest::parse).transpose()?;
    if let (Some(g), Some(d)) = (&given, reference.digest()) {
        anyhow::ensure!(g == d, "--digest {g} contradicts the digest in {reference}");
    }
    let policy = load_policy(&a.policy)?;
    let client = Client::new(ClientConfig {
        insecure_registries: a.insecure_registry.clone(),
        request_timeout: std::time::Duration::from_secs(a.timeout),
        connect_timeout: std::time::Duration::from_secs(a.timeout.min(10)),
        ..Default::default()
    })?;
    // The manifest is always fetched by digest or tag and checked against it:
    // the digest that would be pulled is the one decided on.
    let target = match &given {
        Some(d) => reference.clone().without_digest().with_digest(d.clone()),
        None => reference.clone(),
    };
    let manifest = client.get_manifest(&target).await.with_context(|| format!("cannot fetch {target}"))?;
    let digest = manifest.digest.clone();
    let signatures = if policy.needs_signatures(&reference) {
        match client.signature_layers(&reference, &digest).await {
            Ok(found) => Signatures::Found(
                found
                    .into_iter()
                    .map(|(d, payload)| SignatureLayer {
                        media_type: d.media_type,
                        payload,
                        annotations: d.annotations,
                    })
                    .collect(),
            ),
            Err(e) => Signatures::Unavailable { transient: e.is_transient(), reason: e.to_string() },
        }
    } else {
        Signatures::Found(Vec::new())
    };
    let image = Image { reference: &reference, digest: &digest, manifest: Some(&manifest.bytes) };
    let decision = evaluate(&policy, &image, &signatures);
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

/// The human form of a decision.
pub fn render(d: &Decision) -> String {
    let verdict = if d.allowed { "ALLOWED" } else { "DENIED" };
    let mut s = format!("{verdict} {}\n  digest {}\n  {}\n", d.image, d.digest, d.reason);
    for r in &d.requirements {
        let mark = if r.satisfied { "ok  " } else { "FAIL" };
        s.push_str(&format!("  {mark} {}: {}\n", r.requirement, r.reason));
        for sig in &r.signatures {
            let m = if sig.accepted { "accepted" } else { "rejected" };
            s.push_str(&format!("         signature {}: {m}: {}\n", sig.index, sig.reason));
        }
    }
    s
}
