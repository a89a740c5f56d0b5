//! The dispatcher thread: runs user `on_event` / `on_level` callbacks, in order and never
//! concurrently, so a slow or panicking callback never delays the reactor (which only queues)
//! nor shedding (its own thread). The queue is bounded: behind a callback that blocks, the
//! oldest events are dropped and counted, never memory.
//!
//! Callbacks live in [`Registry`]s: see there for what removal guarantees (it waits for a
//! running call from other threads; a callback may remove itself).
//!
//! After the level callbacks of a rising level ran, the dispatcher returns freed heap to the OS
//! (`malloc_trim`, rate-limited like after shedding, off with `malloc_trim(false)`): a handler
//! that drops a cache frees memory the allocator would otherwise keep, and the pressure measure
//! — hence the level — could not show it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::level::LevelChange;
use crate::ratelimit::LogLimiter;
use crate::sys::doorbell::{Bell, Doorbell};

use super::event::{Event, EventKind};
use super::guard::{push_dropping_oldest, Shared};
use super::registry::Registry;
use super::snapshot::Snapshot;

/// A level callback: the change and the snapshot that caused it.
pub type LevelCallback = dyn Fn(LevelChange, &Snapshot) + Send + Sync;
/// An event callback.
pub type EventCallback = dyn Fn(&Event) + Send + Sync;

/// What the reactor sends to the dispatcher.
#[derive(Debug)]
pub(crate) enum Msg {
    Event(Event, Arc<Snapshot>),
}

pub(crate) struct Callbacks {
    level: Registry<LevelCallback>,
    event: Registry<EventCallback>,
    panics: AtomicU64,
    panic_log: LogLimiter,
}

impl Default for Callbacks {
    fn default() -> Self {
        Callbacks {
            level: Registry::default(),
            event: Registry::default(),
            panics: AtomicU64::new(0),
            panic_log: LogLimiter::new(Duration::from_secs(5)),
        }
    }
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("level", &self.level.len())
            .field("event", &self.event.len())
            .field("panics", &self.panics.load(Ordering::Relaxed))
            .finish()
    }
}

impl Callbacks {
    pub(crate) fn add_level(&self, f: Box<LevelCallback>) -> u64 {
        self.level.add(0, f)
    }

    pub(crate) fn add_event(&self, f: Box<EventCallback>) -> u64 {
        self.event.add(0, f)
    }

    /// Remove callback `id` (ids are unique across both kinds).
    pub(crate) fn remove(&self, id: u64) -> bool {
        self.level.remove(id) || self.event.remove(id)
    }

    /// Drop every callback (on close: breaks reference cycles through captured handles).
    pub(crate) fn clear(&self) {
        self.level.clear();
        self.event.clear();
    }

    /// Callbacks that panicked so far.
    pub(crate) fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    fn guarded(&self, what: &'static str, f: impl FnOnce()) {
        if catch_unwind(AssertUnwindSafe(f)).is_err() {
            self.panics.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = self.panic_log.check() {
                tracing::error!(callback = what, suppressed, "memguard callback panicked; the guard keeps running");
            }
        }
    }

    /// Deliver one event; returns whether level callbacks ran for a rising level (they usually
    /// free memory: the caller returns freed heap to the OS).
    fn deliver(&self, event: &Event, snapshot: &Snapshot) -> bool {
        for slot in self.event.snapshot() {
            self.guarded("on_event", || {
                slot.call(|f| f(event));
            });
        }
        let mut rising = false;
        if let EventKind::LevelChanged { from, to, .. } = event.kind {
            let change = LevelChange { from, to };
            for slot in self.level.snapshot() {
                self.guarded("on_level", || {
                    rising |= slot.call(|f| f(change, snapshot)).is_some() && to > from;
                });
            }
        }
        rising
    }
}

/// The reactor's end of the dispatcher's queue: the queue's sender and the doorbell that wakes
/// the dispatcher ([`crate::sys::doorbell`]: the woken dispatcher runs on the reactor's CPU as
/// the reactor goes back to sleep, rather than behind a busy application thread).
pub(crate) struct DispatchTx {
    // Field order matters: `tx` drops (the queue disconnects) before the bell's last ring, so
    // the dispatcher, woken, finds the queue disconnected and ends.
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    bell: Bell,
    door_fd: std::os::fd::RawFd,
}

/// The dispatcher's end.
pub(crate) struct DispatchRx {
    rx: Receiver<Msg>,
    door: Doorbell,
}

/// A queue of `capacity` messages (the oldest dropped when full) with its doorbell.
pub(crate) fn queue(capacity: usize) -> std::io::Result<(DispatchTx, DispatchRx)> {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let (bell, door) = crate::sys::doorbell::doorbell()?;
    let door_fd = door.raw();
    Ok((DispatchTx { tx, rx: rx.clone(), bell, door_fd }, DispatchRx { rx, door }))
}

impl DispatchTx {
    /// Queue `msg` (dropping the oldest queued message if the dispatcher is behind: a blocked
    /// callback must not grow memory) and wake the dispatcher. Returns whether one was dropped.
    pub(crate) fn send(&self, msg: Msg) -> bool {
        let dropped = push_dropping_oldest(&self.tx, &self.rx, msg);
        self.bell.ring();
        dropped
    }

    /// Both ends' descriptors (for the fork bookkeeping).
    pub(crate) fn raw_fds(&self) -> [std::os::fd::RawFd; 2] {
        [self.bell.raw(), self.door_fd]
    }
}

impl std::fmt::Debug for DispatchTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchTx").field("queued", &self.tx.len()).finish_non_exhaustive()
    }
}

impl DispatchRx {
    /// The next message; `None` once the reactor is gone.
    fn next(&self) -> Option<Msg> {
        loop {
            match self.rx.try_recv() {
                Ok(msg) => return Some(msg),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            if let Err(e) = self.door.wait(|| !self.rx.is_empty()) {
                // Not expected; the queue's own blocking receive still works (without the
                // scheduling hint).
                tracing::warn!(error = %e, "memguard dispatcher cannot wait on its doorbell; waiting on the queue");
                return self.rx.recv().ok();
            }
        }
    }
}

/// The dispatcher loop: until the reactor drops its sender, or the guard closes.
pub(crate) fn run(shared: &Shared, rx: &DispatchRx) {
    while let Some(msg) = rx.next() {
        if shared.closing.load(Ordering::Acquire) {
            break;
        }
        match msg {
            Msg::Event(event, snapshot) => {
                if shared.callbacks.deliver(&event, &snapshot) && shared.config.malloc_trim {
                    // A handler that dropped a cache freed heap the allocator keeps; without a
                    // trim the measure (and the level) would not show it.
                    let outcome = shared.shedders.trimmer().maybe_trim(std::time::Instant::now());
                    tracing::debug!(?outcome, "malloc_trim after level callbacks");
                }
            }
        }
    }
}
