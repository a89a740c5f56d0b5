//! The dispatcher thread: runs user callbacks, so a slow or panicking callback never delays
//! the reactor (which only sends on a channel).
//!
//! Callbacks are stored behind `Arc`s; the dispatcher clones the list and releases the lock
//! before calling any of them, so a callback may subscribe, unsubscribe (itself included), read
//! the guard or close it without deadlock.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::level::LevelChange;
use crate::ratelimit::LogLimiter;

use super::event::{Event, EventKind};
use super::snapshot::Snapshot;

/// A level callback: the change and the snapshot that caused it.
pub type LevelCallback = dyn Fn(LevelChange, &Snapshot) + Send + Sync;
/// An event callback.
pub type EventCallback = dyn Fn(&Event) + Send + Sync;
/// A hook run on the dispatcher thread (used for shedding): after the level callbacks with the
/// change, and on periodic pressure ticks with `None`.
pub type LevelHook = dyn Fn(Option<LevelChange>, &Snapshot) + Send + Sync;

/// Identifies a registered callback, for [`GuardHandle::unsubscribe`](super::GuardHandle::unsubscribe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subscription(pub(crate) u64);

/// What the reactor sends to the dispatcher.
#[derive(Debug)]
pub(crate) enum Msg {
    Event(Event, Arc<Snapshot>),
    /// Still at Warning or above (sent at most once per shed interval).
    PressureTick(Arc<Snapshot>),
}

pub(crate) struct Callbacks {
    next: AtomicU64,
    level: Mutex<Vec<(u64, Arc<LevelCallback>)>>,
    event: Mutex<Vec<(u64, Arc<EventCallback>)>>,
    hooks: Mutex<Vec<Arc<LevelHook>>>,
    panics: AtomicU64,
    panic_log: LogLimiter,
}

impl Default for Callbacks {
    fn default() -> Self {
        Callbacks {
            next: AtomicU64::new(0),
            level: Mutex::default(),
            event: Mutex::default(),
            hooks: Mutex::default(),
            panics: AtomicU64::new(0),
            panic_log: LogLimiter::new(Duration::from_secs(5)),
        }
    }
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks").field("panics", &self.panics.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl Callbacks {
    fn id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn add_level(&self, f: Arc<LevelCallback>) -> Subscription {
        let id = self.id();
        self.level.lock().unwrap_or_else(PoisonError::into_inner).push((id, f));
        Subscription(id)
    }

    pub(crate) fn add_event(&self, f: Arc<EventCallback>) -> Subscription {
        let id = self.id();
        self.event.lock().unwrap_or_else(PoisonError::into_inner).push((id, f));
        Subscription(id)
    }

    pub(crate) fn add_hook(&self, f: Arc<LevelHook>) {
        self.hooks.lock().unwrap_or_else(PoisonError::into_inner).push(f);
    }

    pub(crate) fn remove(&self, sub: Subscription) -> bool {
        let mut found = false;
        self.level.lock().unwrap_or_else(PoisonError::into_inner).retain(|(id, _)| {
            found |= *id == sub.0;
            *id != sub.0
        });
        self.event.lock().unwrap_or_else(PoisonError::into_inner).retain(|(id, _)| {
            found |= *id == sub.0;
            *id != sub.0
        });
        found
    }

    /// Drop every callback (on close: breaks reference cycles through captured handles).
    pub(crate) fn clear(&self) {
        self.level.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.event.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.hooks.lock().unwrap_or_else(PoisonError::into_inner).clear();
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

    fn deliver(&self, event: &Event, snapshot: &Snapshot) {
        let events: Vec<Arc<EventCallback>> =
            self.event.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(_, f)| Arc::clone(f)).collect();
        for f in events {
            self.guarded("on_event", || f(event));
        }
        if let EventKind::LevelChanged { from, to } = event.kind {
            let change = LevelChange { from, to };
            let levels: Vec<Arc<LevelCallback>> =
                self.level.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(_, f)| Arc::clone(f)).collect();
            for f in levels {
                self.guarded("on_level", || f(change, snapshot));
            }
            let hooks: Vec<Arc<LevelHook>> =
                self.hooks.lock().unwrap_or_else(PoisonError::into_inner).iter().map(Arc::clone).collect();
            for f in hooks {
                self.guarded("level hook", || f(Some(change), snapshot));
            }
        }
    }

    fn tick(&self, snapshot: &Snapshot) {
        let hooks: Vec<Arc<LevelHook>> =
            self.hooks.lock().unwrap_or_else(PoisonError::into_inner).iter().map(Arc::clone).collect();
        for f in hooks {
            self.guarded("pressure hook", || f(None, snapshot));
        }
    }
}

/// The dispatcher loop: until the reactor drops its sender.
pub(crate) fn run(callbacks: &Callbacks, rx: &Receiver<Msg>) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Event(event, snapshot) => callbacks.deliver(&event, &snapshot),
            Msg::PressureTick(snapshot) => callbacks.tick(&snapshot),
        }
    }
}
