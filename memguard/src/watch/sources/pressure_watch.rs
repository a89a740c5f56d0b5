//! systemd's memory pressure service protocol: `$MEMORY_PRESSURE_WATCH` and
//! `$MEMORY_PRESSURE_WRITE` (<https://systemd.io/MEMORY_PRESSURE/>), set by the service manager
//! for a unit with `MemoryPressureWatch=` and read by sd-event's `sd_event_add_memory_pressure()`.
//!
//! * `MEMORY_PRESSURE_WATCH`: an absolute path to watch, usually the unit cgroup's
//!   `memory.pressure`. `/dev/null` (or an empty value, as sd-event reads it) turns pressure
//!   monitoring off: memguard then arms no PSI trigger at all. A path that is not absolute or
//!   not normalised (`.`, `..`, `//`) is an [`Error::InvalidConfig`], as sd-event refuses it.
//! * `MEMORY_PRESSURE_WRITE`: optional, base64 of the bytes to write right after opening —
//!   for a PSI file the trigger (systemd writes `some 200000 2000000` and a NUL byte: 200 ms of
//!   stall per 2 s window by default, `MemoryPressureThresholdSec=` changes the 200 ms). Not
//!   base64 is an [`Error::InvalidConfig`].
//!
//! What memguard arms (the source `psi-watch`, its detail ending "from MEMORY_PRESSURE_WATCH"):
//! * a regular file (a PSI file on cgroupfs or procfs): opened read-write, the decoded bytes
//!   written (without `MEMORY_PRESSURE_WRITE`, memguard's own `some` trigger candidates, as for
//!   its own files), `EPOLLPRI` awaited; each wake is a `Psi` event (stall from the trigger's first word,
//!   scope `system` under `/proc`, else `cgroup`), with the same spurious-wake filter as
//!   memguard's own triggers;
//! * a FIFO or character device: opened read-write, the bytes written, `EPOLLIN` awaited, data
//!   read and discarded (as with sd-event, bytes written to a FIFO nobody else reads come back as
//!   the first wake); an `AF_UNIX` stream socket: connected, the bytes written, likewise, and the
//!   source ends when the peer closes.
//!
//! These replace memguard's own PSI triggers. When the given file cannot be armed (missing,
//! the kernel refuses the trigger) `status` lists `psi-watch` as not armed with the error and
//! memguard falls back to its own choice of PSI triggers, so pressure is still watched.
//! `MEMGUARD_PSI=0` (or `Builder::psi(false)`) wins over both variables.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Component, Path};

use crate::error::{Error, Result};
use crate::fsroot::FsRoot;
use crate::sys::{Ready, IN, PRI};
use crate::watch::{EventKind, PsiScope, Stall};

use super::psi::PsiTrigger;
use super::{Armed, Keep, Signal, Source};

/// The variable naming the file to watch.
pub const WATCH_VAR: &str = "MEMORY_PRESSURE_WATCH";
/// The variable carrying the base64 of what to write after opening.
pub const WRITE_VAR: &str = "MEMORY_PRESSURE_WRITE";
/// The source name in `status`.
pub const SOURCE_NAME: &str = "psi-watch";

/// What the service manager asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PressureWatch {
    /// `MEMORY_PRESSURE_WATCH` unset: memguard chooses its own PSI triggers.
    #[default]
    Unset,
    /// `/dev/null` (or empty): no PSI monitoring.
    Disabled,
    /// Watch this absolute path, writing `write` (decoded) right after opening.
    Path {
        /// The absolute path.
        path: String,
        /// The decoded `MEMORY_PRESSURE_WRITE`, if set.
        write: Option<Vec<u8>>,
    },
}

impl PressureWatch {
    /// Parse the two variables' values as sd-event does.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the variable: a relative or non-normalised path, or
    /// `MEMORY_PRESSURE_WRITE` that is not base64.
    pub fn parse(watch: Option<&str>, write: Option<&str>) -> Result<PressureWatch> {
        let Some(watch) = watch else { return Ok(PressureWatch::Unset) };
        let bad = |var: &'static str, value: &str, reason: &str| Error::InvalidConfig {
            setting: "pressure_watch",
            env_var: Some(var),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        if watch.is_empty() || Path::new(watch).components().eq(Path::new("/dev/null").components()) {
            return Ok(PressureWatch::Disabled);
        }
        if !watch.starts_with('/') {
            return Err(bad(WATCH_VAR, watch, "not an absolute path"));
        }
        let normalised = !watch.contains("//")
            && Path::new(watch).components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
            && !watch.split('/').any(|c| c == ".");
        if !normalised {
            return Err(bad(WATCH_VAR, watch, "not a normalised path (no `.`, `..` or `//`)"));
        }
        let write = match write {
            None => None,
            Some(text) => Some(decode_base64(text).map_err(|why| bad(WRITE_VAR, text, &why))?),
        };
        Ok(PressureWatch::Path { path: watch.to_owned(), write })
    }

