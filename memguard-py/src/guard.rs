//! The native `Guard`: a [`memguard::MemGuard`] owned by a Python object.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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

/// Seconds from Python as a `Duration` (ranges are the core builder's to check).
fn seconds(name: &'static str, secs: f64) -> Result<Duration, memguard::Error> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        memguard::Error::invalid_config(name, secs.to_string(), "must be a finite, non-negative number of seconds")
    })
}

/// `"text"` or `"json"` as "is JSON".
pub(crate) fn is_json(py: Python<'_>, format: &str) -> PyResult<bool> {
    match format {
        "text" => Ok(false),
        "json" => Ok(true),
        other => Err(errors::core(
            py,
            memguard::Error::invalid_config("format", other.to_owned(), "must be \"text\" or \"json\""),
        )),
    }
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
    horizon: Option<(f64, f64)>,
    psi: Option<bool>,
    cgroup_events: Option<bool>,
    debounce: Option<f64>,
    shed_interval: Option<f64>,
    malloc_trim: Option<bool>,
    trim_interval: Option<f64>,
    redetect_interval: Option<f64>,
    limit_override: Option<u64>,
    queue_capacity: Option<usize>,
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
        if let Some((w, c)) = self.horizon {
            b = b.horizon(seconds("horizon", w)?, seconds("horizon", c)?);
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
                None => d.trim_interval(),
            };
            b = b.malloc_trim(self.malloc_trim.unwrap_or(d.malloc_trim()), interval);
        }
        if let Some(v) = self.redetect_interval {
            b = b.redetect_interval(seconds("redetect_interval", v)?);
        }
        if let Some(v) = self.limit_override {
            b = b.limit_override(v);
        }
        if let Some(v) = self.queue_capacity {
            b = b.queue_capacity(v);
        }
        Ok(b)
    }
}

/// A running memory guard (the native half of `memguard.Guard`; use that class).
///
/// Owns memguard's reactor and dispatcher threads. `close()` — or garbage collection — stops
/// both and releases every file descriptor, with the GIL released while the threads are joined.
/// After `os.fork()` the object is unusable in the child: every method raises
/// `GuardClosedError`, and dropping or closing it there closes the child's copies of the guard's
/// descriptors without joining threads (they exist only in the parent, which keeps running its
/// guard).
#[pyclass(module = "memguard._memguard", name = "Guard", frozen)]
pub struct Guard {
    inner: Mutex<Option<MemGuard>>,
    budget: Budget,
    closed: AtomicBool,
    generation: u64,
    pid: u32,
    next_id: AtomicU64,
    subs: Mutex<HashMap<u64, Subscription>>,
    shedders: Mutex<HashMap<u64, Subscription>>,
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

