//! [`MemGuard`] (owns the threads; closes on drop) and [`GuardHandle`] (a cheap clone to use
//! from callbacks and other threads).

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::budget::{Budget, BudgetExceeded, Reservation};
use crate::error::{Error, Result};
use crate::level::{Level, LevelChange};
use crate::limits::Limits;
use crate::metrics::MetricsInput;
use crate::shed::{ShedReport, Shedders, Trimmer};
use crate::status::SourceStatus;
use crate::sys::{EventFd, ForkFds};

use super::builder::{Builder, Config};
use super::dispatch::{self, Callbacks, DispatchRx};
use super::event::Event;
use super::reactor::Reactor;
use super::sample_requests::{SampleRequest, SampleRequests};
use super::shedding::{self, SampleNote};
use super::snapshot::Snapshot;

/// State shared by the threads and every handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) closing: AtomicBool,
    /// Samples asked for by the shedding thread and the budget (then the waker is signalled).
    pub(crate) sample_requests: SampleRequests,
    /// [`crate::sys::fork_generation`] and the pid when the guard started.
    fork_generation: u64,
    owner_pid: u32,
    pub(crate) fds: ForkFds,
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
    pub(crate) callback_dropped: AtomicU64,
    pub(crate) watcher_panics: AtomicU64,
    /// Samples that failed while the cgroup existed (see `Reactor::sample`).
    pub(crate) sample_errors: AtomicU64,
    pub(crate) failed: OnceLock<String>,
    threads: Mutex<Vec<(ThreadId, JoinHandle<()>)>>,
    pub(crate) reactor_tid: AtomicI32,
    pub(crate) config: Config,
    pub(crate) budget: Budget,
    pub(crate) shedders: Shedders,
    pub(crate) last_shed: Mutex<Option<ShedReport>>,
}

