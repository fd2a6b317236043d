//! `tollgate verify-bundle`.

use std::path::Path;

use serde::Serialize;
use tollgate_verify::PublicKey;
use tollgate_verify::bundle::{self, Artifact, Expected, TimeSource, TrustedRoot};

use super::read_capped;
use crate::cli::VerifyBundleArgs;
use crate::exit::{Outcome, Refused};
use crate::output::{Format, print, print_json};

/// Largest artifact hashed in memory.
const MAX_ARTIFACT_BYTES: u64 = 2 << 30;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Output {
    verified: bool,
    signer: String,
    /// RFC 3339 UTC.
    signed_at: String,
    /// The same instant in Unix seconds.
    signed_at_unix: i64,
    time_source: TimeSource,
}

pub fn run(a: &VerifyBundleArgs, fmt: Format) -> anyhow::Result<Outcome> {
    let bundle_bytes = read_capped(&a.bundle)?;
    let root = TrustedRoot::parse(&read_capped(&a.trusted_root)?)
        .map_err(|e| anyhow::anyhow!("trusted root {}: {e}", a.trusted_root.display()))?;
    let key = a
        .key
        .as_deref()
        .map(|k| PublicKey::from_pem(&read_capped(k)?).map_err(|e| anyhow::anyhow!("{}: {e}", k.display())))
        .transpose()?;
    let expected = match (&key, &a.certificate_identity, &a.certificate_oidc_issuer) {
        (Some(k), _, _) => Expected::Key(k),
        (None, Some(san), Some(issuer)) => Expected::Identity { san: tollgate_verify::x509::San::Exact(san), issuer },
        _ => anyhow::bail!("pass --key, or --certificate-identity with --certificate-oidc-issuer"),
    };
    let digest;
    let bytes;
    let artifact =
        match a.artifact.strip_prefix("sha256:").filter(|h| h.len() == 64 && !Path::new(&a.artifact).exists()) {
            Some(hex) => {
                let mut d = [0u8; 32];
                hex::decode_to_slice(hex, &mut d)
                    .map_err(|_| anyhow::anyhow!("{} is not a sha256 digest", a.artifact))?;
                digest = d;
                Artifact::Sha256(&digest)
            }
            None => {
                bytes = super::read_limited(Path::new(&a.artifact), MAX_ARTIFACT_BYTES)?;
                Artifact::Bytes(&bytes)
            }
        };
    let v = bundle::verify(&bundle_bytes, &root, artifact, expected, super::now_unix())
        .map_err(|e| Refused(format!("bundle {} refused: {e}", a.bundle.display())))?;
    match fmt {
        Format::Json => print_json(&Output {
            verified: true,
            signer: v.signer,
            signed_at: tollgate_node::audit::rfc3339(v.signed_at),
            signed_at_unix: v.signed_at,
            time_source: v.time_source,
        })?,
        Format::Text => {
            let at = tollgate_node::audit::rfc3339(v.signed_at);
            print(&format!("VERIFIED {} (signed by {}, {} {at})\n", a.artifact, v.signer, v.time_source))?
        }
    }
    Ok(Outcome::Ok)
}
