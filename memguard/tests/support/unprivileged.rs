//! Issue #14, "Unprivileged, read-only — the Kubernetes default": memguard as a pod runs it,
//! on v1 natively and v2 in the VM. See [`confine`](super::confine) for the matrix
//! {root without `CAP_SYS_RESOURCE`, uid 65534} × {rw, ro cgroupfs} × {not delegated, delegated}.
//!
//! * [`unprivileged_matrix`]: `memguard status --probe --json` in each of the eight cases; every
//!   source must be armed, or not armed with the kernel's reason, exactly as [`expected`] says
//!   (the README's table is this function).
//! * [`pod_warns_before_oom_kill`]: `memguard watch --json` as 65534 on a read-only cgroupfs
//!   reports Warning (or Critical) before a real workload is OOM-killed, then the kill.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use super::cgroup::{Kit, TestCgroup, Version};
use super::confine::{delegate, undelegate, Confinement, User};

const MIB: u64 = 1 << 20;
const BIN: &str = env!("CARGO_BIN_EXE_memguard");

/// What a source must say in one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `armed` true.
    Armed,
    /// `armed` false, `detail` naming this kernel error.
    Refused(&'static str),
    /// Not listed (PSI on the system file is tried only when the cgroup file refused).
    Absent,
}

const EACCES: &str = "Permission denied (os error 13)";
const EROFS: &str = "Read-only file system (os error 30)";

/// Whether a source arms, per kernel and case. The kernel's rules behind it:
/// * v1 eventfd notifications (`v1-threshold-*`, `v1-growth-*`, `v1-pressure-*`, `v1-oom`) are
///   registered by writing `cgroup.event_control` (mode 0200, root's): refused to 65534 unless
///   delegated (`EACCES`, checked before the read-only mount), refused on a read-only mount
///   (`EROFS`).
/// * v2 `memory.events` is read-only `EPOLLPRI` polling: armed in every case.
/// * `psi-cgroup-*`: a trigger is a write to `memory.pressure` (mode 0644). On v1 that file is the
///   unified hierarchy's (not delegated with the memory cgroup), on v2 the cgroup's own. Without
///   `CAP_SYS_RESOURCE` only 2 s windows are accepted (Linux ≥ 6.5, and Debian's 6.1.192).
/// * `psi-system-*`: `/proc/pressure/memory` (mode 0666, not on cgroupfs) is tried when the
///   cgroup file refused: a 2 s trigger arms without any privilege on both kernels here.
/// * `sampler`: reads only, always armed.
pub fn expected(version: Version, case: Confinement, source: &str) -> Expect {
    let psi_cgroup = || {
        let writable = match version {
            Version::V1 => case.user == User::Root,
            Version::V2 => case.user == User::Root || case.delegated,
        };
        if !writable {
            Expect::Refused(EACCES)
        } else if case.read_only {
            Expect::Refused(EROFS)
        } else {
            Expect::Armed
        }
    };
    match source {
        "sampler" | "v2-memory-events" => Expect::Armed,
        s if s.starts_with("v1-") => {
            if case.user == User::Nobody && !case.delegated {
                Expect::Refused(EACCES)
            } else if case.read_only {
                Expect::Refused(EROFS)
            } else {
                Expect::Armed
            }
        }
        "psi-cgroup-some" | "psi-cgroup-full" => psi_cgroup(),
        "psi-system-some" | "psi-system-full" => {
            if psi_cgroup() == Expect::Armed {
                Expect::Absent
            } else {
                Expect::Armed
            }
        }
        _ => Expect::Absent,
    }
}

/// The sources `memguard status` lists on this kernel (with a limit, default configuration).
pub fn source_names(version: Version) -> Vec<&'static str> {
    let mut names = match version {
        Version::V1 => vec![
            "v1-threshold-warn",
            "v1-threshold-critical",
            "v1-growth-20",
            "v1-growth-30",
            "v1-growth-45",
            "v1-growth-60",
            "v1-growth-70",
            "v1-pressure-medium",
            "v1-pressure-critical",
            "v1-oom",
        ],
        Version::V2 => vec!["v2-memory-events"],
    };
    names.extend(["psi-cgroup-some", "psi-cgroup-full", "psi-system-some", "psi-system-full", "sampler"]);
    names
}

fn confined_output(cg: &TestCgroup, version: Version, case: Confinement, program: &str, args: &[&str]) -> String {
    let (p, a) = case.wrap(version, program, args);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    cg.run(&p, &a)
}