    /// Read the two variables with `get` (see [`parse`](Self::parse)).
    pub(crate) fn from_lookup(get: &impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<PressureWatch> {
        let text = |var: &'static str| -> Result<Option<String>> {
            match get(var) {
                None => Ok(None),
                Some(raw) => raw.into_string().map(Some).map_err(|raw| Error::InvalidConfig {
                    setting: "pressure_watch",
                    env_var: Some(var),
                    value: raw.to_string_lossy().into_owned(),
                    reason: "not valid UTF-8".into(),
                }),
            }
        };
        Self::parse(text(WATCH_VAR)?.as_deref(), text(WRITE_VAR)?.as_deref())
    }
}

/// Standard base64 (RFC 4648 alphabet, `=` padding optional, whitespace ignored), as systemd's
/// `unbase64mem` accepts it.
pub fn decode_base64(text: &str) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits, mut pad) = (0u32, 0u32, 0usize);
    for (i, c) in text.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' => continue,
            _ => return Err(format!("not base64: byte {i} is {:?}", char::from(c))),
        };
        if pad > 0 {
            return Err("not base64: data after `=` padding".into());
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // 6 leftover bits cannot encode a byte; 2 or 4 are the padding of the last group.
    if bits >= 6 || acc != 0 || pad > 2 {
        return Err("not base64: truncated or non-canonical last group".into());
    }
    Ok(out)
}

/// The written bytes as text for `status` (trailing NULs and whitespace dropped).
fn shown(write: &[u8]) -> String {
    String::from_utf8_lossy(write).trim_end_matches(['\0', ' ', '\n']).to_owned()
}

/// The `Psi` event a wake stands for: stall from the trigger's first word, scope from the path.
fn event_of(path: &str, write: Option<&[u8]>) -> (Stall, PsiScope) {
    let stall = match write.map(shown).as_deref().and_then(|t| t.split_whitespace().next().map(str::to_owned)) {
        Some(w) if w == "full" => Stall::Full,
        _ => Stall::Some,
    };
    let scope = if path.starts_with("/proc/") { PsiScope::System } else { PsiScope::Cgroup };
    (stall, scope)
}

/// A FIFO, character device or `AF_UNIX` stream socket: `EPOLLIN`, data read and discarded.
#[derive(Debug)]
pub struct StreamWatch {
    fd: StreamFd,
    path: String,
    written: String,
    event: EventKind,
}

#[derive(Debug)]
enum StreamFd {
    File(File),
    Socket(UnixStream),
}

impl StreamWatch {
    fn open(fs: &FsRoot, path: &str, write: Option<&[u8]>, socket: bool) -> std::io::Result<StreamWatch> {
        let real = fs.path(path);
        let mut fd = if socket {
            let s = UnixStream::connect(&real)?;
            s.set_nonblocking(true)?;
            StreamFd::Socket(s)
        } else {
            // Read-write even without data to write: a FIFO opened read-only reports EPOLLHUP
            // for as long as no writer has it open.
            StreamFd::File(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
                    .open(&real)?,
            )
        };
        if let Some(bytes) = write.filter(|b| !b.is_empty()) {
            match &mut fd {
                StreamFd::File(f) => f.write_all(bytes)?,
                StreamFd::Socket(s) => s.write_all(bytes)?,
            }
        }
        let (stall, scope) = event_of(path, write);
        Ok(StreamWatch {
            fd,
            path: path.to_owned(),
            written: write.map(shown).unwrap_or_default(),
            event: EventKind::Psi { stall, scope },
        })
    }
}

