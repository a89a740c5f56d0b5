//! The contenders of the survival campaign, as data: one [`Contender`] per line of
//! [`CONTENDERS`]. Adding a binding or a watchdog is one entry (and, if it needs a new
//! executable, one field of [`Tools`] with its build step).
//!
//! Every worker is the same growing cache: 4 MiB entries, `TOTAL_MIB` requested in all (1.25x
//! the limit), the first `WARM_MIB` at once and the rest at a given rate; they differ only in
//! how (and whether) they detect pressure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::runc;

/// Every worker asks for this much in all: 1.25x the 256 MiB limit — past it, a worker that
/// does not shed is killed on every run, and every MiB more only makes a survivor's run longer
/// (it was 1.5x: the default campaign took 40 minutes).
pub const TOTAL_MIB: u64 = 320;
/// The first this much is cached without pause, the rest at the cell's rate: a service whose
/// cache is already warm (half the limit, under every detector's threshold: Dask 80%, Ray 95%,
/// the kubelet's 100 MiB left, memguard's Warning at 80%) when it starts growing. The time a
/// run spends far below the limit shows nothing and cost most of the slow cells' time. The fill
/// itself is a burst at full speed: memguard's predictive warning (time to the limit) may act
/// on it, the fixed thresholds do not.
pub const WARM_MIB: u64 = 128;
/// The size of one cache entry.
pub const STEP_MIB: u64 = 4;
/// "As fast as the language goes": a rate no worker reaches (it never sleeps).
pub const FULL_SPEED: u64 = 100_000;

/// An executable a contender needs, built (or found) once per run, or why not.
pub type Tool = Result<Vec<String>, String>;

/// The built workers: each the command line up to its own arguments.
pub struct Tools {
    pub python: Tool,
    pub rust: Tool,
    pub c: Tool,
    pub java: Tool,
    pub go: Tool,
}

/// What a contender is expected to do at every rate (the short suite checks it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expect {
    /// Must survive every run.
    Survive,
    /// Must be OOM-killed every run.
    Die,
    /// Measured, not asserted (pollers: depends on the rate).
    Measure,
}

/// One contender: how to run its worker at a rate (MiB/s).
pub struct Contender {
    /// Unique short id (`--only` matches it), e.g. `py-memguard-level`.
    pub id: &'static str,
    /// Language of the worker.
    pub lang: &'static str,
    /// How it detects pressure, for the report.
    pub detection: &'static str,
    /// What it does about it, for the report.
    pub reaction: &'static str,
    /// Runs in the (slow, emulated) v2 VM too.
    pub in_vm: bool,
    /// In the VM, runs in a VM of its own with one vCPU: the JVMs (under qemu's multi-threaded
    /// TCG, code HotSpot's JIT patches on one vCPU was seen executed stale on another:
    /// `memguard-jni/run-tests.sh`, about one JVM in six under its JUnit suites). For these
    /// workers (`benches/compare/jvm-crashes.sh`): with two vCPUs 1 of 72 crashed (SIGSEGV,
    /// hs_err), 0 of 24 with `-XX:TieredStopAtLevel=1` (too few to tell); with one vCPU 0 of 71.
    /// `compare` counts a crash apart anyway.
    pub one_vcpu: bool,
    pub expect: Expect,
    /// The worker's command line at `rate` MiB/s, from the built tools.
    pub argv: fn(&Tools, u64) -> Tool,
}

