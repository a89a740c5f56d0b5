//! The `memguard` binary: `status` honours every `MEMGUARD_*` variable the library does, an
//! invalid variable is a one-line error (exit 2), a reader that goes away never makes it panic,
//! and `watch` sleeps until a signal or an event instead of polling.
//!
//! Runs the real binary on fixture trees (`MEMGUARD_ROOT`), so it needs no cgroup.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_memguard");
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A v2 fixture: the process in `/app` with a 1 GiB `memory.max`, 300 MiB used, 250 MiB
/// working set, on a 16 GiB host.
fn v2_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |abs: &str, content: &str| {
        let p = dir.path().join(abs.trim_start_matches('/'));
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, content).expect("write");
    };
    file("/proc/meminfo", "MemTotal: 16777216 kB\nMemAvailable: 8388608 kB\n");
    file("/proc/self/oom_score_adj", "0\n");
    file("/proc/self/cgroup", "0::/app\n");
    file(
        "/proc/self/mountinfo",
        "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n",
    );
    file("/sys/fs/cgroup/cgroup.controllers", "cpu io memory pids\n");
    file("/sys/fs/cgroup/memory.stat", "anon 1\ninactive_file 0\n");
    let app = "/sys/fs/cgroup/app";
    file(&format!("{app}/cgroup.controllers"), "cpu io memory pids\n");
    file(&format!("{app}/cgroup.type"), "domain\n");
    file(&format!("{app}/memory.max"), &GIB.to_string());
    file(&format!("{app}/memory.high"), "max\n");
    file(&format!("{app}/memory.swap.max"), "max\n");
    file(&format!("{app}/memory.current"), &(300 * MIB).to_string());
    file(&format!("{app}/memory.stat"), &format!("anon 1000\nfile 2000\ninactive_file {}\n", 50 * MIB));
    dir
}

/// A host without a memory cgroup (node mode): only `/proc/meminfo`.
fn node_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
    fs::write(dir.path().join("proc/meminfo"), "MemTotal: 1000000 kB\nMemAvailable: 900000 kB\n").expect("write");
    dir
}

/// `memguard` with a clean `MEMGUARD_*` environment, reading under `root`.
fn memguard(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("MEMGUARD_") {
            c.env_remove(k);
        }
    }
    c.env("MEMGUARD_ROOT", root);
    c.envs(env.iter().copied());
    c
}

fn run(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    memguard(root, args, env).output().expect("run memguard")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).expect("one JSON object")
}

#[test]
fn status_honours_every_memguard_variable() {
    let t = v2_tree();
    let env = [
        ("MEMGUARD_LIMIT", "512Mi"),
        ("MEMGUARD_WARN", "0.45"),
        ("MEMGUARD_CRITICAL", "0.6"),
        ("MEMGUARD_SOFT_LIMIT", "0.5"),
        ("MEMGUARD_PSI", "0"),
        ("MEMGUARD_MAX_RATE", "1Gi"),
        ("MEMGUARD_SAMPLE_MAX", "2s"),
    ];
    // Unreclaimable 250 MiB (300 MiB minus 50 MiB of clean file cache) of the 512 MiB override:
    // 0.49, between 0.45 and 0.6.
    let v = json(&run(t.path(), &["status", "--json"], &env));
    assert_eq!(v["limit_bytes"], 512 * MIB, "{v}");
    assert_eq!(v["limit_applied"], "override");
    assert_eq!(v["detected_limit_bytes"], GIB);
    assert_eq!(v["limit_override_bytes"], 512 * MIB);
    assert_eq!(v["limit_override_source"], "MEMGUARD_LIMIT");
    assert_eq!(v["level"], "warning");
    assert_eq!(v["budget_soft_limit_bytes"], 256 * MIB);
    assert_eq!(v["headroom_bytes"], 262 * MIB);
    let sources = v["sources"].as_array().expect("sources");
    let source = |name: &str| sources.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("{name}: {v}"));
    assert_eq!(source("psi")["armed"], false);
    assert_eq!(source("psi")["detail"], "disabled by configuration");
    let sampler = source("sampler")["detail"].as_str().expect("detail").to_owned();
    assert!(sampler.contains("1024 MiB/s") && sampler.contains("..2s"), "{sampler}");

    let text = stdout(&run(t.path(), &["status"], &env));
    assert!(text.contains("limit           512.0 MiB from MEMGUARD_LIMIT"), "{text}");
    assert!(
        text.contains("override        512.0 MiB (MEMGUARD_LIMIT) applies, lower than the detected 1.0 GiB"),
        "{text}"
    );
    assert!(text.contains("level           warning"), "{text}");
    assert!(text.contains("psi (disabled by configuration)"), "{text}");

    let prom = stdout(&run(t.path(), &["status", "--prometheus"], &env));
    for line in ["memguard_limit_bytes 536870912", "memguard_level 1", "memguard_soft_limit_bytes 268435456"] {
        assert!(prom.lines().any(|l| l == line), "{line} missing:\n{prom}");
    }

    // The rest of the table: cgroup events off, node mode's eviction threshold, the pid.
    let v = json(&run(t.path(), &["status", "--json"], &[("MEMGUARD_CGROUP_EVENTS", "false")]));
    let events = v["sources"].as_array().expect("sources").iter().find(|s| s["name"] == "cgroup-events").cloned();
    assert_eq!(events.expect("listed")["detail"], "disabled by configuration", "{v}");
    let n = node_tree();
    let v = json(&run(n.path(), &["status", "--json"], &[("MEMGUARD_EVICTION_THRESHOLD", "200Mi")]));
    assert!(v["sources"].to_string().contains("eviction threshold 209715200 bytes"), "{v}");
    let out = run(t.path(), &["status"], &[("MEMGUARD_PID", "4242")]);
    assert_eq!(out.status.code(), Some(1), "no /proc/4242 in the fixture");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/proc/4242/"), "{out:?}");
    // --root and --pid win over MEMGUARD_ROOT and MEMGUARD_PID.
    let v = json(&run(n.path(), &["status", "--json", "--root", t.path().to_str().expect("utf-8")], &[]));
    assert_eq!(v["limit_bytes"], GIB);
}

