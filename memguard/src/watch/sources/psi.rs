//! PSI triggers on `memory.pressure` (the cgroup's, else the system's `/proc/pressure/memory`).
//!
//! A trigger is `<some|full> <stall µs> <window µs>` written to an fd kept open; the kernel
//! signals `EPOLLPRI` when the stall time within the window exceeds the threshold.
//!
//! # Privilege rules (encoded here)
//! * Linux ≥ 6.5 (commit d82caa273565, "Allow unprivileged polling of N*2s period"): without
//!   `CAP_SYS_RESOURCE` a trigger is accepted only if its window is a multiple of 2 s (these are
//!   served by the regular 2 s averaging instead of an RT thread). The check happens at
//!   `write()`, for both `/proc/pressure/*` and cgroup files (a few 6.5-era releases also
//!   refused opening cgroup pressure files for writing; fixed by 8b39d20).
//! * Linux < 6.5 upstream: `/proc/pressure/*` refuses writes without `CAP_SYS_RESOURCE` at
//!   `open()` (`EPERM`); cgroup pressure files need only write permission on the file. Debian
//!   12's 6.1 (6.1.192, the test VM's) carries the 6.5 rule instead: measured, a 2 s window is
//!   accepted without `CAP_SYS_RESOURCE` on `/proc/pressure/memory` and on a writable cgroup
//!   `memory.pressure`.
//! * Every kernel: windows from 500 ms to 10 s (older kernels reject windows under 500 ms).
//!
//! * The check (`psi_trigger_create()` in `kernel/sched/psi.c`): `privileged` is
//!   `CAP_SYS_RESOURCE` in the effective set of the credentials that opened the file
//!   (`file->f_cred`), so a privileged opener may hand the fd to an unprivileged process.
//!
//! * Measured on the development host (Linux 6.18, root but *without* `CAP_SYS_RESOURCE` in its
//!   effective set): a 1 s window is refused with `EINVAL` on both the unified hierarchy's
//!   `memory.pressure` and `/proc/pressure/memory`, `some 200000 2000000` is accepted on both.
//! * `/proc/pressure/*` overwrites the last byte written with the string terminator: triggers
//!   are written with a trailing NUL (see `terminated`).
//!   Kernels and sandboxes differ, so memguard tries rather than assumes.
//!
//! memguard therefore asks for a 1 s window when it holds `CAP_SYS_RESOURCE` and otherwise,
//! or after a refusal, for a 2 s window (`some` 10% = 200 ms, `full` 5% = 100 ms of it), and
//! falls back to the system file when the cgroup file refuses both. A source that still cannot
//! arm is reported with the kernel's errors; the sampler reads PSI averages instead.
//!
//! # The first spurious trigger
//! A trigger may fire on stall time accumulated before it was armed. Each wake re-reads the
//! file's `total` and ignores the wake unless the stall time grew by at least the threshold
//! since arming (or since the previous accepted event).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use crate::fsroot::FsRoot;
use crate::sys::{Ready, PRI};
use crate::watch::snapshot::PsiAverages;
use crate::watch::{EventKind, PsiScope, Stall};

use super::{Armed, Keep, Signal, Source};

/// The system-wide PSI file.
pub const SYSTEM_FILE: &str = "/proc/pressure/memory";

/// Trigger strings to try, in order: `(trigger, stall threshold µs)`.
pub fn candidates(stall: Stall, privileged: bool) -> Vec<(String, u64)> {
    let word = match stall {
        Stall::Some => "some",
        Stall::Full => "full",
    };
    let pct = match stall {
        Stall::Some => 10,
        Stall::Full => 5,
    };
    let windows: &[u64] = if privileged { &[1_000_000, 2_000_000] } else { &[2_000_000] };
    windows
        .iter()
        .map(|w| {
            let threshold = w * pct / 100;
            (format!("{word} {threshold} {w}"), threshold)
        })
        .collect()
}

/// An armed PSI trigger.
#[derive(Debug)]
pub struct PsiTrigger {
    file: File,
    path: String,
    trigger: String,
    threshold_us: u64,
    stall: Stall,
    scope: PsiScope,
    last_total: u64,
}

impl PsiTrigger {
    /// Try the candidate triggers on `path` (see the module docs).
    ///
    /// # Errors
    /// Every attempt's error, in one sentence.
    pub fn arm(fs: &FsRoot, path: &str, stall: Stall, scope: PsiScope, privileged: bool) -> Result<PsiTrigger, String> {
        let mut errors = Vec::new();
        for (trigger, threshold_us) in candidates(stall, privileged) {
            let attempt = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(fs.path(path))
                .and_then(|mut f| f.write_all(&terminated(&trigger)).map(|()| f));
            match attempt {
                Ok(file) => {
                    let last_total = total(&file, stall).unwrap_or(0);
                    return Ok(PsiTrigger {
                        file,
                        path: path.to_owned(),
                        trigger,
                        threshold_us,
                        stall,
                        scope,
                        last_total,
                    });
                }
                Err(e) => errors.push(format!("`{trigger}`: {e}")),
            }
        }
        let cap = if privileged { "with" } else { "without" };
        Err(format!("{path} refused {} ({cap} CAP_SYS_RESOURCE)", errors.join("; ")))
    }

