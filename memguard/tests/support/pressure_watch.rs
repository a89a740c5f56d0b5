//! systemd's memory pressure protocol on the real kernel: `MEMORY_PRESSURE_WATCH` /
//! `MEMORY_PRESSURE_WRITE` set as systemd sets them for a unit with `MemoryPressureWatch=`
//! (the unit cgroup's `memory.pressure`, base64 of `some <threshold> 2000000` and a NUL byte).

use std::process::Stdio;
use std::time::{Duration, Instant};

use memguard::watch::EventKind;
use memguard::{MemGuard, PressureWatch, PsiScope};
use serde_json::Value;

use super::cgroup::{Kit, Version};
use super::scenarios::wait_until_in;
use super::unavailable;

const MIB: u64 = 1 << 20;
const BIN: &str = env!("CARGO_BIN_EXE_memguard");
/// What systemd 254+ writes by default: base64 of `"some 200000 2000000\0"`.
const SYSTEMD_DEFAULT_WRITE: &str = "c29tZSAyMDAwMDAgMjAwMDAwMAA=";
/// `MemoryPressureThresholdSec=100ms`: base64 of `"some 100000 2000000\0"`.
const THRESHOLD_100MS_WRITE: &str = "c29tZSAxMDAwMDAgMjAwMDAwMAA=";

fn source<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["sources"].as_array().and_then(|a| a.iter().find(|s| s["name"] == name))
}

