//! The synchronisation primitives the budget and the callback registry are built on: the
//! standard library's, or [Shuttle](https://docs.rs/shuttle)'s when the unit tests are compiled
//! with `--cfg shuttle`; the model-checking tests (`budget/model_check.rs`,
//! `watch/registry_model_check.rs`) then explore thread interleavings of every atomic and lock
//! operation below. `Arc`/`Weak` are std's in both builds (reference counts are
//! not the subject).

#[cfg(not(all(shuttle, test)))]
pub(crate) use std::sync::{atomic, Mutex, MutexGuard};

#[cfg(all(shuttle, test))]
pub(crate) use shuttle::sync::{atomic, Mutex, MutexGuard};

pub(crate) use std::sync::{Arc, PoisonError, Weak};

#[cfg(not(all(shuttle, test)))]
pub(crate) use std::thread_local;

#[cfg(all(shuttle, test))]
pub(crate) use shuttle::thread_local;
