//! Test harness for tollgate: real components, no mocks.
//!
//! - [`Registry`] starts Debian's `docker-registry` (distribution v2) on
//!   127.0.0.1 with a free port and a temporary storage directory, optionally
//!   with its token authentication backed by [`token::TokenServer`].
//! - [`image`] builds real OCI images (layer tar.gz, config, manifest, index)
//!   in memory and pushes them with tollgate's own client.
//! - [`sign`], [`bundle`] and [`tsa`] make cosign signatures, sigstore bundles
//!   (Rekor v1 and v2 style) and RFC 3161 timestamps with generated keys.
//!
//! Processes and threads stop when their handles drop; every wait is bounded.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

pub mod bundle;
pub mod containerd;
pub mod fulcio;
pub mod hostile;
pub mod image;
pub mod kube;
pub mod memory;
pub mod notation;
pub mod nri;
pub mod peers;
mod registry;
mod serve;
pub mod sign;
pub mod stub;
pub mod token;
pub mod tsa;

pub use registry::{Registry, docker_registry_binary};

/// A loopback port nothing listens on (tcpmux, never served in tests): a registry or source that
/// refuses connections. A port [`free_port`] found free can be taken by another test's server
/// before it is dialled, and then the "dead" address answers (seen in CI).
pub const DEAD_PORT: u16 = 1;

/// A self-signed test CA: its parameters, key and certificate.
pub(crate) fn test_ca(common_name: &str) -> (rcgen::CertificateParams, rcgen::KeyPair, rcgen::Certificate) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let cert = params.self_signed(&key).expect("ca");
    (params, key, cert)
}

/// A fresh CA and a serving certificate for 127.0.0.1 and localhost that it signed, written to
/// `dir` as `ca.crt`, `tls.crt` and `tls.key`; returns the CA's PEM.
pub fn serving_cert(dir: &std::path::Path) -> String {
    let (ca_params, ca_key, ca) = test_ca("tollgate test serving CA");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("serving cert");
    std::fs::write(dir.join("ca.crt"), ca.pem()).expect("ca");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("cert");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("key");
    ca.pem()
}

/// A child process killed (and reaped) on drop, for benchmark binaries.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTPS client (ring, TLS 1.2/1.3) that trusts only the CA `ca_pem` and keeps its connections.
pub fn https_client(ca_pem: &str, timeout: std::time::Duration) -> Result<reqwest::Client, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(pem_to_der(ca_pem))).map_err(|e| e.to_string())?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder().use_preconfigured_tls(tls).timeout(timeout).build().map_err(|e| e.to_string())
}

/// For fixture binaries driven by a script: returns when standard input
/// closes (the script ended), and after `max` at the latest.
pub fn serve_until_stdin_closes(max: std::time::Duration) {
    use std::io::BufRead as _;
    let deadline = std::time::Instant::now() + max;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().lock().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            line.clear();
        }
        let _ = tx.send(());
    });
    while std::time::Instant::now() < deadline && rx.recv_timeout(std::time::Duration::from_millis(200)).is_err() {}
}

/// The DER of the first PEM block in `pem`.
pub(crate) fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).expect("PEM base64")
}

/// Stops a started component by PID: SIGTERM, then SIGKILL once `within` has passed.
pub fn stop_child(child: &mut Option<std::process::Child>, within: std::time::Duration) {
    let Some(mut c) = child.take() else { return };
    if let Some(pid) = i32::try_from(c.id()).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}
