//! Rust `tracing` events to Java's `System.Logger`.
//!
//! memguard's threads log from places where they must not wait (the reactor reading the kernel)
//! and never attach to the JVM for it: the subscriber installed here formats each event and
//! queues it (bounded; dropped and counted when full or past the rate limit). A Java daemon
//! thread (`io.memguard.LogBridge`) blocks in `nextLog` and hands each record to
//! `System.getLogger(<target with dots>)` — java.util.logging by default, so SLF4J / Log4j
//! bridges see it. Messages the core already rate-limits (refusals, panics) arrive
//! rate-limited; on top of that at most [`RATE`] records a second are forwarded.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use jni::objects::JClass;
use jni::sys::{jint, jlong, jlongArray, jobjectArray};
use jni::JNIEnv;
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

use crate::boundary::guarded;
use crate::errors::jlong_of;
use crate::guard::{jstrings, timeout};

const QUEUE: usize = 1024;
/// Records forwarded per second at most.
const RATE: u64 = 200;

struct Record {
    level: &'static str,
    target: String,
    message: String,
    thread: String,
}

static QUEUE_PAIR: OnceLock<(Sender<Record>, Receiver<Record>)> = OnceLock::new();
static FORWARDED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// 0 error, 1 warn, 2 info, 3 debug, 4 trace: the most verbose level forwarded.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(2);
static WINDOW: AtomicU64 = AtomicU64::new(0);
static IN_WINDOW: AtomicU64 = AtomicU64::new(0);

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn queue() -> &'static (Sender<Record>, Receiver<Record>) {
    QUEUE_PAIR.get_or_init(|| crossbeam_channel::bounded(QUEUE))
}

/// Install the subscriber as this library's global default (its own copy of `tracing`).
pub(crate) fn install() {
    let _ = start();
    let _ = tracing::subscriber::set_global_default(JavaLogSubscriber);
}

fn rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        Level::TRACE => 4,
    }
}

/// The `System.Logger.Level` name.
fn java_level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Within the rate limit: at most `RATE` records in each one-second window.
fn admit() -> bool {
    let now = start().elapsed().as_secs();
    if WINDOW.swap(now, Ordering::Relaxed) != now {
        IN_WINDOW.store(0, Ordering::Relaxed);
    }
    IN_WINDOW.fetch_add(1, Ordering::Relaxed) < RATE
}

struct JavaLogSubscriber;

impl Subscriber for JavaLogSubscriber {
    fn register_callsite(&self, _meta: &'static Metadata<'static>) -> Interest {
        // The level can change at run time (`setLogLevel`): decide per event.
        Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        rank(meta.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &SpanRecord<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if !admit() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let meta = event.metadata();
        let record = Record {
            level: java_level(meta.level()),
            target: meta.target().replace("::", "."),
            message: memguard::render::log_text(event),
            thread: std::thread::current().name().unwrap_or("?").to_owned(),
        };
        if queue().0.try_send(record).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// `nextLog(long timeoutNanos)`: `{level, logger, message, thread}` or null on timeout.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_nextLog<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    timeout_ns: jlong,
) -> jobjectArray {
    guarded(&mut env, std::ptr::null_mut(), |env| match queue().1.recv_timeout(timeout(timeout_ns)) {
        Ok(r) => {
            FORWARDED.fetch_add(1, Ordering::Relaxed);
            jstrings(env, &[r.level, &r.target, &r.message, &r.thread])
        }
        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Ok(std::ptr::null_mut()),
    })
}

/// `setLogLevel(int)`: 0 error, 1 warning, 2 info, 3 debug, 4 trace.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_setLogLevel<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>, level: jint) {
    guarded(&mut env, (), |_| {
        MAX_LEVEL.store(u8::try_from(level.clamp(0, 4)).unwrap_or(2), Ordering::Relaxed);
        tracing::callsite::rebuild_interest_cache();
        Ok(())
    });
}

/// `logStats()`: `{forwarded, dropped}`.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_logStats<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>) -> jlongArray {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let stats = [jlong_of(FORWARDED.load(Ordering::Relaxed)), jlong_of(DROPPED.load(Ordering::Relaxed))];
        let array = env.new_long_array(2)?;
        env.set_long_array_region(&array, 0, &stats)?;
        Ok(array.into_raw())
    })
}