impl Source for StreamWatch {
    fn name(&self) -> &'static str {
        SOURCE_NAME
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match &self.fd {
            StreamFd::File(f) => f.as_fd(),
            StreamFd::Socket(s) => s.as_fd(),
        }
    }

    fn interest(&self) -> u32 {
        IN
    }

    fn detail(&self) -> String {
        let kind = if matches!(self.fd, StreamFd::Socket(_)) { "socket" } else { "fifo" };
        format!("{} ({kind}) \"{}\" (from {WATCH_VAR})", self.path, self.written)
    }

    fn ready(&mut self, ready: Ready, out: &mut Vec<Signal>) -> Keep {
        // Drain what is queued; end of stream (the peer went away) ends the source.
        let mut buf = [0u8; 512];
        let mut eof = false;
        loop {
            let n = match &mut self.fd {
                StreamFd::File(f) => f.read(&mut buf),
                StreamFd::Socket(s) => s.read(&mut buf),
            };
            match n {
                Ok(0) => {
                    eof = matches!(self.fd, StreamFd::Socket(_));
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if eof || (ready.is_error() && ready.events & IN == 0) {
            tracing::info!(file = %self.path, "memory pressure watch closed by its peer");
            return Keep::No;
        }
        out.push(Signal::Event(self.event.clone()));
        out.push(Signal::Resample);
        Keep::Yes
    }
}

/// A PSI file named by the variable: [`PsiTrigger`] with the given trigger, shown as `psi-watch`.
#[derive(Debug)]
struct FileWatch(PsiTrigger);

impl Source for FileWatch {
    fn name(&self) -> &'static str {
        SOURCE_NAME
    }
    fn fd(&self) -> BorrowedFd<'_> {
        self.0.fd()
    }
    fn interest(&self) -> u32 {
        PRI
    }
    fn detail(&self) -> String {
        format!("{} (from {WATCH_VAR})", self.0.detail())
    }
    fn ready(&mut self, ready: Ready, out: &mut Vec<Signal>) -> Keep {
        self.0.ready(ready, out)
    }
}

/// Open `path` as the protocol says (see the module docs).
fn open(fs: &FsRoot, path: &str, write: Option<&[u8]>) -> std::result::Result<Box<dyn Source>, String> {
    let meta = std::fs::metadata(fs.path(path)).map_err(|e| format!("{path}: {e} (from {WATCH_VAR})"))?;
    let ft = meta.file_type();
    let (stall, scope) = event_of(path, write);
    if ft.is_file() {
        let armed = match write.filter(|b| !b.is_empty()) {
            Some(bytes) => PsiTrigger::arm_exact(fs, path, bytes, &shown(bytes), stall, scope),
            None => PsiTrigger::arm(fs, path, stall, scope, crate::sys::has_cap_sys_resource()),
        };
        return armed.map(|t| Box::new(FileWatch(t)) as Box<dyn Source>).map_err(|e| format!("{e} (from {WATCH_VAR})"));
    }
    if ft.is_fifo() || ft.is_char_device() || ft.is_socket() {
        return StreamWatch::open(fs, path, write, ft.is_socket())
            .map(|s| Box::new(s) as Box<dyn Source>)
            .map_err(|e| format!("{path}: {e} (from {WATCH_VAR})"));
    }
    Err(format!("{path}: neither a regular file, a FIFO nor a socket (from {WATCH_VAR})"))
}

