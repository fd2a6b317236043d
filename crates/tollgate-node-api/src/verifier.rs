//! The bindir verifier protocol.

use tollgate_oci::Digest;
use tollgate_oci::manifest::Descriptor;

/// containerd reads at most this much of stdout.
pub const MAX_REASON_BYTES: usize = 32 << 10;
/// The largest descriptor read from stdin.
pub const MAX_DESCRIPTOR_BYTES: usize = 64 << 10;
/// The only stdin media type containerd sends.
pub const DESCRIPTOR_MEDIA_TYPE: &str = "application/vnd.oci.descriptor.v1+json";

/// What containerd asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `-name`: the reference being pulled.
    pub name: String,
    /// `-digest`: the top-level digest (the index digest for multi-platform images).
    pub digest: Digest,
    /// `-stdin-media-type`.
    pub stdin_media_type: Option<String>,
    /// The media type of the descriptor on stdin (set by [`prepare`]), which
    /// the fetched manifest must agree with.
    pub media_type: Option<String>,
    /// Flags this version does not know, tolerated (and reported on stderr).
    pub unknown: Vec<String>,
}

/// The invocation is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvocationError {
    /// A required flag is missing.
    #[error("missing -{0}")]
    Missing(&'static str),
    /// A flag has no value.
    #[error("-{0} needs a value")]
    NoValue(String),
    /// The digest is malformed.
    #[error("invalid -digest: {0}")]
    Digest(String),
    /// A value that is not a flag.
    #[error("unexpected argument {0:?}")]
    Unexpected(String),
}

/// Whether `args` (without the program name) look like a bindir invocation:
/// the first argument is one of the protocol's single-dash flags.
pub fn is_invocation(args: &[String]) -> bool {
    args.first().is_some_and(|a| {
        let flag = a.split('=').next().unwrap_or(a);
        matches!(flag, "-name" | "-digest" | "-stdin-media-type")
    })
}

/// Parses Go-style flags (`-flag value`, `-flag=value`, `--flag value`). Unknown
/// flags are tolerated: their value, if the next argument is not a flag, is skipped.
pub fn parse(args: &[String]) -> Result<Invocation, InvocationError> {
    let (mut name, mut digest, mut media_type, mut unknown) = (None, None, None, Vec::new());
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(InvocationError::Unexpected(arg.clone()));
        };
        let (key, inline) = match flag.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (flag, None),
        };
        let known = matches!(key, "name" | "digest" | "stdin-media-type");
        let value = match inline {
            Some(v) => Some(v),
            None => match args.get(i + 1) {
                Some(next) if !next.starts_with('-') || known => {
                    i += 1;
                    Some(next.clone())
                }
                _ => None,
            },
        };
        match key {
            "name" => name = Some(value.ok_or_else(|| InvocationError::NoValue(key.into()))?),
            "digest" => digest = Some(value.ok_or_else(|| InvocationError::NoValue(key.into()))?),
            "stdin-media-type" => media_type = Some(value.ok_or_else(|| InvocationError::NoValue(key.into()))?),
            other => unknown.push(other.to_owned()),
        }
        i += 1;
    }
    let name = name.filter(|n| !n.is_empty()).ok_or(InvocationError::Missing("name"))?;
    let digest = digest.ok_or(InvocationError::Missing("digest"))?;
    let digest = Digest::parse(&digest).map_err(|e| InvocationError::Digest(e.to_string()))?;
    Ok(Invocation { name, digest, stdin_media_type: media_type, media_type: None, unknown })
}

/// Parses the descriptor containerd writes on stdin, and checks it against `-digest`.
/// `None` when stdin was empty (containerd may fail to write it; `-digest` is authoritative).
pub fn descriptor(stdin: &[u8], invocation: &Invocation) -> Result<Option<Descriptor>, String> {
    if stdin.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if stdin.len() > MAX_DESCRIPTOR_BYTES {
        return Err(format!("the descriptor on stdin is larger than {MAX_DESCRIPTOR_BYTES} bytes"));
    }
    let d: Descriptor = serde_json::from_slice(stdin).map_err(|e| format!("malformed descriptor on stdin: {e}"))?;
    if d.digest != invocation.digest {
        return Err(format!("the descriptor on stdin is for {}, not -digest {}", d.digest, invocation.digest));
    }
    Ok(Some(d))
}

