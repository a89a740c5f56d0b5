//! Rust `tracing` records to a C log callback, rate-limited.
//!
//! memguard's threads log from places that must not wait (the reactor reading the kernel) and
//! sometimes while holding one of their locks. So the callback must return quickly and must not
//! call memguard functions. At most [`RATE`] records a second reach it; the rest are dropped and
//! counted, and the next record delivered is preceded by a warning saying how many were lost.
//! Records produced while another thread is delivering one are dropped too (never waited for).

use std::ffi::{c_char, c_void, CString};
use std::sync::{Mutex, PoisonError, TryLockError};
use std::time::Instant;

use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

use crate::boundary::call;
use crate::errors::{memguard_result, Failure};

/// At most this many records a second reach the callback.
const RATE: u32 = 50;

/// Severity of a log record (`memguard_set_log_callback`). Values never change.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum memguard_log_level {
    /// Logging off (as `max_level` only).
    MEMGUARD_LOG_OFF = 0,
    /// Errors.
    MEMGUARD_LOG_ERROR = 1,
    /// Warnings (refusals, a source that could not be armed, ...).
    MEMGUARD_LOG_WARN = 2,
    /// Level changes, shedding runs.
    MEMGUARD_LOG_INFO = 3,
    /// Details.
    MEMGUARD_LOG_DEBUG = 4,
    /// Everything.
    MEMGUARD_LOG_TRACE = 5,
}

/// Log callback: `target` is the Rust module (`memguard::watch::reactor`), `message` the text
/// with its fields; both valid during the call only. Runs on the thread that logged (often
/// memguard's reactor): return quickly, call no memguard function.
#[allow(non_camel_case_types)]
pub type memguard_log_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        level: memguard_log_level,
        target: *const c_char,
        message: *const c_char,
    ),
>;

struct Sink {
    cb: unsafe extern "C" fn(*mut c_void, memguard_log_level, *const c_char, *const c_char),
    user_data: *mut c_void,
    max: memguard_log_level,
    tokens: u32,
    refilled: Instant,
    dropped: u64,
}

// SAFETY: the header's contract: the callback and its `user_data` may be used from any thread.
unsafe impl Send for Sink {}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

fn level_of(l: &tracing::Level) -> memguard_log_level {
    match *l {
        tracing::Level::ERROR => memguard_log_level::MEMGUARD_LOG_ERROR,
        tracing::Level::WARN => memguard_log_level::MEMGUARD_LOG_WARN,
        tracing::Level::INFO => memguard_log_level::MEMGUARD_LOG_INFO,
        tracing::Level::DEBUG => memguard_log_level::MEMGUARD_LOG_DEBUG,
        tracing::Level::TRACE => memguard_log_level::MEMGUARD_LOG_TRACE,
    }
}

/// Send memguard's log records of `max_level` and above (`MEMGUARD_LOG_WARN`: warnings and
/// errors) to `callback`, at most 50 a second (the rest are counted and reported). NULL, or
/// `MEMGUARD_LOG_OFF`, turns logging off (the default). Process-wide; replaces the previous
/// callback (which is not called any more once this returns).
///
/// # Errors
/// `MEMGUARD_ERR_INVALID_ARGUMENT` for a `max_level` above `MEMGUARD_LOG_TRACE`.
#[no_mangle]
pub extern "C" fn memguard_set_log_callback(
    callback: memguard_log_callback,
    user_data: *mut c_void,
    max_level: u32,
) -> memguard_result {
    call(|| {
        let max = match max_level {
            0 => memguard_log_level::MEMGUARD_LOG_OFF,
            1 => memguard_log_level::MEMGUARD_LOG_ERROR,
            2 => memguard_log_level::MEMGUARD_LOG_WARN,
            3 => memguard_log_level::MEMGUARD_LOG_INFO,
            4 => memguard_log_level::MEMGUARD_LOG_DEBUG,
            5 => memguard_log_level::MEMGUARD_LOG_TRACE,
            other => return Err(Failure::invalid(format!("max_level {other} is not a memguard_log_level"))),
        };
        let sink = callback.filter(|_| max != memguard_log_level::MEMGUARD_LOG_OFF).map(|cb| Sink {
            cb,
            user_data,
            max,
            tokens: RATE,
            refilled: Instant::now(),
            dropped: 0,
        });
        let on = sink.is_some();
        *SINK.lock().unwrap_or_else(PoisonError::into_inner) = sink;
        if on {
            // Only the first call in the process installs it; later ones find it in place.
            let _ = tracing::subscriber::set_global_default(CSubscriber);
            tracing::callsite::rebuild_interest_cache();
        }
        Ok(memguard_result::MEMGUARD_OK)
    })
}

fn c(text: String) -> CString {
    CString::new(text.replace('\0', "\\0")).unwrap_or_default()
}

struct CSubscriber;

impl Subscriber for CSubscriber {
    fn register_callsite(&self, _meta: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        match SINK.try_lock() {
            Ok(s) => s.as_ref().is_some_and(|s| level_of(meta.level()) <= s.max),
            Err(_) => true, // decided in `event`, which never waits either
        }
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &SpanRecord<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut guard = match SINK.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let Some(sink) = guard.as_mut() else { return };
        let meta = event.metadata();
        let level = level_of(meta.level());
        if level > sink.max {
            return;
        }
        let now = Instant::now();
        if now.duration_since(sink.refilled).as_secs() >= 1 {
            sink.tokens = RATE;
            sink.refilled = now;
        }
        if sink.tokens == 0 {
            sink.dropped += 1;
            return;
        }
        sink.tokens -= 1;
        let target = c(meta.target().to_owned());
        if sink.dropped > 0 {
            let note = c(format!("{} log records dropped (more than {RATE} a second)", sink.dropped));
            sink.dropped = 0;
            // SAFETY: the caller's callback with its own `user_data`; the strings live across
            // the call.
            unsafe { (sink.cb)(sink.user_data, memguard_log_level::MEMGUARD_LOG_WARN, target.as_ptr(), note.as_ptr()) };
        }
        let message = c(memguard::render::log_text(event));
        // SAFETY: as above.
        unsafe { (sink.cb)(sink.user_data, level, target.as_ptr(), message.as_ptr()) };
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
