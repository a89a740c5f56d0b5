//! `cargo xtask runc`: memguard inside real OCI containers started by `runc`, on this machine's
//! cgroup v1 (natively) or on cgroup v2 (run inside the VM by `cargo xtask test`), with and
//! without a private cgroup namespace, and in Kubernetes-shaped cgroup hierarchies.
//!
//! ```text
//! cargo xtask runc [--matrix-only] [--table] [--only SUBSTRING]
//! ```
//!
//! Needs root, `runc` (`apt-get install runc`; `cargo xtask test` installs it), a writable
//! memory cgroup, the built `memguard` and `cache-worker` binaries (`cargo build -p memguard
//! --bin memguard -p memguard-examples`) and, for the Python cases, the installed `memguard`
//! package. A missing capability fails in CI (`CI=true`) and is reported as skipped locally.
//!
//! Prints one line per case (`ok`, `FAIL`, `SKIP`) and closes with
//! `runc-v1: N passed, N failed, N skipped` (or `runc-v2`), the line `cargo xtask test` counts.
//! `--table` also prints the Kubernetes matrix as the README's Markdown table.

mod bundle;
mod cases;
mod kube;

#[allow(dead_code)]
#[path = "../../../memguard/tests/support/cgroup.rs"]
pub mod cgroup;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;

use cgroup::{Kit, Version};

const USAGE: &str = "usage: cargo xtask runc [--matrix-only] [--table] [--only SUBSTRING]";

/// Everything a case needs: where cgroups go, what to run, what to bind-mount.
pub struct Env {
    pub kit: Kit,
    /// `target/debug/memguard`.
    pub memguard: PathBuf,
    /// `target/debug/cache-worker`.
    pub worker: PathBuf,
    /// The Python interpreter and the worker script, or why not.
    pub python: Result<(String, String), String>,
    /// `examples/c/cache_worker.c` compiled against the C library, or why not.
    pub c_worker: Result<PathBuf, String>,
    /// The JVM command line of the Java package's direct-buffer cache service (up to its
    /// arguments), or why not.
    pub java: Result<Vec<String>, String>,
    /// Host directories bind-mounted read-only into every container.
    pub binds: Vec<PathBuf>,
    /// Inside the (slow, emulated) VM.
    pub in_vm: bool,
}

impl Env {
    pub fn version(&self) -> &'static str {
        match self.kit.version {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), Path::to_path_buf)
}

/// The environment, or why the suite cannot run here.
fn prepare() -> Result<Env, String> {
    match Command::new("runc").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Err(format!("`runc --version` failed: {}", o.status)),
        Err(e) => return Err(format!("no runc on PATH ({e}); `apt-get install -y runc`")),
    }
    let kit = Kit::v2().or_else(|v2| Kit::v1().map_err(|v1| format!("no writable cgroup: v2: {v2}; v1: {v1}")))?;
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let memguard = target.join("debug/memguard");
    let worker = target.join("debug/cache-worker");
    for exe in [&memguard, &worker] {
        if !exe.is_file() {
            return Err(format!(
                "{} is not built (cargo build -p memguard --bin memguard -p memguard-examples)",
                exe.display()
            ));
        }
    }
    let mut binds = vec![root.clone()];
    if !target.starts_with(&root) {
        binds.push(target.clone());
    }
    let python = python_setup(&root);
    let c_worker = c_worker(&root, &target.join("debug"), &target.join("runc/cache_worker_c"));
    let java = java_setup(&root, &target);
    // Run the Rust worker once here, so that the page cache of its text is charged to this
    // process's cgroup: charged to the first container that runs it instead, that text is
    // evicted by the container's own limit and re-read (over 9p in the VM, slowly) again and
    // again before the OOM killer acts — a minute instead of seconds. (The Python interpreter
    // already ran here; the C worker is small.)
    let _ = Command::new(&worker).args(["--guard", "--total", "2M", "--rate", "1G"]).output();
    if let Ok((_, _)) = &python {
        binds.extend(python_dirs().unwrap_or_default());
    }
    binds.sort();
    binds.dedup();
    // Only the outermost of nested directories (a bind inside a read-only bind cannot be mounted),
    // and nothing already under /usr (mounted anyway).
    let mut outer: Vec<PathBuf> = Vec::new();
    for b in binds {
        if b.starts_with("/usr") || b.starts_with("/etc") || outer.iter().any(|o| b.starts_with(o)) {
            continue;
        }
        outer.push(b);
    }
    Ok(Env {
        kit,
        memguard,
        worker,
        python,
        c_worker,
        java,
        binds: outer,
        in_vm: std::env::var_os("MEMGUARD_IN_VM").is_some(),
    })
}

