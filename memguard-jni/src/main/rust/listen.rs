//! The listener feed: the core's `on_event` / `on_level` callbacks queue one JSON message per
//! call (`{"event": <event JSON>, "text": <watch line>}` or `{"from", "to", "snapshot": <JSON>}`) (never touching the JVM), and a Java-owned daemon thread pulls them with
//! `nextListenerMessage` and runs the Java listeners.
//!
//! The feed is its own handle, owned by that Java thread (it frees it when it ends), so the
//! thread never keeps the `MemGuard` object reachable: a guard its application forgot can still
//! be cleaned. Closing the guard drops the callbacks and with them the queue's senders; the
//! waiting thread then gets `null` and ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use jni::objects::JClass;
use jni::sys::{jint, jlong, jstring};
use jni::JNIEnv;
use memguard::bindings::{doorbell, Bell, Doorbell};

use crate::boundary::guarded;
use crate::errors::jlong_of;
use crate::errors::Failure;
use crate::guard::{guard_of, jstr, timeout};
use crate::handle::{self, Kind};

pub(crate) struct Feed {
    rx: Receiver<String>,
    dropped: Arc<AtomicU64>,
    /// Rung by the callbacks: a pipe write wakes this thread on the dispatcher's CPU (see
    /// `memguard::bindings`), where a futex wake could leave it queued behind a busy thread.
    door: Doorbell,
}

impl Kind for Feed {
    const TAG: u64 = 0x6d67_5f66_6565_6431; // "mg_feed1"
    const NAME: &'static str = "listener feed";
}

/// An I/O error of the feed's doorbell, as the core reports I/O errors.
fn feed_io(source: std::io::Error) -> Failure {
    Failure::Core(memguard::Error::Io { path: "listener feed doorbell (pipe)".into(), source })
}

/// The callbacks' end of the feed, shared by the event and the level callback.
struct FeedTx {
    // Field order matters: `tx` drops (the feed disconnects) before the bell's last ring, so the
    // listener thread, woken, sees the feed finished.
    tx: Sender<String>,
    rx: Receiver<String>,
    dropped: Arc<AtomicU64>,
    bell: Bell,
}

impl FeedTx {
    /// Queue `msg`, dropping the oldest message when the queue is full (counted), and wake the
    /// listener thread.
    fn push(&self, msg: String) {
        let mut msg = msg;
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    msg = back;
                    if self.rx.try_recv().is_ok() {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        self.bell.ring();
    }
}

/// `listenerFeed(long guard, int capacity)`: subscribe to every event and level change; returns
/// the feed handle.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_listenerFeed<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
    capacity: jint,
) -> jlong {
    guarded(&mut env, 0, |_| {
        let g = guard_of(h)?;
        let handle = g.open()?;
        let capacity = usize::try_from(capacity).unwrap_or(1).max(1);
        let (tx, rx) = crossbeam_channel::bounded::<String>(capacity);
        let (bell, door) = doorbell().map_err(feed_io)?;
        let dropped = Arc::new(AtomicU64::new(0));
        let feed_tx = Arc::new(FeedTx { tx, rx: rx.clone(), dropped: Arc::clone(&dropped), bell });
        let levels_tx = Arc::clone(&feed_tx);
        let events = handle.on_event(move |ev| {
            let (json, text) = (memguard::render::event_json(ev), memguard::render::event_text(ev));
            feed_tx.push(serde_json::json!({ "event": json, "text": text }).to_string());
        });
        let levels = handle.on_level(move |change, snap| {
            let snap = serde_json::to_string(snap).unwrap_or_default();
            levels_tx.push(serde_json::json!({ "from": change.from, "to": change.to, "snapshot": snap }).to_string());
        });
        g.keep(events)?;
        g.keep(levels)?;
        Ok(handle::into_handle(Feed { rx, dropped, door }))
    })
}

/// `nextListenerMessage(long feed, long timeoutNanos)`: the next message; `""` on timeout;
/// `null` once the guard closed (the feed is finished).
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_nextListenerMessage<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    feed: jlong,
    timeout_ns: jlong,
) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        // SAFETY: the feed handle is owned by the one Java thread that calls this and frees it
        // after its last call; `get` checks the tag.
        let f = unsafe { handle::get::<Feed>(feed) }?;
        let deadline = Instant::now() + timeout(timeout_ns);
        loop {
            match f.rx.try_recv() {
                Ok(msg) => return jstr(env, &msg),
                Err(TryRecvError::Disconnected) => return Ok(std::ptr::null_mut()),
                Err(TryRecvError::Empty) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let rung = f.door.wait_timeout(|| !f.rx.is_empty(), left).map_err(feed_io)?;
            if !rung && f.rx.is_empty() {
                return jstr(env, "");
            }
        }
    })
}

/// `listenerDropped(long feed)`: messages dropped because the listeners fell behind.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_listenerDropped<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    feed: jlong,
) -> jlong {
    guarded(&mut env, 0, |_| {
        // SAFETY: as in `nextListenerMessage`.
        let f = unsafe { handle::get::<Feed>(feed) }?;
        Ok(jlong_of(f.dropped.load(Ordering::Relaxed)))
    })
}

/// `freeFeed(long feed)`: called once by the owning thread when it ends.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_freeFeed<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>, feed: jlong) {
    guarded(&mut env, (), |_| {
        // SAFETY: the owning thread frees its feed once, after its last use.
        unsafe { handle::free::<Feed>(feed) }
    });
}