fn read<T: Clone>(l: &RwLock<T>) -> T {
    l.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Queue `item` on a bounded channel, dropping the oldest queued item when it is full.
/// Returns whether an item was dropped. `rx` is a receiver of the same channel.
pub(crate) fn push_dropping_oldest<T>(tx: &Sender<T>, rx: &Receiver<T>, item: T) -> bool {
    let mut item = item;
    let mut dropped = false;
    loop {
        match tx.try_send(item) {
            Ok(()) => return dropped,
            Err(TrySendError::Full(back)) => {
                item = back;
                dropped |= rx.try_recv().is_ok();
            }
            Err(TrySendError::Disconnected(_)) => return dropped,
        }
    }
}

impl Shared {
    /// True in a child process forked while this guard ran (one atomic load in the common
    /// case; `close` also compares the pid, for forks that bypass `pthread_atfork`).
    pub(crate) fn forked(&self) -> bool {
        crate::sys::fork_generation() != self.fork_generation
    }

    /// Queue an event for `next_event`, dropping the oldest when full.
    pub(crate) fn push_pull(&self, ev: Event) {
        if push_dropping_oldest(&self.pull_tx, &self.pull_rx, ev) {
            self.pull_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn remove(&self, target: Target) -> bool {
        match target {
            Target::Callback(id) => self.callbacks.remove(id),
            Target::Shedder(id) => self.shedders.unregister(id),
        }
    }
}

/// What a [`Subscription`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Callback(u64),
    Shedder(u64),
}

/// A registered callback or shedder. **Dropping it removes the callback**, like dropping a
/// [`Reservation`] returns its bytes: one rule for everything a guard hands out. Keep it as
/// long as the callback should run, or call [`detach`](Self::detach) to keep the callback for
/// the guard's whole life.
///
/// Removing waits for a running call of that callback to return when done from another thread
/// (so whatever the callback captured is dropped before `unsubscribe` returns), and does not
/// wait when a callback removes itself (it is then not called again).
#[must_use = "dropping a Subscription removes its callback at once; call .detach() to keep it"]
#[derive(Debug)]
pub struct Subscription {
    target: Target,
    shared: Weak<Shared>,
    detached: bool,
}

impl Subscription {
    fn new(target: Target, shared: &Arc<Shared>) -> Self {
        Subscription { target, shared: Arc::downgrade(shared), detached: false }
    }

    /// A number identifying the callback (unique in the process).
    pub fn id(&self) -> u64 {
        match self.target {
            Target::Callback(id) | Target::Shedder(id) => id,
        }
    }

    /// Remove the callback now. Returns `false` if it was already gone (the guard closed). In
    /// a forked child this does nothing (the guard is closed there).
    pub fn unsubscribe(mut self) -> bool {
        self.detached = true;
        self.shared.upgrade().is_some_and(|s| !s.forked() && s.remove(self.target))
    }

    /// Keep the callback registered until the guard closes, and forget this handle.
    pub fn detach(mut self) {
        self.detached = true;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.detached {
            if let Some(s) = self.shared.upgrade() {
                // In a forked child a parent thread may have held the registry's lock at fork.
                if !s.forked() {
                    s.remove(self.target);
                }
            }
        }
    }
}

/// A running memory guard: a reactor thread (an epoll over every armed kernel source and the
/// adaptive sampler), a dispatcher thread (user callbacks) and a shedding thread.
///
/// Dropping it, or calling [`close`](Self::close), stops the threads and releases every fd.
/// [`handle`](Self::handle) gives a cheap, cloneable [`GuardHandle`] for callbacks and other
/// threads; both offer the same methods.
///
/// # Threads
/// A guard runs three threads: the **reactor** (one epoll over every kernel source, the
/// sampler, the level), the **dispatcher** (user `on_level`/`on_event` callbacks, in order,
/// never concurrently) and the **shedder** (registered shedders and `malloc_trim`). A callback
/// that blocks delays neither the level nor shedding: the dispatcher's queue is bounded and
/// drops its oldest events when full (counted in [`Snapshot::callback_events_dropped`]), and
/// shedding requests go to their own thread, coalesced.
///
/// # Fork
/// A child process created by `fork()` while a guard runs inherits the guard's memory but none
/// of its threads. In the child the guard is closed: [`is_closed`](GuardHandle::is_closed) is
/// true, getters return the last values, and dropping or closing it closes the child's copies
/// of the guard's file descriptors (eventfds, PSI triggers, open cgroup files) without joining
/// threads that do not exist, without waking the parent's reactor and without taking a lock a
/// parent thread may have held at fork time. The parent's guard is not affected (PSI triggers
/// and v1 registrations belong to the open file, which the parent still holds). The child may
/// start a guard of its own.
///
/// ```no_run
/// let guard = memguard::MemGuard::start()?;
/// let handle = guard.handle();
/// guard
///     .on_event(move |ev| {
///         if let memguard::EventKind::OomKill { delta, .. } = ev.kind {
///             eprintln!("{delta} process(es) of this cgroup were OOM-killed; level {}", handle.level());
///         }
///     })
///     .detach();
/// # Ok::<(), memguard::Error>(())
/// ```
#[derive(Debug)]
pub struct MemGuard {
    shared: Arc<Shared>,
}

/// A cheap, cloneable reference to a running guard, safe to capture in callbacks: it does not
/// keep the threads alive, and calling any method from a callback is fine (including
/// [`close`](Self::close)).
#[derive(Debug, Clone)]
pub struct GuardHandle {
    shared: Arc<Shared>,
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
        let (dispatch_tx, dispatch_rx) = dispatch::queue(config.queue_capacity)
            .map_err(|source| Error::Io { path: "dispatcher doorbell (socketpair)".into(), source })?;
        let (shed_tx, shed_rx) = crossbeam_channel::bounded::<SampleNote>(1);
        let (closed_tx, closed_rx) = crossbeam_channel::bounded(0);
        let shared = Arc::new(Shared {
            closing: AtomicBool::new(false),
            sample_requests: SampleRequests::default(),
            fork_generation: crate::sys::fork_generation(),
            owner_pid: crate::sys::process_id(),
            fds: ForkFds::default(),
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
            callback_dropped: AtomicU64::new(0),
            watcher_panics: AtomicU64::new(0),
            sample_errors: AtomicU64::new(0),
            failed: OnceLock::new(),
            threads: Mutex::new(Vec::new()),
            reactor_tid: AtomicI32::new(0),
            budget: Budget::new(u64::MAX),
            shedders: Shedders::with_trimmer(Trimmer::new(config.trim_interval, config.malloc_trim)),
            last_shed: Mutex::new(None),
            config,
        });
        // The budget asks the reactor for samples as reservations churn (a weak reference: the
        // budget lives inside `shared`).
        let weak = Arc::downgrade(&shared);
        shared.budget.on_sample_request(Box::new(move |urgency| {
            if let Some(s) = weak.upgrade() {
                s.sample_requests.request(match urgency {
                    crate::budget::SampleUrgency::Soon => SampleRequest::SettleSoon,
                    crate::budget::SampleUrgency::Now => SampleRequest::SettleNow,
                });
                let _ = s.waker.signal();
            }
        }));
        // Detection and arming happen here, on the caller's thread, so errors reach the caller.
        let reactor = Reactor::new(Arc::clone(&shared), dispatch_tx, shed_tx, shed_rx.clone())?;
        let guard = MemGuard { shared: Arc::clone(&shared) };
        match spawn_threads(&shared, reactor, dispatch_rx, shed_rx) {
            Ok(()) => Ok(guard),
            Err(e) => {
                // The reactor (and with it the channels' senders) is gone: the threads that did
                // start see their channels close and end; closing joins them.
                drop(guard);
                Err(e)
            }
        }
    }

    /// A handle for callbacks and other threads.
    pub fn handle(&self) -> GuardHandle {
        GuardHandle { shared: Arc::clone(&self.shared) }
    }
}

impl Drop for MemGuard {
    fn drop(&mut self) {
        close(&self.shared);
    }
}

/// Start the dispatcher, shedding and reactor threads, recording each as it starts.
fn spawn_threads(
    shared: &Arc<Shared>,
    reactor: Reactor,
    dispatch_rx: DispatchRx,
    shed_rx: Receiver<SampleNote>,
) -> Result<()> {
    let spawn = |name: &'static str, f: Box<dyn FnOnce() + Send>| -> Result<()> {
        let h = std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map_err(|source| Error::ThreadSpawn { thread: name, source })?;
        shared.threads.lock().unwrap_or_else(PoisonError::into_inner).push((h.thread().id(), h));
        Ok(())
    };
    let s = Arc::clone(shared);
    spawn("memguard-dispatch", Box::new(move || dispatch::run(&s, &dispatch_rx)))?;
    let s = Arc::clone(shared);
    spawn("memguard-shed", Box::new(move || shedding::run(&s, &shed_rx)))?;
    spawn("memguard-reactor", Box::new(move || reactor.run()))
}

