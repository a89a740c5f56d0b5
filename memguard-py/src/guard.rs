//! The native `Guard`: a [`memguard::MemGuard`] owned by a Python object.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use memguard::shed::ShedderId;
use memguard::watch::{Builder, GuardHandle, Subscription};
use memguard::{Budget, MemGuard};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;
use crate::errors;
use crate::logbridge::SHUTDOWN;
use crate::reservation::Reservation;

/// Bumped in every child after `os.fork()` (`register_at_fork`): a guard remembers the value it
/// was created under, and a mismatch means "inherited from the parent".
pub(crate) static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The longest single wait inside `next_event`, so Ctrl-C and `close()` are noticed promptly.
const WAIT_SLICE: Duration = Duration::from_millis(100);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn seconds(name: &str, secs: f64) -> Result<Duration, memguard::Error> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| memguard::Error::InvalidConfig(format!("{name} must be a finite, non-negative number of seconds")))
}

/// Builder settings from Python keyword arguments (`None` = the default, or `MEMGUARD_*`).
#[derive(Debug, Default, Clone)]
struct Settings {
    warn: Option<f64>,
    critical: Option<f64>,
    hysteresis: Option<f64>,
    soft_limit: Option<f64>,
    root: Option<std::path::PathBuf>,
    pid: Option<u32>,
    eviction_threshold: Option<u64>,
    max_alloc_rate: Option<u64>,
    sample_interval: Option<(f64, f64)>,
    event_hold: Option<f64>,
    psi: Option<bool>,
    cgroup_events: Option<bool>,
    debounce: Option<f64>,
    shed_interval: Option<f64>,
    malloc_trim: Option<bool>,
    trim_interval: Option<f64>,
    redetect_interval: Option<f64>,
    from_env: bool,
}

impl Settings {
    fn builder(&self) -> Result<Builder, memguard::Error> {
        let mut b = if self.from_env { Builder::from_env()? } else { Builder::new() };
        if let Some(v) = self.warn {
            b = b.warn(v);
        }
        if let Some(v) = self.critical {
            b = b.critical(v);
        }
        if let Some(v) = self.hysteresis {
            b = b.hysteresis(v);
        }
        if let Some(v) = self.soft_limit {
            b = b.soft_limit(v);
        }
        if let Some(v) = &self.root {
            b = b.root(v.clone());
        }
        if let Some(v) = self.pid {
            b = b.pid(v);
        }
        if let Some(v) = self.eviction_threshold {
            b = b.eviction_threshold(v);
        }
        if let Some(v) = self.max_alloc_rate {
            b = b.max_alloc_rate(v);
        }
        if let Some((lo, hi)) = self.sample_interval {
            b = b.sample_interval(seconds("sample_interval", lo)?, seconds("sample_interval", hi)?);
        }
        if let Some(v) = self.event_hold {
            b = b.event_hold(seconds("event_hold", v)?);
        }
        if let Some(v) = self.psi {
            b = b.psi(v);
        }
        if let Some(v) = self.cgroup_events {
            b = b.cgroup_events(v);
        }
        if let Some(v) = self.debounce {
            b = b.debounce(seconds("debounce", v)?);
        }
        if let Some(v) = self.shed_interval {
            b = b.shed_interval(seconds("shed_interval", v)?);
        }
        if self.malloc_trim.is_some() || self.trim_interval.is_some() {
            let d = memguard::watch::Config::default();
            let interval = match self.trim_interval {
                Some(s) => seconds("trim_interval", s)?,
                None => d.trim_interval,
            };
            b = b.malloc_trim(self.malloc_trim.unwrap_or(d.malloc_trim), interval);
        }
        if let Some(v) = self.redetect_interval {
            b = b.redetect_interval(seconds("redetect_interval", v)?);
        }
        Ok(b)
    }
}

/// A running memory guard (the native half of `memguard.Guard`; use that class).
///
/// Owns memguard's reactor and dispatcher threads. `close()` — or garbage collection — stops
/// both and releases every file descriptor, with the GIL released while the threads are joined.
/// After `os.fork()` the object is unusable in the child: every method raises
/// `GuardClosedError`, and dropping it there forgets the Rust guard instead of closing it (its
/// threads exist only in the parent, which keeps running its guard).
#[pyclass(module = "memguard._memguard", name = "Guard", frozen)]
pub struct Guard {
    inner: Mutex<Option<MemGuard>>,
    budget: Budget,
    closed: AtomicBool,
    generation: u64,
    pid: u32,
    next_id: AtomicU64,
    subs: Mutex<HashMap<u64, Subscription>>,
    shedders: Mutex<HashMap<u64, ShedderId>>,
}

