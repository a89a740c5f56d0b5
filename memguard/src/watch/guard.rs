//! [`MemGuard`] (owns the threads; closes on drop) and [`GuardHandle`] (a cheap clone to use
//! from callbacks and other threads).

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::budget::{Budget, BudgetExceeded, Reservation};
use crate::error::{Error, Result};
use crate::level::{Level, LevelChange};
use crate::limits::Limits;
use crate::metrics::MetricsInput;
use crate::shed::{target_for, ShedPolicy, ShedReport, ShedderId, Shedders, Trimmer, DEFAULT_MARGIN};
use crate::status::SourceStatus;
use crate::sys::EventFd;

use super::builder::{Builder, Config};
use super::dispatch::{self, Callbacks, Subscription};
use super::event::Event;
use super::reactor::Reactor;
use super::snapshot::Snapshot;

/// State shared by the reactor, the dispatcher and every handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) closing: AtomicBool,
    pub(crate) waker: EventFd,
    pub(crate) level: AtomicU8,
    pub(crate) snapshot: RwLock<Arc<Snapshot>>,
    pub(crate) limits: RwLock<Limits>,
    pub(crate) sources: RwLock<Vec<SourceStatus>>,
    pub(crate) callbacks: Callbacks,
    pull_tx: Sender<Event>,
    pull_rx: Receiver<Event>,
    /// Dropped on close, which disconnects `closed_rx` and wakes every `next_event` waiter.
    closed_tx: Mutex<Option<Sender<()>>>,
    closed_rx: Receiver<()>,
    pub(crate) pull_dropped: AtomicU64,
    threads: Mutex<Vec<(ThreadId, JoinHandle<()>)>>,
    pub(crate) reactor_tid: AtomicI32,
    pub(crate) config: Config,
    pub(crate) budget: Budget,
    shedders: Shedders,
    shed_policy: Mutex<ShedPolicy>,
    last_shed: Mutex<Option<ShedReport>>,
}

fn read<T: Clone>(l: &RwLock<T>) -> T {
    l.read().unwrap_or_else(PoisonError::into_inner).clone()
}

impl Shared {
    /// Shedding (a hook on the dispatcher thread): on entering Warning or Critical (`change`),
    /// and on pressure ticks (`None`) while the level stays at Warning or above with the working
    /// set still above the warning threshold — at most once per shed interval, except that
    /// escalating to Critical always sheds.
    fn shed_on_level(&self, change: Option<LevelChange>, snap: &Snapshot) {
        let th = self.config.thresholds;
        let entering = change.is_some_and(|c| c.to > c.from && c.to >= Level::Warning);
        let still_above =
            change.is_none() && snap.level >= Level::Warning && snap.used_fraction.is_some_and(|f| f >= th.warn);
        if !entering && !still_above {
            return;
        }
        let now = std::time::Instant::now();
        {
            let mut policy = self.shed_policy.lock().unwrap_or_else(PoisonError::into_inner);
            if change.is_some_and(|c| c.from == Level::Warning && c.to == Level::Critical) {
                policy.reset(); // escalation always sheds again
            }
            if !policy.should_shed(now) {
                tracing::debug!(level = snap.level.as_str(), "shedding skipped: ran less than shed_interval ago");
                return;
            }
        }
        if self.shedders.is_empty() {
            return;
        }
        let Some(limit) = snap.limit_bytes else { return };
        // Usage-driven levels: back under the warning threshold with margin. Kernel-driven
        // levels (PSI, memory.high) with usage below it: at least the margin.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let floor = (limit as f64 * DEFAULT_MARGIN) as u64;
        let target = target_for(snap.working_set_bytes, limit, self.config.thresholds.warn, DEFAULT_MARGIN).max(floor);
        let report = self.shedders.shed(target);
        let trimmed = if report.freed_bytes > 0 && self.config.malloc_trim {
            Some(self.shedders.trimmer().maybe_trim(now))
        } else {
            None
        };
        tracing::info!(
            level = snap.level.as_str(),
            entering,
            target_bytes = target,
            freed_bytes = report.freed_bytes,
            shedders = report.steps.len(),
            trim = ?trimmed,
            "memguard shed caches"
        );
        *self.last_shed.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
    }

