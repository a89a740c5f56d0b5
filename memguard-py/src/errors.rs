//! The one place where Rust errors become Python exceptions.
//!
//! The exception classes are defined in Python (`memguard/_errors.py`, with docstrings and
//! attributes) and looked up once; if that module cannot be imported (the extension used on its
//! own) the nearest built-in exception is raised instead.
//!
//! | Rust | Python |
//! |---|---|
//! | `Error::Io`, `Error::ThreadSpawn` | `MemguardOSError(MemguardError, OSError)`: `errno`, `strerror`, `filename` (none for a thread) |
//! | `Error::ProcUnavailable` | `ProcUnavailableError(MemguardOSError)` |
//! | `Error::InvalidConfig` | `ConfigError(MemguardError, ValueError)`: `setting`, `env_var`, `value` |
//! | `Error::Malformed` | `MalformedFileError(MemguardError, ValueError)`: `filename` |
//! | `BudgetExceeded` | `BudgetExceeded(MemguardError, MemoryError)`: `requested`, `available`, `soft_limit`, `level`, `scope` |
//! | a closed guard, or a guard inherited through `fork()` | `GuardClosedError(MemguardError, RuntimeError)` |
//! | anything else | `MemguardError` |

use pyo3::exceptions::{PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

const MODULE: &str = "memguard._errors";

static MEMGUARD_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static OS_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static PROC_UNAVAILABLE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFIG_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static MALFORMED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BUDGET_EXCEEDED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GUARD_CLOSED: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The class `name` of `memguard._errors`, or the built-in `fallback`.
fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    fallback: fn(Python<'py>) -> Bound<'py, PyType>,
) -> Bound<'py, PyType> {
    cell.import(py, MODULE, name).cloned().unwrap_or_else(|_| fallback(py))
}

/// Instantiate `cls(*args, **kwargs)` and set `attrs`; any failure degrades to a plain error.
fn make<'py, A: pyo3::call::PyCallArgs<'py>>(
    py: Python<'py>,
    cls: &Bound<'py, PyType>,
    args: A,
    kwargs: Option<&Bound<'py, PyDict>>,
    attrs: &[(&str, Py<PyAny>)],
) -> PyErr {
    let built = cls.call(args, kwargs).and_then(|exc| {
        for (k, v) in attrs {
            exc.setattr(*k, v)?;
        }
        Ok(exc)
    });
    let _ = py;
    match built {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// A core [`memguard::Error`] as a Python exception.
pub(crate) fn core(py: Python<'_>, e: memguard::Error) -> PyErr {
    let message = e.to_string();
    match e {
        memguard::Error::Io { path, source } => os_error(py, false, &message, &path, &source),
        memguard::Error::ProcUnavailable { path, source } => os_error(py, true, &message, &path, &source),
        memguard::Error::ThreadSpawn { source, .. } => os_error(py, false, &message, std::path::Path::new(""), &source),
        memguard::Error::InvalidConfig { setting, env_var, value, .. } => {
            let cls = class(py, &CONFIG_ERROR, "ConfigError", |py| py.get_type::<PyValueError>());
            let err = make(py, &cls, (message,), None, &[]);
            // The setting (builder / keyword name), the MEMGUARD_* variable it came from (or
            // None), and the offending text.
            let exc = err.value(py);
            let _ = exc.setattr("setting", setting);
            let _ = exc.setattr("env_var", env_var);
            let _ = exc.setattr("value", value);
            err
        }
        memguard::Error::Malformed { path, .. } => {
            let cls = class(py, &MALFORMED, "MalformedFileError", |py| py.get_type::<PyValueError>());
            let filename = path.to_string_lossy().into_owned().into_pyobject(py).map(|s| s.into_any().unbind());
            let attrs: Vec<(&str, Py<PyAny>)> = filename.into_iter().map(|f| ("filename", f)).collect();
            make(py, &cls, (message,), None, &attrs)
        }
        _ => internal(py, &message),
    }
}

fn os_error(py: Python<'_>, proc: bool, message: &str, path: &std::path::Path, source: &std::io::Error) -> PyErr {
    let cls = if proc {
        class(py, &PROC_UNAVAILABLE, "ProcUnavailableError", |py| py.get_type::<PyOSError>())
    } else {
        class(py, &OS_ERROR, "MemguardOSError", |py| py.get_type::<PyOSError>())
    };
    // `OSError(errno, strerror)` fills `errno` and `strerror`; a subclass is never remapped.
    let err = match source.raw_os_error() {
        Some(errno) => make(py, &cls, (errno, message.to_owned()), None, &[]),
        None => make(py, &cls, (message.to_owned(),), None, &[]),
    };
    let value = err.value(py);
    if !path.as_os_str().is_empty() && path.is_absolute() {
        let _ = value.setattr("filename", path.to_string_lossy().into_owned());
    }
    err
}

/// `BudgetExceeded` with the refusal's figures.
pub(crate) fn budget(py: Python<'_>, e: &memguard::BudgetExceeded) -> PyErr {
    let cls = class(py, &BUDGET_EXCEEDED, "BudgetExceeded", |py| py.get_type::<PyMemoryError>());
    let kwargs = PyDict::new(py);
    let filled = kwargs
        .set_item("requested", e.requested)
        .and_then(|()| kwargs.set_item("available", e.available))
        .and_then(|()| kwargs.set_item("soft_limit", e.soft_limit))
        .and_then(|()| kwargs.set_item("level", e.level.as_u8()))
        .and_then(|()| kwargs.set_item("scope", e.scope.as_deref()));
    if let Err(err) = filled {
        return err;
    }
    // The built-in fallback (MemoryError) takes no keywords.
    let is_fallback = cls.is(py.get_type::<PyMemoryError>());
    make(py, &cls, (e.to_string(),), (!is_fallback).then_some(&kwargs), &[])
}

/// `GuardClosedError`: the guard was closed, or belongs to the parent of a `fork()`.
pub(crate) fn closed(py: Python<'_>, forked: bool) -> PyErr {
    let cls = class(py, &GUARD_CLOSED, "GuardClosedError", |py| py.get_type::<PyRuntimeError>());
    let message = if forked {
        "this memguard guard was started by the parent process before fork(); it does not run in the child \
         (start a new Guard here)"
    } else {
        "this memguard guard is closed"
    };
    make(py, &cls, (message,), None, &[])
}

/// Anything else (`MemguardError`).
pub(crate) fn internal(py: Python<'_>, message: &str) -> PyErr {
    let cls = class(py, &MEMGUARD_ERROR, "MemguardError", |py| py.get_type::<PyRuntimeError>());
    make(py, &cls, (message.to_owned(),), None, &[])
}
