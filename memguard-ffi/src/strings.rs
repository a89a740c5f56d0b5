//! Strings out: every text this library returns (Prometheus metrics, JSON, the human report)
//! is a NUL-terminated UTF-8 `char *` allocated here, handed over through a `char **`
//! out-parameter with its length (without the NUL) through an optional `size_t *`, and freed by
//! the caller with `memguard_string_free` — never with `free()`.
//!
//! Renderings come from the core (`memguard::render`, `serde` forms), never re-implemented.

use std::ffi::{c_char, CString};

use memguard::render;

use crate::boundary::{arg, call, call_or, Out};
use crate::config::memguard_config;
use crate::errors::{memguard_result, Failure};
use crate::guard::memguard_guard;

const OK: memguard_result = memguard_result::MEMGUARD_OK;

/// How a report is rendered (`memguard_status_report`, `memguard_render_snapshot`, ...).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum memguard_format {
    /// Human-readable text (`memguard status`, `memguard watch`).
    MEMGUARD_FORMAT_TEXT = 0,
    /// JSON (`--json`).
    MEMGUARD_FORMAT_JSON = 1,
    /// Prometheus text exposition format (`memguard_status_report` only).
    MEMGUARD_FORMAT_PROMETHEUS = 2,
}

fn parse_format(value: u32, prometheus: bool) -> Result<memguard_format, Failure> {
    match value {
        0 => Ok(memguard_format::MEMGUARD_FORMAT_TEXT),
        1 => Ok(memguard_format::MEMGUARD_FORMAT_JSON),
        2 if prometheus => Ok(memguard_format::MEMGUARD_FORMAT_PROMETHEUS),
        other => Err(Failure::invalid(format!("format {other} is not a memguard_format accepted here"))),
    }
}

/// A string on its way to C.
pub(crate) struct OwnedString(CString);

impl OwnedString {
    pub(crate) fn new(text: String) -> Self {
        // Renderings never contain NUL; should one, it is escaped rather than cut.
        OwnedString(CString::new(text).unwrap_or_else(|e| {
            let escaped = String::from_utf8_lossy(&e.into_vec()).replace('\0', "\\u0000");
            CString::new(escaped).unwrap_or_default()
        }))
    }

    pub(crate) fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr()
    }

    pub(crate) fn into_raw(self) -> *mut c_char {
        self.0.into_raw()
    }
}

/// Hand `text` to the caller through `out` (and its length through `len`, if not NULL).
fn give(out: Out<*mut c_char>, len: *mut usize, text: String) {
    let n = text.len();
    out.write(OwnedString::new(text).into_raw());
    if let Ok(len) = Out::new(len, "len") {
        len.write(n);
    }
}

/// Free a string returned by this library. NULL is a no-op.
#[no_mangle]
pub extern "C" fn memguard_string_free(s: *mut c_char) {
    call_or((), || {
        if !s.is_null() {
            // SAFETY: from `CString::into_raw` in `give` / `memguard_next_event`; the caller
            // gives it up (the header's contract: only strings of this library).
            drop(unsafe { CString::from_raw(s) });
        }
    });
}

/// Run `text` on an open guard and hand the result out.
fn guard_string(
    guard: *const memguard_guard,
    out: *mut *mut c_char,
    len: *mut usize,
    text: impl FnOnce(&memguard::GuardHandle) -> Result<String, Failure>,
) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        let h = arg(guard, "guard")?.open()?;
        give(out, len, text(&h)?);
        Ok(OK)
    })
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, Failure> {
    serde_json::to_string(v).map_err(|e| Failure::new(memguard_result::MEMGUARD_ERR_INTERNAL, e.to_string()))
}

/// The guard's metrics in the Prometheus text format, for a service's own `/metrics`
/// (Content-Type `text/plain; version=0.0.4`). Free with `memguard_string_free`.
#[no_mangle]
pub extern "C" fn memguard_prometheus(
    guard: *const memguard_guard,
    out: *mut *mut c_char,
    len: *mut usize,
) -> memguard_result {
    guard_string(guard, out, len, |h| Ok(h.prometheus()))
}