/// The JVM command line for the Java package's `DirectCacheService` (OpenJDK 17, or `JDK17`):
/// the jar and the test classes `memguard-jni/run-tests.sh` built (the Java suite runs before
/// this one), the JNI library named by `memguard.native.path` (the containers' root is
/// read-only: nothing to extract to), no perf-data file.
pub fn java_setup(root: &Path, target: &Path) -> Result<Vec<String>, String> {
    let classes = root.join("memguard-jni/target/test-classes");
    let service = classes.join("io/memguard/DirectCacheService.class");
    if !service.exists() {
        return Err(format!(
            "{} is missing (memguard-jni/run-tests.sh builds the jar, its test classes and the library)",
            service.display()
        ));
    }
    java_command(root, target, &classes, "io.memguard.DirectCacheService")
}

/// The JVM command line (OpenJDK 17, or `JDK17`) running `main` from `classes` with the Java
/// package's jar on the class path and its JNI library named by `memguard.native.path`
/// (`target/release/libmemguard_jni.so`), a 64 MiB heap, no perf-data file.
pub fn java_command(root: &Path, target: &Path, classes: &Path, main: &str) -> Result<Vec<String>, String> {
    let java = jdk17();
    let jar = root.join("memguard-jni/target/memguard.jar");
    let lib = target.join("release/libmemguard_jni.so");
    for need in [Path::new(&java), &jar, &lib] {
        if !need.exists() {
            return Err(format!(
                "{} is missing (memguard-jni/run-tests.sh builds the jar, its test classes and the library)",
                need.display()
            ));
        }
    }
    Ok(vec![
        java,
        "-XX:-UsePerfData".into(),
        "-Xmx64m".into(),
        "-XX:MaxDirectMemorySize=1g".into(),
        "--enable-native-access=ALL-UNNAMED".into(),
        format!("-Dmemguard.native.path={}", lib.display()),
        "-cp".into(),
        format!("{}:{}", jar.display(), classes.display()),
        main.into(),
    ])
}

/// OpenJDK 17's `java` (`JDK17`, else Debian's path).
pub fn jdk17() -> String {
    std::env::var("JDK17").unwrap_or_else(|_| "/usr/lib/jvm/java-17-openjdk-amd64/bin/java".into())
}

/// The C cache worker (`examples/c/cache_worker.c`) linked against the C library built by
/// `cargo build -p memguard-ffi` (`lib_dir/libmemguard_ffi.so`, e.g. `target/debug`, found
/// through an rpath), compiled into `exe` when missing or older than its inputs. Inside the VM
/// (a read-only host tree) the host's build is used as is.
pub fn c_worker(root: &Path, lib_dir: &Path, exe: &Path) -> Result<PathBuf, String> {
    c_program(root, &root.join("examples/c/cache_worker.c"), lib_dir, exe)
}

