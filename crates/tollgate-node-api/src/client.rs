//! Asking the daemon: one HTTP/1.1 request on a fresh unix-socket connection,
//! blocking, with one deadline over connect, write and read. Blocking std I/O
//! and `httparse` keep the verifier process free of an async runtime: it
//! starts on every pull, so its startup is the cost that matters.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::api::{self, VerifyRequest, VerifyResponse};

/// Largest response head read.
const MAX_HEAD_BYTES: usize = 16 << 10;

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
    /// The daemon answered something other than what was asked for.
    #[error("daemon at {socket} answered badly: {message}")]
    Protocol {
        /// The socket path.
        socket: String,
        /// What was wrong.
        message: String,
    },
}

/// Asks the daemon at `socket` to verify, within `deadline`.
pub fn verify(socket: &Path, req: &VerifyRequest, deadline: Duration) -> Result<VerifyResponse, AskError> {
    let protocol = |message: String| AskError::Protocol { socket: socket.display().to_string(), message };
    let body = serde_json::to_vec(req).map_err(|e| protocol(e.to_string()))?;
    let (status, bytes) = exchange(socket, "POST", "/v1/verify", &body, deadline)?;
    if !(200..300).contains(&status) {
        let message = serde_json::from_slice::<api::ErrorResponse>(&bytes)
            .map_or_else(|_| String::from_utf8_lossy(&bytes).into_owned(), |e| e.error);
        return Err(protocol(format!("HTTP {status}: {message}")));
    }
    serde_json::from_slice::<VerifyResponse>(&bytes).map_err(|e| protocol(e.to_string()))
}

/// `GET path` on the daemon's socket (`/healthz`, `/metrics`): the status code and the body.
pub fn get(socket: &Path, path: &str, deadline: Duration) -> Result<(u16, String), AskError> {
    let (status, bytes) = exchange(socket, "GET", path, &[], deadline)?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// One request with `Connection: close`; the body is read by `Content-Length`
/// (or to end of stream without one), capped at [`api::MAX_RESPONSE_BYTES`].
fn exchange(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
    deadline: Duration,
) -> Result<(u16, Vec<u8>), AskError> {
    let shown = || socket.display().to_string();
    let started = Instant::now();
    let timeout = || AskError::Timeout { socket: shown(), millis: deadline.as_millis() };
    let protocol = |message: String| AskError::Protocol { socket: shown(), message };
    let left = || deadline.checked_sub(started.elapsed()).filter(|d| !d.is_zero());
    let mut stream =
        UnixStream::connect(socket).map_err(|e| AskError::Unavailable { socket: shown(), message: e.to_string() })?;
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => timeout(),
        _ => protocol(e.to_string()),
    };
    stream.set_write_timeout(Some(left().ok_or_else(timeout)?)).map_err(io)?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: tollgate\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).map_err(io)?;

    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut read_more = |stream: &mut UnixStream, buf: &mut Vec<u8>| -> Result<usize, AskError> {
        stream.set_read_timeout(Some(left().ok_or_else(timeout)?)).map_err(io)?;
        let n = stream.read(&mut chunk).map_err(io)?;
        buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    };
    let (status, head_len, content_length) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf).map_err(|e| protocol(format!("bad response head: {e}")))? {
            httparse::Status::Complete(n) => {
                let status = response.code.unwrap_or(0);
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| {
                        std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .ok_or_else(|| protocol("bad Content-Length".into()))
                    })
                    .transpose()?;
                break (status, n, length);
            }
            httparse::Status::Partial => {
                if buf.len() > MAX_HEAD_BYTES {
                    return Err(protocol("response head too large".into()));
                }
                if read_more(&mut stream, &mut buf)? == 0 {
                    return Err(protocol("connection closed before the response".into()));
                }
            }
        }
    };
    if content_length.is_some_and(|n| n > api::MAX_RESPONSE_BYTES) {
        return Err(protocol(format!("response larger than {} bytes", api::MAX_RESPONSE_BYTES)));
    }
    loop {
        let have = buf.len() - head_len;
        match content_length {
            Some(n) if have >= n => break,
            _ if have > api::MAX_RESPONSE_BYTES => {
                return Err(protocol(format!("response larger than {} bytes", api::MAX_RESPONSE_BYTES)));
            }
            _ => {}
        }
        if read_more(&mut stream, &mut buf)? == 0 {
            if content_length.is_some() {
                return Err(protocol("connection closed in the middle of the response".into()));
            }
            break;
        }
    }
    let end = content_length.map_or(buf.len(), |n| head_len + n);
    Ok((status, buf[head_len..end].to_vec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A one-shot server that answers `reply` (or nothing, for `None`).
    fn serve(
        reply: Option<&'static [u8]>,
    ) -> (tempfile::TempDir, std::path::PathBuf, std::thread::JoinHandle<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = vec![0u8; 4096];
            let n = s.read(&mut got).unwrap();
            got.truncate(n);
            match reply {
                Some(r) => s.write_all(r).unwrap(),
                None => std::thread::sleep(Duration::from_millis(400)),
            }
            got
        });
        (dir, path, handle)
    }

    fn req() -> VerifyRequest {
        VerifyRequest {
            name: "r.io/a:1".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            namespace: None,
            media_type: None,
        }
    }

    #[test]
    fn reads_a_verdict_by_content_length() {
        let body = br#"{"allowed":true,"outcome":"allowed","reason":"ok","rule":"default","cached":true,"policyHash":"sha256:00"}"#;
        let mut reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        reply.extend_from_slice(body);
        let (_d, path, h) = serve(Some(Box::leak(reply.into_boxed_slice())));
        let v = verify(&path, &req(), Duration::from_secs(2)).unwrap();
        assert!(v.allowed && v.cached);
        let sent = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(sent.starts_with("POST /v1/verify HTTP/1.1\r\n"), "{sent}");
        assert!(sent.ends_with(&serde_json::to_string(&req()).unwrap()), "{sent}");
    }

    #[test]
    fn errors_say_what_went_wrong() {
        let (_d, path, _h) =
            serve(Some(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 17\r\n\r\n{\"error\":\"nope\"}\n"));
        let e = verify(&path, &req(), Duration::from_secs(2)).unwrap_err();
        assert_eq!(e.to_string(), format!("daemon at {} answered badly: HTTP 400: nope", path.display()));
        let (_d, path, _h) = serve(Some(b"garbage\r\n\r\n"));
        assert!(matches!(verify(&path, &req(), Duration::from_secs(2)), Err(AskError::Protocol { .. })));
        let (_d, path, _h) = serve(Some(b"HTTP/1.1 200 OK\r\ncontent-length: 999999999\r\n\r\n"));
        assert!(verify(&path, &req(), Duration::from_secs(2)).unwrap_err().to_string().contains("larger than"));
        let (_d, path, _h) = serve(None);
        // The server holds the connection 400 ms: a timeout, not a closed connection, proves the deadline.
        assert!(matches!(verify(&path, &req(), Duration::from_millis(150)), Err(AskError::Timeout { .. })));
        let missing = std::path::Path::new("/nonexistent/tollgate.sock");
        assert!(matches!(verify(missing, &req(), Duration::from_secs(1)), Err(AskError::Unavailable { .. })));
    }
}