impl Invocation {
    /// The daemon request for this pull.
    pub fn request(&self) -> crate::api::VerifyRequest {
        crate::api::VerifyRequest {
            name: self.name.clone(),
            digest: self.digest.to_string(),
            namespace: None,
            media_type: self.media_type.clone(),
        }
    }
}

/// Caps a reason to what containerd reads, on a character boundary.
pub fn cap_reason(reason: &str) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason.to_owned();
    }
    let mut end = MAX_REASON_BYTES - 16;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} (truncated)", &reason[..end])
}

/// Exit code: allow the pull.
pub const EXIT_ALLOW: u8 = 0;
/// Exit code: the policy denies it.
pub const EXIT_DENY: u8 = 1;
/// Exit code: no decision for now; the pull is refused (fail closed).
pub const EXIT_UNDECIDABLE: u8 = 3;

/// An exit code and the one reason line containerd shows.
pub type Answer = (u8, String);

/// Refuses, failing closed: nothing was decided.
pub fn refuse(why: impl std::fmt::Display) -> Answer {
    (EXIT_UNDECIDABLE, format!("tollgate: rejected, failing closed: {why}"))
}

/// The registry could not be reached for the image's manifest: refused, unless
/// the config says `failOpen`. Call it for nothing else: a timeout, a daemon
/// that does not answer, or a signature fetch that failed after the manifest
/// was served are [`refuse`]d, since an attacker's registry can cause them.
pub fn undecidable(fail_open: bool, why: impl std::fmt::Display) -> Answer {
    if fail_open {
        (EXIT_ALLOW, format!("tollgate: allowed by failOpen although undecidable: {why}"))
    } else {
        refuse(why)
    }
}

/// The image as containerd named it, with the digest unless the name carries one.
pub fn shown(inv: &Invocation) -> String {
    if inv.name.contains('@') { inv.name.clone() } else { format!("{}@{}", inv.name, inv.digest) }
}

/// The answer for a daemon's verdict. Only `allowed` decides.
pub fn from_daemon(inv: &Invocation, a: &crate::api::VerifyResponse) -> Answer {
    use crate::api::Outcome;
    let how = if a.cached { "daemon, cached" } else { "daemon" };
    let what = shown(inv);
    match (a.allowed, a.outcome) {
        (true, _) => (EXIT_ALLOW, format!("tollgate: allowed {what} ({how}): {}", a.reason)),
        (false, Outcome::Undecidable) => {
            (EXIT_UNDECIDABLE, format!("tollgate: rejected, failing closed: {what} ({how}): {}", a.reason))
        }
        (false, _) => (EXIT_DENY, format!("tollgate: denied {what} ({how}): {}", a.reason)),
    }
}

/// Reads the node config at `path`; a missing file is the defaults.
pub fn load_config(path: &std::path::Path) -> Result<crate::config::NodeConfig, String> {
    use std::io::Read as _;
    let shown = path.display();
    match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(crate::config::NodeConfig::default()),
        Err(e) => Err(format!("cannot read {shown}: {e}")),
        Ok(f) => {
            let mut bytes = Vec::new();
            f.take(1 << 20).read_to_end(&mut bytes).map_err(|e| format!("cannot read {shown}: {e}"))?;
            crate::config::NodeConfig::parse(&bytes, &shown.to_string()).map_err(|e| e.to_string())
        }
    }
}

/// The config path: `$TOLLGATE_CONFIG`, else [`crate::config::DEFAULT_CONFIG`].
pub fn config_path() -> std::path::PathBuf {
    std::env::var_os("TOLLGATE_CONFIG")
        .map_or_else(|| std::path::PathBuf::from(crate::config::DEFAULT_CONFIG), std::path::PathBuf::from)
}

/// Reads stdin (capped) on a thread, giving up after `wait`: the descriptor is
/// informational (`-digest` is authoritative) and the verifier must never hang.
pub fn read_stdin(wait: std::time::Duration) -> Vec<u8> {
    use std::io::Read as _;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::stdin().lock().take(MAX_DESCRIPTOR_BYTES as u64 + 1).read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx.recv_timeout(wait).unwrap_or_default()
}

