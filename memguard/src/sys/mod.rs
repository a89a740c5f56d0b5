//! The few system calls std does not wrap: epoll and eventfd. Each `unsafe` block is a single
//! libc call on file descriptors this module owns, with its soundness argument beside it.
//! Everything else (reading kernel files, eventfd counters, writes) goes through `std::fs::File`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

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
        self.events & (libc::EPOLLERR as u32 | libc::EPOLLHUP as u32) != 0
    }
}

/// `EPOLLIN`.
pub const IN: u32 = libc::EPOLLIN as u32;
/// `EPOLLPRI`: kernfs files (`memory.events`) and PSI triggers notify with it.
pub const PRI: u32 = libc::EPOLLPRI as u32;

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
        // SAFETY: epoll_create1 takes no pointers; a non-negative return is a new fd that nothing
        // else owns, so wrapping it in OwnedFd (which closes it exactly once) is sound.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh, valid, owned descriptor (see above).
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Watch `fd` for `events`, reporting it with `token`. The caller keeps `fd` open while it
    /// is registered (and removes it with [`delete`](Self::delete) before closing it, or lets
    /// the kernel drop it on close).
    ///
    /// # Errors
    /// The kernel's error (for example `EPERM` for regular files that cannot be polled).
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: both fds are valid for the call (borrowed), and `ev` is a live, properly
        // initialised epoll_event the kernel only reads.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stop watching `fd`.
    ///
    /// # Errors
    /// The kernel's error (`ENOENT` if it was not registered).
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; the event argument is ignored for EPOLL_CTL_DEL but must be
        // non-null on old kernels, and it points to a live value.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Wait up to `timeout` (`None` = forever) and append ready fds to `out` (cleared first).
    /// An interrupted wait (`EINTR`) returns with nothing ready.
    ///
    /// # Errors
    /// The kernel's error other than `EINTR`.
    pub fn wait(&self, out: &mut Vec<Ready>, timeout: Option<Duration>) -> io::Result<()> {
        const CAP: usize = 32;
        out.clear();
        let mut buf = [libc::epoll_event { events: 0, u64: 0 }; CAP];
        let ms = timeout.map_or(-1, |t| {
            // Round up so a 0.4 ms deadline does not become a busy 0 ms poll.
            let ms = t.as_micros().div_ceil(1000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        });
        // SAFETY: `buf` is a live array of CAP epoll_events and we pass CAP as its length, so the
        // kernel writes only inside it; the epoll fd is valid for the call.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), buf.as_mut_ptr(), CAP as i32, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        let n = usize::try_from(n).unwrap_or(0).min(CAP);
        out.extend(buf[..n].iter().map(|e| Ready { token: e.u64, events: e.events }));
        Ok(())
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
        // SAFETY: eventfd takes no pointers; a non-negative return is a new fd owned by nobody
        // else, handed to File which closes it exactly once.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh, valid, owned descriptor.
        Ok(EventFd { file: unsafe { File::from_raw_fd(fd) } })
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
    pub fn raw(&self) -> i32 {
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
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// `CLOCK_MONOTONIC` in nanoseconds: comparable across processes on this machine (events carry
/// it, so a benchmark in another process can compute notification latency).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live timespec the kernel writes; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
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
}
