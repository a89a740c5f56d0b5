//! The native `Reservation`: bytes held from a guard's soft-limit budget.

use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;

use crate::errors;

/// Bytes reserved from a guard's soft-limit budget, returned exactly once: by `release()`, by
/// leaving a `with` block, or when garbage-collected. Holds an owned (`'static`) core
/// reservation: it may outlive the guard object.
#[pyclass(module = "memguard._memguard", name = "Reservation", frozen)]
pub struct Reservation {
    inner: Mutex<Option<memguard::Reservation<'static>>>,
}

impl Reservation {
    pub(crate) fn new(r: memguard::Reservation<'static>) -> Self {
        Reservation { inner: Mutex::new(Some(r)) }
    }

    fn take(&self) -> Option<memguard::Reservation<'static>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

#[pymethods]
impl Reservation {
    /// The bytes held (0 once released).
    #[getter]
    fn nbytes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map_or(0, memguard::Reservation::bytes)
    }

    /// True once released.
    #[getter]
    fn released(&self) -> bool {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).is_none()
    }

    /// Return the bytes to the budget (idempotent).
    fn release(&self) {
        drop(self.take());
    }

    /// Grow (checked against the budget; raises `BudgetExceeded`) or shrink (always granted)
    /// the reservation to `nbytes`. Raises `ValueError` once released.
    fn resize(&self, py: Python<'_>, nbytes: u64) -> PyResult<()> {
        // The lock is released before building the exception (which runs Python code).
        let result = self.inner.lock().unwrap_or_else(PoisonError::into_inner).as_mut().map(|r| r.resize(nbytes));
        match result {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(errors::budget(py, &e)),
            None => Err(pyo3::exceptions::PyValueError::new_err("the reservation was released")),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        drop(self.take());
        false
    }

    fn __repr__(&self) -> String {
        match self.inner.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            Some(r) => format!("<memguard.Reservation {} bytes>", r.bytes()),
            None => "<memguard.Reservation released>".to_owned(),
        }
    }
}
