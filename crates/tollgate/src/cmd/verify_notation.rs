//! `tollgate verify-notation`: one Notary Project signature envelope, checked offline under notation's
//! trust policy and trust stores.

use crate::exit::Outcome;
use crate::output::Format;

/// `tollgate verify-notation`: one envelope, offline.
pub fn run(a: &crate::cli::VerifyNotationArgs, fmt: Format) -> anyhow::Result<Outcome> {
    use tollgate_notation::{jws, trustpolicy, truststore};
    let policy = trustpolicy::parse(&super::read_capped(&a.trust_policy)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.trust_policy.display()))?;
    let statement = policy.applicable(&a.artifact).map_err(|e| anyhow::anyhow!("{}: {e}", a.trust_policy.display()))?;
    let digest = a.artifact.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    let stores = if a.trust_store.join("truststore").is_dir() {
        a.trust_store.join("truststore")
    } else {
        a.trust_store.clone()
    };
    let [ca, sa, tsa] = truststore::load_for_policy(&stores, &statement.trust_stores)
        .map_err(|e| anyhow::anyhow!("{e} (under {})", stores.display()))?;
    let envelope = super::read_capped(&a.signature)?;
    let inputs = jws::Inputs {
        media_type: &a.media_type,
        digest,
        policy: statement,
        ca: &ca,
        signing_authority: &sa,
        now: i64::try_from(super::now_unix()).unwrap_or(i64::MAX),
        user_metadata: &a.user_metadata,
        tsa: &tsa,
        target: None,
        revocation: None,
    };
    let o = jws::verify(&envelope, &inputs);
    match fmt {
        Format::Json => crate::output::print_json(&serde_json::json!({
            "verified": o.verified,
            "artifact": a.artifact,
            "trustPolicy": statement.name,
            "signingScheme": o.scheme,
            "failures": o.failures.iter().map(|f| serde_json::json!({
                "type": f.kind,
                "action": if f.action == trustpolicy::Action::Enforce { "enforce" } else { "log" },
                "reason": f.reason,
            })).collect::<Vec<_>>(),
            "notes": o.notes,
        }))?,
        Format::Text => {
            let mut s = format!(
                "{} {}\n  trust policy {:?}{}\n",
                if o.verified { "VERIFIED" } else { "REFUSED" },
                a.artifact,
                statement.name,
                if o.scheme.is_empty() { String::new() } else { format!(", signing scheme {}", o.scheme) }
            );
            for f in &o.failures {
                let what = if f.action == trustpolicy::Action::Enforce { "FAIL" } else { "logged" };
                s.push_str(&format!("  {what} {}: {}\n", f.kind, f.reason));
            }
            for n in &o.notes {
                s.push_str(&format!("  note: {n}\n"));
            }
            crate::output::print(&s)?;
        }
    }
    Ok(if o.verified { Outcome::Ok } else { Outcome::Findings })
}
