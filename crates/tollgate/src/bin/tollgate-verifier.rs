//! `tollgate-verifier`: what `tollgate containerd install` puts into
//! containerd's image-verifier `bin_dir`.
//!
//! containerd starts it on every pull (and every kubelet retry) as
//! `tollgate-verifier -name REF -digest DIGEST -stdin-media-type application/vnd.oci.descriptor.v1+json`,
//! so its startup is on the pod start path. It links only the wire formats
//! (no async runtime, no TLS, no policy engine), asks the daemon over its
//! socket, and prints the daemon's reason. When the daemon is down (or answers
//! badly) it execs the full `tollgate` binary (`fallbackBinary` in the config)
//! with the same arguments, which decides in-process and says why. It fails
//! closed on every internal error unless the config says `failOpen: true`, and
//! only for transient failures.
#![forbid(unsafe_code)]

use std::os::unix::process::CommandExt as _;
use std::process::ExitCode;
use std::time::Duration;

use tollgate_node_api::api::VerifyRequest;
use tollgate_node_api::client::{self, AskError};
use tollgate_node_api::verifier::{self, Answer, undecidable};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (code, reason) = decide(&args);
    println!("{}", verifier::cap_reason(&reason));
    ExitCode::from(code)
}

fn decide(args: &[String]) -> Answer {
    let (inv, cfg) = match verifier::prepare(args, "tollgate-verifier") {
        Ok(prepared) => prepared,
        Err(answer) => return answer,
    };
    let req = VerifyRequest { name: inv.name.clone(), digest: inv.digest.to_string(), namespace: None };
    let note = match client::verify(&cfg.socket, &req, Duration::from_secs(cfg.deadline_seconds)) {
        Ok(answer) => return verifier::from_daemon(&inv, &answer),
        Err(e @ AskError::Timeout { .. }) => return undecidable(cfg.fail_open, e),
        Err(e) => e.to_string(),
    };
    // Hand over to the full binary, which decides in-process. exec only
    // returns on failure. Running our own fallback binary is not shelling out
    // for something a library does: it is this program's other half.
    #[allow(clippy::disallowed_methods)]
    let err = std::process::Command::new(&cfg.fallback_binary).args(args).env(verifier::FALLBACK_ENV, &note).exec();
    undecidable(cfg.fail_open, format!("{note}, and the fallback {} cannot run: {err}", cfg.fallback_binary.display()))
}
