//! Writing to stdout and stderr without panicking: a reader that goes away (`memguard status
//! --json | head -c 100`) is not an error, and nothing here panics on `EPIPE` as `println!`
//! does.

use std::io::{self, Write};
use std::process::ExitCode;

/// Exit status for an invalid `MEMGUARD_*` variable or option (clap uses it for usage errors).
pub const EXIT_CONFIG: u8 = 2;

/// Write `text` and a newline to `out`, flushed.
///
/// # Errors
/// The write error (`BrokenPipe` when the reader is gone).
pub fn line(out: &mut impl Write, text: &str) -> io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// A one-line error on stderr (ignoring a closed stderr).
pub fn error(message: impl std::fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "memguard: {message}");
}

/// The exit status for the outcome of writing the output: success also when the reader went
/// away (the output was not wanted any more), failure with a message for any other error.
pub fn finish(written: io::Result<()>) -> ExitCode {
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            error(format_args!("cannot write to stdout: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// The exit status and message for a failure of the library: `2` for an invalid
/// configuration, `1` otherwise.
pub fn failed(e: &memguard::Error) -> ExitCode {
    error(e);
    match e {
        memguard::Error::InvalidConfig { .. } => ExitCode::from(EXIT_CONFIG),
        _ => ExitCode::FAILURE,
    }
}

/// `--help` text: every `MEMGUARD_*` variable, from the library's own table.
pub fn env_help() -> String {
    let mut s = String::from(
        "Environment: every MEMGUARD_* variable the library reads (options given on the command line win).\n\
         Durations: 250ms, 2s, 1.5s, 5m (a bare number is seconds); bytes: 536870912, 512Mi, 1.5Gi, 2G;\n\
         booleans: 1, 0, true, false.\n",
    );
    for v in memguard::watch::builder::ENV_VARS {
        let range = if v.range.is_empty() { String::new() } else { format!("; {}", v.range) };
        s.push_str(&format!("  {:<28} {} ({}, default {}{range})\n", v.name, v.meaning, v.format, v.default));
    }
    s.replace('`', "")
}