/// A C program of one source file `src`, linked against the C library as [`c_worker`] is.
pub fn c_program(root: &Path, src: &Path, lib_dir: &Path, exe: &Path) -> Result<PathBuf, String> {
    let lib = lib_dir.join("libmemguard_ffi.so");
    let header = root.join("memguard-ffi/include/memguard.h");
    let exe = exe.to_path_buf();
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if !lib.is_file() {
        return Err(format!("{} is not built (cargo build -p memguard-ffi --lib)", lib.display()));
    }
    let fresh = mtime(&exe).is_some_and(|t| [&lib, src, &header].iter().all(|p| mtime(p).is_some_and(|m| m <= t)));
    if fresh || std::env::var_os("MEMGUARD_IN_VM").is_some() {
        return if exe.is_file() { Ok(exe) } else { Err(format!("{} was not built on the host", exe.display())) };
    }
    if let Some(dir) = exe.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    }
    let out = Command::new("cc")
        .args(["-std=c11", "-O1", "-I"])
        .arg(root.join("memguard-ffi/include"))
        .arg(src)
        .arg("-L")
        .arg(lib_dir)
        .arg("-lmemguard_ffi")
        .arg("-lpthread")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if out.status.success() {
        Ok(exe)
    } else {
        Err(format!("compiling {} failed: {}", src.display(), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The Python interpreter the suites use (`MEMGUARD_TEST_PYTHON`, else `python3`).
pub fn python_exe() -> String {
    std::env::var("MEMGUARD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The interpreter (resolved past pyenv shims) and the worker, if `import memguard` works.
pub fn python_setup(root: &Path) -> Result<(String, String), String> {
    let out = Command::new(python_exe())
        .args(["-c", "import sys, memguard; print(sys.executable)"])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`import memguard` fails (install it: memguard-py/run-tests.sh): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let worker = root.join("memguard-py/tests/workers/cache_worker.py");
    Ok((exe, worker.to_string_lossy().into_owned()))
}

/// The interpreter's prefixes and the directory `memguard` is imported from.
fn python_dirs() -> Option<Vec<PathBuf>> {
    let out = Command::new(python_exe())
        .args([
            "-c",
            "import sys, os, memguard; print(sys.prefix); print(sys.base_prefix); \
             print(os.path.dirname(os.path.dirname(os.path.abspath(memguard.__file__))))",
        ])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).lines().map(PathBuf::from).filter(|p| p.is_absolute()).collect())
}

/// Counts of one run.
#[derive(Default)]
pub struct Tally {
    passed: u32,
    failed: u32,
    skipped: u32,
    /// Run only the cases whose name contains this (`--only`).
    only: Option<String>,
}

/// Outcome of one case: `Ok(detail)`, `Err(why)` (failed) or skipped.
pub enum Verdict {
    Pass(String),
    Skip(String),
}

impl Tally {
    /// Run one case, catching a panicking assertion as a failure, and print its line.
    pub fn case(&mut self, name: &str, f: impl FnOnce() -> Result<Verdict, String>) {
        if self.only.as_deref().is_some_and(|o| !name.contains(o)) {
            return;
        }
        let start = std::time::Instant::now();
        let result = catch_unwind(AssertUnwindSafe(f));
        let name = format!("{name} [{:.1} s]", start.elapsed().as_secs_f64());
        match result {
            Ok(Ok(Verdict::Pass(detail))) => {
                self.passed += 1;
                println!("ok   {name}: {detail}");
            }
            Ok(Ok(Verdict::Skip(why))) if in_ci() => {
                self.failed += 1;
                println!("FAIL {name}: required capability missing in CI: {why}");
            }
            Ok(Ok(Verdict::Skip(why))) => {
                self.skipped += 1;
                println!("SKIP {name}: {why}");
            }
            Ok(Err(why)) => {
                self.failed += 1;
                println!("FAIL {name}: {why}");
            }
            Err(panic) => {
                self.failed += 1;
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                println!("FAIL {name}: panicked: {msg}");
            }
        }
    }
}

pub fn main(args: Vec<String>) -> i32 {
    let mut matrix_only = false;
    let mut table = false;
    let mut only = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--matrix-only" => matrix_only = true,
            "--table" => table = true,
            "--only" => only = it.next(),
            other => {
                eprintln!("xtask runc: unknown argument `{other}` ({USAGE})");
                return 2;
            }
        }
    }
    let env = match prepare() {
        Ok(env) => env,
        Err(why) => {
            let label = "runc";
            if in_ci() {
                println!("FAIL runc suite: required capability missing in CI: {why}");
                println!("{label}: 0 passed, 1 failed, 0 skipped");
                return 1;
            }
            println!("SKIP runc suite: {why}");
            println!("{label}: 0 passed, 0 failed, 1 skipped");
            return 0;
        }
    };
    println!(
        "runc suite on cgroup {} (test cgroups under {}; read-only binds: {})",
        env.version(),
        env.kit.base.display(),
        env.binds.iter().map(|b| b.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    let mut tally = Tally { only, ..Tally::default() };
    if !matrix_only {
        for cgroup_ns in [false, true] {
            cases::all(&env, cgroup_ns, &mut tally);
        }
    }
    let rows = kube::matrix(&env, &mut tally);
    if table {
        println!("{}", kube::table(&rows));
    }
    println!("runc-{}: {} passed, {} failed, {} skipped", env.version(), tally.passed, tally.failed, tally.skipped);
    i32::from(tally.failed > 0)
}

/// The `cgroupsPath` that puts a container at `parent/name`, and that cgroup's path as
/// `/proc/<pid>/cgroup` shows it outside a cgroup namespace.
///
/// On v1 the path is relative (runc resolves it against its own cgroup in every controller, so
/// the memory cgroup lands under the test's own); on v2 it is absolute.
pub fn container_cgroup(env: &Env, parent: &cgroup::TestCgroup, name: &str) -> (String, String) {
    let full = format!("{}/{name}", parent.path());
    match env.kit.version {
        Version::V1 => {
            let rel = parent.dir().strip_prefix(&env.kit.base).expect("test cgroups are under the kit's base");
            (format!("{}/{name}", rel.display()), full)
        }
        Version::V2 => (full.clone(), full),
    }
}

/// On cgroup v1 runc also creates the container's cgroup in every other hierarchy (cpu, pids,
/// name=systemd, a hybrid host's unified one), relative to its own cgroup there, and `runc
/// delete` leaves the parents it made: this removes the test's directory tree from each of them
/// on drop (the memory one is a [`cgroup::TestCgroup`]).
pub struct OtherHierarchies {
    dirs: Vec<PathBuf>,
}

impl OtherHierarchies {
    /// For the test cgroup `top` (a direct child of the kit's base).
    pub fn new(env: &Env, top: &cgroup::TestCgroup) -> OtherHierarchies {
        if env.kit.version == Version::V2 {
            return OtherHierarchies { dirs: Vec::new() };
        }
        let name = top.dir().file_name().map(PathBuf::from).unwrap_or_default();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut dirs = Vec::new();
        for line in own.lines() {
            let mut p = line.splitn(3, ':');
            let (Some(_), Some(ctl), Some(path)) = (p.next(), p.next(), p.next()) else { continue };
            if ctl.split(',').any(|c| c == "memory") {
                continue;
            }
            let mount = mounts.lines().map(|l| l.split(' ').collect::<Vec<_>>()).find(|f| {
                f.len() > 3
                    && if ctl.is_empty() {
                        f[2] == "cgroup2"
                    } else {
                        f[2] == "cgroup" && ctl.split(',').all(|c| f[3].split(',').any(|o| o == c))
                    }
            });
            if let Some(f) = mount {
                dirs.push(Path::new(f[1]).join(path.trim_start_matches('/')).join(&name));
            }
        }
        OtherHierarchies { dirs }
    }
}

impl Drop for OtherHierarchies {
    fn drop(&mut self) {
        fn remove_tree(dir: &Path) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.filter_map(Result::ok) {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        remove_tree(&e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        for d in &self.dirs {
            remove_tree(d);
        }
    }
}