/// Arm the operator's watch. Returns `true` when it is in force (armed, or with `dry_run`
/// found usable), so memguard's own PSI triggers are not armed.
pub fn arm(fs: &FsRoot, path: &str, write: Option<&[u8]>, armed: &mut Armed, dry_run: bool) -> bool {
    if dry_run {
        let r = std::fs::metadata(fs.path(path)).map_err(|e| format!("{path}: {e}")).and_then(|m| {
            if m.is_file() {
                OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                    .open(fs.path(path))
                    .map(|_| ())
                    .map_err(|e| format!("{path}: {e}"))
            } else {
                Ok(())
            }
        });
        let what = write.map(shown).unwrap_or_else(|| "memguard's own triggers".into());
        let ok = r.is_ok();
        let detail = match r {
            Ok(()) => format!("{path} \"{what}\" (from {WATCH_VAR}; `memguard status --probe` arms it now)"),
            Err(e) => format!("{e} (from {WATCH_VAR}); falling back to memguard's own PSI triggers"),
        };
        armed.note(SOURCE_NAME, ok, detail);
        return ok;
    }
    match open(fs, path, write) {
        Ok(source) => {
            armed.push(SOURCE_NAME, Ok(source));
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot arm the memory pressure watch; using memguard's own PSI triggers");
            armed.push(SOURCE_NAME, Err(format!("{e}; falling back to memguard's own PSI triggers")));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str, write: Option<&[u8]>) -> PressureWatch {
        PressureWatch::Path { path: p.into(), write: write.map(<[u8]>::to_vec) }
    }

    #[test]
    fn base64_as_systemd_writes_it() {
        // systemd 254+: base64 of "some 200000 2000000" and its NUL.
        assert_eq!(decode_base64("c29tZSAyMDAwMDAgMjAwMDAwMAA=").unwrap(), b"some 200000 2000000\0");
        assert_eq!(decode_base64("c29tZSAyMDAwMDAgMjAwMDAwMAA").unwrap(), b"some 200000 2000000\0");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64("Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(decode_base64("AAEC/w==").unwrap(), [0, 1, 2, 255]);
        for bad in ["Z", "Zh==", "Zm9v!", "Zg==Zg==", "Zg===", "Zm9vY"] {
            assert!(decode_base64(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn watch_values_as_sd_event_reads_them() {
        assert_eq!(PressureWatch::parse(None, Some("Zm9v")).unwrap(), PressureWatch::Unset);
        assert_eq!(PressureWatch::parse(Some("/dev/null"), None).unwrap(), PressureWatch::Disabled);
        assert_eq!(PressureWatch::parse(Some("/dev/null/"), None).unwrap(), PressureWatch::Disabled);
        assert_eq!(PressureWatch::parse(Some(""), Some("!!")).unwrap(), PressureWatch::Disabled);
        let p = "/sys/fs/cgroup/system.slice/app.service/memory.pressure";
        assert_eq!(
            PressureWatch::parse(Some(p), Some("c29tZSAyMDAwMDAgMjAwMDAwMAA=")).unwrap(),
            path(p, Some(b"some 200000 2000000\0"))
        );
        assert_eq!(PressureWatch::parse(Some(p), None).unwrap(), path(p, None));
        assert_eq!(PressureWatch::parse(Some("/run/x.fifo"), Some("")).unwrap(), path("/run/x.fifo", Some(b"")));
        for bad in ["memory.pressure", "./memory.pressure", "/sys/../memory.pressure", "/sys//fs", "/sys/./fs", "off"] {
            let e = PressureWatch::parse(Some(bad), None).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidConfig { env_var: Some("MEMORY_PRESSURE_WATCH"), value, .. } if value == bad),
                "{bad}: {e}"
            );
        }
        let e = PressureWatch::parse(Some(p), Some("not base64!")).unwrap_err();
        assert!(matches!(&e, Error::InvalidConfig { env_var: Some("MEMORY_PRESSURE_WRITE"), .. }), "{e}");
        assert!(e.to_string().contains("MEMORY_PRESSURE_WRITE"), "{e}");
    }

    #[test]
    fn the_event_follows_the_trigger_and_the_path() {
        assert_eq!(event_of("/proc/pressure/memory", Some(b"full 100000 2000000\0")), (Stall::Full, PsiScope::System));
        assert_eq!(event_of("/sys/fs/cgroup/a/memory.pressure", None), (Stall::Some, PsiScope::Cgroup));
        assert_eq!(shown(b"some 1 2\0"), "some 1 2");
    }

    #[test]
    fn a_fifo_is_watched_for_input_and_drained() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("pressure.fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success());
        let fs = FsRoot::new("/");
        let p = fifo.to_str().expect("utf-8");
        let mut armed = Armed::default();
        assert!(arm(&fs, p, Some(b"hello"), &mut armed, false), "{:?}", armed.status);
        assert_eq!(armed.status[0].name, SOURCE_NAME);
        assert!(armed.status[0].detail.as_deref().unwrap_or("").contains("from MEMORY_PRESSURE_WATCH"));
        let mut src = armed.sources.pop().expect("armed");
        // What was written on opening is queued in the FIFO (we are both ends): the first wake
        // drains it and reports pressure.
        let mut out = Vec::new();
        assert_eq!(src.ready(Ready { token: 0, events: IN }, &mut out), Keep::Yes);
        assert_eq!(out[0], Signal::Event(EventKind::Psi { stall: Stall::Some, scope: PsiScope::Cgroup }));
    }

    #[test]
    fn a_missing_file_is_reported_and_not_in_force() {
        let fs = FsRoot::new("/");
        let mut armed = Armed::default();
        assert!(!arm(&fs, "/nonexistent/memory.pressure", None, &mut armed, false));
        assert!(!armed.status[0].armed);
        let d = armed.status[0].detail.clone().unwrap_or_default();
        assert!(d.contains("falling back") && d.contains("MEMORY_PRESSURE_WATCH"), "{d}");
        let mut armed = Armed::default();
        assert!(!arm(&fs, "/nonexistent/memory.pressure", None, &mut armed, true));
    }
}
