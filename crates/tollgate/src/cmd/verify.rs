//! `tollgate verify`: the imperative shell around policy evaluation.

use std::path::Path;

use anyhow::Context as _;
use tollgate_oci::{Digest, Reference};
use tollgate_policy::evaluate::{Failure, Image, LoadedPolicy, PlatformSignatures, Signatures};
use tollgate_policy::scope::Subject;
use tollgate_policy::{Decision, evaluate};
use tollgate_registry::layout::Layout;
use tollgate_registry::{Client, ClientConfig};
use tollgate_verify::SignatureLayer;

use super::read_capped;
use crate::cli::VerifyArgs;
use crate::exit::Outcome;
use crate::output::{Format, print, print_json};

/// Reads and loads a policy; relative key paths are resolved against the policy's directory.
pub fn load_policy(path: &Path) -> anyhow::Result<LoadedPolicy> {
    let name = path.display().to_string();
    let policy = tollgate_policy::native::parse_any(&read_capped(path)?, &name)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let read = |p: &str| -> Result<Vec<u8>, String> {
        let full = base.join(p);
        read_capped(&full).map_err(|e| format!("{e:#}"))
    };
    Ok(LoadedPolicy::load(policy, &name, &read)?)
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

fn to_layers(found: Vec<(tollgate_oci::manifest::Descriptor, Vec<u8>)>) -> Vec<SignatureLayer> {
    found
        .into_iter()
        .map(|(d, payload)| SignatureLayer { media_type: d.media_type, payload, annotations: d.annotations })
        .collect()
}

async fn verify_registry(a: &VerifyArgs, given: Option<&Digest>, policy: &LoadedPolicy) -> anyhow::Result<Decision> {
    let cfg = ClientConfig {
        insecure_registries: a.insecure_registry.clone(),
        request_timeout: std::time::Duration::from_secs(a.timeout),
        connect_timeout: std::time::Duration::from_secs(a.timeout.min(10)),
        credentials: super::load_credentials(a.authfile.as_deref())?,
        extra_ca_pems: super::load_ca_files(&a.ca_file)?,
        ..Default::default()
    };
    decide_registry(&a.image, given, policy, cfg).await
}

/// Decides on a registry image: the shared path of `tollgate verify` and the
/// containerd image verifier.
pub async fn decide_registry(
    image: &str,
    given: Option<&Digest>,
    policy: &LoadedPolicy,
    cfg: ClientConfig,
) -> anyhow::Result<Decision> {
    let reference = Reference::parse_normalized(image)?.with_default_tag();
    if let (Some(g), Some(d)) = (given, reference.digest()) {
        anyhow::ensure!(g == d, "--digest {g} contradicts the digest in {reference}");
    }
    let client = Client::new(cfg)?;
    // The manifest is always fetched by digest or tag and checked against it:
    // the digest that would be pulled is the one decided on.
    let target = match given {
        Some(d) => reference.clone().without_digest().with_digest(d.clone()),
        None => reference.clone(),
    };
    let subject = Subject::Docker(&reference);
    let wants_signatures = policy.needs_signatures(&subject);
    let fetch_signatures = |digest: Digest| {
        let client = client.clone();
        let reference = reference.clone();
        async move {
            if !wants_signatures {
                return Signatures::Found(Vec::new());
            }
            match client.signature_layers(&reference, &digest).await {
                Ok(found) => Signatures::Found(to_layers(found)),
                Err(e) => Signatures::Unavailable { transient: e.is_transient(), reason: e.to_string() },
            }
        }
    };
    // With a known digest (what containerd passes) the manifest and the
    // signatures are fetched concurrently; a tag must be resolved first.
    let (manifest, signatures) = match given {
        Some(d) => {
            let (m, s) = tokio::join!(client.get_manifest(&target), fetch_signatures(d.clone()));
            (m.with_context(|| format!("cannot fetch {target}"))?, s)
        }
        None => {
            let m = client.get_manifest(&target).await.with_context(|| format!("cannot fetch {target}"))?;
            let s = fetch_signatures(m.digest.clone()).await;
            (m, s)
        }
    };
    let digest = manifest.digest.clone();
    let platforms =
        if policy.needs_platform_signatures(&subject) && tollgate_oci::media_types::is_index(&manifest.media_type) {
            platform_signatures(&client, &reference, &manifest.bytes).await?
        } else {
            Vec::new()
        };
    let image = Image { subject, digest: &digest, manifest: Some(&manifest.bytes), platforms: &platforms };
    Ok(evaluate(policy, &image, &signatures, super::now_unix()))
}

/// Each platform manifest of an index, with the signatures attached to it.
async fn platform_signatures(
    client: &Client,
    reference: &Reference,
    index: &[u8],
) -> anyhow::Result<Vec<PlatformSignatures>> {
    // Served bytes that are not an index are an integrity refusal, not a usage error.
    let index = tollgate_oci::manifest::ImageIndex::parse(index)
        .map_err(|e| crate::exit::Refused(format!("{reference}: the registry served {e}")))?;
    let mut out = Vec::new();
    for d in index.manifests.iter().filter(|d| tollgate_oci::media_types::is_manifest(&d.media_type)) {
        let platform = d.platform.as_ref().map_or_else(
            || "unknown".to_owned(),
            |p| match &p.variant {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            },
        );
        let signatures = match client.signature_layers(reference, &d.digest).await {
            Ok(found) => Signatures::Found(to_layers(found)),
            Err(e) => Signatures::Unavailable { transient: e.is_transient(), reason: e.to_string() },
        };
        out.push(PlatformSignatures { platform, digest: d.digest.clone(), signatures });
    }
    Ok(out)
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

/// The human form of a decision.
pub fn render(d: &Decision) -> String {
    let verdict = match (d.allowed, d.would_deny, d.exempt) {
        (_, _, true) => "EXEMPT",
        (true, true, _) => "WARN",
        (true, false, _) => "ALLOWED",
        (false, _, _) => "DENIED",
    };
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
