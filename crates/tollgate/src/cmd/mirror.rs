//! The registry-outage runbook's commands: `mirror`, `containerd mirrors`,
//! `systemd image-override`, and `bootstrap token`.

use std::path::Path;

use anyhow::Context as _;
use tollgate_controlplane::bootstrap::{self, Token, TokenOptions};
use tollgate_controlplane::fsutil::{WriteOutcome, write_atomic};
use tollgate_node::{dropin, hosts};
use tollgate_oci::Reference;
use tollgate_registry::Client;
use tollgate_registry::mirror::{self, Mirror};

use super::{interactive, load_catalog, read_capped, version};
use crate::cli::{ImageOverrideArgs, MirrorArgs, MirrorsArgs, TokenArgs};
use crate::exit::{Outcome, Refused};
use crate::output::{Format, print, print_json, warn};

/// `tollgate mirror`.
pub async fn mirror(a: &MirrorArgs, fmt: Format) -> anyhow::Result<Outcome> {
    // (source, destination) pairs. Catalog images land where kubeadm's
    // --image-repository TO looks for them (TO/coredns, not TO/coredns/coredns),
    // so `images lock --registry TO` and kubeadm both find what was copied.
    let mut pairs: Vec<(Reference, Reference)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    // --kubernetes-version picks versions; --catalog alone means every version that file pins.
    let versions: Vec<tollgate_controlplane::KubernetesVersion> = match (&a.kubernetes_versions[..], &a.catalog.catalog)
    {
        ([], Some(file)) => {
            let own = tollgate_controlplane::Catalog::parse(&read_capped(file)?, &file.display().to_string())?;
            own.versions().collect()
        }
        (vs, _) => vs.iter().map(|v| version(v)).collect::<anyhow::Result<_>>()?,
    };
    if !versions.is_empty() {
        let catalog = load_catalog(&a.catalog)?;
        for v in versions {
            let from = catalog.images(v, a.from.as_deref())?.images;
            let to = catalog.images(v, Some(&a.to))?.images;
            for (src, dst) in from.into_iter().zip(to) {
                if src.digest.is_none() {
                    let why = format!(
                        "{} has no known digest in the catalog; lock it first (tollgate images lock) so the mirror copies what you pinned",
                        src.image
                    );
                    if a.dry_run {
                        skipped.push(why);
                        continue;
                    }
                    return Err(Refused(why).into());
                }
                pairs.push((src.pinned_reference(), dst.image));
            }
        }
    }
    for i in &a.images {
        let src = Reference::parse_normalized(i).with_context(|| format!("image {i:?}"))?.with_default_tag();
        let dst = mirror::destination(&src, &a.to)?;
        pairs.push((src, dst));
    }
    anyhow::ensure!(
        !pairs.is_empty() || !skipped.is_empty(),
        "nothing to mirror: give --kubernetes-version or IMAGE arguments"
    );
    pairs.dedup();
    let client = Client::new(super::client_config(&a.access)?)?;
    let m = Mirror { client: &client, dry_run: a.dry_run, chunk_bytes: mirror::CHUNK_BYTES };
    let bar = super::progress(pairs.len() as u64, interactive(fmt), "mirroring");
    let mut done = Vec::new();
    for (src, dst) in &pairs {
        bar.set_message(src.repository());
        let copied = match m.copy_image(src, dst).await {
            Ok(c) => c,
            // A dry run plans every image it can and lists the others.
            Err(e) if a.dry_run => {
                skipped.push(format!("{src} -> {dst}: {e}"));
                bar.inc(1);
                continue;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("mirroring {src}"))),
        };
        bar.inc(1);
        done.push(copied);
    }
    bar.finish_and_clear();
    match fmt {
        Format::Json => print_json(&serde_json::json!({"dryRun": a.dry_run, "images": done, "cannot": skipped}))?,
        Format::Text => {
            let verb = if a.dry_run { "would copy" } else { "copied" };
            let mut s = String::new();
            for c in &done {
                s.push_str(&format!(
                    "{verb} {} -> {}@{}\n    {} manifests ({} present), blobs: {} uploaded ({} bytes), {} mounted, {} present; {}\n",
                    c.source,
                    c.destination,
                    c.digest,
                    c.manifests,
                    c.manifests_present,
                    c.blobs_uploaded,
                    c.bytes_uploaded,
                    c.blobs_mounted,
                    c.blobs_present,
                    if c.artifacts.is_empty() { "no signatures or referrers".to_owned() } else { c.artifacts.join(", ") }
                ));
            }
            for why in &skipped {
                s.push_str(&format!("cannot copy: {why}\n"));
            }
            print(&s)?;
        }
    }
    // A dry run that could not plan everything says so in its exit code too.
    Ok(if skipped.is_empty() { Outcome::Ok } else { Outcome::Findings })
}

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<&'static str> {
    Ok(match write_atomic(path, text.as_bytes(), mode)? {
        WriteOutcome::Unchanged => "unchanged",
        WriteOutcome::Written => "wrote",
    })
}

