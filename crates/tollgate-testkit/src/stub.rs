//! A scripted HTTP server for failure injection that a real registry cannot
//! be made to do on demand: answering 503, or never answering at all.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// What the stub answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status with an empty body.
    Status(u16),
    /// Accept the connection, read the request, never answer (until the stub stops).
    Hang,
    /// 200 with an OCI manifest content type and this body, with Content-Length.
    Body(Vec<u8>),
    /// 200 with this body and no Content-Length (the end is the connection close).
    Stream(Vec<u8>),
    /// 401 with this `WWW-Authenticate` header value.
    Challenge(String),
}

/// A running stub on 127.0.0.1. Stops on drop.
pub struct Stub {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    requests: Arc<AtomicUsize>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stub {
    /// Serves `script` in order; the last reply repeats.
    pub fn start(script: Vec<Reply>) -> Stub {
        let (listener, addr) = crate::serve::bind();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let counter = requests.clone();
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        let mut held = Vec::new();
        let thread = crate::serve::spawn(listener, stop.clone(), move |stream, head| {
            if let Ok(mut h) = seen.lock() {
                h.push(head);
            }
            let n = counter.fetch_add(1, Ordering::Relaxed);
            match script.get(n).or(script.last()).cloned().unwrap_or(Reply::Status(500)) {
                Reply::Status(code) => {
                    let mut w = &stream;
                    let _ = write!(w, "HTTP/1.1 {code} Stub\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
                Reply::Hang => held.push(stream),
                Reply::Body(body) => {
                    let mut w = &stream;
                    let _ = write!(
                        w,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = w.write_all(&body);
                }
                Reply::Challenge(h) => {
                    let mut w = &stream;
                    let _ = write!(
                        w,
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {h}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
                Reply::Stream(body) => {
                    let mut w = &stream;
                    let _ = write!(
                        w,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
                    );
                    let _ = w.write_all(&body);
                }
            }
        });
        Stub { addr, requests, heads, stop, thread: Some(thread) }
    }

    /// The heads (request line and headers) of the requests received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