#[test]
fn an_invalid_variable_is_a_one_line_error_with_exit_2() {
    let t = v2_tree();
    for (var, text) in [
        ("MEMGUARD_REDETECT_INTERVAL", "0"),
        ("MEMGUARD_LIMIT", "1e3k"),
        ("MEMGUARD_WARN", "lots"),
        ("MEMGUARD_EVENT_HOLD", "25h"),
    ] {
        let out = run(t.path(), &["status"], &[(var, text)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={text}: {err}");
        assert!(out.stdout.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&format!("{var}={text:?}")), "{err}");
    }
    let out = run(t.path(), &["watch"], &[("MEMGUARD_SHED_INTERVAL", "1ms")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("MEMGUARD_SHED_INTERVAL=\"1ms\""), "{out:?}");
}

#[test]
fn help_lists_every_variable() {
    for cmd in ["status", "watch"] {
        let out = Command::new(BIN).args([cmd, "--help"]).output().expect("help");
        let help = stdout(&out);
        for v in memguard::watch::builder::ENV_VARS {
            assert!(help.contains(v.name), "`memguard {cmd} --help` lacks {}", v.name);
        }
    }
}

/// The write end of a pipe whose read end is already closed: every write gets `EPIPE`.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new fds into `fds`; each is owned exactly once below.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: fresh fds from pipe2, not owned elsewhere.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

fn wait_for_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("memguard did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("read stderr");
    err
}

#[test]
fn status_to_a_closed_pipe_exits_cleanly() {
    let t = v2_tree();
    for args in [&["status"][..], &["status", "--json"], &["status", "--prometheus"]] {
        let mut child =
            memguard(t.path(), args, &[]).stdout(closed_pipe()).stderr(Stdio::piped()).spawn().expect("spawn");
        let status = wait_for_exit(&mut child, Duration::from_secs(10));
        let err = stderr_of(&mut child);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(status.success(), "{args:?}: {status}: {err}");
    }
}

#[test]
fn watch_to_a_pipe_closed_early_or_later_exits_cleanly() {
    let n = node_tree();
    // Closed before the first line.
    let mut child = memguard(n.path(), &["watch", "--json"], &[])
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let status = wait_for_exit(&mut child, Duration::from_secs(10));
    let err = stderr_of(&mut child);
    assert!(status.success() && !err.contains("panicked"), "{status}: {err}");
    // Closed after the first line, while snapshot lines keep coming (`| head -n 1`).
    for args in [&["watch", "--snapshot-every", "20"][..], &["watch", "--json", "--snapshot-every", "20"]] {
        let mut child =
            memguard(n.path(), args, &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("read");
        assert!(first.starts_with("memguard watch") || first.contains("\"started\""), "{first}");
        let status = wait_for_exit(&mut child, Duration::from_secs(10));
        let err = stderr_of(&mut child);
        assert!(status.success() && !err.contains("panicked"), "{args:?}: {status}: {err}");
    }
}

/// Times thread `tid` of `pid` was scheduled in (the third `schedstat` field).
fn timeslices(pid: u32, tid: u32) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).expect("schedstat");
    text.split_whitespace().nth(2).and_then(|f| f.parse().ok()).expect("timeslices")
}

#[test]
fn watch_sleeps_until_a_signal_and_stops_at_once() {
    let n = node_tree();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut child =
            memguard(n.path(), &["watch"], &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("header");
        assert!(line.starts_with("memguard watch"), "{line}");
        // The main thread (tid = pid) blocks in next_event: it is not woken 10 times a second
        // to look at a stop flag. (A count of wake-ups, not a timing: load cannot add any.)
        std::thread::sleep(Duration::from_millis(200));
        let before = timeslices(child.id(), child.id());
        std::thread::sleep(Duration::from_millis(1500));
        let woken = timeslices(child.id(), child.id()) - before;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(i32::try_from(child.id()).expect("pid"), signal) };
        let status = wait_for_exit(&mut child, Duration::from_secs(5));
        assert!(woken <= 2, "the main thread woke {woken} times in 1.5 s while idle");
        let err = stderr_of(&mut child);
        assert!(status.success(), "signal {signal}: {status}: {err}");
        let mut rest = String::new();
        out.read_to_string(&mut rest).expect("rest");
        assert!(!err.contains("panicked"), "{err}");
    }
}
