//! A real containerd (2.3 or 2.4 from `../shared/peers`) for end-to-end tests:
//! its own root, state, sockets and runc root in a temp dir, a version 3 or 4
//! config, the image-verifier bindir plugin pointed at an empty directory,
//! CRI pulling through the transfer service (`use_local_image_pull = false`),
//! hosts.toml files for plain-HTTP test registries, a sandbox image, and
//! `restrict_oom_score_adj = true` (the test machines lack CAP_SYS_RESOURCE).
//! Started and stopped by PID with bounded waits; its log is kept and shown
//! by [`Containerd::logs`] for failing tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// `2.3` or `2.4`: the directory `containerd-LINE` of the peers.
    pub line: &'static str,
    /// The config version written: 3, or 4 (containerd 2.3's default).
    pub config_version: u8,
    /// Plain-HTTP registries (`127.0.0.1:PORT`) given hosts.toml files.
    pub registries: Vec<String>,
    /// CRI's sandbox image (it must be pullable, and allowed by the policy).
    pub sandbox_image: String,
    /// Extra environment for containerd (and so for the verifiers it runs).
    pub env: Vec<(String, String)>,
    /// Run containerd's NRI, its socket at [`Containerd::nri_socket`] (off: NRI is a disabled plugin).
    pub nri: bool,
}

/// A running containerd. Killed (and its shims with it) on drop.
pub struct Containerd {
    /// The temp dir everything lives in.
    pub dir: tempfile::TempDir,
    /// containerd's config file.
    pub config: PathBuf,
    /// The GRPC socket.
    pub socket: PathBuf,
    /// The image-verifier bin_dir.
    pub bin_dir: PathBuf,
    /// The directory holding containerd, ctr and the runc shim.
    pub bin: PathBuf,
    opts: Options,
    child: Option<Child>,
    log: PathBuf,
}