impl Guard {
    /// Created before a `fork()` of this process (so its threads are not here): one atomic
    /// load, kept up to date by the `register_at_fork` hook.
    fn forked(&self) -> bool {
        self.generation != FORK_GENERATION.load(Ordering::Acquire)
    }

    /// [`forked`](Self::forked), also catching a fork that bypassed Python's fork hooks (a
    /// `getpid()` syscall: only where joining threads is at stake).
    fn forked_strict(&self) -> bool {
        self.forked() || self.pid != std::process::id()
    }

    /// A handle to call the core with, or `GuardClosedError`.
    fn handle(&self, py: Python<'_>) -> PyResult<GuardHandle> {
        if self.forked() {
            return Err(errors::closed(py, true));
        }
        // The lock is released before any Python code runs (building the exception).
        let handle = lock(&self.inner).as_ref().filter(|_| !self.closed.load(Ordering::Acquire)).map(MemGuard::handle);
        handle.ok_or_else(|| errors::closed(py, false))
    }

    fn check_open(&self, py: Python<'_>) -> PyResult<()> {
        if self.forked() {
            Err(errors::closed(py, true))
        } else if self.closed.load(Ordering::Acquire) {
            Err(errors::closed(py, false))
        } else {
            Ok(())
        }
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Call a Python callable from a memguard thread, attached only for the call. Errors (the
/// Python layer already logs exceptions raised by user code) go to `sys.unraisablehook`.
fn call_python<R>(cb: &Py<PyAny>, f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> PyResult<R>, on_error: R) -> R {
    if SHUTDOWN.load(Ordering::Acquire) {
        return on_error;
    }
    Python::attach(|py| {
        let cb = cb.bind(py);
        match f(py, cb) {
            Ok(r) => r,
            Err(e) => {
                e.write_unraisable(py, Some(cb));
                on_error
            }
        }
    })
}

#[pymethods]
impl Guard {
    /// Start a guard: detect the limits, arm every kernel source available and start the
    /// reactor and dispatcher threads (the GIL is released meanwhile).
    ///
    /// Every setting left to `None` takes its `MEMGUARD_*` environment value when `from_env`
    /// is true, else memguard's default. Durations are in seconds.
    #[new]
    #[pyo3(signature = (*, warn=None, critical=None, hysteresis=None, soft_limit=None, root=None, pid=None,
        eviction_threshold=None, max_alloc_rate=None, sample_interval=None, event_hold=None, psi=None,
        cgroup_events=None, debounce=None, shed_interval=None, malloc_trim=None, trim_interval=None,
        redetect_interval=None, from_env=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        warn: Option<f64>,
        critical: Option<f64>,
        hysteresis: Option<f64>,
        soft_limit: Option<f64>,
        root: Option<std::path::PathBuf>,
        pid: Option<u32>,
        eviction_threshold: Option<u64>,
        max_alloc_rate: Option<u64>,
        sample_interval: Option<(f64, f64)>,
        event_hold: Option<f64>,
        psi: Option<bool>,
        cgroup_events: Option<bool>,
        debounce: Option<f64>,
        shed_interval: Option<f64>,
        malloc_trim: Option<bool>,
        trim_interval: Option<f64>,
        redetect_interval: Option<f64>,
        from_env: bool,
    ) -> PyResult<Self> {
        let settings = Settings {
            warn,
            critical,
            hysteresis,
            soft_limit,
            root,
            pid,
            eviction_threshold,
            max_alloc_rate,
            sample_interval,
            event_hold,
            psi,
            cgroup_events,
            debounce,
            shed_interval,
            malloc_trim,
            trim_interval,
            redetect_interval,
            from_env,
        };
        let guard = py.detach(move || settings.builder()?.start()).map_err(|e| errors::core(py, e))?;
        Ok(Guard {
            budget: guard.budget().clone(),
            inner: Mutex::new(Some(guard)),
            closed: AtomicBool::new(false),
            generation: FORK_GENERATION.load(Ordering::Acquire),
            pid: std::process::id(),
            next_id: AtomicU64::new(0),
            subs: Mutex::new(HashMap::new()),
            shedders: Mutex::new(HashMap::new()),
        })
    }

    /// The current level as an int (0 normal, 1 warning, 2 critical): one atomic load.
    fn level(&self, py: Python<'_>) -> PyResult<u8> {
        Ok(self.handle(py)?.level().as_u8())
    }

    /// The latest snapshot as a dict (no syscall), with budget and shedding counters.
    fn snapshot(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let h = self.handle(py)?;
        let s = py.detach(move || h.snapshot());
        convert::serialize(py, &s).map(Bound::unbind)
    }

    /// The limits as last detected, as a dict.
    fn limits(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let h = self.handle(py)?;
        let l = py.detach(move || h.limits());
        convert::serialize(py, &l).map(Bound::unbind)
    }

    /// Every event source tried, armed or not, as a list of dicts.
    fn sources(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let h = self.handle(py)?;
        let s = py.detach(move || h.sources());
        convert::serialize(py, &s).map(Bound::unbind)
    }

    /// The configuration in force (thresholds and the main settings) as a dict.
    fn config(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let h = self.handle(py)?;
        let c = h.config();
        let d = PyDict::new(py);
        d.set_item("warn", c.thresholds.warn)?;
        d.set_item("critical", c.thresholds.critical)?;
        d.set_item("hysteresis", c.thresholds.hysteresis)?;
        d.set_item("soft_limit", c.soft_limit)?;
        d.set_item("event_hold", c.event_hold.as_secs_f64())?;
        d.set_item("eviction_threshold", c.eviction_threshold)?;
        d.set_item("root", c.root.as_ref().map(|r| r.to_string_lossy().into_owned()))?;
        d.set_item("pid", c.pid)?;
        d.set_item("shed_interval", c.shed_interval.as_secs_f64())?;
        d.set_item("malloc_trim", c.malloc_trim)?;
        d.set_item("redetect_interval", c.redetect_interval.as_secs_f64())?;
        d.set_item("queue_capacity", c.queue_capacity)?;
        Ok(d.into_any().unbind())
    }

    /// Call `callback(event_dict)` on every event, on memguard's dispatcher thread. Returns a
    /// subscription id for `unsubscribe`.
    fn on_event(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<u64> {
        let h = self.handle(py)?;
        let sub = h.on_event(move |ev| {
            call_python(
                &callback,
                |py, cb| {
                    let d = convert::serialize(py, ev)?;
                    cb.call1((d,)).map(drop)
                },
                (),
            );
        });
        let id = self.id();
        lock(&self.subs).insert(id, sub);
        Ok(id)
    }

    /// Call `callback(from_level, to_level, snapshot_dict)` on every level change, on the
    /// dispatcher thread. Returns a subscription id for `unsubscribe`.
    fn on_level(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<u64> {
        let h = self.handle(py)?;
        let sub = h.on_level(move |change, snap| {
            call_python(
                &callback,
                |py, cb| {
                    let d = convert::serialize(py, snap)?;
                    cb.call1((change.from.as_u8(), change.to.as_u8(), d)).map(drop)
                },
                (),
            );
        });
        let id = self.id();
        lock(&self.subs).insert(id, sub);
        Ok(id)
    }

    /// Remove a callback (also from inside a callback). Returns whether it was registered.
    fn unsubscribe(&self, py: Python<'_>, id: u64) -> PyResult<bool> {
        let Some(sub) = lock(&self.subs).remove(&id) else { return Ok(false) };
        let h = self.handle(py)?;
        Ok(py.detach(move || h.unsubscribe(sub)))
    }

    /// Register `callback(target_bytes) -> freed_bytes` as a shedder. Returns an id for
    /// `unregister_shedder`.
    fn register_shedder(&self, py: Python<'_>, name: String, priority: i32, callback: Py<PyAny>) -> PyResult<u64> {
        let h = self.handle(py)?;
        let sid = h.register_shedder(name, priority, move |target| {
            call_python(&callback, |_py, cb| cb.call1((target,))?.extract::<u64>(), 0)
        });
        let id = self.id();
        lock(&self.shedders).insert(id, sid);
        Ok(id)
    }

    /// Remove a shedder (also from inside a shedder). Returns whether it was registered.
    fn unregister_shedder(&self, py: Python<'_>, id: u64) -> PyResult<bool> {
        let Some(sid) = lock(&self.shedders).remove(&id) else { return Ok(false) };
        let h = self.handle(py)?;
        Ok(py.detach(move || h.unregister_shedder(sid)))
    }

    /// The report of the latest shedding run as a dict, or None.
    fn last_shed(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let h = self.handle(py)?;
        match py.detach(move || h.last_shed()) {
            Some(r) => convert::serialize(py, &r).map(|o| Some(o.unbind())),
            None => Ok(None),
        }
    }

    /// The next event as a dict, waiting up to `timeout` seconds (None: until one arrives or
    /// the guard closes). None on timeout or once closed. The GIL is released while waiting;
    /// signals (Ctrl-C) are checked every 100 ms.
    #[pyo3(signature = (timeout=None))]
    fn next_event(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        let deadline = match timeout {
            Some(t) => Some(Instant::now() + seconds("timeout", t).map_err(|e| errors::core(py, e))?),
            None => None,
        };
        loop {
            // Re-checked every slice: returns None promptly once closed (or forked).
            let h = match self.handle(py) {
                Ok(h) => h,
                Err(_) => return Ok(None),
            };
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            if let Some(ev) = py.detach(move || h.next_event(slice)) {
                return convert::serialize(py, &ev).map(|o| Some(o.unbind()));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }

    /// Reserve `nbytes` from the soft-limit budget: a `Reservation`, or None when refused.
    /// Never blocks, no syscall.
    fn try_reserve(&self, py: Python<'_>, nbytes: u64) -> PyResult<Option<Reservation>> {
        self.check_open(py)?;
        Ok(self.budget.try_reserve_owned(nbytes).ok().map(Reservation::new))
    }

    /// Reserve `nbytes` or raise `BudgetExceeded` (with the requested and available bytes, the
    /// soft limit and the level).
    fn reserve(&self, py: Python<'_>, nbytes: u64) -> PyResult<Reservation> {
        self.check_open(py)?;
        match self.budget.try_reserve_owned(nbytes) {
            Ok(r) => Ok(Reservation::new(r)),
            Err(e) => Err(errors::budget(py, &e)),
        }
    }

    /// Reserve `nbytes` unconditionally (essential work): always granted, counted against others.
    fn reserve_forced(&self, py: Python<'_>, nbytes: u64) -> PyResult<Reservation> {
        self.check_open(py)?;
        Ok(Reservation::new(self.budget.try_reserve_forced_owned(nbytes)))
    }

    /// Budget counters as a dict (soft limit, usage, outstanding, available, granted, refused).
    fn budget(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.check_open(py)?;
        let b = self.budget.clone();
        let s = py.detach(move || b.stats());
        convert::serialize(py, &s).map(Bound::unbind)
    }

    /// The metrics in the Prometheus text exposition format.
    fn prometheus(&self, py: Python<'_>) -> PyResult<String> {
        let h = self.handle(py)?;
        Ok(py.detach(move || h.prometheus()))
    }

    /// Events dropped from the pull queue because nobody read them.
    fn dropped_events(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.handle(py)?.dropped_events())
    }

    /// Callbacks that panicked in Rust (Python exceptions are caught and logged before that).
    fn callback_panics(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.handle(py)?.callback_panics())
    }

    /// The reactor thread's kernel thread id.
    fn reactor_thread_id(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.handle(py)?.reactor_thread_id())
    }

    /// True once closed, and in a child process after `fork()`.
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.forked_strict()
    }

    /// True in a child process for a guard started by its parent before `fork()`.
    fn is_forked(&self) -> bool {
        self.forked_strict()
    }

    /// Stop both threads and release every fd. Idempotent; callable from any thread, also from
    /// inside a callback. The GIL is released while the threads are joined. In a child after
    /// `fork()` it only marks the guard closed (the Rust guard is forgotten, not joined).
    fn close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Release);
        if self.forked_strict() {
            // Taking the lock is not safe here (a parent thread may have held it at fork time).
            return;
        }
        let taken = lock(&self.inner).take();
        lock(&self.subs).clear();
        lock(&self.shedders).clear();
        if let Some(g) = taken {
            py.detach(move || drop(g));
        }
    }

    fn __repr__(&self) -> String {
        let state = if self.forked() {
            "forked"
        } else if self.closed.load(Ordering::Acquire) {
            "closed"
        } else {
            "running"
        };
        format!("<memguard._memguard.Guard {state}>")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let forked = self.forked_strict();
        let taken = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(g) = taken {
            if forked {
                // Its threads live in the parent: closing would join threads that do not exist.
                std::mem::forget(g);
            } else {
                // Dropped by Python (attached): release the GIL while joining, since the
                // dispatcher may be waiting for it to finish a callback.
                Python::attach(|py| py.detach(move || drop(g)));
            }
        }
    }
}