    /// Queue an event for `next_event`, dropping the oldest when full.
    pub(crate) fn push_pull(&self, ev: Event) {
        let mut ev = ev;
        loop {
            match self.pull_tx.try_send(ev) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) => {
                    ev = back;
                    if self.pull_rx.try_recv().is_ok() {
                        self.pull_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

/// A running memory guard: one reactor thread (an epoll over every armed kernel source and
/// the adaptive sampler) and one dispatcher thread (user callbacks).
///
/// Dropping it, or calling [`close`](GuardHandle::close), stops both threads and releases every fd.
/// It dereferences to a [`GuardHandle`] for everything else.
///
/// ```no_run
/// let guard = memguard::MemGuard::start()?;
/// let handle = guard.handle();
/// guard.on_event(move |ev| {
///     if let memguard::watch::EventKind::OomKill { delta, .. } = ev.kind {
///         eprintln!("{delta} process(es) of this cgroup were OOM-killed; level {}", handle.level());
///     }
/// });
/// # Ok::<(), memguard::Error>(())
/// ```
#[derive(Debug)]
pub struct MemGuard {
    handle: GuardHandle,
}

/// A cheap, cloneable reference to a running guard, safe to capture in callbacks: it does not
/// keep the threads alive, and calling any method from a callback is fine (including
/// [`close`](Self::close)).
#[derive(Debug, Clone)]
pub struct GuardHandle {
    pub(crate) shared: Arc<Shared>,
}

impl MemGuard {
    /// Start a guard configured from the `MEMGUARD_*` environment (see [`Builder::from_env`]).
    ///
    /// # Errors
    /// As [`Builder::start`].
    pub fn start() -> Result<MemGuard> {
        Builder::from_env()?.start()
    }

    /// A builder with defaults (not reading the environment; see [`Builder::from_env`]).
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn start_with(config: Config) -> Result<MemGuard> {
        let io_err = |what: &str, source: std::io::Error| Error::Io { path: what.into(), source };
        let (pull_tx, pull_rx) = crossbeam_channel::bounded(config.queue_capacity.max(1));
        let (dispatch_tx, dispatch_rx) = crossbeam_channel::unbounded();
        let (closed_tx, closed_rx) = crossbeam_channel::bounded(0);
        let shared = Arc::new(Shared {
            closing: AtomicBool::new(false),
            waker: EventFd::new().map_err(|e| io_err("eventfd", e))?,
            level: AtomicU8::new(Level::Normal.as_u8()),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            limits: RwLock::new(Limits::host_only(None)),
            sources: RwLock::new(Vec::new()),
            callbacks: Callbacks::default(),
            pull_tx,
            pull_rx,
            closed_tx: Mutex::new(Some(closed_tx)),
            closed_rx,
            pull_dropped: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
            reactor_tid: AtomicI32::new(0),
            budget: Budget::new(u64::MAX),
            shedders: Shedders::with_trimmer(Trimmer::new(config.trim_interval, config.malloc_trim)),
            shed_policy: Mutex::new(ShedPolicy::new(config.shed_interval)),
            last_shed: Mutex::new(None),
            config,
        });
        let weak = Arc::downgrade(&shared);
        shared.callbacks.add_hook(Arc::new(move |change, snap| {
            if let Some(s) = weak.upgrade() {
                s.shed_on_level(change, snap);
            }
        }));
        // Detection and arming happen here, on the caller's thread, so errors reach the caller.
        let reactor = Reactor::new(Arc::clone(&shared), dispatch_tx)?;
        let s = Arc::clone(&shared);
        let dispatcher = std::thread::Builder::new()
            .name("memguard-dispatch".into())
            .spawn(move || dispatch::run(&s.callbacks, &dispatch_rx))
            .map_err(|e| io_err("thread spawn", e))?;
        let reactor_thread = std::thread::Builder::new()
            .name("memguard-reactor".into())
            .spawn(move || reactor.run())
            .map_err(|e| io_err("thread spawn", e))?;
        {
            let mut t = shared.threads.lock().unwrap_or_else(PoisonError::into_inner);
            t.push((reactor_thread.thread().id(), reactor_thread));
            t.push((dispatcher.thread().id(), dispatcher));
        }
        Ok(MemGuard { handle: GuardHandle { shared } })
    }

    /// A handle for callbacks and other threads.
    pub fn handle(&self) -> GuardHandle {
        self.handle.clone()
    }
}

impl std::ops::Deref for MemGuard {
    type Target = GuardHandle;
    fn deref(&self) -> &GuardHandle {
        &self.handle
    }
}

impl Drop for MemGuard {
    fn drop(&mut self) {
        self.handle.close();
    }
}

impl GuardHandle {
    /// The current level (one atomic load).
    pub fn level(&self) -> Level {
        Level::from_u8(self.shared.level.load(Ordering::Acquire))
    }

    /// The latest snapshot (no syscall), with the budget and shedding counters.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = (*read(&self.shared.snapshot)).clone();
        s.budget = Some(self.shared.budget.stats());
        s.shed = Some(self.shared.shedders.stats());
        s
    }

    /// The soft-limit budget, fed by this guard: its soft limit follows the effective limit
    /// (`soft_limit` fraction), its usage the latest working-set sample, its level this guard's.
    pub fn budget(&self) -> &Budget {
        &self.shared.budget
    }

    /// Reserve `bytes` from the budget ([`Budget::try_reserve`]): never blocks, no syscall.
    /// The reservation borrows this handle; `self.budget().try_reserve_owned(bytes)` gives one
    /// that does not ([`Budget::try_reserve_owned`]).
    ///
    /// # Errors
    /// [`BudgetExceeded`] with the requested and available bytes, the soft limit and the level.
    pub fn try_reserve(&self, bytes: u64) -> std::result::Result<Reservation<'_>, BudgetExceeded> {
        self.shared.budget.try_reserve(bytes)
    }

    /// Register a cache that can free memory: `f(target_bytes)` frees what it can and returns
    /// the bytes freed. On entering Warning, and again on entering Critical, memguard asks
    /// shedders lowest `priority` first for the bytes needed to bring the working set below
    /// the warning threshold's hysteresis band with a 5% margin (at least 5% of the limit when
    /// a kernel event raised the level), on the dispatcher thread, then (by default)
    /// `malloc_trim`s. While the working set stays above the warning threshold it asks again
    /// at most once per shed interval (default 1 s), so a budget that refuses work at the soft
    /// limit never leaves a full cache in place.
    pub fn register_shedder(
        &self,
        name: impl Into<String>,
        priority: i32,
        f: impl Fn(u64) -> u64 + Send + Sync + 'static,
    ) -> ShedderId {
        self.shared.shedders.register(name, priority, f)
    }

    /// Remove a shedder (also from inside a shedder).
    pub fn unregister_shedder(&self, id: ShedderId) -> bool {
        self.shared.shedders.unregister(id)
    }

    /// The report of the latest shedding run, if any.
    pub fn last_shed(&self) -> Option<ShedReport> {
        self.shared.last_shed.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Everything the Prometheus rendering exports (see [`crate::metrics`]).
    pub fn metrics(&self) -> MetricsInput {
        let s = self.snapshot();
        MetricsInput {
            limit_bytes: s.limit_bytes,
            usage_bytes: Some(s.usage_bytes),
            working_set_bytes: Some(s.working_set_bytes),
            soft_limit_bytes: Some(self.shared.budget.soft_limit()).filter(|l| *l != u64::MAX),
            level: s.level,
            seconds_in_level: s.seconds_in_level,
            events: s.events_total.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            budget: s.budget,
            shed: s.shed,
            psi_some_avg10: s.psi.map(|p| p.some_avg10),
            psi_full_avg10: s.psi.map(|p| p.full_avg10),
            cgroup: self.limits().cgroup.as_str().to_owned(),
        }
    }

    /// The metrics in the Prometheus text format, for a service's own `/metrics` endpoint.
    pub fn prometheus(&self) -> String {
        crate::metrics::render_prometheus(&self.metrics())
    }

    /// The limits as last detected.
    pub fn limits(&self) -> Limits {
        read(&self.shared.limits)
    }

    /// Every event source tried, armed or not, with details.
    pub fn sources(&self) -> Vec<SourceStatus> {
        read(&self.shared.sources)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Call `f` on every level change, on the dispatcher thread.
    pub fn on_level(&self, f: impl Fn(LevelChange, &Snapshot) + Send + Sync + 'static) -> Subscription {
        self.shared.callbacks.add_level(Arc::new(f))
    }

    /// Call `f` on every event (kernel events and level changes), on the dispatcher thread.
    pub fn on_event(&self, f: impl Fn(&Event) + Send + Sync + 'static) -> Subscription {
        self.shared.callbacks.add_event(Arc::new(f))
    }

    /// Remove a callback (also from inside a callback). Returns whether it was registered.
    pub fn unsubscribe(&self, sub: Subscription) -> bool {
        self.shared.callbacks.remove(sub)
    }

    /// The next event, waiting up to `timeout`; `None` on timeout or once closed. Events are
    /// queued from the start (up to the queue capacity; the oldest are dropped beyond it, see
    /// [`dropped_events`](Self::dropped_events)), for runtimes that prefer their own thread.
    /// A waiter returns at once when the guard is closed (with what is still queued, if any).
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        if self.is_closed() {
            return self.shared.pull_rx.try_recv().ok();
        }
        crossbeam_channel::select! {
            recv(self.shared.pull_rx) -> ev => ev.ok(),
            recv(self.shared.closed_rx) -> _ => self.shared.pull_rx.try_recv().ok(),
            default(timeout) => None,
        }
    }

    /// Return freed heap to the OS now (`malloc_trim(0)` on glibc), subject to the same
    /// minimum interval as the trims after shedding — for callbacks that free memory
    /// themselves rather than through a registered shedder.
    pub fn malloc_trim(&self) -> crate::shed::TrimOutcome {
        self.shared.shedders.trimmer().maybe_trim(std::time::Instant::now())
    }

    /// Events dropped from the pull queue because nobody read them.
    pub fn dropped_events(&self) -> u64 {
        self.shared.pull_dropped.load(Ordering::Relaxed)
    }

    /// Callbacks that panicked (caught and logged).
    pub fn callback_panics(&self) -> u64 {
        self.shared.callbacks.panics()
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }

    /// The reactor thread's kernel thread id (for CPU accounting).
    pub fn reactor_thread_id(&self) -> i32 {
        self.shared.reactor_tid.load(Ordering::Relaxed)
    }

    /// Stop both threads and release every fd. Idempotent; callable from any thread,
    /// including from inside a callback (the dispatcher then finishes after that callback).
    pub fn close(&self) {
        self.shared.closing.store(true, Ordering::Release);
        drop(self.shared.closed_tx.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Err(e) = self.shared.waker.signal() {
            tracing::warn!(error = %e, "cannot wake the memguard reactor");
        }
        let me = std::thread::current().id();
        let threads: Vec<(ThreadId, JoinHandle<()>)> =
            std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for (id, t) in threads {
            if id == me {
                continue; // closing from a callback: this thread ends by itself
            }
            let _ = t.join();
        }
        self.shared.callbacks.clear();
    }
}