/// The start every verifier binary shares: parse the invocation (reporting
/// unknown flags on stderr as `program`), load the config, and check the
/// descriptor on stdin against `-digest`. Any failure is a refusal to print.
pub fn prepare(args: &[String], program: &str) -> Result<(Invocation, crate::config::NodeConfig), Answer> {
    let mut inv = parse(args).map_err(|e| refuse(format!("bad invocation: {e}")))?;
    if !inv.unknown.is_empty() {
        eprintln!("{program}: ignoring unknown flags: {}", inv.unknown.join(", "));
    }
    let cfg = load_config(&config_path()).map_err(refuse)?;
    let d = descriptor(&read_stdin(std::time::Duration::from_secs(1)), &inv).map_err(refuse)?;
    inv.media_type = d.map(|d| d.media_type).filter(|m| !m.is_empty());
    // `tollgate-verifier` read stdin before it handed over: it passes the media type on.
    if inv.media_type.is_none() && std::env::var_os(FALLBACK_ENV).is_some() {
        inv.media_type = std::env::var(MEDIA_TYPE_ENV).ok().filter(|m| !m.is_empty());
    }
    Ok((inv, cfg))
}

/// The environment variable through which `tollgate-verifier` hands a pull
/// over to the full `tollgate` binary, holding why the daemon could not answer.
pub const FALLBACK_ENV: &str = "TOLLGATE_VERIFIER_FALLBACK";

/// With [`FALLBACK_ENV`]: the media type of the descriptor `tollgate-verifier`
/// read from stdin (the full binary finds stdin consumed).
pub const MEDIA_TYPE_ENV: &str = "TOLLGATE_VERIFIER_MEDIA_TYPE";

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const D: &str = "sha256:98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4";

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_containerds_exact_argv() {
        let a = args(&format!(
            "-name registry.example.com/image:abc -digest {D} -stdin-media-type {DESCRIPTOR_MEDIA_TYPE}"
        ));
        assert!(is_invocation(&a));
        let inv = parse(&a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inv.name, "registry.example.com/image:abc");
        assert_eq!(inv.digest.to_string(), D);
        assert_eq!(inv.stdin_media_type.as_deref(), Some(DESCRIPTOR_MEDIA_TYPE));
        assert!(inv.unknown.is_empty());
    }

    #[test]
    fn tolerates_unknown_flags_and_other_spellings() {
        let a = args(&format!("-operation pull --name=busybox -verbose -digest {D}"));
        let inv = parse(&a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inv.name, "busybox");
        assert_eq!(inv.unknown, ["operation", "verbose"]);
        assert!(!is_invocation(&args("verify busybox")));
    }

    #[test]
    fn precise_errors() {
        assert_eq!(parse(&args(&format!("-digest {D}"))), Err(InvocationError::Missing("name")));
        assert_eq!(parse(&args("-name x")), Err(InvocationError::Missing("digest")));
        assert!(matches!(parse(&args("-name x -digest sha256:00")), Err(InvocationError::Digest(_))));
        assert_eq!(parse(&args("-name")), Err(InvocationError::NoValue("name".into())));
        assert_eq!(parse(&args("stray")), Err(InvocationError::Unexpected("stray".into())));
    }

    #[test]
    fn descriptor_must_match_the_digest() {
        let inv = parse(&args(&format!("-name x -digest {D}"))).unwrap_or_else(|e| panic!("{e}"));
        let good = format!(r#"{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{D}","size":2048}}"#);
        assert!(descriptor(format!("{good}\n").as_bytes(), &inv).is_ok_and(|d| d.is_some()));
        assert_eq!(descriptor(b"", &inv), Ok(None));
        let other = good.replace("98ea", "00ea");
        assert!(descriptor(other.as_bytes(), &inv).is_err_and(|e| e.contains("not -digest")));
        assert!(descriptor(b"{", &inv).is_err_and(|e| e.starts_with("malformed descriptor")));
    }

    #[test]
    fn reasons_are_capped_on_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let capped = cap_reason(&long);
        assert!(capped.len() <= MAX_REASON_BYTES && capped.ends_with("(truncated)"));
        assert_eq!(cap_reason("short"), "short");
    }

    proptest! {
        #[test]
        fn never_panics(a in proptest::collection::vec("\\PC{0,20}", 0..8)) {
            let _ = is_invocation(&a);
            let _ = parse(&a);
        }
    }
}
