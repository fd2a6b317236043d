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
//! closed on every internal error; `failOpen: true` is applied only by whoever
//! decided, and only when the registry was unreachable for the manifest.
#![forbid(unsafe_code)]

use std::os::unix::process::CommandExt as _;
use std::process::ExitCode;
use std::time::Duration;

use tollgate_node_api::client::{self, AskError};
use tollgate_node_api::verifier::{self, Answer};

const HELP: &str = "\
tollgate-verifier: containerd's image verifier (bindir protocol). containerd runs it on every pull as
  tollgate-verifier -name REF -digest sha256:... -stdin-media-type application/vnd.oci.descriptor.v1+json
with the descriptor on stdin. It asks the tollgate daemon (tollgate serve) and prints one reason line;
when the daemon is down it hands the pull to the full tollgate binary (fallbackBinary), which decides
in-process. Exit 0 allows the pull; 1 denied; 3 undecidable (refused: it fails closed).
Config: $TOLLGATE_CONFIG, else /etc/tollgate/config.yaml. Installed by `tollgate containerd install`.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Only the bindir invocation fails closed; a person asking for help gets it.
    match args.first().map(String::as_str) {
        Some("--help" | "-h" | "help") if args.len() == 1 => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") if args.len() == 1 => {
            println!("tollgate-verifier {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let (code, reason) = decide(&args);
    println!("{}", verifier::cap_reason(&reason));
    ExitCode::from(code)
}

fn decide(args: &[String]) -> Answer {
    let (inv, cfg) = match verifier::prepare(args, "tollgate-verifier") {
        Ok(prepared) => prepared,
        Err(answer) => return answer,
    };
    let note = match client::verify(&cfg.socket, &inv.request(), Duration::from_secs(cfg.deadline_seconds)) {
        Ok(answer) => return verifier::from_daemon(&inv, &answer),
        // The daemon took the request and did not answer: never failed open.
        Err(e @ AskError::Timeout { .. }) => return verifier::refuse(e),
        Err(e) => e.to_string(),
    };
    // Hand over to the full binary, which decides in-process. exec only
    // returns on failure. Running our own fallback binary is not shelling out
    // for something a library does: it is this program's other half.
    #[allow(clippy::disallowed_methods)]
    let mut fallback = std::process::Command::new(&cfg.fallback_binary);
    fallback.args(args).env(verifier::FALLBACK_ENV, &note);
    if let Some(m) = &inv.media_type {
        fallback.env(verifier::MEDIA_TYPE_ENV, m);
    }
    let err = fallback.exec();
    verifier::refuse(format!("{note}, and the fallback {} cannot run: {err}", cfg.fallback_binary.display()))
}
