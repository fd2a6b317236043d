//! What image a name stands for in containerd's own image store, asked through containerd's API
//! (`containerd.services.images.v1.Images/Get`, gRPC over HTTP/2 on its unix socket). The NRI plugin
//! needs it on containerd before 2.4, which tells plugins no image digest: the only name it gives is
//! the CRI image-name annotation, and containerd's store says which digest that name is.
//!
//! Only the fields read are declared (prost structs with the tags of containerd's
//! `api/services/images/v1/images.proto` and `api/types/descriptor.proto`). Answers are capped at
//! [`MAX_ANSWER_BYTES`]; the digest must be a `sha256:` digest.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use prost::Message as _;

/// The largest answer read.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

#[derive(Clone, PartialEq, prost::Message)]
struct GetImageRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GetImageResponse {
    #[prost(message, optional, tag = "1")]
    image: Option<Image>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Image {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "3")]
    target: Option<Descriptor>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Descriptor {
    #[prost(string, tag = "1")]
    media_type: String,
    #[prost(string, tag = "2")]
    digest: String,
}

/// `message` in gRPC's length-prefixed framing (uncompressed).
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The one message of a gRPC answer body.
pub fn unframe(body: &[u8]) -> Result<&[u8], String> {
    let [flag, a, b, c, d, rest @ ..] = body else { return Err("the answer is shorter than a gRPC frame".into()) };
    if *flag != 0 {
        return Err("the answer is compressed, which was not asked for".into());
    }
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    rest.get(..len).filter(|_| rest.len() == len).ok_or_else(|| "the answer's gRPC frame is cut or padded".into())
}

/// The target digest of the image `name` in containerd's store, from its answer body.
pub fn target_digest(body: &[u8], name: &str) -> Result<String, String> {
    let answer = GetImageResponse::decode(unframe(body)?).map_err(|e| format!("the answer does not decode: {e}"))?;
    let image = answer.image.ok_or_else(|| format!("containerd answered with no image for {name}"))?;
    let digest = image.target.map(|t| t.digest).unwrap_or_default();
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    if image.name != name || hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Err(format!("containerd's answer for {name} names {:?} at {digest:?}", image.name));
    }
    Ok(digest)
}

/// Asks containerd on `socket`, in its namespace `namespace` (`k8s.io` for CRI), which digest image
/// `name` is, all within `timeout`.
pub async fn target(socket: &Path, namespace: &str, name: &str, timeout: Duration) -> Result<String, String> {
    tokio::time::timeout(timeout, ask(socket, namespace, name))
        .await
        .unwrap_or_else(|_| Err(format!("containerd did not answer within {} ms", timeout.as_millis())))
}

async fn ask(socket: &Path, namespace: &str, name: &str) -> Result<String, String> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| format!("cannot connect to containerd's socket {}: {e}", socket.display()))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
        .await
        .map_err(|e| format!("containerd's socket {}: {e}", socket.display()))?;
    let driver = tokio::spawn(conn);
    let body = frame(&GetImageRequest { name: name.to_owned() }.encode_to_vec());
    let request = hyper::Request::post("http://containerd/containerd.services.images.v1.Images/Get")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("containerd-namespace", namespace)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("containerd: {e}"));
    let result = match response {
        Err(e) => Err(e),
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            match Limited::new(r.into_body(), MAX_ANSWER_BYTES).collect().await {
                Err(e) => Err(format!("containerd's answer (at most {MAX_ANSWER_BYTES} bytes): {e}")),
                Ok(collected) => {
                    let trailers = collected.trailers().cloned().unwrap_or_default();
                    let grpc = |k: &str| {
                        trailers.get(k).or_else(|| headers.get(k)).and_then(|v| v.to_str().ok()).map(str::to_owned)
                    };
                    match grpc("grpc-status").as_deref() {
                        Some("0") if status.is_success() => target_digest(&collected.to_bytes(), name),
                        Some("5") => Err(format!("containerd has no image {name}")),
                        code => Err(format!(
                            "containerd answered HTTP {status}, gRPC status {}: {}",
                            code.unwrap_or("none"),
                            grpc("grpc-message").unwrap_or_default()
                        )),
                    }
                }
            }
        }
    };
    driver.abort();
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn answer(name: &str, digest: &str) -> Vec<u8> {
        let image = Image {
            name: name.into(),
            target: Some(Descriptor {
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                digest: digest.into(),
            }),
        };
        frame(&GetImageResponse { image: Some(image) }.encode_to_vec())
    }

    const D: &str = "sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97";

    #[test]
    fn an_answer_gives_the_digest_of_the_name_asked_and_nothing_else() {
        assert_eq!(target_digest(&answer("r.example/app:v1", D), "r.example/app:v1"), Ok(D.to_owned()));
        let other = target_digest(&answer("r.example/other:v1", D), "r.example/app:v1").unwrap_err();
        assert!(other.contains("names \"r.example/other:v1\""), "{other}");
        for bad in ["sha256:abc", "sha512:00", &D.to_uppercase().replace("SHA256", "sha256"), ""] {
            assert!(target_digest(&answer("n", bad), "n").is_err(), "{bad}");
        }
        let body = answer("n", D);
        assert!(target_digest(&body[..body.len() - 1], "n").unwrap_err().contains("cut or padded"));
        let mut padded = body.clone();
        padded.push(0);
        assert!(target_digest(&padded, "n").is_err());
        assert!(unframe(&[1, 0, 0, 0, 0]).unwrap_err().contains("compressed"));
        assert!(unframe(&[0, 0]).is_err());
        assert_eq!(unframe(&frame(b"xyz")), Ok(&b"xyz"[..]));
    }
}
