//! cgroup v1 notifications: an eventfd registered through `cgroup.event_control` as
//! `"<eventfd> <fd of the watched file> [args]"` for
//! * `memory.usage_in_bytes` with a threshold in bytes — fires when usage crosses it in
//!   *either* direction (the reactor samples and judges which);
//! * `memory.pressure_level` with `medium` or `critical`;
//! * `memory.oom_control` — fires when the cgroup (or an ancestor) is under OOM. Kills are
//!   reported from the `oom_kill` counter of `memory.oom_control`, which the sampler re-reads
//!   on every sample (it grows only after the victim dies, after this notification).
//!
//! Closing the eventfd unregisters the event. When the cgroup is removed the kernel signals
//! every eventfd once; the watched file then fails to read and the source reports
//! [`Signal::Gone`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;

use crate::fsroot::FsRoot;
use crate::sys::{EventFd, Ready, IN};
use crate::watch::{EventKind, V1Pressure};

use super::{Keep, Signal, Source};

#[derive(Debug)]
enum Kind {
    Threshold(u64),
    Sentinel(u64),
    Pressure(V1Pressure),
    Oom { notifications: u64 },
}

/// One v1 eventfd registration.
#[derive(Debug)]
pub struct V1Notifier {
    efd: EventFd,
    target: File,
    name: &'static str,
    detail: String,
    kind: Kind,
}

fn register(fs: &FsRoot, dir: &str, file: &str, args: &str) -> Result<(EventFd, File, String), String> {
    let target_path = format!("{dir}/{file}");
    let target = File::open(fs.path(&target_path)).map_err(|e| format!("{target_path}: {e}"))?;
    let efd = EventFd::new().map_err(|e| format!("eventfd: {e}"))?;
    let line = format!("{} {} {args}", efd.raw(), target.as_raw_fd());
    let control = format!("{dir}/cgroup.event_control");
    OpenOptions::new()
        .write(true)
        .open(fs.path(&control))
        .and_then(|mut f| f.write_all(line.trim_end().as_bytes()))
        .map_err(|e| format!("{control}: {e}"))?;
    Ok((efd, target, format!("{target_path} {args}").trim_end().to_owned()))
}

impl V1Notifier {
    /// A usage threshold at `bytes` on `<dir>/memory.usage_in_bytes`.
    ///
    /// # Errors
    /// Why it cannot be armed (read-only cgroupfs, no such file).
    pub fn threshold(fs: &FsRoot, dir: &str, bytes: u64, name: &'static str) -> Result<Box<dyn Source>, String> {
        let (efd, target, detail) = register(fs, dir, "memory.usage_in_bytes", &bytes.to_string())?;
        Ok(Box::new(V1Notifier { efd, target, name, detail, kind: Kind::Threshold(bytes) }))
    }

    /// A growth sentinel at `bytes` on `<dir>/memory.usage_in_bytes`: a threshold whose
    /// crossings only make the watcher sample (see [`GROWTH_SENTINELS`](super::GROWTH_SENTINELS)).
    ///
    /// # Errors
    /// Why it cannot be armed.
    pub fn sentinel(fs: &FsRoot, dir: &str, bytes: u64, name: &'static str) -> Result<Box<dyn Source>, String> {
        let (efd, target, detail) = register(fs, dir, "memory.usage_in_bytes", &bytes.to_string())?;
        Ok(Box::new(V1Notifier { efd, target, name, detail, kind: Kind::Sentinel(bytes) }))
    }

    /// A `memory.pressure_level` notification.
    ///
    /// # Errors
    /// Why it cannot be armed.
    pub fn pressure(fs: &FsRoot, dir: &str, severity: V1Pressure) -> Result<Box<dyn Source>, String> {
        let (arg, name) = match severity {
            V1Pressure::Medium => ("medium", "v1-pressure-medium"),
            V1Pressure::Critical => ("critical", "v1-pressure-critical"),
        };
        let (efd, target, detail) = register(fs, dir, "memory.pressure_level", arg)?;
        Ok(Box::new(V1Notifier { efd, target, name, detail, kind: Kind::Pressure(severity) }))
    }

    /// A `memory.oom_control` notification.
    ///
    /// # Errors
    /// Why it cannot be armed.
    pub fn oom(fs: &FsRoot, dir: &str) -> Result<Box<dyn Source>, String> {
        let (efd, target, detail) = register(fs, dir, "memory.oom_control", "")?;
        Ok(Box::new(V1Notifier { efd, target, name: "v1-oom", detail, kind: Kind::Oom { notifications: 0 } }))
    }
}

impl Source for V1Notifier {
    fn name(&self) -> &'static str {
        self.name
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }

    fn interest(&self) -> u32 {
        IN
    }

    fn raw_fds(&self) -> Vec<std::os::fd::RawFd> {
        vec![self.efd.raw(), self.target.as_raw_fd()]
    }

    fn detail(&self) -> String {
        self.detail.clone()
    }

    fn watches_thresholds(&self) -> bool {
        matches!(self.kind, Kind::Threshold(_))
    }

    fn ready(&mut self, _ready: Ready, out: &mut Vec<Signal>) -> Keep {
        let fired = self.efd.drain().unwrap_or(0);
        let mut probe = [0u8; 64];
        if let Err(e) = self.target.read_at(&mut probe, 0) {
            tracing::info!(source = self.name, error = %e, "v1 cgroup file unreadable: cgroup removed");
            out.push(Signal::Gone);
            return Keep::No;
        }
        if fired == 0 {
            return Keep::Yes;
        }
        match &mut self.kind {
            Kind::Threshold(bytes) => out.push(Signal::ThresholdCrossed(*bytes)),
            Kind::Sentinel(bytes) => out.push(Signal::Sentinel(*bytes)),
            Kind::Pressure(severity) => {
                out.push(Signal::Event(EventKind::VmPressure { severity: *severity }));
                out.push(Signal::Resample);
            }
            Kind::Oom { notifications } => {
                *notifications += fired;
                out.push(Signal::Event(EventKind::Oom { count: *notifications, delta: fired }));
                out.push(Signal::Resample);
            }
        }
        Keep::Yes
    }
}