fn with(base: &Tool, extra: &[String]) -> Tool {
    let mut v = base.clone()?;
    v.extend_from_slice(extra);
    Ok(v)
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn py(t: &Tools, guard: &str, rate: u64) -> Tool {
    let (step, total, rate, warm) =
        (STEP_MIB.to_string(), TOTAL_MIB.to_string(), rate.to_string(), WARM_MIB.to_string());
    with(&t.python, &strings(&["--guard", guard, "--step", &step, "--rate", &rate, "--total", &total, "--warm", &warm]))
}

fn rust(t: &Tools, style: Option<&str>, rate: u64) -> Tool {
    let mut a = strings(&["--total", &format!("{TOTAL_MIB}M"), "--rate", &format!("{rate}M"), "--warm"]);
    a.extend([format!("{WARM_MIB}M"), "--entry".into()]);
    a.push(format!("{STEP_MIB}M"));
    a.extend(style.map(str::to_owned));
    with(&t.rust, &a)
}

fn c(t: &Tools, guard: &str, rate: u64) -> Tool {
    let (step, total, rate, warm) =
        (STEP_MIB.to_string(), TOTAL_MIB.to_string(), rate.to_string(), WARM_MIB.to_string());
    with(&t.c, &strings(&["--guard", guard, "--total", &total, "--rate", &rate, "--entry", &step, "--warm", &warm]))
}

fn java(t: &Tools, mode: &str, rate: u64) -> Tool {
    let mut jvm = t.java.clone()?;
    // A crashed JVM's report goes to /tmp, not the current directory (the repository); the
    // report on stdout is what `survival` looks for.
    jvm.insert(1, "-XX:ErrorFile=/tmp/memguard-compare-hs_err_%p.log".into());
    with(&Ok(jvm), &strings(&[mode, &(TOTAL_MIB / STEP_MIB).to_string(), &rate.to_string(), &WARM_MIB.to_string()]))
}

fn go(t: &Tools, rate: u64) -> Tool {
    let (step, total, rate, warm) =
        (STEP_MIB.to_string(), TOTAL_MIB.to_string(), rate.to_string(), WARM_MIB.to_string());
    with(&t.go, &strings(&["--step", &step, "--rate", &rate, "--total", &total, "--warm", &warm]))
}

/// Every contender, in the report's order.
pub const CONTENDERS: &[Contender] = &[
    Contender {
        id: "py-unguarded",
        lang: "Python",
        detection: "none",
        reaction: "none",
        in_vm: true,
        one_vcpu: false,
        expect: Expect::Die,
        argv: |t, r| py(t, "none", r),
    },
    Contender {
        id: "py-dask-like",
        lang: "Python",
        detection: "process RSS every 100 ms, Warning 80% / Critical 95% (Dask's pause/terminate)",
        reaction: "same on_level handler",
        in_vm: true,
        one_vcpu: false,
        expect: Expect::Measure,
        argv: |t, r| py(t, "dask", r),
    },
    Contender {
        id: "py-ray-like",
        lang: "Python",
        detection: "cgroup usage - inactive_file every 250 ms, 95% (Ray's memory monitor)",
        reaction: "same on_level handler",
        in_vm: true,
        one_vcpu: false,
        expect: Expect::Measure,
        argv: |t, r| py(t, "ray", r),
    },
    Contender {
        id: "py-kubelet-like",
        lang: "Python",
        detection: "working set every 10 s, < 100 MiB left (kubelet eviction)",
        reaction: "same on_level handler",
        in_vm: true,
        one_vcpu: false,
        expect: Expect::Measure,
        argv: |t, r| py(t, "kubelet", r),
    },
    Contender {
        id: "py-memguard-level",
        lang: "Python",
        detection: "memguard",
        reaction: "on_level handler",
        in_vm: true,
        one_vcpu: false,
        expect: Expect::Survive,
        argv: |t, r| py(t, "on_level", r),
    },
    Contender {
        id: "py-memguard-shedder",
        lang: "Python",
        detection: "memguard",
        reaction: "registered shedder + try_reserve",
        in_vm: true,
        one_vcpu: false,
        expect: Expect::Survive,
        argv: |t, r| py(t, "shedder", r),
    },
    Contender {
        id: "rust-unguarded",
        lang: "Rust",
        detection: "none",
        reaction: "none",
        in_vm: false,
        one_vcpu: false,
        expect: Expect::Die,
        argv: |t, r| rust(t, None, r),
    },
    Contender {
        id: "rust-memguard-level",
        lang: "Rust",
        detection: "memguard",
        reaction: "on_level handler",
        in_vm: true,
        one_vcpu: false,
        expect: Expect::Survive,
        argv: |t, r| rust(t, Some("--on-level"), r),
    },
    Contender {
        id: "rust-memguard-shedder",
        lang: "Rust",
        detection: "memguard",
        reaction: "registered shedder + try_reserve",
        in_vm: true,
        one_vcpu: false,
        expect: Expect::Survive,
        argv: |t, r| rust(t, Some("--guard"), r),
    },
    Contender {
        id: "c-memguard-level",
        lang: "C",
        detection: "memguard",
        reaction: "on_level handler",
        in_vm: true,
        one_vcpu: false,
        expect: Expect::Survive,
        argv: |t, r| c(t, "on_level", r),
    },
    Contender {
        id: "c-memguard-shedder",
        lang: "C",
        detection: "memguard",
        reaction: "registered shedder",
        in_vm: true,
        one_vcpu: false,
        expect: Expect::Survive,
        argv: |t, r| c(t, "shedder", r),
    },
    Contender {
        id: "java-unguarded",
        lang: "Java",
        detection: "none",
        reaction: "none",
        in_vm: true,
        one_vcpu: true,
        expect: Expect::Die,
        argv: |t, r| java(t, "unguarded", r),
    },
    Contender {
        id: "java-mxbean",
        lang: "Java",
        detection: "MemoryPoolMXBean usage threshold 80% on heap pools",
        reaction: "clear the cache",
        in_vm: true,
        one_vcpu: true,
        expect: Expect::Measure,
        argv: |t, r| java(t, "mxbean", r),
    },
    Contender {
        id: "java-memguard-level",
        lang: "Java",
        detection: "memguard",
        reaction: "level listener",
        in_vm: true,
        one_vcpu: true,
        expect: Expect::Survive,
        argv: |t, r| java(t, "memguard-level", r),
    },
    Contender {
        id: "java-memguard-shedder",
        lang: "Java",
        detection: "memguard",
        reaction: "registered shedder + reserve",
        in_vm: true,
        one_vcpu: true,
        expect: Expect::Survive,
        argv: |t, r| java(t, "memguard", r),
    },
    Contender {
        id: "go-automemlimit",
        lang: "Go",
        detection: "automemlimit: GOMEMLIMIT = 90% of the cgroup limit",
        reaction: "GC works harder (a live cache cannot be collected)",
        in_vm: true,
        one_vcpu: false,
        expect: Expect::Die,
        argv: go,
    },
];

/// Builds (or finds) every worker. `build` false: only use what is built (inside the VM, whose
/// host tree is read-only).
pub fn prepare(root: &Path, target: &Path, build: bool) -> Tools {
    if build {
        cargo_build(root);
    }
    let python = runc::python_setup(root).map(|(exe, worker)| vec![exe, worker]);
    let rust_exe = target.join("release/cache-worker");
    let rust = if rust_exe.is_file() {
        Ok(vec![rust_exe.display().to_string()])
    } else {
        Err(format!("{} is not built (cargo build --release -p memguard-examples)", rust_exe.display()))
    };
    let c = runc::c_worker(root, &target.join("release"), &target.join("compare/cache_worker_c"))
        .map(|p| vec![p.display().to_string()]);
    if build {
        maven_package(root);
    }
    let java = runc::java_setup(root, target);
    let go = go_worker(root, target, build);
    Tools { python, rust, c, java, go }
}

/// The release binaries and libraries every part of the comparison uses.
fn cargo_build(root: &Path) {
    let status = Command::new("cargo")
        // Target filters (`--bin`, `--lib`) apply to every `-p`: name each target needed.
        .args(["build", "--release", "-p", "memguard", "-p", "memguard-examples", "-p", "memguard-ffi"])
        .args(["-p", "memguard-jni", "-p", "memguard-benches", "--lib"])
        .args(["--bin", "memguard", "--bin", "cache-worker", "--bin", "memguard-e2e", "--bin", "cost-probe"])
        .current_dir(root)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("compare: cargo build --release failed: the contenders it feeds are reported as not run");
    }
}