    /// Arm exactly `trigger` (bytes written as given, e.g. systemd's `MEMORY_PRESSURE_WRITE`),
    /// shown as `text`. The spurious-wake filter uses the stall threshold in `text` (none when
    /// it has no number there).
    ///
    /// # Errors
    /// The kernel's refusal, in one sentence.
    pub fn arm_exact(
        fs: &FsRoot,
        path: &str,
        trigger: &[u8],
        text: &str,
        stall: Stall,
        scope: PsiScope,
    ) -> Result<PsiTrigger, String> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(fs.path(path))
            .and_then(|mut f| f.write_all(trigger).map(|()| f))
            .map_err(|e| {
                let cap = if crate::sys::has_cap_sys_resource() { "with" } else { "without" };
                format!("{path} refused `{text}`: {e} ({cap} CAP_SYS_RESOURCE)")
            })?;
        let threshold_us = text.split_whitespace().nth(1).and_then(|t| t.parse().ok()).unwrap_or(0);
        let last_total = total(&file, stall).unwrap_or(0);
        Ok(PsiTrigger { file, path: path.to_owned(), trigger: text.to_owned(), threshold_us, stall, scope, last_total })
    }
}

/// The bytes to write for `trigger`: the text and a NUL, as the kernel's documentation writes
/// them (`write(fd, trig, strlen(trig) + 1)`). `/proc/pressure/*` (`psi_write()`) overwrites the
/// *last byte written* with the string's terminator: without one, `some 200000 2000000` reached
/// the kernel as `some 200000 200000` (a 200 ms window), refused without `CAP_SYS_RESOURCE`
/// (`EINVAL`, measured on 6.1 and 6.18) and accepted with it as a different trigger. The
/// cgroup files (kernfs) terminate the buffer after the bytes written and accept both forms.
fn terminated(trigger: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(trigger.len() + 1);
    bytes.extend_from_slice(trigger.as_bytes());
    bytes.push(0);
    bytes
}

fn total(file: &File, stall: Stall) -> Option<u64> {
    let mut buf = [0u8; 256];
    let n = file.read_at(&mut buf, 0).ok()?;
    let p = PsiAverages::parse(&String::from_utf8_lossy(&buf[..n]))?;
    Some(match stall {
        Stall::Some => p.some_total_us,
        Stall::Full => p.full_total_us,
    })
}

impl Source for PsiTrigger {
    fn name(&self) -> &'static str {
        match (self.scope, self.stall) {
            (PsiScope::Cgroup, Stall::Some) => "psi-cgroup-some",
            (PsiScope::Cgroup, Stall::Full) => "psi-cgroup-full",
            (PsiScope::System, Stall::Some) => "psi-system-some",
            (PsiScope::System, Stall::Full) => "psi-system-full",
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    fn interest(&self) -> u32 {
        PRI
    }

    fn detail(&self) -> String {
        format!("{} \"{}\"", self.path, self.trigger)
    }

    fn ready(&mut self, ready: Ready, out: &mut Vec<Signal>) -> Keep {
        let Some(now_total) = total(&self.file, self.stall) else {
            tracing::info!(file = %self.path, "PSI trigger unreadable: cgroup removed");
            out.push(Signal::Gone);
            return Keep::No;
        };
        if ready.is_error() && ready.events & PRI == 0 {
            out.push(Signal::Gone);
            return Keep::No;
        }
        if now_total.saturating_sub(self.last_total) < self.threshold_us {
            tracing::debug!(file = %self.path, "spurious PSI wake ignored");
            return Keep::Yes;
        }
        self.last_total = now_total;
        out.push(Signal::Event(EventKind::Psi { stall: self.stall, scope: self.scope }));
        out.push(Signal::Resample);
        Keep::Yes
    }
}

/// Check, without creating a trigger, that `path` opens for writing (what `memguard status`
/// does by default: releasing a real trigger waits for an RCU grace period, 10-20 ms).
fn check_writable(fs: &FsRoot, path: &str, stall: Stall, privileged: bool) -> Result<String, String> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(fs.path(path))
        .map(|_| {
            let tries: Vec<String> =
                candidates(stall, privileged).into_iter().map(|(t, _)| format!("\"{t}\"")).collect();
            format!(
                "{path} opens for writing; the watcher tries {} (`memguard status --probe` tries them now)",
                tries.join(", then ")
            )
        })
        .map_err(|e| format!("{path}: {e}"))
}

