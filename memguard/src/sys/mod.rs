//! The system calls std does not wrap — epoll, eventfd, a thread-to-thread [`doorbell`], thread
//! ids, the monotonic clock, fork detection — through `rustix` (owned fds, no hand-written `unsafe`), plus the two libc calls
//! rustix does not cover (`pthread_atfork`, and closing descriptors inherited over `fork`),
//! each with its soundness argument beside it. Reading kernel files goes through `std::fs`.

pub mod doorbell;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use rustix::event::epoll;
use rustix::event::{eventfd, EventfdFlags};

/// One ready file descriptor reported by [`Epoll::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The token given to [`Epoll::add`].
    pub token: u64,
    /// `EPOLLIN` / `EPOLLPRI` / `EPOLLERR` / `EPOLLHUP` bits.
    pub events: u32,
}

impl Ready {
    /// The kernel reported an error or hang-up on the fd (for cgroup files: the cgroup is gone).
    pub fn is_error(&self) -> bool {
        self.events & (epoll::EventFlags::ERR.bits() | epoll::EventFlags::HUP.bits()) != 0
    }
}

/// `EPOLLIN`.
pub const IN: u32 = epoll::EventFlags::IN.bits();
/// `EPOLLPRI`: kernfs files (`memory.events`) and PSI triggers notify with it.
pub const PRI: u32 = epoll::EventFlags::PRI.bits();

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// A new close-on-exec epoll instance.
    ///
    /// # Errors
    /// The kernel's error (`EMFILE`, `ENOMEM`).
    pub fn new() -> io::Result<Epoll> {
        let fd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        Ok(Epoll { fd })
    }

    /// Watch `fd` for `events`, reporting it with `token`. The caller keeps `fd` open while it
    /// is registered (and removes it with [`delete`](Self::delete) before closing it, or lets
    /// the kernel drop it on close).
    ///
    /// # Errors
    /// The kernel's error (for example `EPERM` for regular files that cannot be polled).
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64, events: u32) -> io::Result<()> {
        let flags = epoll::EventFlags::from_bits_retain(events);
        epoll::add(&self.fd, fd, epoll::EventData::new_u64(token), flags)?;
        Ok(())
    }

    /// Stop watching `fd`.
    ///
    /// # Errors
    /// The kernel's error (`ENOENT` if it was not registered).
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        epoll::delete(&self.fd, fd)?;
        Ok(())
    }

    /// Wait up to `timeout` (`None` = forever) and append ready fds to `out` (cleared first).
    /// An interrupted wait (`EINTR`) returns with nothing ready. Timeouts are rounded up to
    /// the millisecond (a 0.4 ms deadline is not a busy 0 ms poll) and capped at one day.
    ///
    /// # Errors
    /// The kernel's error other than `EINTR`.
    pub fn wait(&self, out: &mut Vec<Ready>, timeout: Option<Duration>) -> io::Result<()> {
        out.clear();
        let mut buf = [std::mem::MaybeUninit::<epoll::Event>::uninit(); 32];
        let ts = timeout.map(|t| {
            let ms = t.as_micros().div_ceil(1000).min(86_400_000);
            let ms = i64::try_from(ms).unwrap_or(86_400_000);
            rustix::time::Timespec { tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000 }
        });
        let ready = match epoll::wait(&self.fd, &mut buf, ts.as_ref()) {
            Ok((ready, _)) => ready,
            Err(rustix::io::Errno::INTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        out.extend(ready.iter().map(|e| {
            // Copies: the kernel's struct is packed on x86_64.
            let (data, flags) = (e.data, e.flags);
            Ready { token: data.u64(), events: flags.bits() }
        }));
        Ok(())
    }

    /// The descriptor (for the fork bookkeeping).
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// An eventfd: a kernel counter that wakes epoll when written (by us or by the kernel, as for
/// cgroup v1 notifications).
#[derive(Debug)]
pub struct EventFd {
    file: File,
}

impl EventFd {
    /// A new non-blocking, close-on-exec eventfd with counter 0.
    ///
    /// # Errors
    /// The kernel's error (`EMFILE`, `ENOMEM`).
    pub fn new() -> io::Result<EventFd> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(EventFd { file: File::from(fd) })
    }

    /// Read and reset the counter; `Ok(0)` when it was zero.
    ///
    /// # Errors
    /// The kernel's error other than `EAGAIN`.
    pub fn drain(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        match (&self.file).read(&mut buf) {
            Ok(8) => Ok(u64::from_ne_bytes(buf)),
            Ok(_) => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Add 1 to the counter (wakes any epoll watching it).
    ///
    /// # Errors
    /// The kernel's error other than `EAGAIN` (counter saturated: already awake).
    pub fn signal(&self) -> io::Result<()> {
        match (&self.file).write(&1u64.to_ne_bytes()) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The raw descriptor number (for `cgroup.event_control` registrations).
    pub fn raw(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// The calling thread's kernel thread id (for per-thread CPU accounting in tests and benches).
pub fn thread_id() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// This process's id, from the kernel (not a cached value: correct in a forked child).
pub fn process_id() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get().unsigned_abs()
}

/// `CLOCK_MONOTONIC` in nanoseconds: comparable across processes on this machine (events carry
/// it, so a benchmark in another process can compute notification latency).
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// True when the calling thread holds `CAP_SYS_RESOURCE` (from `/proc/self/status` `CapEff`).
/// PSI triggers with windows that are not a multiple of 2 s need it.
pub fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/thread-self/status")
        .or_else(|_| std::fs::read_to_string("/proc/self/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

// ------------------------------------------------------------------------------- fork --

/// Bumped in the child after every `fork()` (a `pthread_atfork` child handler).
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn forked_child() {
    // Async-signal-safe: one atomic increment.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// How many `fork()`s lie between the process that first called this and the current one: a
/// value remembered at start-up that differs now means "this is a forked child". One atomic
/// load after the first call, which registers the `pthread_atfork` handler.
pub fn fork_generation() -> u64 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: `pthread_atfork` stores a plain function pointer; `forked_child` is an
        // `extern "C" fn` with no arguments that lives for the whole program and only does an
        // atomic increment, which is allowed in the child of a multi-threaded fork.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
        if rc != 0 {
            tracing::warn!(rc, "pthread_atfork failed; fork detection falls back to getpid()");
        }
    });
    FORK_GENERATION.load(Ordering::Acquire)
}

/// The descriptors of one guard, as raw numbers, so that a forked child can close its copies
/// without the objects that own them (those live on threads that do not exist in the child).
///
/// Written by the guard's reactor only, under one rule: a number is added after its fd is
/// opened and removed before it is closed, so every number listed is an open descriptor of the
/// guard. Reading in a child needs no lock (a parent thread may have held any lock at fork).
#[derive(Debug)]
pub struct ForkFds {
    slots: [AtomicI32; 64],
}

impl Default for ForkFds {
    fn default() -> Self {
        ForkFds { slots: std::array::from_fn(|_| AtomicI32::new(-1)) }
    }
}

impl ForkFds {
    /// Make the listed set exactly `fds` (fds beyond the 64 slots are not tracked: a child then
    /// keeps them open until it execs or exits; logged).
    pub fn set(&self, fds: &[RawFd]) {
        for s in &self.slots {
            let v = s.load(Ordering::Relaxed);
            if v >= 0 && !fds.contains(&v) {
                s.store(-1, Ordering::Release);
            }
        }
        for &fd in fds {
            if self.slots.iter().any(|s| s.load(Ordering::Relaxed) == fd) {
                continue;
            }
            match self.slots.iter().find(|s| s.load(Ordering::Relaxed) < 0) {
                Some(s) => s.store(fd, Ordering::Release),
                None => tracing::debug!(fd, "more than 64 memguard descriptors; a forked child keeps this one"),
            }
        }
    }

    /// The descriptors listed now.
    #[cfg(test)]
    pub fn list(&self) -> Vec<RawFd> {
        self.slots.iter().map(|s| s.load(Ordering::Acquire)).filter(|v| *v >= 0).collect()
    }

    /// In a forked child: close every listed descriptor and forget them. Returns how many
    /// were closed.
    pub fn close_inherited(&self) -> usize {
        let mut closed = 0;
        for s in &self.slots {
            let fd = s.swap(-1, Ordering::AcqRel);
            if fd >= 0 {
                // SAFETY: in the child, `fd` is this process's copy of a descriptor the guard
                // owned at fork time (the listing rule above). Its owners — the reactor's
                // `OwnedFd`/`File` values — live on threads that do not exist in the child and
                // are never dropped (their `Arc`s keep the shared state alive forever), so no
                // one else will use or close this number; the slot was swapped to -1 first, so
                // it is closed once.
                #[allow(unsafe_code)]
                let rc = unsafe { libc::close(fd) };
                closed += usize::from(rc == 0);
            }
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_wakes_epoll() {
        let ep = Epoll::new().expect("epoll");
        let efd = EventFd::new().expect("eventfd");
        ep.add(efd.as_fd(), 7, IN).expect("add");
        let mut ready = Vec::new();
        ep.wait(&mut ready, Some(Duration::from_millis(1))).expect("wait");
        assert!(ready.is_empty());
        efd.signal().expect("signal");
        efd.signal().expect("signal");
        ep.wait(&mut ready, Some(Duration::from_secs(1))).expect("wait");
        assert_eq!(ready, vec![Ready { token: 7, events: IN }]);
        assert_eq!(efd.drain().expect("drain"), 2);
        assert_eq!(efd.drain().expect("drain"), 0);
        ep.delete(efd.as_fd()).expect("delete");
    }

    #[test]
    fn huge_timeouts_are_capped_not_errors() {
        let ep = Epoll::new().expect("epoll");
        let efd = EventFd::new().expect("eventfd");
        ep.add(efd.as_fd(), 1, IN).expect("add");
        efd.signal().expect("signal");
        let mut ready = Vec::new();
        ep.wait(&mut ready, Some(Duration::MAX)).expect("wait");
        assert_eq!(ready.len(), 1);
    }

    #[test]
    fn fork_fds_set_and_list() {
        let f = ForkFds::default();
        f.set(&[3, 4, 5]);
        f.set(&[4, 6]);
        let mut l = f.list();
        l.sort_unstable();
        assert_eq!(l, vec![4, 6]);
    }

    #[test]
    fn ids_and_clock() {
        assert!(thread_id() > 0);
        assert_eq!(process_id(), std::process::id());
        let a = monotonic_ns();
        assert!(monotonic_ns() >= a);
    }
}
