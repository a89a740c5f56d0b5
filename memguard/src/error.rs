//! The error type shared by detection and (later) watching.

use std::io;
use std::path::PathBuf;

/// What can go wrong while reading the kernel's view of this process's memory.
///
/// Detection is deliberately lenient: most problems with a single cgroup file become a
/// documented fallback recorded in [`Limits::notes`](crate::Limits::notes) rather than an error.
/// An `Error` is returned where no sensible fallback exists (for example `/proc` itself is
/// unreadable) and by the low-level readers and parsers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read (missing, permission denied, I/O error).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file, as seen on this host (including any root prefix).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A kernel file had content memguard does not understand.
    #[error("malformed {}: {reason}", path.display())]
    Malformed {
        /// The file, as seen on this host (including any root prefix).
        path: PathBuf,
        /// What was wrong, including the offending text where short.
        reason: String,
    },
    /// A configuration value does not parse or is out of range (thresholds, durations, sizes).
    ///
    /// Names the setting (the [`Builder`](crate::watch::Builder) method) and, when the value
    /// came from the environment, the `MEMGUARD_*` variable and its text.
    #[error("invalid configuration: {}: {reason}", config_origin(setting, *env_var, value))]
    InvalidConfig {
        /// The setting, named as its [`Builder`](crate::watch::Builder) method:
        /// `redetect_interval`, `warn`, `limit_override`, ...
        setting: &'static str,
        /// The environment variable the value came from (`MEMGUARD_REDETECT_INTERVAL`, or
        /// systemd's `MEMORY_PRESSURE_WATCH` / `MEMORY_PRESSURE_WRITE`), or `None` when it was
        /// set in code.
        env_var: Option<&'static str>,
        /// The offending value: the variable's text, or the value set in code.
        value: String,
        /// What is wrong with it (the accepted range or format).
        reason: String,
    },
    /// The operating system refused one of memguard's threads when a guard started (`EAGAIN`:
    /// the cgroup's `pids.max`, `RLIMIT_NPROC`, or memory). The guard did not start; the threads
    /// it had already started are stopped and joined, and no descriptor is left open.
    #[error("cannot start memguard's thread {thread}: {source} (a pids.max or RLIMIT_NPROC limit, or memory, refuses new threads)")]
    ThreadSpawn {
        /// The thread's name (`memguard-dispatch`, `memguard-shed`, `memguard-reactor`).
        thread: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `/proc` (or the configured root's `proc`) cannot be read at all.
    #[error("/proc is not readable at {}: {source}", path.display())]
    ProcUnavailable {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// True when the error means "the file does not exist" (as opposed to unreadable or malformed).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// An [`Error::InvalidConfig`] for a value set in code.
    pub fn invalid_config(setting: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig { setting, env_var: None, value: value.into(), reason: reason.into() }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Malformed { path: path.into(), reason: reason.into() }
    }
}

/// `MEMGUARD_X="text" (setting)` or `setting = value`.
fn config_origin(setting: &str, env_var: Option<&str>, value: &str) -> String {
    match env_var {
        Some(var) => format!("{var}={value:?} ({setting})"),
        None => format!("{setting} = {value}"),
    }
}

/// Shorthand for `std::result::Result<T, memguard::Error>`.
pub type Result<T> = std::result::Result<T, Error>;
