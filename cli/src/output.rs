//! Writing to the terminal or a pipe without ever panicking: `agora tasks | head` closes
//! the pipe early, and `println!` would panic on the broken pipe.
//!
//! Owns stdout writes of command results only; diagnostics go to stderr through
//! `eprintln!`/tracing.

use std::io::Write;

/// The documented exit codes (docs/operator-guide.md, "The agora command").
pub mod exit {
    /// The command did what was asked.
    pub const SUCCESS: u8 = 0;
    /// The command failed: the master refused, a task of `agora run` did not finish, a
    /// child of `agora local` died.
    pub const FAILURE: u8 = 1;
    /// Bad usage: unknown flags, invalid values, or an id that names nothing or more
    /// than one thing.
    pub const USAGE: u8 = 2;
    /// No master could be reached.
    pub const UNREACHABLE: u8 = 3;
}

/// Write `text` to stdout and flush. `false` when stdout is closed (a pipe whose reader
/// is gone) or otherwise unwritable: the caller stops producing output.
pub fn out(text: &str) -> bool {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .is_ok()
}

/// [`out`] with a newline.
pub fn line(text: &str) -> bool {
    let mut s = String::with_capacity(text.len() + 1);
    s.push_str(text);
    s.push('\n');
    out(&s)
}

/// Pretty JSON with a trailing newline.
pub fn json(v: &serde_json::Value) -> String {
    // Serialising a `Value` cannot fail.
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}
