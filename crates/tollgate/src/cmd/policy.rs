//! `tollgate policy check`.

use std::path::Path;

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
pub fn convert(path: &Path, out: Option<&Path>, to_native: bool) -> anyhow::Result<Outcome> {
    let name = path.display().to_string();
    let bytes = super::read_capped(path)?;
    let text = if to_native {
        anyhow::ensure!(!tollgate_policy::native::is_native(&bytes), "{name} is already a native policy");
        let p = tollgate_policy::Policy::parse(&bytes, &name)?;
        tollgate_policy::native::import(&p, &name)?
    } else {
        let p = tollgate_policy::native::parse_any(&bytes, &name)?;
        tollgate_policy::native::export(&p, &name)?
    };
    match out {
        Some(o) => {
            tollgate_controlplane::fsutil::write_atomic(o, text.as_bytes(), 0o644)?;
            print(&format!("wrote {}\n", o.display()))?;
        }
        None => print(&text)?,
    }
    Ok(Outcome::Ok)
}
