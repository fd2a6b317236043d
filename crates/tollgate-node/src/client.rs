//! Asking the daemon: one HTTP/1.1 request over its unix socket, with a deadline.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::api::{self, VerifyRequest, VerifyResponse};

/// The daemon could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// Nothing listens on the socket (the daemon is down): deciding in-process is safe.
    #[error("daemon unavailable at {socket}: {message}")]
    Unavailable {
        /// The socket path.
        socket: String,
        /// Why.
        message: String,
    },
    /// The daemon took the request but did not answer in time.
    #[error("daemon at {socket} did not answer within {millis} ms")]
    Timeout {
        /// The socket path.
        socket: String,
        /// The deadline.
        millis: u128,
    },
    /// The daemon answered something other than a verdict.
    #[error("daemon at {socket} answered badly: {message}")]
    Protocol {
        /// The socket path.
        socket: String,
        /// What was wrong.
        message: String,
    },
}

/// Asks the daemon at `socket` to verify, within `deadline`.
pub async fn verify(socket: &Path, req: &VerifyRequest, deadline: Duration) -> Result<VerifyResponse, AskError> {
    let body = serde_json::to_vec(req)
        .map_err(|e| AskError::Protocol { socket: socket.display().to_string(), message: e.to_string() })?;
    let (status, bytes) = exchange(socket, Method::POST, "/v1/verify", body, deadline).await?;
    let protocol = |message: String| AskError::Protocol { socket: socket.display().to_string(), message };
    if !status.is_success() {
        let message = serde_json::from_slice::<api::ErrorResponse>(&bytes)
            .map_or_else(|_| String::from_utf8_lossy(&bytes).into_owned(), |e| e.error);
        return Err(protocol(format!("HTTP {status}: {message}")));
    }
    serde_json::from_slice::<VerifyResponse>(&bytes).map_err(|e| protocol(e.to_string()))
}

/// `GET path` on the daemon's socket (`/healthz`, `/metrics`): the status code and the body.
pub async fn get(socket: &Path, path: &str, deadline: Duration) -> Result<(u16, String), AskError> {
    let (status, bytes) = exchange(socket, Method::GET, path, Vec::new(), deadline).await?;
    Ok((status.as_u16(), String::from_utf8_lossy(&bytes).into_owned()))
}

/// One request on a fresh connection, connect included in the deadline.
async fn exchange(
    socket: &Path,
    method: Method,
    path: &str,
    body: Vec<u8>,
    deadline: Duration,
) -> Result<(StatusCode, Bytes), AskError> {
    let shown = socket.display().to_string();
    let timeout = || AskError::Timeout { socket: shown.clone(), millis: deadline.as_millis() };
    let started = tokio::time::Instant::now();
    let stream = match tokio::time::timeout(deadline, tokio::net::UnixStream::connect(socket)).await {
        Err(_) => return Err(timeout()),
        Ok(Err(e)) => return Err(AskError::Unavailable { socket: shown, message: e.to_string() }),
        Ok(Ok(s)) => s,
    };
    let protocol = |message: String| AskError::Protocol { socket: shown.clone(), message };
    let round_trip = async {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| protocol(e.to_string()))?;
        tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "tollgate")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| protocol(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(|e| protocol(e.to_string()))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), api::MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| protocol(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    };
    match tokio::time::timeout_at(started + deadline, round_trip).await {
        Err(_) => Err(timeout()),
        Ok(r) => r,
    }
}