    /// The next event, waiting up to `timeout` seconds (None: until one arrives or the guard
    /// closes), with the GIL released and signals checked every slice.
    fn wait_event(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<memguard::Event>> {
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
                return Ok(Some(ev));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
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
        eviction_threshold=None, max_alloc_rate=None, sample_interval=None, event_hold=None, horizon=None, psi=None,
        cgroup_events=None, debounce=None, shed_interval=None, malloc_trim=None, trim_interval=None,
        redetect_interval=None, limit_override=None, queue_capacity=None, from_env=true))]
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
        horizon: Option<(f64, f64)>,
        psi: Option<bool>,
        cgroup_events: Option<bool>,
        debounce: Option<f64>,
        shed_interval: Option<f64>,
        malloc_trim: Option<bool>,
        trim_interval: Option<f64>,
        redetect_interval: Option<f64>,
        limit_override: Option<u64>,
        queue_capacity: Option<usize>,
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
            horizon,
            psi,
            cgroup_events,
            debounce,
            shed_interval,
            malloc_trim,
            trim_interval,
            redetect_interval,
            limit_override,
            queue_capacity,
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
        let th = c.thresholds();
        d.set_item("warn", th.warn())?;
        d.set_item("critical", th.critical())?;
        d.set_item("hysteresis", th.hysteresis())?;
        d.set_item("soft_limit", c.soft_limit())?;
        d.set_item("event_hold", c.event_hold().as_secs_f64())?;
        let (hw, hc) = c.horizon();
        d.set_item("horizon", (hw.as_secs_f64(), hc.as_secs_f64()))?;
        d.set_item("eviction_threshold", c.eviction_threshold())?;
        d.set_item("root", c.root().map(|r| r.to_string_lossy().into_owned()))?;
        d.set_item("pid", c.pid())?;
        let (lo, hi) = c.sample_interval();
        d.set_item("sample_interval", (lo.as_secs_f64(), hi.as_secs_f64()))?;
        d.set_item("max_alloc_rate", c.max_alloc_rate())?;
        d.set_item("psi", c.psi())?;
        d.set_item("cgroup_events", c.cgroup_events())?;
        d.set_item("debounce", c.debounce().as_secs_f64())?;
        d.set_item("shed_interval", c.shed_interval().as_secs_f64())?;
        d.set_item("malloc_trim", c.malloc_trim())?;
        d.set_item("trim_interval", c.trim_interval().as_secs_f64())?;
        d.set_item("redetect_interval", c.redetect_interval().as_secs_f64())?;
        d.set_item("queue_capacity", c.queue_capacity())?;
        d.set_item("limit_override", c.limit_override().map(|o| o.bytes))?;
        d.set_item("limit_override_source", c.limit_override().map(|o| o.source.as_str()))?;
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
        self.check_open(py)?;
        // Waits for a running call of that callback (which needs the GIL): detached.
        Ok(py.detach(move || sub.unsubscribe()))
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
        let Some(sub) = lock(&self.shedders).remove(&id) else { return Ok(false) };
        self.check_open(py)?;
        Ok(py.detach(move || sub.unsubscribe()))
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
        match self.wait_event(py, timeout)? {
            Some(ev) => convert::serialize(py, &ev).map(|o| Some(o.unbind())),
            None => Ok(None),
        }
    }

    /// The next event as a `memguard watch` line (`format` "text" or "json", rendered by the
    /// core), waiting like `next_event`.
    #[pyo3(signature = (timeout=None, format="text"))]
    fn next_event_line(&self, py: Python<'_>, timeout: Option<f64>, format: &str) -> PyResult<Option<String>> {
        let json = is_json(py, format)?;
        let ev = self.wait_event(py, timeout)?;
        Ok(ev.map(|ev| if json { memguard::render::event_json(&ev) } else { memguard::render::event_text(&ev) }))
    }

    /// The first lines of `memguard watch` for this guard (level, limit, every source tried).
    #[pyo3(signature = (format="text"))]
    fn render_header(&self, py: Python<'_>, format: &str) -> PyResult<String> {
        let json = is_json(py, format)?;
        let h = self.handle(py)?;
        let (snap, sources) = py.detach(move || (h.snapshot(), h.sources()));
        Ok(if json {
            memguard::render::watch_header_json(&snap, &sources)
        } else {
            memguard::render::watch_header_text(&snap, &sources)
        })
    }

    /// The latest snapshot as a `memguard watch --snapshot-every` line.
    #[pyo3(signature = (format="text"))]
    fn render_snapshot(&self, py: Python<'_>, format: &str) -> PyResult<String> {
        let json = is_json(py, format)?;
        let h = self.handle(py)?;
        let snap = py.detach(move || h.snapshot());
        Ok(if json { memguard::render::snapshot_json(&snap) } else { memguard::render::snapshot_text(&snap) })
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

    /// Stop memguard's threads and release every fd. Idempotent; callable from any thread,
    /// also from inside a callback. The GIL is released while the threads are joined (a
    /// callback may be waiting for it). In a child after `fork()` it closes the child's copies
    /// of the guard's descriptors and joins nothing (the core's fork rule).
    fn close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Release);
        // These locks are only ever taken with the GIL held, so no other thread held them when
        // `os.fork()` (which holds the GIL) ran: safe in a child too.
        let taken = lock(&self.inner).take();
        let subs = std::mem::take(&mut *lock(&self.subs));
        let shedders = std::mem::take(&mut *lock(&self.shedders));
        py.detach(move || {
            drop(taken);
            drop(subs);
            drop(shedders);
        });
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
        let taken = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        let subs = std::mem::take(self.subs.get_mut().unwrap_or_else(PoisonError::into_inner));
        let shedders = std::mem::take(self.shedders.get_mut().unwrap_or_else(PoisonError::into_inner));
        // Dropped by Python (attached): release the GIL while joining, since the dispatcher may
        // be waiting for it to finish a callback. In a forked child the core closes the
        // inherited descriptors without joining (nothing to wait for).
        Python::attach(|py| {
            py.detach(move || {
                drop(subs);
                drop(shedders);
                drop(taken);
            })
        });
    }
}