/// The latest snapshot as JSON, every field (budget and shedding counters included). Free with
/// `memguard_string_free`.
#[no_mangle]
pub extern "C" fn memguard_snapshot_json(
    guard: *const memguard_guard,
    out: *mut *mut c_char,
    len: *mut usize,
) -> memguard_result {
    guard_string(guard, out, len, |h| json(&h.snapshot()))
}

/// The limits as JSON (cgroup paths, notes, unreadable files: what `memguard_guard_limits` lacks).
#[no_mangle]
pub extern "C" fn memguard_limits_json(
    guard: *const memguard_guard,
    out: *mut *mut c_char,
    len: *mut usize,
) -> memguard_result {
    guard_string(guard, out, len, |h| json(&h.limits()))
}

/// Every event source tried, armed or not, with the reason, as a JSON array.
#[no_mangle]
pub extern "C" fn memguard_sources_json(
    guard: *const memguard_guard,
    out: *mut *mut c_char,
    len: *mut usize,
) -> memguard_result {
    guard_string(guard, out, len, |h| json(&h.sources()))
}

/// The latest shedding run as JSON (`null` before the first one).
#[no_mangle]
pub extern "C" fn memguard_last_shed_json(
    guard: *const memguard_guard,
    out: *mut *mut c_char,
    len: *mut usize,
) -> memguard_result {
    guard_string(guard, out, len, |h| json(&h.last_shed()))
}

/// The latest snapshot as a `memguard watch --snapshot-every` line (`MEMGUARD_FORMAT_TEXT` or
/// `MEMGUARD_FORMAT_JSON`).
#[no_mangle]
pub extern "C" fn memguard_render_snapshot(
    guard: *const memguard_guard,
    format: u32,
    out: *mut *mut c_char,
    len: *mut usize,
) -> memguard_result {
    guard_string(guard, out, len, |h| {
        Ok(match parse_format(format, false)? {
            memguard_format::MEMGUARD_FORMAT_JSON => render::snapshot_json(&h.snapshot()),
            _ => render::snapshot_text(&h.snapshot()),
        })
    })
}

/// The first lines of `memguard watch` for this guard: level, limit, every source tried
/// (`MEMGUARD_FORMAT_TEXT` or `MEMGUARD_FORMAT_JSON`).
#[no_mangle]
pub extern "C" fn memguard_render_header(
    guard: *const memguard_guard,
    format: u32,
    out: *mut *mut c_char,
    len: *mut usize,
) -> memguard_result {
    guard_string(guard, out, len, |h| {
        let (snap, sources) = (h.snapshot(), h.sources());
        Ok(match parse_format(format, false)? {
            memguard_format::MEMGUARD_FORMAT_JSON => render::watch_header_json(&snap, &sources),
            _ => render::watch_header_text(&snap, &sources),
        })
    })
}

/// The one-shot `memguard status` report of this process, without starting a guard: exactly
/// what the CLI prints (`MEMGUARD_FORMAT_TEXT`, `MEMGUARD_FORMAT_JSON` or
/// `MEMGUARD_FORMAT_PROMETHEUS`). `config` NULL reads the `MEMGUARD_*` environment.
///
/// # Errors
/// `MEMGUARD_ERR_INVALID_CONFIG`, `MEMGUARD_ERR_PROC_UNAVAILABLE`, `MEMGUARD_ERR_INVALID_ARGUMENT`
/// (format).
#[no_mangle]
pub extern "C" fn memguard_status_report(
    config: *const memguard_config,
    format: u32,
    out: *mut *mut c_char,
    len: *mut usize,
) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        let format = parse_format(format, true)?;
        let cfg = if config.is_null() {
            memguard::watch::Builder::from_env()?.config()?
        } else {
            arg(config, "config")?.builder.config()?
        };
        let status = memguard::Status::gather(&cfg.detector(), &cfg, false)?;
        give(
            out,
            len,
            match format {
                memguard_format::MEMGUARD_FORMAT_TEXT => render::status_text(&status, cfg.pid()),
                memguard_format::MEMGUARD_FORMAT_JSON => render::status_json(&status),
                memguard_format::MEMGUARD_FORMAT_PROMETHEUS => render::status_prometheus(&status),
            },
        );
        Ok(OK)
    })
}