impl Containerd {
    /// The config text for `opts` in `dir`, before tollgate touches it.
    pub fn config_text(dir: &Path, opts: &Options) -> String {
        let d = dir.display();
        // Version 4 keeps the version 3 plugin names, but its servers are
        // plugins too: a version 3 [grpc] table in a version 4 file is
        // ignored, and containerd would serve on /run/containerd.
        let section = |s: &str| format!("[plugins.'{s}']");
        let servers = if opts.config_version >= 4 {
            format!(
                "[plugins.'io.containerd.server.v1.grpc']\n  address = \"{d}/containerd.sock\"\n\n\
                 [plugins.'io.containerd.server.v1.ttrpc']\n  address = \"{d}/containerd.sock.ttrpc\"\n\n\
                 [plugins.'io.containerd.server.v1.debug']\n  address = \"\"\n\n\
                 [plugins.'io.containerd.server.v1.metrics']\n  address = \"\"\n"
            )
        } else {
            format!(
                "[grpc]\n  address = \"{d}/containerd.sock\"\n\n[ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\n\
                 [debug]\n  address = \"\"\n\n[metrics]\n  address = \"\"\n"
            )
        };
        format!(
            r#"version = {v}
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [{nri_disabled}"io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

{servers}
{opt}
  path = "{d}/opt"

{verifier}
  bin_dir = "{d}/verifiers"

{images}
  use_local_image_pull = false

{images_pinned}
  sandbox = "{sandbox}"

{images_registry}
  config_path = "{d}/certs.d"

{runtime}
  restrict_oom_score_adj = true

{runc}
  Root = "{d}/runc"

{grpc_cri}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
{nri}"#,
            v = opts.config_version,
            opt = section("io.containerd.internal.v1.opt"),
            verifier = section("io.containerd.image-verifier.v1.bindir"),
            images = section("io.containerd.cri.v1.images"),
            images_pinned = "[plugins.'io.containerd.cri.v1.images'.pinned_images]",
            images_registry = "[plugins.'io.containerd.cri.v1.images'.registry]",
            runtime = section("io.containerd.cri.v1.runtime"),
            runc = "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]",
            grpc_cri = section("io.containerd.grpc.v1.cri"),
            sandbox = opts.sandbox_image,
            nri_disabled = if opts.nri { "" } else { "\"io.containerd.nri.v1.nri\", " },
            nri = if opts.nri {
                format!(
                    "\n[plugins.'io.containerd.nri.v1.nri']\n  disable = false\n  socket_path = \"{d}/nri.sock\"\n  \
                     plugin_path = \"{d}/nri-plugins\"\n  plugin_config_path = \"{d}/nri-conf.d\"\n"
                )
            } else {
                String::new()
            },
        )
    }

    /// Starts containerd, or `None` after a loud line when the peers are
    /// missing outside CI (see [`crate::peers::require`]).
    pub fn start(opts: Options, test: &str) -> Option<Containerd> {
        let ctrd = crate::peers::require(&format!("containerd-{}/containerd", opts.line), test)?;
        crate::peers::require("tools/crictl", test)?;
        assert!(
            Path::new("/usr/sbin/runc").exists() || Path::new("/usr/bin/runc").exists(),
            "runc is missing: apt-get install -y runc (scripts/test does)"
        );
        let bin = ctrd.parent().expect("peer dir").to_owned();
        let dir = tempfile::Builder::new().prefix("tollgate-containerd-").tempdir().expect("tempdir");
        for sub in ["verifiers", "certs.d", "opt"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        for reg in &opts.registries {
            let hosts = dir.path().join("certs.d").join(reg);
            std::fs::create_dir_all(&hosts).expect("mkdir");
            std::fs::write(
                hosts.join("hosts.toml"),
                format!(
                    "server = \"http://{reg}\"\n\n[host.\"http://{reg}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
                ),
            )
            .expect("hosts.toml");
        }
        let config = dir.path().join("config.toml");
        std::fs::write(&config, Containerd::config_text(dir.path(), &opts)).expect("config");
        // Never reach a system containerd, and never serve on its socket.
        assert!(!Containerd::config_text(dir.path(), &opts).contains("/run/containerd"));
        let mut c = Containerd {
            socket: dir.path().join("containerd.sock"),
            bin_dir: dir.path().join("verifiers"),
            log: dir.path().join("containerd.log"),
            config,
            bin,
            dir,
            opts,
            child: None,
        };
        c.spawn();
        Some(c)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log");
        let path = format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", self.bin.display());
        let child = Command::new(self.bin.join("containerd"))
            .arg("--config")
            .arg(&self.config)
            .env_clear()
            .env("PATH", path)
            .envs(self.opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("containerd exited with {status}:\n{}", self.logs());
            }
            if self.ctr(&["version"]).status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "containerd did not answer within 15 s:\n{}", self.log_tail(40));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops containerd (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        crate::stop_child(&mut self.child, Duration::from_secs(10));
    }

    /// Restarts containerd, as `systemctl restart containerd` after a config change.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The last `n` lines of containerd's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.logs();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// containerd's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ctr --address SOCKET ARGS` (at most 60 s).
    pub fn ctr(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.bin.join("ctr"));
        cmd.arg("--address").arg(&self.socket).args(args);
        bounded(cmd, Duration::from_secs(60))
    }

    /// `crictl --runtime-endpoint unix://SOCKET ARGS` (at most 60 s): CRI, the kubelet's path.
    pub fn crictl(&self, args: &[&str]) -> Output {
        let mut cmd = self.crictl_command();
        cmd.args(args);
        bounded(cmd, Duration::from_secs(60))
    }

    /// A `crictl` command for this containerd, to add arguments to and run
    /// (from another thread, say); crictl's own `--timeout` bounds it.
    pub fn crictl_command(&self) -> Command {
        let crictl = crate::peers::dir().join("tools/crictl");
        let endpoint = format!("unix://{}", self.socket.display());
        let config = self.dir.path().join("crictl.yaml");
        if !config.exists() {
            std::fs::write(&config, "").expect("crictl.yaml");
        }
        let mut cmd = Command::new(crictl);
        cmd.arg("--config").arg(&config);
        cmd.args(["--runtime-endpoint", &endpoint, "--image-endpoint", &endpoint, "--timeout", "30s"]);
        cmd
    }

    /// containerd's NRI socket (with [`Options::nri`]).
    pub fn nri_socket(&self) -> PathBuf {
        self.dir.path().join("nri.sock")
    }

    /// `containerd --version` of this line.
    pub fn version(&self) -> String {
        let out = Command::new(self.bin.join("containerd")).arg("--version").output().expect("containerd --version");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// Runs `cmd`, killing it after `limit`.
fn bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Stop containers first, so no shim outlives the test.
        let _ = self.crictl(&["rmp", "--all", "--force"]);
        self.stop();
    }
}
