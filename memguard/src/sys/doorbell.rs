//! A doorbell between two threads: one byte through a pipe.
//!
//! Why not a futex (a condition variable, a channel's blocking receive)? A pipe write wakes the
//! reader with the kernel's *sync* hint — the writer is about to sleep — so the scheduler places
//! the woken thread on the writer's CPU (when the writer is the only task there) instead of
//! queueing it behind whatever runs on its previous CPU. For memguard that is the difference
//! between the callbacks' thread running right after the reactor goes back to `epoll_wait`, and
//! waiting for the application's allocating thread to be preempted (see `benches/README.md`).
//!
//! The byte is only written when the waiting side sleeps (or is about to): a flag both sides
//! update with sequentially consistent operations (Dekker's pattern: the waiter publishes
//! "sleeping" then checks for work; the ringer publishes work then checks "sleeping"; at least
//! one of them sees the other). A ring that finds the waiter awake costs one atomic swap.
//!
//! The ringing side keeps its own reference to the pipe's read end, so a write never finds the
//! pipe without a reader (no `EPIPE`, no `SIGPIPE` in a host that did not ignore it), and its
//! write end is non-blocking (a full pipe already holds a wake-up).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::{read, write, Errno};
use rustix::pipe::{pipe_with, PipeFlags};

/// The ringing side.
#[derive(Debug)]
pub struct Bell {
    tx: OwnedFd,
    sleeping: Arc<AtomicBool>,
    /// Keeps the pipe readable while this side writes (see the module docs).
    _rx: Arc<OwnedFd>,
}

/// The waiting side.
#[derive(Debug)]
pub struct Doorbell {
    rx: Arc<OwnedFd>,
    sleeping: Arc<AtomicBool>,
}

/// A connected bell and doorbell (close-on-exec).
///
/// # Errors
/// The pipe cannot be created (typically the fd limit).
pub fn doorbell() -> io::Result<(Bell, Doorbell)> {
    let (rx, tx) = pipe_with(PipeFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&tx, true)?;
    let sleeping = Arc::new(AtomicBool::new(false));
    let rx = Arc::new(rx);
    Ok((Bell { tx, sleeping: Arc::clone(&sleeping), _rx: Arc::clone(&rx) }, Doorbell { rx, sleeping }))
}

impl Bell {
    /// Wake the waiting side if it sleeps or is about to. Call after publishing the work.
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.send();
        }
    }

    /// One byte, never blocking (see the module docs).
    fn send(&self) {
        let _ = write(&self.tx, &[1]);
    }

    /// The descriptor (for the fork bookkeeping).
    pub fn raw(&self) -> RawFd {
        self.tx.as_raw_fd()
    }
}

impl Drop for Bell {
    /// A last ring, whether or not the waiting side sleeps: it must see what the ringer's end
    /// means (typically a channel disconnected) even if it goes to sleep right after this.
    fn drop(&mut self) {
        self.send();
    }
}

impl Doorbell {
    /// Sleep until rung, unless `ready()` holds once the bell knows this side sleeps. May
    /// return without a reason (a ring meant for an earlier wait): the caller checks again.
    ///
    /// # Errors
    /// Reading the pipe failed (not expected: the caller falls back to another way to wait).
    pub fn wait(&self, ready: impl FnOnce() -> bool) -> io::Result<()> {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if ready() {
            self.sleeping.store(false, Ordering::Relaxed);
            return Ok(());
        }
        let mut buf = [0u8; 64];
        let outcome = loop {
            match read(&*self.rx, &mut buf) {
                Ok(_) => break Ok(()),
                Err(Errno::INTR) => {}
                Err(e) => break Err(e.into()),
            }
        };
        self.sleeping.store(false, Ordering::Relaxed);
        outcome
    }

    /// As [`wait`](Self::wait), for at most `timeout`. Returns false when it timed out.
    ///
    /// # Errors
    /// Polling or reading the pipe failed.
    pub fn wait_timeout(&self, ready: impl FnOnce() -> bool, timeout: Duration) -> io::Result<bool> {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if ready() {
            self.sleeping.store(false, Ordering::Relaxed);
            return Ok(true);
        }
        let deadline = Instant::now() + timeout;
        let outcome = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ts = Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [PollFd::new(&*self.rx, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(0) => break Ok(false),
                Ok(_) => {
                    let mut buf = [0u8; 64];
                    break read(&*self.rx, &mut buf).map(|_| true).map_err(io::Error::from);
                }
                Err(Errno::INTR) => {}
                Err(e) => break Err(e.into()),
            }
        };
        self.sleeping.store(false, Ordering::Relaxed);
        outcome
    }

    /// The descriptor (for the fork bookkeeping).
    pub fn raw(&self) -> RawFd {
        self.rx.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn no_wake_up_is_lost() {
        // A producer publishes work then rings; the consumer waits whenever it finds none. With a
        // lost wake-up the consumer would sleep forever with work pending (the test would hang).
        let (bell, door) = doorbell().expect("doorbell");
        let work = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let (w, d) = (Arc::clone(&work), Arc::clone(&done));
        let consumer = std::thread::spawn(move || {
            let mut seen = 0;
            while seen < 20_000 {
                let now = w.load(Ordering::SeqCst);
                if now > seen {
                    seen = now;
                    d.store(seen, Ordering::SeqCst);
                    continue;
                }
                door.wait(|| w.load(Ordering::SeqCst) > seen).expect("wait");
            }
        });
        for i in 1..=20_000u64 {
            work.store(i, Ordering::SeqCst);
            bell.ring();
            if i % 1000 == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        consumer.join().expect("consumer");
        assert_eq!(done.load(Ordering::SeqCst), 20_000);
    }

    #[test]
    fn a_timed_wait_times_out_or_is_rung() {
        let (bell, door) = doorbell().expect("doorbell");
        let start = std::time::Instant::now();
        assert!(!door.wait_timeout(|| false, Duration::from_millis(30)).expect("wait"));
        assert!(start.elapsed() >= Duration::from_millis(30));
        let rung = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&rung);
        let t = std::thread::spawn(move || door.wait_timeout(|| r.load(Ordering::SeqCst), Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        rung.store(true, Ordering::SeqCst);
        bell.ring();
        assert!(t.join().expect("join").expect("woken"), "rung, not timed out");
    }

    #[test]
    fn dropping_the_bell_wakes_a_sleeper() {
        let (bell, door) = doorbell().expect("doorbell");
        let t = std::thread::spawn(move || door.wait(|| false));
        std::thread::sleep(Duration::from_millis(20));
        drop(bell);
        t.join().expect("join").expect("woken");
    }
}
