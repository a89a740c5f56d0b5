//! `memguard._memguard`: the PyO3 extension under the pure-Python `memguard` package.
//!
//! Thin by design: every decision lives in the `memguard` crate. This module converts types
//! (Rust values to plain Python dicts through their `serde` form, which the Python layer turns
//! into frozen dataclasses), maps errors in one place ([`errors`]), and moves calls across the
//! boundary:
//!
//! * calls that may block (starting a guard, `close`, `next_event`, `status`) release the GIL;
//! * callbacks and shedders run on memguard's dispatcher thread and attach to the interpreter
//!   only for the duration of each Python call — memguard never holds one of its locks while
//!   calling them, and nothing here waits for the GIL while holding a lock;
//! * `tracing` events from the core are queued and forwarded to Python `logging` by a small
//!   thread of their own ([`logbridge`]), so the reactor never waits for the GIL;
//! * after `os.fork()` a guard inherited from the parent is unusable and is forgotten, never
//!   closed, in the child (its threads do not exist there).
#![deny(unsafe_code)]

mod convert;
mod errors;
mod guard;
mod logbridge;
mod reservation;

use std::sync::atomic::Ordering;

use pyo3::prelude::*;

pub use guard::Guard;
pub use reservation::Reservation;

/// The `memguard status` report, configured like the CLI: `MEMGUARD_*` (when `from_env`),
/// then `root` and `pid`.
fn gather(
    root: Option<std::path::PathBuf>,
    pid: Option<u32>,
    probe_psi: bool,
    from_env: bool,
) -> Result<(memguard::Status, Option<u32>), memguard::Error> {
    let mut b = if from_env { memguard::watch::Builder::from_env()? } else { memguard::watch::Builder::new() };
    if let Some(root) = root {
        b = b.root(root);
    }
    if let Some(pid) = pid {
        b = b.pid(pid);
    }
    let config = b.config()?;
    Ok((memguard::Status::gather(&config.detector(), &config, probe_psi)?, config.pid()))
}

/// A one-shot report (`memguard status --json` as a dict): detection plus current usage,
/// judged with the `MEMGUARD_*` configuration (limit override, thresholds, sources) when
/// `from_env`.
///
/// `root` reads `/proc` and `/sys/fs/cgroup` under a prefix (default `$MEMGUARD_ROOT`, else `/`);
/// `pid` reports on another process. Releases the GIL while reading the kernel's files.
#[pyfunction]
#[pyo3(signature = (root=None, pid=None, probe_psi=false, from_env=true))]
fn status(
    py: Python<'_>,
    root: Option<std::path::PathBuf>,
    pid: Option<u32>,
    probe_psi: bool,
    from_env: bool,
) -> PyResult<Py<PyAny>> {
    let (status, _) = py.detach(move || gather(root, pid, probe_psi, from_env)).map_err(|e| errors::core(py, e))?;
    convert::serialize(py, &status).map(Bound::unbind)
}

/// The `memguard status` report rendered by the core: `format` is "text", "json" or
/// "prometheus" — exactly what the CLI prints.
#[pyfunction]
#[pyo3(signature = (format="text", root=None, pid=None, probe_psi=false, from_env=true))]
fn render_status(
    py: Python<'_>,
    format: &str,
    root: Option<std::path::PathBuf>,
    pid: Option<u32>,
    probe_psi: bool,
    from_env: bool,
) -> PyResult<String> {
    if format != "prometheus" {
        guard::is_json(py, format)?;
    }
    let (status, pid) = py.detach(move || gather(root, pid, probe_psi, from_env)).map_err(|e| errors::core(py, e))?;
    Ok(match format {
        "prometheus" => memguard::render::status_prometheus(&status),
        "json" => memguard::render::status_json(&status),
        _ => memguard::render::status_text(&status, pid),
    })
}

/// Called by `os.register_at_fork(after_in_child=...)`: every guard created before the fork
/// becomes unusable in the child (see `Guard`).
#[pyfunction]
fn _after_fork_child() {
    guard::FORK_GENERATION.fetch_add(1, Ordering::AcqRel);
    logbridge::after_fork_child();
}

/// Called at interpreter exit (after the guards were closed): stop calling into Python.
#[pyfunction]
fn _shutdown() {
    logbridge::SHUTDOWN.store(true, Ordering::Release);
}

/// Wait up to `timeout` seconds (GIL released) until queued Rust log records reached Python
/// `logging`. Returns whether everything was delivered.
#[pyfunction]
#[pyo3(signature = (timeout=1.0))]
fn _flush_logs(py: Python<'_>, timeout: f64) -> bool {
    let timeout = std::time::Duration::try_from_secs_f64(timeout).unwrap_or_default();
    py.detach(move || logbridge::flush(timeout))
}

/// Rust `tracing` events forwarded so far and dropped (queue full or lock busy), for tests.
#[pyfunction]
fn _log_stats() -> (u64, u64) {
    logbridge::stats()
}

/// The extension module.
#[pymodule]
fn _memguard(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", memguard::VERSION)?;
    m.add("ENV_VARS", memguard::watch::builder::ENV_VARS.iter().map(|v| v.name).collect::<Vec<_>>())?;
    m.add("EVENT_KINDS", memguard::EventKind::NAMES.to_vec())?;
    m.add_class::<Guard>()?;
    m.add_class::<Reservation>()?;
    m.add_function(wrap_pyfunction!(status, m)?)?;
    m.add_function(wrap_pyfunction!(render_status, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_child, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(_log_stats, m)?)?;
    m.add_function(wrap_pyfunction!(_flush_logs, m)?)?;
    logbridge::install();
    Ok(())
}
