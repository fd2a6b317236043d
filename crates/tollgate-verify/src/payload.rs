//! The "simple signing" payload that cosign and containers/image sign:
//!
//! ```json
//! {"critical": {"identity": {"docker-reference": "registry.example.com/app"},
//!               "image": {"docker-manifest-digest": "sha256:…"},
//!               "type": "cosign container image signature"},
//!  "optional": null}
//! ```
//!
//! Parsed exactly as containers/image does: `critical`, `image` and
//! `identity` must have exactly these fields, `optional` must be present
//! (it may be `null`), `optional.creator` must be a string and
//! `optional.timestamp` an integer if present, and no key may appear twice.

use tollgate_oci::Digest;

use crate::strict::Strict;

/// The `critical.type` of sigstore signatures.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// A payload that was refused. Only ever produced after the signature over it verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid signature payload: {0}")]
pub struct PayloadError(pub String);

/// A parsed payload. Its claims are trusted only once the signature over its bytes verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// `critical.identity.docker-reference`: which image the signer meant.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`: which manifest was signed.
    pub manifest_digest: Digest,
    /// `optional.creator`, if present.
    pub creator: Option<String>,
    /// `optional.timestamp` (Unix seconds), if present.
    pub timestamp: Option<i64>,
}

impl Payload {
    /// Parses payload bytes.
    pub fn parse(bytes: &[u8]) -> Result<Payload, PayloadError> {
        let e = PayloadError;
        let top = Strict::parse(bytes).map_err(e)?;
        let [critical, optional] = top.exact_fields("payload", &["critical", "optional"]).map_err(e)?[..] else {
            return Err(PayloadError("payload".into()));
        };
        let (mut creator, mut timestamp) = (None, None);
        match optional {
            Strict::Null => {}
            Strict::Object(fields) => {
                for (k, v) in fields {
                    match k.as_str() {
                        "creator" => creator = Some(v.str("optional.creator").map_err(e)?.to_owned()),
                        "timestamp" => {
                            let Strict::Number(n) = v else {
                                return Err(PayloadError("optional.timestamp is not a number".into()));
                            };
                            let t = n.as_i64().or_else(|| {
                                n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)
                            });
                            timestamp =
                                Some(t.ok_or_else(|| PayloadError("optional.timestamp is not an integer".into()))?);
                        }
                        _ => {}
                    }
                }
            }
            _ => return Err(PayloadError("optional is neither an object nor null".into())),
        }
        let [kind, image, identity] = critical.exact_fields("critical", &["type", "image", "identity"]).map_err(e)?[..]
        else {
            return Err(PayloadError("critical".into()));
        };
        let kind = kind.str("critical.type").map_err(e)?;
        if kind != SIGNATURE_TYPE {
            return Err(PayloadError(format!("unrecognized signature type {kind:?}")));
        }
        let [digest] = image.exact_fields("critical.image", &["docker-manifest-digest"]).map_err(e)?[..] else {
            return Err(PayloadError("critical.image".into()));
        };
        let manifest_digest = Digest::parse(digest.str("docker-manifest-digest").map_err(e)?)
            .map_err(|err| PayloadError(err.to_string()))?;
        let [reference] = identity.exact_fields("critical.identity", &["docker-reference"]).map_err(e)?[..] else {
            return Err(PayloadError("critical.identity".into()));
        };
        let docker_reference = reference.str("docker-reference").map_err(e)?.to_owned();
        Ok(Payload { docker_reference, manifest_digest, creator, timestamp })
    }

    /// The payload cosign and tollgate sign for `reference` and `digest`.
    pub fn render(docker_reference: &str, digest: &Digest) -> Vec<u8> {
        serde_json::json!({
            "critical": {
                "identity": {"docker-reference": docker_reference},
                "image": {"docker-manifest-digest": digest.to_string()},
                "type": SIGNATURE_TYPE,
            },
            "optional": null,
        })
        .to_string()
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn payload(critical: &str, optional: &str) -> Vec<u8> {
        format!(r#"{{"critical":{critical},"optional":{optional}}}"#).into_bytes()
    }

    fn critical(reference: &str) -> String {
        format!(
            r#"{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{D}"}},"type":"cosign container image signature"}}"#
        )
    }

    #[test]
    fn parses_cosign_and_containers_image_payloads() {
        let p = Payload::parse(&payload(&critical("example.com/app"), "null")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.docker_reference, "example.com/app");
        assert_eq!(p.manifest_digest.to_string(), D);
        let p = Payload::parse(&payload(
            &critical("x/y"),
            r#"{"creator":"containers/image 5.x","timestamp":1670870899,"k":[1]}"#,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.creator.as_deref(), p.timestamp), (Some("containers/image 5.x"), Some(1670870899)));
        let d = Digest::parse(D).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Payload::parse(&Payload::render("a/b", &d)).map(|p| p.docker_reference).ok().as_deref(),
            Some("a/b")
        );
    }

    #[test]
    fn refuses_anything_looser_than_containers_image() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (br#"{"critical":{}}"#.to_vec(), "invalid signature payload: payload has no field \"optional\""),
            (
                br#"{"critical":{},"optional":null,"x":1}"#.to_vec(),
                "invalid signature payload: payload has an unexpected field \"x\"",
            ),
            (payload(&critical("a"), "1"), "invalid signature payload: optional is neither an object nor null"),
            (
                payload(&critical("a"), r#"{"timestamp":1.5}"#),
                "invalid signature payload: optional.timestamp is not an integer",
            ),
            (
                payload(&critical("a"), r#"{"creator":1}"#),
                "invalid signature payload: optional.creator is not a string",
            ),
            (
                payload(
                    &critical("a").replace("cosign container image signature", "atomic container signature"),
                    "null",
                ),
                "invalid signature payload: unrecognized signature type \"atomic container signature\"",
            ),
            (
                payload(
                    &critical("a").replace(r#""docker-reference":"a"}"#, r#""docker-reference":"a","extra":1}"#),
                    "null",
                ),
                "invalid signature payload: critical.identity has an unexpected field \"extra\"",
            ),
            (
                format!(r#"{{"critical":{},"critical":{},"optional":null}}"#, critical("a"), critical("b"))
                    .into_bytes(),
                "invalid signature payload: duplicate key \"critical\" at line 1 column",
            ),
            (
                payload(&critical("a").replace(D, "sha256:00"), "null"),
                "invalid signature payload: invalid digest \"sha256:00\": sha256 needs 64 hex characters, found 2",
            ),
        ];
        for (bytes, want) in cases {
            let got = Payload::parse(&bytes).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(got.starts_with(want), "{got}\n  wanted {want}");
        }
    }
}