/// Stop the threads and release every fd (see [`GuardHandle::close`]).
fn close(shared: &Arc<Shared>) {
    if shared.forked() || crate::sys::process_id() != shared.owner_pid {
        // A forked child: no threads to join, no lock to take, nobody to wake (the waker is
        // shared with the parent's reactor). Close our copies of the descriptors.
        // No logging here: a subscriber may take locks a parent thread held at fork time.
        if !shared.closing.swap(true, Ordering::AcqRel) {
            shared.fds.close_inherited();
        }
        return;
    }
    shared.closing.store(true, Ordering::Release);
    drop(shared.closed_tx.lock().unwrap_or_else(PoisonError::into_inner).take());
    if let Err(e) = shared.waker.signal() {
        tracing::warn!(error = %e, "cannot wake the memguard reactor");
    }
    let me = std::thread::current().id();
    let threads: Vec<(ThreadId, JoinHandle<()>)> =
        std::mem::take(&mut *shared.threads.lock().unwrap_or_else(PoisonError::into_inner));
    for (id, t) in threads {
        if id == me {
            // Closing from a callback: this thread ends by itself once the callback returns.
            // Keep its handle, so that a later close or drop by the owner still waits for it.
            shared.threads.lock().unwrap_or_else(PoisonError::into_inner).push((id, t));
            continue;
        }
        let _ = t.join();
    }
    shared.callbacks.clear();
    shared.shedders.clear();
}

