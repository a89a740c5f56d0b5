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

/// One thread of the `memguard watch` process while idle.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadCpu {
    /// Kernel thread id.
    pub tid: i32,
    /// `comm` (`memguard` for the main thread, `memguard-reacto`, `memguard-dispat`, ...).
    pub name: String,
    /// CPU time over the measurement, ms (`/proc/<pid>/task/<tid>/schedstat`, nanoseconds).
    pub cpu_ms: f64,
    /// The same as a percentage of one core over the wall time.
    pub percent_of_one_core: f64,
    /// Times the thread was scheduled in (the schedstat timeslice count): its wake-ups.
    pub wakeups: u64,
}

/// Idle cost of the `memguard watch` CLI process, thread by thread.
#[derive(Debug, Clone, Serialize)]
pub struct CliIdleResult {
    /// The binary measured.
    pub binary: String,
    /// Wall time measured, seconds.
    pub seconds: f64,
    /// The bench cgroup's limit.
    pub limit_bytes: u64,
    /// Every thread of the process (threads that exited during the measurement are left out).
    pub threads: Vec<ThreadCpu>,
    /// The whole process, % of one core.
    pub percent_of_one_core: f64,
    /// Time from SIGTERM to the process's exit, ms.
    pub exit_after_sigterm_ms: f64,
}

/// `(sum_exec_runtime ns, timeslices)` of every thread of `pid`, with its name, from
/// `/proc/<pid>/task/*/schedstat` (nanoseconds: the scheduler's own accounting, unlike the
/// 10 ms ticks of `stat`).
fn schedstat(pid: u32) -> Result<Vec<(i32, String, u64, u64)>> {
    let dir = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&dir).map_err(|e| Error(format!("{dir}: {e}")))?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("schedstat")) else { continue };
        let f: Vec<u64> = stat.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        let (Some(&run), Some(&slices)) = (f.first(), f.get(2)) else { continue };
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default().trim_end().to_owned();
        out.push((tid, name, run, slices));
    }
    if out.is_empty() {
        bail!("{dir}: no readable schedstat (CONFIG_SCHEDSTATS / task_delay_acct missing?)");
    }
    Ok(out)
}

/// Run `binary watch` (the CLI, with every source armed) in a leaf with a 2 GiB limit for
/// `duration` after a one-second warm-up, and measure each of its threads; then stop it with
/// SIGTERM and time its exit.
///
/// # Errors
/// The cgroup cannot be set up, the binary cannot be started, or exits early.
pub fn cli_watch(ws: &Workspace, duration: Duration, binary: &std::path::Path) -> Result<CliIdleResult> {
    const LIMIT: u64 = 2 << 30;
    if !binary.exists() {
        bail!("{} not found (cargo build --release -p memguard)", binary.display());
    }
    let mut cg = ws.leaf("idle-cli", LIMIT)?;
    // The child inherits this process's cgroup at fork: enter, spawn, leave.
    cg.enter()?;
    let spawned = std::process::Command::new(binary)
        .arg("watch")
        .env_remove("MEMGUARD_ROOT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    cg.leave()?;
    let mut child = spawned.map_err(|e| Error(format!("cannot start {}: {e}", binary.display())))?;
    let pid = child.id();
    let result = (|| {
        std::thread::sleep(Duration::from_secs(1)); // start-up is not idle
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{} watch exited during start-up: {status}", binary.display());
        }
        let before = schedstat(pid)?;
        let t0 = Instant::now();
        std::thread::sleep(duration);
        let after = schedstat(pid)?;
        let wall = t0.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let threads: Vec<ThreadCpu> = after
            .iter()
            .filter_map(|(tid, name, run, slices)| {
                let (_, _, run0, slices0) = before.iter().find(|b| b.0 == *tid)?;
                let cpu_ms = run.saturating_sub(*run0) as f64 / 1e6;
                Some(ThreadCpu {
                    tid: *tid,
                    name: name.clone(),
                    cpu_ms,
                    percent_of_one_core: cpu_ms / 1e3 / wall * 100.0,
                    wakeups: slices.saturating_sub(*slices0),
                })
            })
            .collect();
        let total: f64 = threads.iter().map(|t| t.cpu_ms).sum();
        Ok((wall, threads, total / 1e3 / wall * 100.0))
    })();
    // SAFETY: kill(2) on our own child's pid.
    let t_kill = Instant::now();
    unsafe {
        libc::kill(i32::try_from(pid).unwrap_or(i32::MAX), libc::SIGTERM);
    }
    let deadline = t_kill + Duration::from_secs(5);
    let exit_ms = loop {
        match child.try_wait() {
            Ok(Some(_)) => break t_kill.elapsed().as_secs_f64() * 1e3,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                drop(cg);
                bail!("{} watch did not exit within 5 s of SIGTERM", binary.display());
            }
        }
    };
    drop(cg);
    let (seconds, threads, percent) = result?;
    Ok(CliIdleResult {
        binary: binary.display().to_string(),
        seconds,
        limit_bytes: LIMIT,
        threads,
        percent_of_one_core: percent,
        exit_after_sigterm_ms: exit_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_thread_cpu_clock_advances() {
        // SAFETY: gettid takes no arguments and cannot fail.
        let tid = unsafe { libc::gettid() };
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