/// `tollgate containerd mirrors`.
pub fn hosts(a: &MirrorsArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let mut mirrors = Vec::new();
    for spec in &a.mirrors {
        let mut m = hosts::Mirror::parse(spec)?;
        m.ca = a.ca_file.clone();
        m.skip_verify = a.skip_verify;
        mirrors.push(m);
    }
    if a.skip_verify {
        warn("--skip-verify: the mirrors' TLS is not checked; pinned digests still are, tags are not");
    }
    let mut files = Vec::new();
    for r in &a.registries {
        anyhow::ensure!(
            !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c)),
            "--registry {r:?} is not a registry host"
        );
        let path = a.config_path.join(r).join("hosts.toml");
        let text = hosts::hosts_toml(r, &mirrors);
        let action = if a.dry_run { "would write" } else { write(&path, &text, 0o644)? };
        files.push((path, text, action));
    }
    match fmt {
        Format::Json => print_json(&serde_json::json!({
            "dryRun": a.dry_run,
            "files": files.iter().map(|(p, t, act)| serde_json::json!({"path": p.display().to_string(), "action": act, "content": t})).collect::<Vec<_>>(),
        }))?,
        Format::Text => {
            let mut s = String::new();
            for (p, t, act) in &files {
                s.push_str(&format!("{act} {}\n", p.display()));
                if a.dry_run {
                    s.push_str(t);
                    s.push('\n');
                }
            }
            s.push_str(&format!(
                "containerd reads these with [plugins.'io.containerd.cri.v1.images'.registry] config_path = '{}' (no restart needed for changes to hosts.toml).\n\
                 Do not set CRI's registry.mirrors instead: it makes kubelet pulls skip the image verifier.\n",
                a.config_path.display()
            ));
            print(&s)?;
        }
    }
    Ok(Outcome::Ok)
}

