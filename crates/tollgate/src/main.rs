//! `tollgate`: image trust on the Kubernetes node. This file stays thin:
//! parse arguments, run the command, turn the outcome into an exit code.
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod exit;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // containerd's image verifier calls `BIN -name REF -digest D …`: same binary, other protocol.
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if tollgate_node::verifier::is_invocation(&raw) {
        return cmd::image_verifier::run(&raw);
    }
    let args = if raw.iter().any(|a| a == "--version" || a == "-V") {
        // `--version` names the embedded catalog's range; computed only when asked for.
        let coverage = tollgate_controlplane::catalog::Catalog::embedded().coverage();
        let text: &'static str =
            Box::leak(format!("{} (catalog: {coverage})", env!("CARGO_PKG_VERSION")).into_boxed_str());
        let matches = <cli::Cli as clap::CommandFactory>::command().version(text).get_matches();
        <cli::Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    } else {
        cli::Cli::parse()
    };
    // A daemon reports what it does; one-shot commands only warn.
    let daemon = matches!(args.command, cli::Command::Serve(_) | cli::Command::Nri(_));
    init_tracing(args.verbose + u8::from(daemon));
    let json = matches!(args.output, output::Format::Json);
    match cmd::run(args) {
        Ok(outcome) => outcome.code(),
        Err(err) => exit::report(&err, json),
    }
}

fn init_tracing(verbose: u8) {
    // -vv: tollgate's own debug lines (each registry request: method, URL
    // without query, status, time; retries); -vvv adds the HTTP stack's.
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "info,tollgate=debug,tollgate_registry=debug,tollgate_node=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // journald and log files get no colour codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
