//! Exit codes, and the one-line error report.

use std::process::ExitCode;

use tollgate_controlplane::components::ComponentError;
use tollgate_node::engine::EngineError;
use tollgate_registry::RegistryError;
use tollgate_registry::layout::LayoutError;

use crate::output::BrokenPipe;

/// Success.
pub const OK: u8 = 0;
/// Denied, or findings: the command worked and the answer is "no".
pub const DENIED: u8 = 1;
/// Usage or configuration error.
pub const USAGE: u8 = 2;
/// Undecidable for now: a transient failure such as an unreachable registry.
pub const TRANSIENT: u8 = 3;

/// The text `--help` shows about exit codes.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success; for decisions and audits: allowed, no findings
  1  denied, audit findings, or content refused for integrity
     (hash or digest mismatch, moved tag, unsafe archive)
  2  usage or configuration error (bad flag, unknown version, malformed file)
  3  undecidable for now: a transient failure such as an unreachable registry
     (or, for harden, account files locked by another program)";

/// What a successful run concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All good.
    Ok,
    /// The command ran and the answer is no (audit findings, a denial).
    Findings,
    /// The command ran and could not decide for now (transient failure).
    Undecidable,
}

impl Outcome {
    pub fn code(self) -> ExitCode {
        match self {
            Outcome::Ok => ExitCode::from(OK),
            Outcome::Findings => ExitCode::from(DENIED),
            Outcome::Undecidable => ExitCode::from(TRANSIENT),
        }
    }
}

/// Picks the exit code for an error by what caused it.
pub fn classify(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(r) = cause.downcast_ref::<RegistryError>() {
            return classify_registry(r);
        }
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            match e {
                EngineError::Registry { source, .. } => return classify_registry(source),
                EngineError::Refused(_) => return DENIED,
                _ => {}
            }
        }
        if let Some(c) = cause.downcast_ref::<ComponentError>() {
            return match c {
                ComponentError::HashMismatch { .. } | ComponentError::Archive { .. } => DENIED,
                _ => USAGE,
            };
        }
        if let Some(l) = cause.downcast_ref::<LayoutError>() {
            return match l {
                LayoutError::DigestMismatch { .. } | LayoutError::TooLarge { .. } | LayoutError::Malformed { .. } => {
                    DENIED
                }
                _ => USAGE,
            };
        }
        if let Some(tollgate_harden::HardenError::Locked { .. }) = cause.downcast_ref::<tollgate_harden::HardenError>()
        {
            return TRANSIENT;
        }
        if cause.downcast_ref::<Transient>().is_some() {
            return TRANSIENT;
        }
        if let Some(tollgate_controller::ControllerError::Lost { .. }) =
            cause.downcast_ref::<tollgate_controller::ControllerError>()
        {
            return TRANSIENT;
        }
        if cause.downcast_ref::<Refused>().is_some() {
            return DENIED;
        }
    }
    USAGE
}

fn classify_registry(r: &RegistryError) -> u8 {
    match r {
        RegistryError::DigestMismatch { .. } | RegistryError::TooLarge { .. } | RegistryError::Malformed { .. } => {
            DENIED
        }
        e if e.is_transient() => TRANSIENT,
        _ => USAGE,
    }
}

/// Marks an aggregated failure whose causes were all transient.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Transient(pub String);

/// Marks a refusal on integrity grounds (for example a moved tag).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Prints `tollgate: <error chain>` on one line and picks the exit code.
/// A closed stdout (`tollgate … | head`) exits quietly with success.
pub fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    if err.chain().any(|c| c.downcast_ref::<BrokenPipe>().is_some()) {
        return ExitCode::from(OK);
    }
    eprintln!("tollgate: {err:#}");
    let code = classify(err);
    // Under -o json, configuration management reads stdout: it gets the reason too.
    if json {
        let doc = serde_json::json!({"error": format!("{err:#}"), "exitCode": code});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    ExitCode::from(code)
}