/// The jar and the test classes (the Java workers live among them), if missing or stale.
fn maven_package(root: &Path) {
    let jni = root.join("memguard-jni");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let class = jni.join("target/test-classes/io/memguard/DirectCacheService.class");
    let src = jni.join("src/test/java/io/memguard/DirectCacheService.java");
    if mtime(&class).is_some_and(|c| mtime(&src).is_some_and(|s| s <= c)) && jni.join("target/memguard.jar").is_file() {
        return;
    }
    let jdk17 = runc::jdk17();
    let status = Command::new("mvn")
        .args(["-B", "-ntp", "-q", "package", "-DskipTests", "-Dskip.jdk25=true"])
        .arg(format!("-Djdk17.java={jdk17}"))
        .current_dir(&jni)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("compare: mvn package failed in memguard-jni: the Java contenders are reported as not run");
    }
}

/// `benches/compare/go` built with the Go toolchain (modules from the Go module proxy).
fn go_worker(root: &Path, target: &Path, build: bool) -> Tool {
    let exe = target.join("compare/automemlimit-worker");
    if build {
        let out = Command::new("go")
            .args(["build", "-o"])
            .arg(&exe)
            .arg(".")
            .current_dir(root.join("benches/compare/go"))
            .output()
            .map_err(|e| format!("go: {e} (install Go)"))?;
        if !out.status.success() {
            return Err(format!("go build failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    if exe.is_file() {
        Ok(vec![exe.display().to_string()])
    } else {
        Err(format!("{} is not built", exe.display()))
    }
}

/// The worker executables' directory for the plots and the report.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}
