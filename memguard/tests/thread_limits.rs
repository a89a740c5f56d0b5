//! A memguard thread that the operating system refuses (issue #14): a container's `pids.max`
//! or `RLIMIT_NPROC` can leave no room for the guard's three threads. `MemGuard::start` then
//! returns [`Error::ThreadSpawn`] naming the thread, stops and joins the threads it had started
//! and closes every descriptor; the CLI exits 1 with that message; nothing panics.
//!
//! `RLIMIT_NPROC` does not bind root, so the real test runs in a child process: this test
//! binary (a world-readable copy if the checkout is not reachable) run as an unprivileged uid
//! (`setpriv`) under `prlimit --nproc`. The child fills the thread allowance with parked threads, then frees
//! them one at a time so that the guard's first, second and third thread are refused in turn.
//! In its own test binary: fd and thread counts are process-wide.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use memguard::{Error, MemGuard};

#[path = "support/ci.rs"]
mod ci;
#[path = "support/process.rs"]
mod process;

use ci::unavailable;

use process::{count, guard_threads, guard_threads_once_exited, runnable_by_anyone};

/// A uid no service on these machines uses (the unprivileged-matrix tests use 65534).
const UID: &str = "64999";
/// The thread allowance given to the child: enough for the harness, fillers take the rest.
const NPROC: u32 = 16;
const CHILD_ENV: &str = "MEMGUARD_THREAD_LIMITS_CHILD";

/// The tests run processes as the same uid, whose `RLIMIT_NPROC` count they share: one at a
/// time, or the CLI's processes would take slots the child test counts on.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why this machine cannot run the test as another uid, if it cannot.
fn cannot_switch_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|v| v.split_whitespace().next());
    if uid != Some("0") {
        return Some("needs root to run a child as another uid (setpriv)".into());
    }
    for tool in ["setpriv", "prlimit"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("{tool} (util-linux) is not installed"));
        }
    }
    None
}

fn unprivileged(nproc: u32, program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", UID, "--regid", UID, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg("prlimit")
        .arg(format!("--nproc={nproc}:{nproc}"))
        .arg(program);
    c
}

#[test]
fn refused_threads_fail_start_cleanly() {
    let _serial = serial();
    if std::env::var_os(CHILD_ENV).is_some() {
        return; // in the child, only `child_fills_threads_and_starts_guards` runs
    }
    if let Some(why) = cannot_switch_uid() {
        return unavailable("refused_threads_fail_start_cleanly", &why);
    }
    let me = runnable_by_anyone(&std::env::current_exe().expect("current exe").to_string_lossy());
    let out = unprivileged(NPROC, Path::new(&me))
        .args(["--exact", "child_fills_threads_and_starts_guards", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "child failed ({}):\n{text}", out.status);
    assert!(text.contains("1 passed"), "the child test did not run:\n{text}");
    for thread in ["memguard-dispatch", "memguard-shed", "memguard-reactor"] {
        assert!(text.contains(&format!("refused {thread}")), "{thread} was never the refused one:\n{text}");
    }
}

/// The CLI under a thread limit: exit code 1 and the reason, whichever thread is refused.
#[test]
fn cli_reports_a_refused_thread() {
    let _serial = serial();
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    if let Some(why) = cannot_switch_uid() {
        return unavailable("cli_reports_a_refused_thread", &why);
    }
    let cli = runnable_by_anyone(env!("CARGO_BIN_EXE_memguard"));
    // The CLI's main thread, then `watch`'s signal thread, then the guard's three.
    for nproc in 1..=4 {
        let out = unprivileged(nproc, Path::new(&cli)).args(["watch", "--json"]).output().expect("run memguard watch");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "nproc {nproc}: {stderr}");
        assert!(!stderr.contains("panicked"), "nproc {nproc}: {stderr}");
        assert!(
            stderr.contains("cannot start memguard's thread") || stderr.contains("cannot start the signal thread"),
            "nproc {nproc}: {stderr}"
        );
        assert!(stderr.contains("Resource temporarily unavailable"), "nproc {nproc}: {stderr}");
    }
}

/// Runs only in the child (see the module docs); a no-op in a normal run.
#[test]
fn child_fills_threads_and_starts_guards() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut fillers = Vec::new();
    let fds = count("/proc/self/fd");
    let mut refused = std::collections::BTreeMap::new();
    for k in 0..THREADS.len() {
        for _ in 0..REPEATS {
            // Threads that exited (fillers, a refused start's threads) give their slot back
            // just after they are joined: let that settle, fill the allowance, free `k` slots.
            std::thread::sleep(Duration::from_millis(50));
            top_up(&mut fillers);
            for _ in 0..k {
                release(fillers.pop().expect("a filler to free"));
            }
            std::thread::sleep(Duration::from_millis(30));
            // Exactly `k` free slots is the aim; a thread of the machine's own exiting late can
            // shift it by one, so each attempt is judged on what it must always do, and every
            // thread must have been the refused one at some point.
            match MemGuard::start() {
                Err(Error::ThreadSpawn { thread, source }) => {
                    assert!(THREADS.contains(&thread), "{thread}: {source}");
                    assert_eq!(source.raw_os_error(), Some(11), "{source}");
                    *refused.entry(thread).or_insert(0) += 1;
                }
                Err(e) => panic!("expected ThreadSpawn, got {e}"),
                Ok(g) => g.close(),
            }
            assert_eq!(guard_threads_once_exited(), 0, "a refused start left a thread running");
            assert_eq!(count("/proc/self/fd"), fds, "a refused start left a descriptor open");
        }
        println!("{k} free slot(s), {REPEATS} starts: refused so far {refused:?}, no thread or fd left");
    }
    for thread in THREADS {
        let n = refused.get(thread).copied().unwrap_or(0);
        assert!(n > 0, "{thread} was never the refused thread: {refused:?}");
        println!("refused {thread}: {n} time(s)");
    }
    for f in fillers.drain(..) {
        release(f);
    }
    std::thread::sleep(Duration::from_millis(30));
    let guard = MemGuard::start().expect("with room for its three threads the guard starts");
    // Each thread names itself as it starts.
    for _ in 0..100 {
        if guard_threads() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(guard_threads(), 3);
    drop(guard);
    assert_eq!(guard_threads_once_exited(), 0);
    assert_eq!(count("/proc/self/fd"), fds);
}

/// The guard's threads, in the order it starts them.
const THREADS: [&str; 3] = ["memguard-dispatch", "memguard-shed", "memguard-reactor"];

/// Starts of a guard tried at each number of free thread slots.
const REPEATS: usize = 10;

type Filler = (mpsc::Sender<()>, std::thread::JoinHandle<()>);

/// Park threads until the kernel refuses one: the allowance is then full.
fn top_up(fillers: &mut Vec<Filler>) {
    loop {
        let (tx, rx) = mpsc::channel::<()>();
        match std::thread::Builder::new().name("filler".into()).spawn(move || {
            let _ = rx.recv();
        }) {
            Ok(h) => fillers.push((tx, h)),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(11), "the refusal is EAGAIN: {e}");
                return;
            }
        }
        assert!(fillers.len() < 4 * NPROC as usize, "RLIMIT_NPROC does not bind this process");
    }
}

fn release((tx, h): Filler) {
    drop(tx);
    h.join().expect("filler");
}
