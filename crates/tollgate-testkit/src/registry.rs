use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::token::TokenServer;

/// The htpasswd user of [`Registry::start_with_basic_auth`].
pub const HTPASSWD_USER: &str = "tollgate";
/// Its password.
pub const HTPASSWD_PASSWORD: &str = "tollgate-test-password";
/// bcrypt of the password (cost 5), generated once; distribution accepts only bcrypt.
const HTPASSWD_BCRYPT: &str = "$2y$05$BsH.8w4NzgV2w8v95/6KP.0fDbZ53o1hHr6ASiyWlAFslcSDwGww.";

/// The `docker-registry` binary: `$TOLLGATE_DOCKER_REGISTRY` or Debian's path.
pub fn docker_registry_binary() -> PathBuf {
    std::env::var_os("TOLLGATE_DOCKER_REGISTRY")
        .map_or_else(|| PathBuf::from("/usr/bin/docker-registry"), PathBuf::from)
}

/// A running registry. Killed on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`, the reference domain and insecure-registry entry.
    pub addr: String,
    /// The token server, when started with auth.
    pub token_server: Option<TokenServer>,
    /// User and password, when started with htpasswd auth.
    pub basic: Option<(String, String)>,
    /// The CA certificate (PEM) of the registry's TLS certificate, when started with TLS.
    pub tls_ca: Option<String>,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts an anonymous registry.
    pub fn start() -> Registry {
        Registry::start_inner(false, false)
    }

    /// Starts an anonymous registry that serves HTTPS with a certificate from a fresh CA ([`Registry::tls_ca`]).
    pub fn start_with_tls() -> Registry {
        Registry::start_tls()
    }

    /// Starts a registry that requires bearer tokens from a [`TokenServer`].
    pub fn start_with_token_auth() -> Registry {
        Registry::start_inner(true, false)
    }

    /// Starts a registry with htpasswd (basic) auth for [`HTPASSWD_USER`] / [`HTPASSWD_PASSWORD`].
    pub fn start_with_basic_auth() -> Registry {
        Registry::start_inner(false, true)
    }

    fn start_tls() -> Registry {
        let (ca_params, ca_key, ca) = crate::test_ca("tollgate test CA");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &issuer).expect("cert");
        let mut reg = Registry::start_configured(false, false, Some((cert.pem(), key.serialize_pem())));
        reg.tls_ca = Some(ca.pem());
        reg
    }

    fn start_inner(auth: bool, basic: bool) -> Registry {
        Registry::start_configured(auth, basic, None)
    }

    fn start_configured(auth: bool, basic: bool, tls: Option<(String, String)>) -> Registry {
        let bin = docker_registry_binary();
        assert!(
            bin.exists(),
            "{} not found: install Debian's docker-registry (apt-get install -y docker-registry) or set TOLLGATE_DOCKER_REGISTRY",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let token_server = auth.then(|| TokenServer::start(dir.path()));
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = crate::free_port();
            let addr = format!("127.0.0.1:{port}");
            let htpasswd = dir.path().join("htpasswd");
            if basic {
                std::fs::write(&htpasswd, format!("{HTPASSWD_USER}:{HTPASSWD_BCRYPT}\n")).expect("htpasswd");
            }
            let auth_cfg = match &token_server {
                None if basic => {
                    format!("auth:\n  htpasswd:\n    realm: tollgate-test\n    path: {}\n", htpasswd.display())
                }
                Some(t) => format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    t.realm(),
                    crate::token::SERVICE,
                    crate::token::ISSUER,
                    t.cert_path().display()
                ),
                None => String::new(),
            };
            let tls_cfg = match &tls {
                Some((cert, key)) => {
                    std::fs::write(dir.path().join("tls.crt"), cert).expect("cert");
                    std::fs::write(dir.path().join("tls.key"), key).expect("key");
                    format!(
                        "  tls:\n    certificate: {}\n    key: {}\n",
                        dir.path().join("tls.crt").display(),
                        dir.path().join("tls.key").display()
                    )
                }
                None => String::new(),
            };
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls_cfg}{auth_cfg}",
                dir.path().join("storage").display()
            );
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, config).expect("write registry config");
            // A file, not a pipe: nobody drains a pipe, and once it fills (every 404
            // logs an error line) the registry blocks on its next log write.
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).expect("registry log");
            let mut child = Command::new(&bin)
                .arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            if wait_ready(&addr, &mut child) {
                let basic = basic.then(|| (HTPASSWD_USER.to_owned(), HTPASSWD_PASSWORD.to_owned()));
                return Registry { child, addr, token_server, basic, tls_ca: None, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_err = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("docker-registry did not become ready: {last_err}");
    }

    /// A client configured for this registry (plain HTTP allowed for it only).
    pub fn client(&self) -> tollgate_registry::Client {
        let cfg = tollgate_registry::ClientConfig {
            insecure_registries: if self.tls_ca.is_some() { vec![] } else { vec![self.addr.clone()] },
            extra_ca_pems: self.tls_ca.iter().map(|c| c.as_bytes().to_vec()).collect(),
            retry_base: Duration::from_millis(20),
            credentials: self.auth_file().map_or_else(Default::default, |f| {
                tollgate_registry::credentials::CredentialStore::parse(f.as_bytes(), "test").expect("auth file")
            }),
            ..Default::default()
        };
        tollgate_registry::Client::new(cfg).expect("client")
    }

    /// A containers auth.json with this registry's basic credentials, if it has any.
    pub fn auth_file(&self) -> Option<String> {
        use base64::Engine as _;
        let (u, p) = self.basic.as_ref()?;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        Some(format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, self.addr))
    }

    /// Path of the registry's storage, for tests that corrupt it on purpose.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

fn wait_ready(addr: &str, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

impl Registry {
    /// Stops the registry now (an outage); its address then refuses connections.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
