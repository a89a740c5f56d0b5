//! Idle cost: CPU time of the guard's reactor and dispatcher threads while usage sits far below
//! the limit and nothing happens.
//!
//! The process sits in a leaf with a 1 GiB limit, using a few MiB; a guard with every source
//! armed (the default) runs for `duration` after a one-second warm-up. Per-thread CPU time is
//! read with the thread's CPU-time clock (`clock_gettime` on the clock id glibc's
//! `pthread_getcpuclockid` builds: nanoseconds, `sum_exec_runtime`) and, as a cross-check,
//! from `utime + stime` in `/proc/self/task/<tid>/stat` (clock ticks).
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use memguard::MemGuard;
use serde::Serialize;

use super::cgroup::Workspace;
use super::{bail, Error, Result, MIB};

/// The idle figures.
#[derive(Debug, Clone, Serialize)]
pub struct IdleResult {
    /// Wall time measured, seconds.
    pub seconds: f64,
    /// The bench cgroup's limit.
    pub limit_bytes: u64,
    /// Its usage at the start and at the end.
    pub usage_bytes: [u64; 2],
    /// The guard's armed sources (`name: detail`).
    pub armed: Vec<String>,
    /// Reactor thread CPU time, ms.
    pub reactor_cpu_ms: f64,
    /// Dispatcher thread CPU time, ms.
    pub dispatcher_cpu_ms: f64,
    /// Both, as a percentage of one core over the wall time.
    pub percent_of_one_core: f64,
    /// The same from `/proc` clock ticks (10 ms resolution).
    pub percent_of_one_core_ticks: f64,
    /// Samples the guard took during the measurement (`snapshot().samples` difference).
    pub samples: u64,
    /// Watcher CPU time per sample, µs (each sample is one reactor wake-up when idle).
    pub cpu_per_sample_us: f64,
    /// The sampler's interval at the end, ms.
    pub sample_interval_ms: f64,
    /// Events delivered during the measurement (none expected).
    pub events: u64,
}

/// CPU time of thread `tid` of this process, ns, from its CPU-time clock.
///
/// # Errors
/// The kernel's error (no such thread in this process).
pub fn thread_cpu_ns(tid: i32) -> std::io::Result<u64> {
    // The per-thread CPU clock id (MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) in the kernel's
    // posix-timers.h; what glibc's pthread_getcpuclockid returns): ~tid << 3 | PERTHREAD | SCHED.
    let clock: libc::clockid_t = (!tid << 3) | 4 | 2;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live timespec the kernel writes; an invalid clock id is an error return.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// `utime + stime` of thread `tid` of this process, clock ticks.
fn thread_ticks(tid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after `(comm)`: state is field 3; utime and stime are fields 14 and 15.
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(100)
}

/// Threads of this process whose name (`comm`, 15 bytes at most) starts with `prefix`.
fn threads_named(prefix: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: i32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        comm.trim_end().starts_with(prefix).then_some(tid)
    })
    .collect()
}

/// The reactor's and the dispatcher's thread ids.
fn watcher_threads(guard: &MemGuard) -> Result<(i32, i32)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let reactor = loop {
        match guard.reactor_thread_id() {
            0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            0 => bail!("the reactor never published its thread id"),
            tid => break tid,
        }
    };
    // `memguard-dispatch` is 17 bytes: the kernel keeps the first 15.
    let dispatchers = threads_named("memguard-dispat");
    let [dispatcher] = dispatchers[..] else {
        bail!("expected one memguard-dispatch thread, found {dispatchers:?}");
    };
    Ok((reactor, dispatcher))
}

fn cpu(tids: [i32; 2]) -> Result<([u64; 2], u64)> {
    let mut ns = [0; 2];
    let mut ticks = 0;
    for (i, tid) in tids.into_iter().enumerate() {
        ns[i] = thread_cpu_ns(tid).map_err(|e| Error(format!("CPU clock of thread {tid}: {e}")))?;
        ticks += thread_ticks(tid).ok_or_else(|| Error(format!("/proc/self/task/{tid}/stat unreadable")))?;
    }
    Ok((ns, ticks))
}

/// Run a default guard on a 1 GiB leaf for `duration` and measure its threads.
///
/// # Errors
/// The cgroup or the guard cannot be set up, or the threads cannot be found or measured.
pub fn run(ws: &Workspace, duration: Duration) -> Result<IdleResult> {
    const LIMIT: u64 = 1 << 30;
    let mut cg = ws.leaf("idle", LIMIT)?;
    cg.enter()?;
    let guard = MemGuard::builder().start()?;
    if guard.limits().limit_bytes != Some(LIMIT) {
        bail!("the guard sees limit {:?}, not the bench cgroup's {LIMIT}", guard.limits().limit_bytes);
    }
    let armed: Vec<String> = guard
        .sources()
        .into_iter()
        .filter(|s| s.armed)
        .map(|s| format!("{}: {}", s.name, s.detail.unwrap_or_default()))
        .collect();
    let (reactor, dispatcher) = watcher_threads(&guard)?;
    std::thread::sleep(Duration::from_secs(1)); // start-up (detection, arming) is not idle
    let usage_start = cg.usage()?;
    if usage_start >= LIMIT / 2 {
        bail!("usage {} MiB is not below half the limit", usage_start / MIB);
    }
    let events_before: u64 = guard.snapshot().events_total.values().sum();
    let samples_before = guard.snapshot().samples;
    let (ns0, ticks0) = cpu([reactor, dispatcher])?;
    let t0 = Instant::now();
    std::thread::sleep(duration);
    let (ns1, ticks1) = cpu([reactor, dispatcher])?;
    let wall = t0.elapsed().as_secs_f64();
    let snap = guard.snapshot();
    let usage_end = cg.usage()?;
    drop(guard);
    cg.leave()?;
    #[allow(clippy::cast_precision_loss)]
    let ms = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e6;
    let (reactor_ms, dispatcher_ms) = (ms(ns0[0], ns1[0]), ms(ns0[1], ns1[1]));
    #[allow(clippy::cast_precision_loss)]
    let ticks_secs = ticks1.saturating_sub(ticks0) as f64 / clock_ticks_per_sec() as f64;
    let samples = snap.samples.saturating_sub(samples_before);
    #[allow(clippy::cast_precision_loss)]
    let per_sample = (reactor_ms + dispatcher_ms) * 1e3 / samples.max(1) as f64;
    Ok(IdleResult {
        seconds: wall,
        limit_bytes: LIMIT,
        usage_bytes: [usage_start, usage_end],
        armed,
        reactor_cpu_ms: reactor_ms,
        dispatcher_cpu_ms: dispatcher_ms,
        percent_of_one_core: (reactor_ms + dispatcher_ms) / 1e3 / wall * 100.0,
        percent_of_one_core_ticks: ticks_secs / wall * 100.0,
        samples,
        cpu_per_sample_us: per_sample,
        sample_interval_ms: snap.sample_interval_ms,
        events: snap.events_total.values().sum::<u64>().saturating_sub(events_before),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_thread_cpu_clock_advances() {
        let tid = memguard::sys::thread_id();
        let a = thread_cpu_ns(tid).expect("clock");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        assert!(thread_cpu_ns(tid).expect("clock") > a);
        assert!(thread_ticks(tid).is_some());
    }
}
