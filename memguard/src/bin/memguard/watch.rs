//! `memguard watch`: stream events until SIGINT/SIGTERM.
//!
//! The main thread blocks in `next_event` — for as long as it likes (an hour), or until the
//! next `--snapshot-every` line is due — and never polls: a signal thread (signal-hook's
//! `Signals` iterator) closes the guard on SIGINT/SIGTERM, which wakes `next_event` at once.

use std::io;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use memguard::render;
use memguard::watch::Builder;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::output;

/// The longest wait in `next_event` without `--snapshot-every`: a wake-up an hour.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

pub fn run(json: bool, pid: Option<u32>, snapshot_every_ms: u64) -> ExitCode {
    let mut builder = match Builder::from_env() {
        Ok(b) => b,
        Err(e) => return output::failed(&e),
    };
    if let Some(pid) = pid {
        builder = builder.pid(pid);
    }
    // Registered before the guard starts: a signal from now on is queued for the thread below.
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            output::error(format_args!("cannot install a signal handler: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let guard = match builder.start() {
        Ok(g) => g,
        Err(e) => return output::failed(&e),
    };
    let signals_handle = signals.handle();
    let handle = guard.handle();
    let signal_thread = std::thread::Builder::new().name("memguard-signal".into()).spawn(move || {
        // None once `signals_handle.close()` ends the iterator on the way out.
        if signals.forever().next().is_some() {
            handle.close(); // wakes the main thread's next_event
        }
    });
    let signal_thread = match signal_thread {
        Ok(t) => t,
        Err(e) => {
            output::error(format_args!("cannot start the signal thread: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let written = stream(&guard, json, snapshot_every_ms);
    signals_handle.close();
    guard.close();
    let _ = signal_thread.join();
    output::finish(written)
}

/// Print the header, then events (and snapshots) until the guard is closed or stdout fails.
fn stream(guard: &memguard::MemGuard, json: bool, snapshot_every_ms: u64) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let (snap, sources) = (guard.snapshot(), guard.sources());
    let header =
        if json { render::watch_header_json(&snap, &sources) } else { render::watch_header_text(&snap, &sources) };
    output::line(&mut out, &header)?;
    let every = (snapshot_every_ms > 0).then(|| Duration::from_millis(snapshot_every_ms));
    let mut next_snap = every.map(|d| Instant::now() + d);
    loop {
        let wait = next_snap.map_or(IDLE_WAIT, |at| at.saturating_duration_since(Instant::now()));
        match guard.next_event(wait) {
            Some(ev) => {
                output::line(&mut out, &if json { render::event_json(&ev) } else { render::event_text(&ev) })?;
            }
            None if guard.is_closed() => return Ok(()),
            None => {}
        }
        if let (Some(at), Some(every)) = (next_snap, every) {
            let now = Instant::now();
            if now >= at {
                // After a stall, the next line is an interval from now (no burst of late lines).
                next_snap = Some(if at + every > now { at + every } else { now + every });
                let s = guard.snapshot();
                output::line(&mut out, &if json { render::snapshot_json(&s) } else { render::snapshot_text(&s) })?;
            }
        }
    }
}