/// `tollgate systemd image-override`.
pub fn image_override(a: &ImageOverrideArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let unit = dropin::unit_name(&a.unit);
    dropin::check_unit(&unit)?;
    let path = a.dir.join(format!("{unit}.d")).join(dropin::FILE_NAME);
    let (action, text) = if a.revert {
        let action = match (a.dry_run, std::fs::remove_file(&path)) {
            (true, _) => "would remove",
            (false, Ok(())) => {
                let _ = std::fs::remove_dir(path.parent().unwrap_or(&a.dir)); // only when empty
                "removed"
            }
            (false, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => "absent",
            (false, Err(e)) => return Err(anyhow::anyhow!("cannot remove {}: {e}", path.display())),
        };
        (action, None)
    } else {
        let image = a.image.as_deref().unwrap_or_default();
        let text = dropin::image_override(&unit, &a.env, image, a.allow_tag)?;
        let action = if a.dry_run { "would write" } else { write(&path, &text, 0o644)? };
        (action, Some(text))
    };
    match fmt {
        Format::Json => {
            print_json(&serde_json::json!({"path": path.display().to_string(), "action": action, "content": text}))?
        }
        Format::Text => {
            let mut s = format!("{action} {}\n", path.display());
            if let (true, Some(t)) = (a.dry_run, &text) {
                s.push_str(t);
            }
            if !a.dry_run && action != "unchanged" && action != "absent" {
                s.push_str(&format!("then: systemctl daemon-reload && systemctl restart {}\n", a.unit));
            }
            print(&s)?;
        }
    }
    Ok(Outcome::Ok)
}

/// `tollgate bootstrap token`.
pub fn token(a: &TokenArgs, fmt: Format) -> anyhow::Result<Outcome> {
    anyhow::ensure!(a.server.starts_with("https://"), "--server {} must be an https:// URL", a.server);
    let ca = read_capped(&a.ca_file)?;
    anyhow::ensure!(
        String::from_utf8_lossy(&ca).contains("-----BEGIN CERTIFICATE-----"),
        "--ca-file {}: no PEM certificate in it",
        a.ca_file.display()
    );
    let ttl = bootstrap::parse_ttl(&a.ttl)
        .ok_or_else(|| anyhow::anyhow!("--ttl {:?}: want 30m, 24h, 7d (at most a year) or 0", a.ttl))?;
    for g in &a.groups {
        anyhow::ensure!(
            g.strip_prefix("system:bootstrappers:").is_some_and(|r| !r.is_empty() && !r.contains(',')),
            "--group {g:?}: bootstrap token groups must be system:bootstrappers:NAME"
        );
    }
    // The OS CSPRNG (getrandom), through ring, the crypto provider already in use.
    let rng = ring::rand::SystemRandom::new();
    let mut buf = [0u8; 64];
    let mut pos = buf.len();
    let mut failed = false;
    let mut random = || {
        if pos == buf.len() {
            failed |= ring::rand::SecureRandom::fill(&rng, &mut buf).is_err();
            pos = 0;
        }
        pos += 1;
        buf[pos - 1]
    };
    let t = Token::generate(&mut random);
    anyhow::ensure!(!failed, "the operating system's random number generator failed");
    let options = TokenOptions {
        description: a.description.clone(),
        expiration: if ttl == 0 { None } else { bootstrap::expiration(super::now_unix(), ttl) },
        extra_groups: a.groups.clone(),
    };
    let secret_path = a.out.join(format!("bootstrap-token-{}.yaml", t.id));
    let rbac_path = a.out.join("bootstrap-rbac.yaml");
    let kubeconfig_path = a.out.join("bootstrap-kubelet.conf");
    write(&secret_path, &bootstrap::yaml_stream(&[bootstrap::secret(&t, &options)]), 0o600)?;
    write(&rbac_path, &bootstrap::yaml_stream(&bootstrap::cluster_role_bindings()), 0o644)?;
    write(&kubeconfig_path, &bootstrap::yaml_stream(&[bootstrap::kubeconfig(&t, &a.server, &ca)]), 0o600)?;
    let files = [&secret_path, &rbac_path, &kubeconfig_path];
    match fmt {
        Format::Json => print_json(&serde_json::json!({
            "tokenId": t.id, "expiration": options.expiration,
            "files": files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        }))?,
        Format::Text => {
            let mut s = format!(
                "bootstrap token {}.**************** ({})\n",
                t.id,
                options.expiration.as_deref().map_or("never expires".into(), |e| format!("expires {e}"))
            );
            for p in files {
                s.push_str(&format!("wrote {}\n", p.display()));
            }
            s.push_str(&format!(
                "apply: kubectl apply -f {} -f {}\nrevoke: kubectl -n kube-system delete secret bootstrap-token-{}\n",
                secret_path.display(),
                rbac_path.display(),
                t.id
            ));
            print(&s)?;
        }
    }
    Ok(Outcome::Ok)
}
