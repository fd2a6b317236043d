//! A hostile registry: a proxy on 127.0.0.1 in front of a real one that
//! misbehaves on chosen requests, the way a compromised registry or a machine
//! in the middle would: a spoofed `Content-Type`, a 503 for the signature tag
//! only, a redirect to another host, a stall.
//!
//! Each request's head (request line and headers) goes to a rule, which says
//! what to do with it. Forwarded requests reach the upstream registry with
//! `Connection: close`, and the answer comes back as the upstream sent it,
//! with the rule's header changes applied.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pass it to the upstream registry unchanged.
    Forward,
    /// Pass it on, then set this response header (replacing any of that name).
    ForwardSetting(String, String),
    /// Answer this status with an empty body.
    Status(u16),
    /// Answer `307 Temporary Redirect` to this URL.
    Redirect(String),
    /// Keep the connection open and never answer (until the proxy stops).
    Hang,
    /// Answer `401 Unauthorized` with this `WWW-Authenticate` value.
    Challenge(String),
}

type Rule = dyn Fn(&str) -> Action + Send + Sync;

/// A running hostile proxy. Stops on drop.
pub struct Hostile {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hostile {
    /// Proxies to `upstream` (`127.0.0.1:PORT`), asking `rule` about each request head.
    pub fn start(upstream: &str, rule: impl Fn(&str) -> Action + Send + Sync + 'static) -> Hostile {
        let rule: Arc<Rule> = Arc::new(rule);
        let (listener, addr) = crate::serve::bind();
        let stop = Arc::new(AtomicBool::new(false));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let upstream = upstream.to_owned();
        let mut held = Vec::new();
        let thread = crate::serve::spawn(listener, stop.clone(), move |stream, head| {
            if let Ok(mut h) = seen.lock() {
                h.push(head.clone());
            }
            let action = rule(&head);
            if action == Action::Hang {
                held.push(stream);
            } else {
                let _ = (&stream).write_all(&answer(&upstream, &head, action));
            }
        });
        Hostile { addr, heads, stop, thread: Some(thread) }
    }

    /// Like [`Hostile::start`], over TLS with a certificate for 127.0.0.1 from
    /// a fresh test CA, whose PEM is returned (pass it as `--ca-file`).
    pub fn start_tls(upstream: &str, rule: impl Fn(&str) -> Action + Send + Sync + 'static) -> (Hostile, String) {
        use std::io::{BufRead as _, BufReader};
        let (ca_params, ca_key, ca) = crate::test_ca("tollgate hostile CA");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &issuer).expect("cert");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config");
        let tls = Arc::new(tls);
        let (listener, addr) = crate::serve::bind();
        let stop = Arc::new(AtomicBool::new(false));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (seen, flag, upstream) = (heads.clone(), stop.clone(), upstream.to_owned());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Ok((tcp, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = tcp.set_nonblocking(false);
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(conn) = rustls::ServerConnection::new(tls.clone()) else { continue };
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                let mut head = String::new();
                {
                    let mut reader = BufReader::new(&mut stream);
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line) {
                            Ok(n) if n > 2 && head.len() < 64 << 10 => head.push_str(&line),
                            _ => break,
                        }
                    }
                }
                if head.is_empty() {
                    continue;
                }
                if let Ok(mut h) = seen.lock() {
                    h.push(head.clone());
                }
                let action = rule(&head);
                if action != Action::Hang {
                    let _ = stream.write_all(&answer(&upstream, &head, action));
                    stream.conn.send_close_notify();
                    let _ = stream.flush();
                }
            }
        });
        (Hostile { addr, heads, stop, thread: Some(thread) }, ca.pem())
    }

    /// The request heads received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The raw answer for `action` (anything but `Hang`).
fn answer(upstream: &str, head: &str, action: Action) -> Vec<u8> {
    let empty = |status: &str, header: String| {
        format!("HTTP/1.1 {status}\r\n{header}Content-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
    };
    match action {
        Action::Status(code) => empty(&format!("{code} Hostile"), String::new()),
        Action::Redirect(to) => empty("307 Temporary Redirect", format!("Location: {to}\r\n")),
        Action::Challenge(c) => empty("401 Unauthorized", format!("WWW-Authenticate: {c}\r\n")),
        Action::Forward | Action::Hang => forward(upstream, head, None),
        Action::ForwardSetting(name, value) => forward(upstream, head, Some((&name, &value))),
    }
}

/// The request path of a head (`GET /v2/… HTTP/1.1`).
pub fn path(head: &str) -> &str {
    head.split_whitespace().nth(1).unwrap_or_default()
}

/// Sends `head` (a bodiless request) upstream with `Connection: close` and
/// returns the raw answer, with `set` applied to its headers.
fn forward(upstream: &str, head: &str, set: Option<(&str, &str)>) -> Vec<u8> {
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
    };
    let _ = up.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = String::new();
    for (i, line) in head.split("\r\n").filter(|l| !l.is_empty()).enumerate() {
        let lower = line.to_ascii_lowercase();
        if i > 0 && (lower.starts_with("connection:") || lower.starts_with("host:")) {
            continue;
        }
        request.push_str(line);
        request.push_str("\r\n");
        if i == 0 {
            request.push_str(&format!("Host: {upstream}\r\n"));
        }
    }
    request.push_str("Connection: close\r\n\r\n");
    let _ = up.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = up.read_to_end(&mut answer);
    let Some((name, value)) = set else { return answer };
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else { return answer };
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut out: Vec<String> =
        head.split("\r\n").filter(|l| !l.to_ascii_lowercase().starts_with(&prefix)).map(str::to_owned).collect();
    out.push(format!("{name}: {value}"));
    let mut bytes = out.join("\r\n").into_bytes();
    bytes.extend_from_slice(&answer[end..]);
    bytes
}
