//! Printing: human text or JSON, with a quiet exit on a closed pipe.

use std::io::Write;

use serde::Serialize;

/// Output format for every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Short human-readable text.
    Text,
    /// One JSON document on stdout (schema in docs/cli.md).
    Json,
}

/// stdout was closed by the reader.
#[derive(Debug, thiserror::Error)]
#[error("broken pipe")]
pub struct BrokenPipe;

/// Writes `text` to stdout.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(BrokenPipe.into()),
        r => Ok(r?),
    }
}

/// Writes `value` as pretty JSON and a newline to stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    print(&s)
}

/// A warning on stderr, in the same `tollgate:` style as errors.
pub fn warn(text: &str) {
    eprintln!("tollgate: warning: {text}");
}
