//! Rust `tracing` events to Python `logging`.
//!
//! memguard's threads log from places where they must not wait (the reactor reading the
//! kernel) and sometimes while holding one of their locks. So the subscriber installed here
//! never takes the GIL: it formats the event and queues it (dropping it when the queue is full
//! or its lock is busy). A small `memguard-log` thread drains the queue and calls
//! `logging.getLogger(<target with dots>).log(...)` attached to the interpreter, one record at a
//! time, holding no Rust lock meanwhile. The thread starts on the first record and exits after
//! a second without records; after `fork()` the child starts its own.
//!
//! Logger names follow the Rust module path (`memguard.watch.reactor`, `memguard.budget`, ...),
//! all children of the `memguard` logger. Messages the core rate-limits arrive rate-limited.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, TryLockError};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use pyo3::prelude::*;
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// Set at interpreter exit: drop records instead of calling into Python.
pub(crate) static SHUTDOWN: AtomicBool = AtomicBool::new(false);

static FORWARDED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static THREADS: AtomicU64 = AtomicU64::new(0);
/// Records queued and not yet handed to Python.
static PENDING: AtomicU64 = AtomicU64::new(0);

const QUEUE: usize = 1024;
const IDLE: Duration = Duration::from_secs(1);

struct Record {
    level: u8,
    logger: String,
    message: String,
    thread: String,
}

struct State {
    pid: u32,
    id: u64,
    tx: Sender<Record>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// (forwarded, dropped) record counts.
pub(crate) fn stats() -> (u64, u64) {
    (FORWARDED.load(Ordering::Relaxed), DROPPED.load(Ordering::Relaxed))
}

/// Wait (without the GIL: the caller detaches) until every queued record was handed to
/// Python `logging`, up to `timeout`. Returns whether the queue drained.
pub(crate) fn flush(timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while PENDING.load(Ordering::Acquire) > 0 {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// In a child after `fork()`: records queued in the parent are not ours to wait for.
pub(crate) fn after_fork_child() {
    PENDING.store(0, Ordering::Release);
}

/// Install the subscriber as this extension's global default (its own copy of `tracing`).
pub(crate) fn install() {
    let _ = tracing::subscriber::set_global_default(PyLogSubscriber);
}

fn python_level(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

struct PyLogSubscriber;

impl Subscriber for PyLogSubscriber {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if *meta.level() <= Level::DEBUG {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= Level::DEBUG && !SHUTDOWN.load(Ordering::Relaxed)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &SpanRecord<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if SHUTDOWN.load(Ordering::Relaxed) {
            return;
        }
        let meta = event.metadata();
        let record = Record {
            level: python_level(meta.level()),
            logger: meta.target().replace("::", "."),
            message: memguard::render::log_text(event),
            thread: std::thread::current().name().unwrap_or("?").to_owned(),
        };
        forward(record);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Queue a record for the log thread (starting it if needed). Never blocks, never takes the GIL.
fn forward(record: Record) {
    let mut state = match STATE.try_lock() {
        Ok(s) => s,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let pid = std::process::id();
    let mut record = record;
    if let Some(s) = state.as_ref().filter(|s| s.pid == pid) {
        PENDING.fetch_add(1, Ordering::AcqRel);
        match s.tx.try_send(record) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => {
                PENDING.fetch_sub(1, Ordering::AcqRel);
                DROPPED.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(TrySendError::Disconnected(r)) => {
                PENDING.fetch_sub(1, Ordering::AcqRel);
                record = r;
            }
        }
    }
    // No log thread in this process (first record, idle exit, or a child after fork).
    if let Some(stale) = state.take() {
        if stale.pid != pid {
            // Inherited through fork(): its receiver thread does not exist here; leave the
            // channel's memory alone rather than run its drop code.
            std::mem::forget(stale);
        }
    }
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let id = THREADS.fetch_add(1, Ordering::Relaxed) + 1;
    let spawned = std::thread::Builder::new().name("memguard-log".into()).spawn(move || run(id, &rx));
    PENDING.fetch_add(1, Ordering::AcqRel);
    if spawned.is_err() || tx.try_send(record).is_err() {
        PENDING.fetch_sub(1, Ordering::AcqRel);
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
    if spawned.is_ok() {
        *state = Some(State { pid, id, tx });
    }
}

fn run(id: u64, rx: &Receiver<Record>) {
    loop {
        match rx.recv_timeout(IDLE) {
            Ok(record) => emit(record),
            Err(RecvTimeoutError::Timeout) => {
                let mut state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
                if rx.is_empty() {
                    if state.as_ref().is_some_and(|s| s.id == id) {
                        *state = None;
                    }
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn emit(record: Record) {
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            PENDING.fetch_sub(1, Ordering::AcqRel);
        }
    }
    let _done = Done;
    if SHUTDOWN.load(Ordering::Acquire) {
        return;
    }
    Python::attach(|py| {
        let logged = (|| -> PyResult<()> {
            let logger = py.import("logging")?.call_method1("getLogger", (record.logger.as_str(),))?;
            if logger.call_method1("isEnabledFor", (record.level,))?.is_truthy()? {
                let extra = pyo3::types::PyDict::new(py);
                extra.set_item("memguard_thread", record.thread.as_str())?;
                let kwargs = pyo3::types::PyDict::new(py);
                kwargs.set_item("extra", extra)?;
                logger.call_method("log", (record.level, "%s", record.message.as_str()), Some(&kwargs))?;
            }
            Ok(())
        })();
        match logged {
            Ok(()) => {
                FORWARDED.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => e.write_unraisable(py, None),
        }
    });
}