/// Arm `some` and `full` triggers on the cgroup file, else on the system file. With `dry_run`,
/// only check that the files open for writing (see `check_writable`).
pub fn arm_all(fs: &FsRoot, cgroup_file: Option<&str>, armed: &mut Armed, dry_run: bool) {
    let privileged = crate::sys::has_cap_sys_resource();
    if dry_run {
        let mut ok = false;
        if let Some(path) = cgroup_file {
            for (stall, name) in [(Stall::Some, "psi-cgroup-some"), (Stall::Full, "psi-cgroup-full")] {
                let r = check_writable(fs, path, stall, privileged);
                ok |= r.is_ok();
                armed.note(name, r.is_ok(), r.unwrap_or_else(|e| e));
            }
        }
        if !ok {
            for (stall, name) in [(Stall::Some, "psi-system-some"), (Stall::Full, "psi-system-full")] {
                let r = check_writable(fs, SYSTEM_FILE, stall, privileged);
                armed.note(name, r.is_ok(), r.unwrap_or_else(|e| e));
            }
        }
        return;
    }
    let mut cgroup_ok = false;
    match cgroup_file {
        Some(path) => {
            for (stall, name) in [(Stall::Some, "psi-cgroup-some"), (Stall::Full, "psi-cgroup-full")] {
                let r = PsiTrigger::arm(fs, path, stall, PsiScope::Cgroup, privileged);
                cgroup_ok |= r.is_ok();
                armed.push(name, r.map(|t| Box::new(t) as Box<dyn Source>));
            }
        }
        None => armed.note("psi-cgroup", false, "no cgroup memory.pressure file".into()),
    }
    if cgroup_ok {
        return;
    }
    if !fs.exists(SYSTEM_FILE) {
        armed.note("psi-system", false, format!("{SYSTEM_FILE} does not exist (kernel without PSI, or psi=0)"));
        return;
    }
    for (stall, name) in [(Stall::Some, "psi-system-some"), (Stall::Full, "psi-system-full")] {
        let r = PsiTrigger::arm(fs, SYSTEM_FILE, stall, PsiScope::System, privileged);
        armed.push(name, r.map(|t| Box::new(t) as Box<dyn Source>));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprivileged_windows_are_multiples_of_two_seconds() {
        for stall in [Stall::Some, Stall::Full] {
            for (t, _) in candidates(stall, false) {
                let w: u64 = t.split_whitespace().nth(2).and_then(|w| w.parse().ok()).expect("window");
                assert_eq!(w % 2_000_000, 0, "{t}");
            }
            let privileged = candidates(stall, true);
            assert_eq!(privileged.len(), 2);
            assert!(privileged[0].0.ends_with(" 1000000"));
        }
        assert_eq!(candidates(Stall::Some, false)[0], ("some 200000 2000000".to_owned(), 200_000));
    }

    /// `/proc/pressure/*` replaces the last byte written with the terminator: the trigger must
    /// end with one of its own, or its window loses a digit.
    #[test]
    fn trigger_is_written_with_its_terminator() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("proc/pressure")).expect("mkdir");
        std::fs::write(dir.path().join("proc/pressure/memory"), "").expect("write");
        let fs = FsRoot::new(dir.path());
        let t = PsiTrigger::arm(&fs, SYSTEM_FILE, Stall::Some, PsiScope::System, false).expect("arm");
        drop(t);
        let written = std::fs::read(dir.path().join("proc/pressure/memory")).expect("read");
        assert_eq!(written, b"some 200000 2000000\0");
    }

    #[test]
    fn spurious_wake_without_stall_growth_is_ignored() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("memory.pressure");
        std::fs::write(
            &p,
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\nfull avg10=0 avg60=0 avg300=0 total=10\n",
        )
        .expect("write");
        let mut t = PsiTrigger {
            file: File::open(&p).expect("open"),
            path: "memory.pressure".into(),
            trigger: "some 200000 2000000".into(),
            threshold_us: 200_000,
            stall: Stall::Some,
            scope: PsiScope::Cgroup,
            last_total: 1000,
        };
        let ready = Ready { token: 0, events: PRI };
        let mut out = Vec::new();
        assert_eq!(t.ready(ready, &mut out), Keep::Yes);
        assert!(out.is_empty(), "{out:?}");
        std::fs::write(&p, "some avg10=9.00 avg60=0.00 avg300=0.00 total=301000\n").expect("write");
        t.ready(ready, &mut out);
        assert_eq!(out[0], Signal::Event(EventKind::Psi { stall: Stall::Some, scope: PsiScope::Cgroup }));
    }
}