/// `memguard status --probe --json` (real PSI triggers) in each of the eight cases: the limit is
/// found, and every source is armed or refused exactly as [`expected`] says, with the kernel's
/// error in `detail`; armed PSI triggers use a 2 s window (no `CAP_SYS_RESOURCE`). Prints the
/// measured matrix as table rows.
pub fn unprivileged_matrix(kit: &Kit) {
    const LIMIT: u64 = 200 * MIB;
    let cg = kit.cgroup("unpriv-matrix");
    cg.set_limit(LIMIT);
    let mut failures = Vec::new();
    for case in Confinement::matrix() {
        if case.delegated {
            delegate(cg.dir());
        }
        let out = confined_output(&cg, kit.version, case, BIN, &["status", "--probe", "--json"]);
        undelegate(cg.dir());
        let s: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{}: bad json {e}: {out}", case.label()));
        assert_eq!(s["limit_bytes"], LIMIT, "{}: the limit must be found: {s:#}", case.label());
        if kit.version == Version::V2 && case.read_only {
            assert_eq!(s["cgroup_path"], "/", "{}: a private cgroup namespace: {s:#}", case.label());
        }
        let sources = s["sources"].as_array().cloned().unwrap_or_default();
        let mut row: Vec<(String, &str)> = Vec::new();
        for name in source_names(kit.version) {
            let got = sources.iter().find(|x| x["name"] == name);
            let detail = got.and_then(|x| x["detail"].as_str()).unwrap_or_default();
            let ok = match (expected(kit.version, case, name), got) {
                (Expect::Absent, None) => true,
                (Expect::Armed, Some(x)) => {
                    x["armed"] == true && (!name.starts_with("psi-") || detail.ends_with(" 2000000\""))
                }
                (Expect::Refused(why), Some(x)) => x["armed"] == false && detail.contains(why),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{} {name}: expected {:?}, got {got:?}",
                    case.label(),
                    expected(kit.version, case, name)
                ));
            }
            if let Some(x) = got {
                let what = if x["armed"] == true { "armed" } else { errno(detail) };
                match row.last_mut() {
                    Some((names, last)) if *last == what && name.starts_with("v1-") && names.starts_with("v1-") => {
                        *names = "v1-*".to_owned();
                    }
                    _ => row.push((name.to_owned(), what)),
                }
            }
        }
        let unexpected: Vec<&str> = sources
            .iter()
            .filter_map(|x| x["name"].as_str())
            .filter(|n| !source_names(kit.version).contains(n))
            .collect();
        if !unexpected.is_empty() {
            failures.push(format!("{}: unexpected sources {unexpected:?}", case.label()));
        }
        let row: Vec<String> = row.iter().map(|(n, w)| format!("{n} {w}")).collect();
        println!("{:?} | {} | {}", kit.version, case.label(), row.join(", "));
    }
    assert!(failures.is_empty(), "{:#?}", failures);
}

/// The kernel's error named in a `detail`, for the printed table.
fn errno(detail: &str) -> &'static str {
    [(EACCES, "EACCES"), (EROFS, "EROFS"), ("Invalid argument", "EINVAL"), ("Operation not permitted", "EPERM")]
        .into_iter()
        .find_map(|(text, name)| detail.contains(text).then_some(name))
        .unwrap_or("not armed")
}

/// The Kubernetes default (uid 65534, read-only cgroupfs, nothing delegated): `memguard watch
/// --json` in the cgroup, a workload ramping at `rate` past the 128 MiB limit. The watcher must
/// report Warning or Critical before the workload's OOM kill, then exactly one `oom_kill`, and
/// exit cleanly on SIGTERM.
pub fn pod_warns_before_oom_kill(kit: &Kit, rate: &str) {
    const LIMIT: u64 = 128 * MIB;
    let cg = kit.cgroup("unpriv-oom");
    cg.set_limit(LIMIT);
    let (p, a) = Confinement::pod().wrap(kit.version, BIN, &["watch", "--json"]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut watch = cg.command(&p, &a).stdout(Stdio::piped()).spawn().expect("spawn confined watch");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let first: Value = serde_json::from_str(&lines.next().expect("a first line").expect("read")).expect("json");
    assert_eq!(first["kind"], "started", "{first:#}");
    let armed: Vec<String> = first["sources"]
        .as_array()
        .map(|a| a.iter().filter(|s| s["armed"] == true).filter_map(|s| s["name"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    let hog = cg.command(BIN, &["alloc", "--rate", rate, "--to", "1G"]).stdout(Stdio::null()).status().expect("hog");
    let stop = |w: &mut std::process::Child| {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(w.id().to_string()).status();
        w.wait().expect("wait watch")
    };
    if std::os::unix::process::ExitStatusExt::signal(&hog) != Some(9) {
        stop(&mut watch);
        panic!("the workload must be OOM-killed: {hog}");
    }
    std::thread::sleep(Duration::from_millis(2500)); // v1 reads the kill counter on its next sample
    let status = stop(&mut watch);
    assert!(status.success(), "the confined watcher must survive and exit cleanly on SIGTERM: {status}");
    let events: Vec<Value> = lines.map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect();
    let kill = events.iter().position(|e| e["kind"] == "oom_kill");
    let warn = events.iter().position(|e| e["kind"] == "level_changed" && e["to"] != "normal");
    let kills = events.iter().filter(|e| e["kind"] == "oom_kill").count();
    assert_eq!(kills, 1, "exactly one OOM kill reported: {events:#?}");
    let (Some(warn), Some(kill)) = (warn, kill) else { panic!("no Warning before the kill: {events:#?}") };
    assert!(warn < kill, "Warning must come before the OOM kill: {events:#?}");
    #[allow(clippy::cast_precision_loss)]
    let fraction = events[warn]["unreclaimable_bytes"].as_u64().unwrap_or(u64::MAX) as f64 / LIMIT as f64;
    println!(
        "{:?} as 65534 on a read-only cgroupfs, armed {armed:?}: {} at {:.1}% of the limit, then oom_kill",
        kit.version,
        events[warn]["to"],
        fraction * 100.0
    );
}
