//! A scripted HTTP server for failure injection that a real registry cannot
//! be made to do on demand: answering 503, or never answering at all.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the stub answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status with an empty body.
    Status(u16),
    /// Accept the connection, read the request, never answer (until the stub stops).
    Hang,
}

/// A running stub on 127.0.0.1. Stops on drop.
pub struct Stub {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stub {
    /// Serves `script` in order; the last reply repeats.
    pub fn start(script: Vec<Reply>) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (req2, stop2) = (requests.clone(), stop.clone());
        let script = Arc::new(Mutex::new(script));
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                    line.clear();
                }
                let n = req2.fetch_add(1, Ordering::Relaxed);
                let reply = {
                    let s = script.lock().expect("script");
                    s.get(n).or(s.last()).cloned().unwrap_or(Reply::Status(500))
                };
                match reply {
                    Reply::Status(code) => {
                        let mut w = &stream;
                        let _ = write!(w, "HTTP/1.1 {code} Stub\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                    Reply::Hang => held.push(stream),
                }
            }
        });
        Stub { addr, requests, stop, thread: Some(thread) }
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
