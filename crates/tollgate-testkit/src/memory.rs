//! A read-only, in-memory OCI registry for benchmarks: it serves fixed
//! manifests and blobs with HTTP/1.1 keep-alive, a thread per connection and
//! no disk, so its answers take microseconds. `bench/verify.sh` times
//! `tollgate verify` against it next to Debian's docker-registry, to separate
//! what tollgate costs from what the registry does.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// One object: its content type (manifests) and bytes.
#[derive(Debug, Clone)]
pub struct Object {
    /// `Content-Type` (and the manifest's media type).
    pub media_type: String,
    /// The bytes, served as they are.
    pub bytes: Vec<u8>,
    /// `Docker-Content-Digest`.
    pub digest: String,
}

/// A running in-memory registry. It serves until the process exits.
pub struct MemoryRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl MemoryRegistry {
    /// Serves `objects`, keyed by request path (`/v2/REPO/manifests/REF`,
    /// `/v2/REPO/blobs/DIGEST`); anything else is 404.
    pub fn start(objects: HashMap<String, Object>) -> MemoryRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let objects = std::sync::Arc::new(objects);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let objects = objects.clone();
                std::thread::spawn(move || serve(stream, &objects));
            }
        });
        MemoryRegistry { addr }
    }
}

fn serve(stream: TcpStream, objects: &HashMap<String, Object>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    // Bounded: a connection is closed after 1000 requests or 30 s of silence.
    for _ in 0..1000 {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).map_or(true, |n| n == 0) {
            return;
        }
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(n) if n > 2 => {}
                Ok(_) => break,
                Err(_) => return,
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let response = match objects.get(path) {
            Some(o) => {
                let mut head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nDocker-Content-Digest: {}\r\nContent-Length: {}\r\n\r\n",
                    o.media_type,
                    o.digest,
                    o.bytes.len()
                )
                .into_bytes();
                if method != "HEAD" {
                    head.extend_from_slice(&o.bytes);
                }
                head
            }
            None => {
                let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#;
                let mut head = format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                head.extend_from_slice(body);
                head
            }
        };
        if writer.write_all(&response).is_err() {
            return;
        }
    }
}