fn names(status: &Value) -> Vec<String> {
    status["sources"]
        .as_array()
        .map(|a| a.iter().map(|s| s["name"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

/// The cgroup v2 `memory.pressure` of this process: on a hybrid host the unified hierarchy
/// (no memory controller, but PSI files), in the VM the test cgroup's. Else the system file.
fn own_pressure_file() -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mount = mounts.lines().map(|l| l.split(' ').collect::<Vec<_>>()).find(|f| f.len() > 2 && f[2] == "cgroup2")?[1]
        .to_owned();
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim_end_matches('/').to_owned();
    let file = format!("{}{path}/memory.pressure", mount.trim_end_matches('/'));
    std::path::Path::new(&file).exists().then_some(file)
}

/// `memguard status --probe --json` with the systemd variables set: the trigger is armed on
/// the named file (`psi-watch`, "from MEMORY_PRESSURE_WATCH") instead of memguard's own.
pub fn systemd_pressure_watch_arms(kit: &Kit) {
    let cg = kit.cgroup("pressure-watch");
    cg.set_limit(256 * MIB);
    let file = match kit.version {
        Version::V2 => cg.dir().join("memory.pressure").display().to_string(),
        Version::V1 => match own_pressure_file().or_else(|| {
            std::path::Path::new("/proc/pressure/memory").exists().then(|| "/proc/pressure/memory".to_owned())
        }) {
            Some(f) => f,
            None => return unavailable("systemd_pressure_watch_arms", "no PSI file on this kernel"),
        },
    };
    let out = cg
        .command(BIN, &["status", "--probe", "--json"])
        .env("MEMORY_PRESSURE_WATCH", &file)
        .env("MEMORY_PRESSURE_WRITE", SYSTEMD_DEFAULT_WRITE)
        .output()
        .expect("run status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: Value = serde_json::from_slice(&out.stdout).expect("json");
    let w = source(&s, "psi-watch").unwrap_or_else(|| panic!("no psi-watch: {s:#}"));
    let detail = w["detail"].as_str().unwrap_or_default();
    assert_eq!(w["armed"], true, "{s:#}");
    assert!(detail.contains(&file) && detail.contains("\"some 200000 2000000\""), "{detail}");
    assert!(detail.contains("from MEMORY_PRESSURE_WATCH"), "{detail}");
    let own: Vec<String> =
        names(&s).into_iter().filter(|n| n.starts_with("psi-cgroup") || n.starts_with("psi-system")).collect();
    assert!(own.is_empty(), "memguard's own triggers are replaced: {own:?}");
    // The human report shows it too.
    let text = cg
        .command(BIN, &["status", "--probe"])
        .env("MEMORY_PRESSURE_WATCH", &file)
        .env("MEMORY_PRESSURE_WRITE", SYSTEMD_DEFAULT_WRITE)
        .output()
        .expect("run status");
    assert!(String::from_utf8_lossy(&text.stdout).contains("psi-watch"), "{}", String::from_utf8_lossy(&text.stdout));
    println!("psi-watch: {detail}");
}

/// `/dev/null` turns PSI off; an invalid value is a typed configuration error (exit 2, the
/// variable named), never a panic; a file that cannot be armed falls back, visibly.
pub fn systemd_pressure_watch_off_invalid_and_fallback(kit: &Kit) {
    let cg = kit.cgroup("pressure-watch-off");
    cg.set_limit(256 * MIB);
    let status = |watch: &str, write: Option<&str>| {
        let mut c = cg.command(BIN, &["status", "--probe", "--json"]);
        c.env("MEMORY_PRESSURE_WATCH", watch).stderr(Stdio::piped());
        if let Some(w) = write {
            c.env("MEMORY_PRESSURE_WRITE", w);
        }
        c.output().expect("run status")
    };
    let off = status("/dev/null", Some(SYSTEMD_DEFAULT_WRITE));
    assert!(off.status.success());
    let s: Value = serde_json::from_slice(&off.stdout).expect("json");
    let psi: Vec<String> = names(&s).into_iter().filter(|n| n.starts_with("psi")).collect();
    assert_eq!(psi, ["psi"], "{s:#}");
    assert!(source(&s, "psi").expect("psi")["detail"].as_str().unwrap_or_default().contains("/dev/null"));

    for (watch, write, var) in [
        ("memory.pressure", None, "MEMORY_PRESSURE_WATCH"),
        ("/sys/fs/cgroup/../memory.pressure", None, "MEMORY_PRESSURE_WATCH"),
        ("/proc/pressure/memory", Some("not base64!"), "MEMORY_PRESSURE_WRITE"),
    ] {
        let bad = status(watch, write);
        let err = String::from_utf8_lossy(&bad.stderr);
        assert_eq!(bad.status.code(), Some(2), "{watch}: {err}");
        assert!(err.contains(var) && !err.contains("panicked"), "{watch}: {err}");
    }

    let missing = status("/nonexistent/memory.pressure", Some(SYSTEMD_DEFAULT_WRITE));
    assert!(missing.status.success());
    let s: Value = serde_json::from_slice(&missing.stdout).expect("json");
    let w = source(&s, "psi-watch").expect("psi-watch listed");
    assert_eq!(w["armed"], false, "{s:#}");
    assert!(w["detail"].as_str().unwrap_or_default().contains("falling back"), "{w}");
    assert!(names(&s).iter().any(|n| n.starts_with("psi-cgroup") || n.starts_with("psi-system")), "{s:#}");
}

/// cgroup v2: a guard configured as systemd configures a unit (the unit cgroup's
/// `memory.pressure`, `some 100000 2000000`) arms that trigger, and a workload throttled at
/// `memory.high` makes it fire: a `Psi` event from the cgroup scope.
pub fn systemd_pressure_watch_event_under_pressure(kit: &Kit) {
    assert_eq!(kit.version, Version::V2, "a cgroup v2 scenario");
    let cg = kit.cgroup("pressure-watch-event");
    cg.set_limit(256 * MIB);
    cg.set_high(48 * MIB);
    let mut keeper = cg.spawn("sleep", &["600"]);
    wait_until_in(keeper.id(), &cg);
    let file = cg.dir().join("memory.pressure").display().to_string();
    let watch = PressureWatch::parse(Some(&file), Some(THRESHOLD_100MS_WRITE)).expect("systemd's values parse");
    let guard = MemGuard::builder().pid(keeper.id()).pressure_watch(watch).start().expect("start guard");
    let sources = guard.sources();
    let w = sources.iter().find(|s| s.name == "psi-watch").unwrap_or_else(|| panic!("{sources:#?}"));
    assert!(w.armed, "{sources:#?}");
    assert!(w.detail.as_deref().unwrap_or_default().contains(&file), "{w:?}");
    assert!(!sources.iter().any(|s| s.name.starts_with("psi-cgroup") && s.armed), "{sources:#?}");

    let start = Instant::now();
    let mut hog = cg
        .command(BIN, &["alloc", "--rate", "512M", "--to", "160M", "--hold", "3"])
        .stdout(Stdio::null())
        .spawn()
        .expect("alloc");
    let mut psi = None;
    while start.elapsed() < Duration::from_secs(40) && psi.is_none() {
        if let Some(ev) = guard.next_event(Duration::from_millis(100)) {
            if matches!(ev.kind, EventKind::Psi { scope: PsiScope::Cgroup, .. }) {
                psi = Some(ev);
            }
        }
    }
    let _ = hog.kill();
    let _ = hog.wait();
    let _ = keeper.kill();
    let _ = keeper.wait();
    let pressure = std::fs::read_to_string(&file).unwrap_or_default();
    let ev = psi.unwrap_or_else(|| panic!("no Psi event in 40 s; {file}:\n{pressure}"));
    println!("Psi event after {:?}: {ev:?}", start.elapsed());
    drop(guard);
}
