//! A real Kubernetes API server for tests: etcd 3.6 and kube-apiserver 1.36
//! from `../shared/peers`, on free 127.0.0.1 ports, with a throwaway CA and
//! serving certificate for 127.0.0.1, a service-account signing key, a static
//! token in `system:masters`, and RBAC on. No controller-manager runs (create
//! a namespace's `default` ServiceAccount yourself before creating pods).
//! Stopped by PID, the API server first (it ignores SIGTERM once etcd is
//! gone), SIGKILL after a bounded wait; logs are kept for failing tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
/// HTTP methods for [`KubeApi::request`].
pub use reqwest::Method;

/// The admin token (in `system:masters`).
pub const ADMIN_TOKEN: &str = "tollgate-test-admin-token";
/// A static token for user `tollgate-webhook`, which has no permissions until a test grants them.
pub const READER_TOKEN: &str = "tollgate-test-reader-token";

/// A running API server with its etcd. Both stop on drop.
pub struct KubeApi {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA that signed the serving certificate (PEM).
    pub ca_pem: String,
    /// A kubeconfig for the admin token (for kube-rs and kubectl).
    pub kubeconfig: PathBuf,
    /// The temp dir everything lives in.
    pub dir: tempfile::TempDir,
    etcd: Option<Child>,
    apiserver: Option<Child>,
}

impl KubeApi {
    /// Starts etcd and kube-apiserver, or `None` after a loud line when the
    /// peers are missing outside CI (see [`crate::peers::require`]).
    pub fn start(test: &str) -> Option<KubeApi> {
        Self::start_with(test, &[])
    }

    /// [`KubeApi::start`], with `extra` arguments for kube-apiserver (feature gates, an admission
    /// configuration).
    pub fn start_with(test: &str, extra: &[String]) -> Option<KubeApi> {
        let etcd_bin = crate::peers::require("tools/etcd", test)?;
        let api_bin = crate::peers::require("tools/kube-apiserver", test)?;
        let dir = tempfile::Builder::new().prefix("tollgate-kube-").tempdir().expect("tempdir");
        let d = dir.path();
        let (ca_params, ca_key, ca) = crate::test_ca("tollgate test kube CA");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &issuer).expect("serving cert");
        let write = |name: &str, text: &str| {
            let p = d.join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        let tls_cert = write("apiserver.crt", &cert.pem());
        let tls_key = write("apiserver.key", &key.serialize_pem());
        // The verification side wants a public key (or a SEC1 private key), the signing side PKCS#8.
        let sa_key = rcgen::KeyPair::generate().expect("sa key");
        let sa = write("sa.key", &sa_key.serialize_pem());
        let sa_pub = write("sa.pub", &sa_key.public_key_pem());
        let tokens = write(
            "tokens.csv",
            &format!("{ADMIN_TOKEN},admin,admin,system:masters\n{READER_TOKEN},tollgate-webhook,tollgate-webhook\n"),
        );
        let (client, peer, secure) = (crate::free_port(), crate::free_port(), crate::free_port());
        let log = |name: &str| std::fs::File::create(d.join(name)).expect("log");
        let etcd = Command::new(etcd_bin)
            .args(["--name", "tollgate", "--unsafe-no-fsync", "--log-level", "warn"])
            .arg("--data-dir")
            .arg(d.join("etcd"))
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{client}")])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-cluster", &format!("tollgate=http://127.0.0.1:{peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log("etcd.log"))
            .spawn()
            .expect("start etcd");
        let apiserver = Command::new(api_bin)
            .args(["--etcd-servers", &format!("http://127.0.0.1:{client}")])
            .args(["--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1"])
            .args(["--endpoint-reconciler-type", "none", "--secure-port", &secure.to_string()])
            .arg("--tls-cert-file")
            .arg(&tls_cert)
            .arg("--tls-private-key-file")
            .arg(&tls_key)
            .arg("--service-account-key-file")
            .arg(&sa_pub)
            .arg("--service-account-signing-key-file")
            .arg(&sa)
            .args(["--service-account-issuer", "https://kubernetes.default.svc"])
            .arg("--token-auth-file")
            .arg(&tokens)
            .args(["--authorization-mode", "RBAC", "--service-cluster-ip-range", "10.96.0.0/24"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log("apiserver.log"))
            .spawn()
            .expect("start kube-apiserver");
        let url = format!("https://127.0.0.1:{secure}");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let kubeconfig = write(
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    token: {ADMIN_TOKEN}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: admin\ncurrent-context: test\n",
                b64(&ca.pem())
            ),
        );
        let mut api = KubeApi { url, ca_pem: ca.pem(), kubeconfig, dir, etcd: Some(etcd), apiserver: Some(apiserver) };
        api.wait_ready();
        Some(api)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let exited =
                [&mut self.apiserver, &mut self.etcd].into_iter().flatten().find_map(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!("the API server or etcd exited with {status}:\n{}", self.logs());
            }
            if self.get("/readyz", Some(ADMIN_TOKEN)).is_ok_and(|(status, body)| status == 200 && body == "ok") {
                return;
            }
            assert!(Instant::now() < deadline, "kube-apiserver not ready within 60 s:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A kubeconfig for this API server as `user` with the bearer `token` (its static tokens:
    /// [`ADMIN_TOKEN`], [`READER_TOKEN`]).
    pub fn kubeconfig_for(&self, user: &str, token: &str) -> std::path::PathBuf {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let path = self.dir.path().join(format!("kubeconfig-{user}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority-data: {b64}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: {user}\ncurrent-context: test\n",
            self.url
        );
        std::fs::write(&path, text).expect("kubeconfig");
        path
    }

    /// The last lines of both logs.
    pub fn logs(&self) -> String {
        let tail = |name: &str| {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!("== apiserver ==\n{}\n== etcd ==\n{}", tail("apiserver.log"), tail("etcd.log"))
    }

    /// `GET path` with an optional bearer token: (status, body).
    pub fn get(&self, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
        self.request(reqwest::Method::GET, path, token, None)
    }

    /// One request to the API server (JSON `body` if given), trusting only its CA.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(u16, String), String> {
        self.request_with_warnings(method, path, token, body).map(|(status, body, _)| (status, body))
    }

    /// [`KubeApi::request`], also returning the `Warning` headers the API server sent (admission
    /// warnings among them).
    pub fn request_with_warnings(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(u16, String, Vec<String>), String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let client = crate::https_client(&self.ca_pem, Duration::from_secs(10))?;
            let mut req = client.request(method, format!("{}{path}", self.url));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.header("Content-Type", "application/json").body(b.to_owned());
            }
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let warnings =
                resp.headers().get_all("warning").iter().filter_map(|v| v.to_str().ok().map(str::to_owned)).collect();
            Ok((status, resp.text().await.map_err(|e| e.to_string())?, warnings))
        })
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        crate::stop_child(&mut self.apiserver, Duration::from_secs(5));
        crate::stop_child(&mut self.etcd, Duration::from_secs(5));
    }
}
