//! `tollgate components install`.

use serde::Serialize;
use tollgate_controlplane::components::{self, Installed, MAX_SOURCE_BYTES, Source};
use tollgate_registry::{Client, ClientConfig};

use super::read_capped;
use crate::cli::InstallArgs;
use crate::exit::Outcome;
use crate::output::{Format, print, print_json};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InstallOutput {
    dry_run: bool,
    components: usize,
    installed: Vec<Installed>,
}

pub async fn install(a: &InstallArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let list = components::parse_list(&read_capped(&a.file)?, &a.file.display().to_string())?;
    let mut client = None;
    let mut plans = Vec::with_capacity(list.len());
    for (i, spec) in list.iter().enumerate() {
        let bytes = match spec.source(i)? {
            Source::Data(b) => b,
            Source::File(p) => components::read_file_source(&p).map_err(|e| {
                anyhow::anyhow!("component {i} ({}): cannot read {}: {e}", spec.display_url(), p.display())
            })?,
            Source::Https(url) => {
                if client.is_none() {
                    client = Some(Client::new(ClientConfig::default())?);
                }
                let c = client.as_ref().ok_or_else(|| anyhow::anyhow!("no HTTP client"))?;
                c.fetch_url(&url, MAX_SOURCE_BYTES).await.map_err(|e| match e {
                    // A download server is not a registry: say what could not be reached.
                    tollgate_registry::RegistryError::Unreachable { registry, message } => {
                        anyhow::Error::new(crate::exit::Transient(format!(
                            "component {i} ({}): cannot reach {registry}: {message}; check the URL, or the network \
                             and any proxy",
                            spec.display_url()
                        )))
                    }
                    e => anyhow::Error::new(e).context(format!("component {i} ({})", spec.display_url())),
                })?
            }
        };
        plans.push(components::plan(spec, i, &bytes, &a.root)?);
    }
    let mut installed = Vec::new();
    if !a.dry_run {
        for p in &plans {
            installed.extend(components::apply(p)?);
        }
    }
    match fmt {
        Format::Json => print_json(&InstallOutput { dry_run: a.dry_run, components: list.len(), installed })?,
        Format::Text => {
            let mut s = String::new();
            if a.dry_run {
                s.push_str(&format!("{} components checked; nothing written (--dry-run)\n", list.len()));
            }
            for i in &installed {
                let state = match i.outcome {
                    tollgate_controlplane::fsutil::WriteOutcome::Written => "installed",
                    tollgate_controlplane::fsutil::WriteOutcome::Unchanged => "unchanged",
                };
                s.push_str(&format!("{state:<9} {}\n", i.path.display()));
            }
            print(&s)?;
        }
    }
    Ok(Outcome::Ok)
}
