//! `tollgate images list|lock`.

use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::Semaphore;
use tollgate_controlplane::catalog::{Component, ImagePin, Provenance};
use tollgate_controlplane::{Catalog, KubernetesVersion};
use tollgate_oci::{Digest, Reference};
use tollgate_registry::Client;

use super::{interactive, load_catalog, read_capped, version};
use crate::cli::{ImagesListArgs, ImagesLockArgs};
use crate::exit::{Outcome, Refused, Transient};
use crate::output::{Format, print, print_json, warn};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedImage {
    component: Component,
    image: String,
    digest: Option<Digest>,
    pinned: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListOutput {
    kubernetes_version: KubernetesVersion,
    provenance: Provenance,
    images: Vec<ListedImage>,
}

pub fn list(a: &ImagesListArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let catalog = load_catalog(&a.catalog)?;
    let imgs = catalog.images(version(&a.kubernetes_version)?, a.image_repository.as_deref())?;
    let unpinned: Vec<&str> = imgs.unpinned().map(|i| i.component.name()).collect();
    match fmt {
        Format::Json => print_json(&ListOutput {
            kubernetes_version: imgs.version,
            provenance: imgs.provenance,
            images: imgs
                .images
                .iter()
                .map(|i| ListedImage {
                    component: i.component,
                    image: i.image.to_string(),
                    digest: i.digest.clone(),
                    pinned: i.digest.as_ref().map(|_| i.pinned_reference().to_string()),
                })
                .collect(),
        })?,
        Format::Text => {
            let mut out = String::new();
            for i in &imgs.images {
                let shown = if a.pinned { i.pinned_reference() } else { i.image.clone() };
                out.push_str(&shown.to_string());
                out.push('\n');
            }
            print(&out)?;
            if a.pinned && !unpinned.is_empty() {
                warn(&format!(
                    "no digest known for {} of {}: printed by tag; resolve with `tollgate images lock --kubernetes-version {}`",
                    unpinned.join(", "),
                    imgs.version,
                    imgs.version
                ));
            }
        }
    }
    Ok(Outcome::Ok)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Locked {
    kubernetes_version: KubernetesVersion,
    component: Component,
    resolved_from: String,
    digest: Digest,
    media_type: String,
    previous: Option<Digest>,
    changed: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LockOutput {
    catalog: String,
    written: bool,
    images: Vec<Locked>,
}

pub async fn lock(a: &ImagesLockArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let mut catalog = load_catalog(&a.catalog)?;
    let mut out_catalog = if a.out.exists() {
        Catalog::parse(&read_capped(&a.out)?, &a.out.display().to_string())?
    } else {
        Catalog::empty()
    };
    // Pins already in the output file count as known: a tag that moved since the last lock is caught too.
    catalog.merge(out_catalog.clone());
    let mut work = Vec::new();
    for v in &a.kubernetes_versions {
        let v = version(v)?;
        let source_repo = a.registry.as_deref();
        let imgs = catalog.images(v, source_repo)?;
        let known = catalog.images(v, None)?;
        for img in imgs.images {
            let previous = known.get(img.component).and_then(|k| k.digest.clone());
            work.push((v, img.component, img.image, previous));
        }
    }
    let client = Client::new(super::client_config(&a.access)?)?;
    let bar = super::progress(work.len() as u64, interactive(fmt), "resolving");
    let permits = Arc::new(Semaphore::new(usize::from(a.concurrency)));
    let mut tasks = tokio::task::JoinSet::new();
    for (v, component, image, previous) in work {
        let (client, permits, bar) = (client.clone(), permits.clone(), bar.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = client.get_manifest(&image).await;
            bar.inc(1);
            (v, component, image, previous, result)
        });
    }
    let mut locked = Vec::new();
    let mut failures = Vec::new();
    let mut all_transient = true;
    while let Some(joined) = tasks.join_next().await {
        let (v, component, image, previous, result) = joined.context("a resolver task failed")?;
        match result {
            Ok(m) => {
                let changed = previous.as_ref().is_some_and(|p| *p != m.digest);
                locked.push(Locked {
                    kubernetes_version: v,
                    component,
                    resolved_from: image.to_string(),
                    digest: m.digest,
                    media_type: m.media_type,
                    previous,
                    changed,
                });
            }
            Err(e) => {
                all_transient &= e.is_transient();
                failures.push((image.to_string(), e.to_string()));
            }
        }
    }
    bar.finish_and_clear();
    locked.sort_by_key(|l| (l.kubernetes_version, l.component));
    if !failures.is_empty() {
        failures.sort();
        // One cause, said once, with the images it hit.
        let mut causes: Vec<(String, Vec<String>)> = Vec::new();
        for (image, cause) in &failures {
            match causes.iter_mut().find(|(c, _)| c == cause) {
                Some((_, images)) => images.push(image.clone()),
                None => causes.push((cause.clone(), vec![image.clone()])),
            }
        }
        let total = failures.len() + locked.len();
        let said: Vec<String> = causes
            .iter()
            .map(|(cause, images)| match images.as_slice() {
                [one] => format!("{one}: {cause}"),
                all if all.len() == total => format!("{cause} (for all {total} images)"),
                some => format!("{cause} (for {})", some.join(", ")),
            })
            .collect();
        let msg = format!(
            "{} of {total} images could not be resolved; nothing was written: {}",
            failures.len(),
            said.join("; ")
        );
        if all_transient {
            return Err(Transient(msg).into());
        }
        anyhow::bail!(msg);
    }
    let moved: Vec<&Locked> = locked.iter().filter(|l| l.changed).collect();
    if !moved.is_empty() && !a.accept_changes {
        let lines: Vec<String> = moved
            .iter()
            .map(|l| {
                format!(
                    "{} now serves {}, the catalog pins {}",
                    l.resolved_from,
                    l.digest,
                    l.previous.as_ref().map(ToString::to_string).unwrap_or_default()
                )
            })
            .collect();
        return Err(Refused(format!(
            "tag moved for {} image(s); nothing was written. Investigate before trusting the new content, then re-run with --accept-changes: {}",
            moved.len(),
            lines.join("; ")
        ))
        .into());
    }
    for l in &locked {
        let tag = Reference::parse_normalized(&l.resolved_from)?.tag().unwrap_or_default().to_owned();
        out_catalog.set_pin(l.kubernetes_version, l.component, ImagePin { tag, digest: Some(l.digest.clone()) });
    }
    super::write_out(&a.out, out_catalog.to_json().as_bytes(), 0o644)?;
    match fmt {
        Format::Json => {
            print_json(&LockOutput { catalog: a.out.display().to_string(), written: true, images: locked })?
        }
        Format::Text => {
            let mut s = String::new();
            for l in &locked {
                let note = if l.changed { "  (changed: tag moved)" } else { "" };
                s.push_str(&format!("{}@{}{note}\n", l.resolved_from, l.digest));
            }
            s.push_str(&format!("wrote {} pins to {}\n", locked.len(), a.out.display()));
            print(&s)?;
        }
    }
    Ok(Outcome::Ok)
}
