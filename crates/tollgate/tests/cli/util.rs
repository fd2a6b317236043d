use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one run of `tollgate` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts the run failed with `code` and one `tollgate:` line on stderr, and returns that line.
    pub fn one_line_error(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "exit code; stderr:\n{}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one error line, got:\n{}", self.stderr);
        assert!(lines[0].starts_with("tollgate: "), "{}", lines[0]);
        lines[0]
    }
}

/// Runs the tollgate binary with `args` and no stdin.
pub fn tollgate(args: &[&str]) -> Run {
    tollgate_env(args, &[])
}

/// Runs the tollgate binary with `args`, extra environment variables, and no stdin.
/// Auth-file variables of the caller's environment are removed.
pub fn tollgate_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_remove("TOLLGATE_LOG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run tollgate");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the tollgate binary with `args`, `env`, and `stdin` written then closed.
pub fn tollgate_stdin(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Run {
    run_stdin(env!("CARGO_BIN_EXE_tollgate"), args, env, stdin)
}

/// Runs `tollgate-verifier` as containerd runs a bindir verifier: `args`, the
/// descriptor on `stdin`, and containerd's environment under systemd (a PATH,
/// no HOME) plus `env`.
pub fn verifier_stdin(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Run {
    let mut all = vec![("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")];
    all.extend_from_slice(env);
    run_stdin(env!("CARGO_BIN_EXE_tollgate-verifier"), args, &all, stdin)
}

fn run_stdin(bin: &str, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Run {
    use std::io::Write as _;
    let mut cmd = Command::new(bin);
    if bin.ends_with("tollgate-verifier") {
        cmd.env_clear();
    }
    let mut child = cmd
        .args(args)
        .env_remove("TOLLGATE_LOG")
        .env_remove("REGISTRY_AUTH_FILE")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Test data of the control-plane crate (realistic kubeadm manifests).
pub fn controlplane_testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tollgate-controlplane/testdata").join(name)
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Like assert_eq!, but prints expected and actual one above the other, for multi-line text.
macro_rules! eqnice {
    ($expected:expr, $got:expr) => {{
        let expected: &str = &$expected;
        let got: &str = &$got;
        if expected != got {
            panic!("\n===== expected =====\n{expected}\n===== got =====\n{got}\n====================\n");
        }
    }};
}

/// Node-config lines that keep the audit log, the last good policy copy and
/// the break-glass file inside `dir`: tests never touch /var or /etc.
pub fn private_paths(dir: &Path) -> String {
    format!(
        "auditLog:\n  path: {}\nlastGoodPolicy: {}\nbreakGlassFile: {}\n",
        dir.join("audit.log").display(),
        dir.join("last-good.json").display(),
        dir.join("break-glass").display()
    )
}