/// The methods of [`MemGuard`] and [`GuardHandle`] (one implementation, both types).
macro_rules! guard_api {
    ($ty:ident) => {
        impl $ty {
            /// The current level (one atomic load).
            pub fn level(&self) -> Level {
                Level::from_u8(self.shared.level.load(Ordering::Acquire))
            }

            /// The latest snapshot (no syscall), with the budget and shedding counters.
            pub fn snapshot(&self) -> Snapshot {
                let s = &self.shared;
                // In a forked child a parent thread may have held the lock at fork time.
                let mut snap = match s.snapshot.try_read() {
                    Ok(g) => (**g).clone(),
                    Err(_) if s.forked() => Snapshot::default(),
                    Err(_) => (*read(&s.snapshot)).clone(),
                };
                snap.budget = Some(s.budget.stats());
                snap.shed = Some(s.shedders.stats());
                snap.callback_events_dropped = s.callback_dropped.load(Ordering::Relaxed);
                snap.watcher_panics = s.watcher_panics.load(Ordering::Relaxed);
                snap.failed = s.failed.get().cloned();
                snap
            }

            /// The soft-limit budget, fed by this guard: its soft limit follows the effective
            /// limit (`soft_limit` fraction), its usage the pressure measure, its level this
            /// guard's.
            pub fn budget(&self) -> &Budget {
                &self.shared.budget
            }

            /// Reserve `bytes` from the budget ([`Budget::try_reserve`]): never blocks, no syscall.
            /// The reservation borrows this guard; `self.budget().try_reserve_owned(bytes)` gives
            /// one that does not ([`Budget::try_reserve_owned`]).
            ///
            /// # Errors
            /// [`BudgetExceeded`] with the requested and available bytes, the soft limit and the level.
            pub fn try_reserve(&self, bytes: u64) -> std::result::Result<Reservation<'_>, BudgetExceeded> {
                self.shared.budget.try_reserve(bytes)
            }

            /// Register a cache that can free memory: `f(target_bytes)` frees what it can and
            /// returns the bytes freed. Under pressure memguard asks shedders, lowest `priority`
            /// first, on its shedding thread, for the bytes needed to bring the pressure measure
            /// below the warning threshold's hysteresis band with a 5% margin (at least 5% of
            /// the limit when a kernel event raised the level), then (by default) `malloc_trim`s.
            /// It asks on entering Warning or Critical, again whenever memory regrows past the
            /// warning threshold after a run or grows by another 5% of the limit, and while the
            /// pressure persists at most once per shed interval; also when the budget refused
            /// reservations since the previous run. Dropping the returned
            /// [`Subscription`] unregisters the shedder.
            pub fn register_shedder(
                &self,
                name: impl Into<String>,
                priority: i32,
                f: impl Fn(u64) -> u64 + Send + Sync + 'static,
            ) -> Subscription {
                let id = self.shared.shedders.register(name, priority, f);
                Subscription::new(Target::Shedder(id), &self.shared)
            }

            /// The report of the latest shedding run, if any.
            pub fn last_shed(&self) -> Option<ShedReport> {
                self.shared.last_shed.lock().unwrap_or_else(PoisonError::into_inner).clone()
            }

            /// Everything the Prometheus rendering exports.
            pub(crate) fn metrics(&self) -> MetricsInput {
                let s = self.snapshot();
                MetricsInput {
                    limit_bytes: s.limit_bytes,
                    usage_bytes: Some(s.usage_bytes),
                    working_set_bytes: Some(s.working_set_bytes),
                    unreclaimable_bytes: Some(s.unreclaimable_bytes),
                    seconds_to_limit: s.time_to_limit,
                    soft_limit_bytes: Some(self.shared.budget.soft_limit()).filter(|l| *l != u64::MAX),
                    level: s.level,
                    seconds_in_level: s.seconds_in_level,
                    events: s.events_total.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
                    budget: s.budget,
                    shed: s.shed,
                    psi_some_avg10: s.psi.map(|p| p.some_avg10),
                    psi_full_avg10: s.psi.map(|p| p.full_avg10),
                    callback_events_dropped: Some(s.callback_events_dropped),
                    watcher_panics: Some(s.watcher_panics),
                    watcher_failed: Some(s.failed.is_some()),
                    sample_errors: Some(self.shared.sample_errors.load(Ordering::Relaxed)),
                    sources_armed: self.sources().into_iter().map(|st| (st.name, st.armed)).collect(),
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

            /// Call `f` on every level change, on the dispatcher thread (never concurrently
            /// with another callback of this guard). Dropping the returned [`Subscription`]
            /// removes it.
            pub fn on_level(&self, f: impl Fn(LevelChange, &Snapshot) + Send + Sync + 'static) -> Subscription {
                let id = self.shared.callbacks.add_level(Box::new(f));
                Subscription::new(Target::Callback(id), &self.shared)
            }

            /// Call `f` on every event (kernel events and level changes), on the dispatcher
            /// thread. Dropping the returned [`Subscription`] removes it.
            pub fn on_event(&self, f: impl Fn(&Event) + Send + Sync + 'static) -> Subscription {
                let id = self.shared.callbacks.add_event(Box::new(f));
                Subscription::new(Target::Callback(id), &self.shared)
            }

            /// The next event, waiting up to `timeout`; `None` on timeout or once closed. Events
            /// are queued from the start (up to the queue capacity; the oldest are dropped beyond
            /// it, see [`dropped_events`](Self::dropped_events)), for runtimes that prefer their
            /// own thread. A waiter returns at once when the guard is closed (with what is still
            /// queued, if any). Any timeout is fine, `Duration::MAX` included.
            pub fn next_event(&self, timeout: Duration) -> Option<Event> {
                let s = &self.shared;
                if s.forked() {
                    return None;
                }
                // Queued events first: `select!` picks at random among ready operations, and an
                // expired timer is ready too.
                if let Ok(ev) = s.pull_rx.try_recv() {
                    return Some(ev);
                }
                if self.is_closed() || timeout.is_zero() {
                    return None;
                }
                let never = crossbeam_channel::never();
                let timer = match std::time::Instant::now().checked_add(timeout) {
                    Some(at) => crossbeam_channel::at(at),
                    None => never.clone(),
                };
                crossbeam_channel::select! {
                    recv(s.pull_rx) -> ev => ev.ok(),
                    recv(s.closed_rx) -> _ => s.pull_rx.try_recv().ok(),
                    recv(timer) -> _ => None,
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

            /// True once [`close`](Self::close) was called, and in a child process forked while
            /// the guard ran.
            pub fn is_closed(&self) -> bool {
                self.shared.closing.load(Ordering::Acquire) || self.shared.forked()
            }

            /// The reactor thread's kernel thread id (for CPU accounting).
            pub fn reactor_thread_id(&self) -> i32 {
                self.shared.reactor_tid.load(Ordering::Relaxed)
            }

            /// Stop the threads and release every fd. Idempotent; callable from any thread,
            /// including from inside a callback (that callback's thread then finishes after it
            /// returns). In a forked child, closes the child's copies of the descriptors only
            /// (see [`MemGuard`], *Fork*).
            pub fn close(&self) {
                close(&self.shared);
            }
        }
    };
}

guard_api!(MemGuard);
guard_api!(GuardHandle);
