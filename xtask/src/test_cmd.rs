//! `cargo xtask test`: every suite, with counts per suite and one closing line.
//!
//! 1. **unit & fixtures** — `cargo test --workspace` (unit tests, fixture trees, parser
//!    robustness, doc tests, xtask's own tests);
//! 2. **native cgroup v1** — the `tests/kernel_v1*.rs` binaries on this machine's kernel (part
//!    of the same `cargo test` run, counted apart), then a check that no test cgroup leaked;
//! 3. **cgroup v2 VM** — the `tests/kernel_v2*.rs` binaries ([`VM_TESTS`]) inside one VM boot;
//! 4. **python** — `memguard-py/run-tests.sh`: `pip install ./memguard-py`, pytest natively and in
//!    one VM boot;
//! 5. **c library** — `memguard-ffi/run-tests.sh`: `cargo cinstall` into a temporary prefix, the C
//!    tests under valgrind, ASan+UBSan and ThreadSanitizer, the C and C++ examples through CMake and
//!    pkg-config, the C cache worker on the real kernel (v1 natively, v2 in one VM boot);
//! 6. **java** — `memguard-jni/run-tests.sh`: the JNI library and the jar, JUnit 5 under
//!    `-Xcheck:jni` on OpenJDK 17 and Temurin 25 natively, the jar's `status`, and one VM boot;
//! 7. **runc** — `cargo xtask runc` (`runc/`): memguard, the Rust and Python cache workers
//!    and Kubernetes-shaped cgroup hierarchies in real OCI containers started by `runc` (installed
//!    with apt-get when missing), natively on cgroup v1 and in one VM boot on cgroup v2, with and
//!    without a private cgroup namespace;
//! 8. **soak** — `memguard-e2e soak --soak-secs 120 --check` natively: two minutes oscillating
//!    between Normal and Critical with callbacks, a shedder and reservations from three threads;
//!    footprint, budget and event counts must stay flat and exact (the hour-long run is the same
//!    command with `--soak-secs 3600`);
//! 9. **model check & miri** — the model-checking tests of the budget and of the callback
//!    registry under Shuttle (`RUSTFLAGS="--cfg shuttle"`, `budget::model_check`,
//!    `watch::registry_model_check`), then the pure parts (parsers, levels,
//!    the growth estimator, the budget) under Miri (nightly; the component is added when missing);
//! 10. **fuzz** — each `cargo fuzz` target of `memguard/fuzz` for a few seconds (nightly);
//! 11. **lint** — `cargo fmt --check`, `cargo clippy -D warnings`, rustdoc with `-D warnings`.
//!
//! In CI (`CI=true`) a suite that cannot run is a failure; locally it is reported as skipped
//! with the reason.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::vm;

const USAGE: &str = "\
usage: cargo xtask test [--skip-vm] [--no-fuzz] [--fuzz-secs N]

Runs every test suite of memguard and prints counts per suite, ending with
`total: N passed, N failed, N skipped`. In CI (CI=true) a suite that cannot run fails.
";

/// Counts of one suite.
#[derive(Debug, Default, Clone)]
struct Suite {
    name: &'static str,
    passed: u64,
    failed: u64,
    skipped: u64,
    secs: f64,
    /// Why the suite did not (fully) run, or extra facts (VM boot time).
    remark: Option<String>,
    /// The suite could not run at all.
    unavailable: bool,
    /// What failed, each with the lines that say why (repeated under the summary, so the
    /// closing lines of a CI log name every failure).
    failures: Vec<String>,
}

impl Suite {
    /// Add one run's `(passed, failed, skipped)`.
    fn add(&mut self, (passed, failed, skipped): (u64, u64, u64)) {
        self.passed += passed;
        self.failed += failed;
        self.skipped += skipped;
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), Path::to_path_buf)
}

pub fn main(args: Vec<String>) -> i32 {
    let mut skip_vm = false;
    let mut fuzz = true;
    let mut fuzz_secs = 10u32;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skip-vm" => skip_vm = true,
            "--no-fuzz" => fuzz = false,
            "--fuzz-secs" => match it.next().and_then(|v| v.parse().ok()) {
                Some(v) => fuzz_secs = v,
                None => {
                    eprintln!("xtask test: --fuzz-secs needs a number of seconds\n{USAGE}");
                    return 2;
                }
            },
            "-h" | "--help" => {
                print!("{USAGE}");
                return 0;
            }
            other => {
                eprintln!("xtask test: unknown argument `{other}`\n{USAGE}");
                return 2;
            }
        }
    }
    let root = workspace_root();
    let ci = in_ci();
    ensure_test_tools();
    let mut suites = cargo_test_suites(&root);
    suites.push(vm_suite(&root, skip_vm));
    suites.push(python_suite(&root, skip_vm));
    suites.push(c_suite(&root, skip_vm));
    suites.push(java_suite(&root, skip_vm));
    suites.extend(runc_suites(&root, skip_vm));
    suites.push(soak_suite(&root));
    suites.push(compare_suite());
    suites.push(checked_concurrency_suite(&root));
    suites.push(fuzz_suite(&root, fuzz, fuzz_secs));
    suites.push(lint_suite(&root));
    report(&suites, ci)
}

// ------------------------------------------------------------------ cargo test --

/// Debian packages the kernel tests run beside memguard: `strace` (the "writes nothing it should
/// not" test, natively and in the VM, which sees the host's `/usr`). Installed when missing; if
/// that fails, the tests that need it say so (and fail in CI).
fn ensure_test_tools() {
    if vm::packages::find_in_path("strace").is_none() {
        banner("installing strace with apt-get");
        if let Err(e) = vm::packages::apt_install(&["strace"]) {
            eprintln!("xtask test: {e}");
        }
    }
}

fn cargo_test_suites(root: &Path) -> Vec<Suite> {
    let mut unit = Suite { name: "unit & fixtures", ..Suite::default() };
    let mut v1 = Suite { name: "native cgroup v1", ..Suite::default() };
    let v1_ready = v1_capability();
    let start = Instant::now();
    banner("cargo test --workspace (unit, fixtures, native cgroup v1)");
    let (ok, lines) =
        run_merged(Command::new("cargo").args(["test", "--workspace", "--no-fail-fast"]).current_dir(root));
    let secs = start.elapsed().as_secs_f64();
    let mut current = String::new();
    for line in &lines {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Running ") {
            current = rest.split_whitespace().next().unwrap_or("").to_owned();
        } else if let Some(rest) = t.strip_prefix("Doc-tests ") {
            current = format!("doc:{rest}");
        } else if let Some(counts) = parse_result_line(t) {
            let file = current.rsplit('/').next().unwrap_or("");
            let target = if file.starts_with("kernel_v1") {
                &mut v1
            } else if file.starts_with("kernel_v2") {
                continue; // ignored on the host by design; run by the VM suite
            } else {
                &mut unit
            };
            target.passed += counts.0;
            target.failed += counts.1;
            target.skipped += counts.2;
            target.secs += finished_in(t);
        }
    }
    for (binary, failure) in libtest_failures(&lines) {
        let file = binary.rsplit('/').next().unwrap_or("");
        if file.starts_with("kernel_v1") { &mut v1 } else { &mut unit }.failures.push(failure);
    }
    if !ok && unit.failed + v1.failed == 0 {
        unit.failed += 1;
        unit.remark = Some("cargo test failed before running tests (build error?)".into());
    }
    // The unit suite's time is the whole `cargo test` (builds included) minus the v1 binaries.
    unit.secs = (secs - v1.secs).max(0.0);
    if let Err(why) = v1_ready {
        v1.unavailable = true;
        v1.skipped += v1.passed;
        v1.passed = 0;
        v1.remark = Some(why);
    } else {
        match leaked_v1_cgroups() {
            Ok(leaked) if leaked.is_empty() => v1.remark = Some("no test cgroup left behind".into()),
            Ok(leaked) => {
                v1.failed += 1;
                v1.remark = Some(format!("test cgroups left behind: {}", leaked.join(", ")));
            }
            Err(e) => v1.remark = Some(format!("leak check failed: {e}")),
        }
    }
    vec![unit, v1]
}

/// The failed tests of libtest output: `(test binary, "name\n<why>")` for every
/// `test name ... FAILED`, the why taken from its `---- name stdout ----` block (at most 12
/// lines, the panic message kept).
fn libtest_failures(lines: &[String]) -> Vec<(String, String)> {
    let mut binary = String::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut block: Option<(String, Vec<String>)> = None;
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in lines {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Running ") {
            binary = rest.split_whitespace().next().unwrap_or("").to_owned();
        } else if let Some(name) = t.strip_prefix("test ").and_then(|r| r.strip_suffix(" ... FAILED")) {
            failed.push((binary.clone(), name.to_owned()));
        }
        if let Some(name) = t.strip_prefix("---- ").and_then(|r| r.strip_suffix(" stdout ----")) {
            blocks.extend(block.take());
            block = Some((name.to_owned(), Vec::new()));
        } else if t == "failures:" || t.starts_with("test result: ") {
            blocks.extend(block.take());
        } else if let Some((_, body)) = block.as_mut() {
            body.push(line.clone());
        }
    }
    blocks.extend(block);
    failed
        .into_iter()
        .map(|(bin, name)| {
            let why = blocks.iter().find(|(n, _)| *n == name).map(|(_, body)| {
                let panic = body.iter().position(|l| l.contains("panicked at")).unwrap_or(0);
                body[panic..]
                    .iter()
                    .take_while(|l| !l.starts_with("stack backtrace:"))
                    .filter(|l| !l.trim().is_empty())
                    .take(12)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            (bin, format!("{name}\n{}", why.unwrap_or_default()).trim_end().to_owned())
        })
        .collect()
}

/// The failures of the plain runners (`FAIL name` after its `FAILED file:line: expr` lines,
/// or `not ok ...`): each with the lines just before that say why.
fn plain_failures(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with("FAIL ") || t.starts_with("not ok") {
            let why: Vec<&str> = lines[i.saturating_sub(3)..i]
                .iter()
                .map(|l| l.trim())
                .filter(|l| l.starts_with("FAILED") || l.contains("assert") || l.contains("error"))
                .collect();
            out.push(format!("{t}\n{}", why.join("\n")).trim_end().to_owned());
        }
    }
    out
}

/// Parse libtest's `test result: ok. 7 passed; 0 failed; 1 ignored; ...` into
/// `(passed, failed, ignored)`.
fn parse_result_line(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    let mut counts = (0, 0, 0);
    for part in rest.split(';') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let n = |w: &[&str]| w.iter().rev().nth(1).and_then(|v| v.parse::<u64>().ok());
        match words.last() {
            Some(&"passed") => counts.0 = n(&words)?,
            Some(&"failed") => counts.1 = n(&words)?,
            Some(&"ignored") => counts.2 = n(&words)?,
            _ => {}
        }
    }
    Some(counts)
}

/// The `finished in 0.52s` of a libtest result line, in seconds (0 when absent).
fn finished_in(line: &str) -> f64 {
    line.rsplit_once("finished in ").and_then(|(_, t)| t.trim().trim_end_matches('s').parse().ok()).unwrap_or(0.0)
}

/// The v1 memory cgroup directory of this process, if any.
fn own_v1_memory_dir() -> Result<PathBuf, String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").map_err(|e| format!("/proc/self/mounts: {e}"))?;
    let mount = mounts
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[2] == "cgroup" && f[3].split(',').any(|o| o == "memory"))
        .map(|f| PathBuf::from(f[1]))
        .ok_or("no cgroup v1 memory controller is mounted on this host")?;
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let path = own
        .lines()
        .find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, c, path) = (p.next()?, p.next()?, p.next()?);
            c.split(',').any(|c| c == "memory").then(|| path.to_owned())
        })
        .ok_or("this process has no v1 memory cgroup")?;
    Ok(mount.join(path.trim_start_matches('/')))
}

fn v1_capability() -> Result<(), String> {
    let dir = own_v1_memory_dir()?;
    let probe = dir.join(format!("memguard-xtask-probe-{}", std::process::id()));
    std::fs::create_dir(&probe).map_err(|e| format!("cannot create a cgroup under {}: {e}", dir.display()))?;
    std::fs::remove_dir(&probe).map_err(|e| format!("cannot remove {}: {e}", probe.display()))
}

fn leaked_v1_cgroups() -> Result<Vec<String>, String> {
    let dir = own_v1_memory_dir()?;
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("memguard-test-"))
        .collect())
}

// ----------------------------------------------------------------------- VM ----

/// The end of a VM script: exit with `$rc`, or 99 if it was 0 but a test cgroup was left
/// behind under `$MEMGUARD_VM_CGROUP`.
macro_rules! vm_leak_check {
    () => {
        r#"
leaked=$(ls -d "$MEMGUARD_VM_CGROUP"/memguard-test-* 2>/dev/null)
if [ -n "$leaked" ]; then echo "LEAKED TEST CGROUPS: $leaked"; [ "$rc" = 0 ] && rc=99; fi
exit $rc
"#
    };
}

/// Run every test binary given as an argument, each into `$MEMGUARD_VM_OUT/<name>.log`, then
/// fail if any test cgroup was left behind.
const VM_SCRIPT: &str = concat!(
    r#"
rc=0
for exe in "$@"; do
  log="$MEMGUARD_VM_OUT/$(basename "$exe").log"
  "$exe" --include-ignored --show-output > "$log" 2>&1 || rc=1
  cat "$log"
done"#,
    vm_leak_check!()
);

/// The cgroup v2 test binaries: `(package, test target)`, all run in one VM boot.
const VM_TESTS: &[(&str, &str)] = &[("memguard", "kernel_v2"), ("memguard-examples", "kernel_v2_shed")];

fn vm_suite(root: &Path, skip: bool) -> Suite {
    let mut suite = Suite { name: "cgroup v2 VM", ..Suite::default() };
    if skip {
        suite.unavailable = true;
        suite.remark = Some("--skip-vm given".into());
        return suite;
    }
    banner("cgroup v2 suite inside a throwaway VM");
    let start = Instant::now();
    let mut command: Vec<String> = vec!["sh".into(), "-c".into(), VM_SCRIPT.into(), "sh".into()];
    for (package, test) in VM_TESTS {
        match build_test_binary(root, package, test) {
            Ok(exe) => command.push(exe.to_string_lossy().into_owned()),
            Err(e) => {
                suite.failed = 1;
                suite.remark = Some(e);
                return suite;
            }
        }
    }
    let outcome = vm::run(&test_vm_options(command, root.join("memguard")));
    suite.secs = start.elapsed().as_secs_f64();
    match outcome {
        Err(e) => {
            suite.failed = 1;
            suite.unavailable = true;
            suite.remark = Some(format!("VM harness failed: {e}"));
        }
        Ok(out) => {
            let log: String = std::fs::read_dir(&out.out_dir)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                        .collect()
                })
                .unwrap_or_default();
            for line in log.lines() {
                if let Some(counts) = parse_result_line(line.trim()) {
                    suite.add(counts);
                }
            }
            let log_lines: Vec<String> = log.lines().map(String::from).collect();
            suite.failures = libtest_failures(&log_lines).into_iter().map(|(_, f)| f).collect();
            let skipped_inside = log.lines().filter(|l| l.starts_with("SKIPPED ")).count() as u64;
            if out.exit_code != 0 && suite.failed == 0 {
                suite.failed = 1;
            }
            suite.remark = Some(format!(
                "one boot: {:.1} s to the command, {:.1} s in all; exit {}{}",
                out.boot_secs,
                out.total_secs,
                out.exit_code,
                if skipped_inside > 0 { format!("; {skipped_inside} test(s) reported SKIPPED") } else { String::new() }
            ));
        }
    }
    suite
}

/// The VM a test suite runs `command` in: working directory `cwd`, a 900 s timeout, and the real
/// Python interpreter in `MEMGUARD_TEST_PYTHON` (pyenv's `python3` shim costs seconds per call
/// under TCG).
fn test_vm_options(command: Vec<String>, cwd: PathBuf) -> vm::VmOptions {
    let mut opts = vm::VmOptions::new(command);
    opts.cwd = cwd;
    if let Some(py) = real_python() {
        opts.env.push(("MEMGUARD_TEST_PYTHON".into(), py));
    }
    opts.timeout = Duration::from_secs(900);
    opts
}

/// The real Python interpreter behind `python3` (resolving pyenv-style shims).
fn real_python() -> Option<String> {
    let out = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !path.is_empty()).then_some(path)
}

/// Build an integration test binary and return its path.
fn build_test_binary(root: &Path, package: &str, test: &str) -> Result<PathBuf, String> {
    let out = Command::new("cargo")
        .args(["test", "-p", package, "--test", test, "--no-run", "--message-format=json"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("building the {test} test binary failed"));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == test)
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("cargo did not report the {test} test executable"))
}

// ------------------------------------------------------------------- python ----

/// The Python package: `memguard-py/run-tests.sh` installs it (`pip install ./memguard-py`) and
/// runs pytest natively (unit + cgroup v1 kernel tests) and in one VM boot (cgroup v2 tests).
fn python_suite(root: &Path, skip_vm: bool) -> Suite {
    let mut suite = Suite { name: "python (pytest)", ..Suite::default() };
    banner("Python package: pip install ./memguard-py, pytest natively and in the cgroup v2 VM");
    let (ok, lines) = run_tests_script(root, "memguard-py/run-tests.sh", skip_vm, &mut suite);
    let mut runs = 0;
    suite.failures = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("FAILED ").or_else(|| l.trim().strip_prefix("ERROR ")))
        .map(String::from)
        .collect();
    for line in &lines {
        if let Some((p, f, s)) = parse_pytest_summary(line) {
            runs += 1;
            suite.add((p, f, s));
        }
    }
    if !ok && suite.failed == 0 {
        script_failed(&mut suite, &lines);
    } else {
        suite.remark = Some(format!("{runs} pytest run(s){}", if skip_vm { "; VM part skipped" } else { "" }));
    }
    suite
}

/// Run a package's `run-tests.sh` (`script`, relative to the workspace root; `--skip-vm`
/// passed on), timing it into `suite.secs`: whether it succeeded and its merged output.
fn run_tests_script(root: &Path, script: &str, skip_vm: bool, suite: &mut Suite) -> (bool, Vec<String>) {
    let start = Instant::now();
    let mut cmd = Command::new("sh");
    cmd.arg(root.join(script)).current_dir(root);
    if skip_vm {
        cmd.arg("--skip-vm");
    }
    let out = run_merged(&mut cmd);
    suite.secs = start.elapsed().as_secs_f64();
    out
}

/// A `run-tests.sh` that exited non-zero without a failed test to name (a build, a VM boot, a
/// tool that failed): count it as one failure and carry the script's last lines into the
/// summary, which is all a CI log's tail may show.
fn script_failed(suite: &mut Suite, lines: &[String]) {
    const TAIL: usize = 25;
    suite.failed = 1;
    suite.remark = Some("run-tests.sh failed without a failed test (its last lines under failures:)".into());
    let tail = &lines[lines.len().saturating_sub(TAIL)..];
    suite.failures.push(format!("run-tests.sh exited non-zero; its last {} lines:\n{}", tail.len(), tail.join("\n")));
}

/// Parse pytest's closing line (`==== 47 passed, 2 deselected in 14.66s ====`) into
/// `(passed, failed + errors, skipped)`.
fn parse_pytest_summary(line: &str) -> Option<(u64, u64, u64)> {
    let t = line.trim().trim_matches('=').trim();
    let (counts, time) = t.rsplit_once(" in ")?;
    // `14.66s`, or past a minute `105.20s (0:01:45)`.
    let time = time.split_once(" (").map_or(time, |(t, _)| t);
    if !time.trim_end().ends_with('s') {
        return None;
    }
    let mut out = (0, 0, 0);
    let mut any = false;
    for part in counts.split(", ") {
        let mut w = part.split_whitespace();
        let (Some(n), Some(word), None) = (w.next(), w.next(), w.next()) else { return None };
        let n: u64 = n.parse().ok()?;
        match word {
            "passed" => out.0 += n,
            "failed" | "error" | "errors" => out.1 += n,
            "skipped" => out.2 += n,
            "deselected" | "xfailed" | "xpassed" | "warning" | "warnings" => {}
            _ => return None,
        }
        any = true;
    }
    any.then_some(out)
}

// ------------------------------------------------------------------ c library ----

/// The C library: `memguard-ffi/run-tests.sh` installs it with cargo-c (installing cargo-c,
/// valgrind and nightly's rust-src when missing), runs the C tests under valgrind, ASan+UBSan and
/// TSan, builds the C and C++ examples with CMake, and runs the C cache worker on the real kernel.
fn c_suite(root: &Path, skip_vm: bool) -> Suite {
    let mut suite = Suite { name: "c library", ..Suite::default() };
    banner("C library: cargo cinstall, C tests under valgrind / ASan+UBSan / TSan, examples, kernel v1 + v2 VM");
    let (ok, lines) = run_tests_script(root, "memguard-ffi/run-tests.sh", skip_vm, &mut suite);
    let mut steps = Vec::new();
    suite.failures = plain_failures(&lines);
    for line in &lines {
        if let Some((label, (p, f, s))) = parse_plain_counts(line) {
            steps.push(label.to_owned());
            suite.add((p, f, s));
        }
    }
    if !ok && suite.failed == 0 {
        script_failed(&mut suite, &lines);
    } else {
        steps.dedup();
        suite.remark = Some(format!("{}{}", steps.join(", "), if skip_vm { "; VM part skipped" } else { "" }));
    }
    suite
}

/// Parse a plain closing line `label: 3 passed, 0 failed, 1 skipped` (the skipped part optional)
/// into its label and `(passed, failed, skipped)`.
fn parse_plain_counts(line: &str) -> Option<(&str, (u64, u64, u64))> {
    let (label, rest) = line.trim().split_once(": ")?;
    if label.is_empty() || label.contains(char::is_whitespace) {
        return None;
    }
    let mut counts = (0, 0, 0);
    let parts: Vec<&str> = rest.split(", ").collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    for (i, part) in parts.iter().enumerate() {
        let (n, word) = part.split_once(' ')?;
        let n: u64 = n.parse().ok()?;
        match (i, word) {
            (0, "passed") => counts.0 = n,
            (1, "failed") => counts.1 = n,
            (2, "skipped") => counts.2 = n,
            _ => return None,
        }
    }
    Some((label, counts))
}

// --------------------------------------------------------------------- java ----

/// The Java package: `memguard-jni/run-tests.sh` builds the JNI library and the jar and runs
/// Surefire on JDK 17 and JDK 25 natively (every test, `-Xcheck:jni`, JNI warnings fail the
/// build), checks the jar's `status`, then runs the kernel tests on both JDKs in one VM boot.
fn java_suite(root: &Path, skip_vm: bool) -> Suite {
    let mut suite = Suite { name: "java (junit)", ..Suite::default() };
    banner("Java package: libmemguard_jni + jar, JUnit under -Xcheck:jni on JDK 17 and 25, natively and in the cgroup v2 VM");
    let (ok, lines) = run_tests_script(root, "memguard-jni/run-tests.sh", skip_vm, &mut suite);
    // Surefire's `[ERROR]   Class.method:line message` summary lines and the jar checks' `FAILED:`.
    suite.failures = lines
        .iter()
        .filter_map(|l| l.strip_prefix("[ERROR]   ").or_else(|| l.trim().strip_prefix("FAILED: ")))
        .map(|l| l.trim().to_owned())
        .collect();
    let mut runs = 0;
    for line in &lines {
        let counts = parse_surefire_summary(line).or_else(|| parse_plain_counts(line).map(|(_, c)| c));
        if let Some((p, f, s)) = counts {
            runs += 1;
            suite.add((p, f, s));
        }
    }
    if !ok && suite.failed == 0 {
        script_failed(&mut suite, &lines);
    } else {
        suite.remark =
            Some(format!("{runs} Surefire/jar run(s), JDK 17 + 25{}", if skip_vm { "; VM part skipped" } else { "" }));
    }
    suite
}

// --------------------------------------------------------------------- soak ----

/// Seconds of the soak in the test command.
const SOAK_SECS: u32 = 120;

/// Two minutes of `memguard-e2e soak --check` on this host's kernel.
fn soak_suite(root: &Path) -> Suite {
    let mut suite = Suite { name: "soak", ..Suite::default() };
    banner(&format!("soak: {SOAK_SECS} s oscillating between Normal and Critical (memguard-e2e soak --check)"));
    let start = Instant::now();
    let (built, _) = run_merged(
        Command::new("cargo")
            .args(["build", "--release", "-q", "-p", "memguard-benches", "--bin", "memguard-e2e"])
            .current_dir(root),
    );
    if !built {
        suite.failed = 1;
        suite.remark = Some("building memguard-e2e failed".into());
        return suite;
    }
    let (ok, lines) = run_merged(
        Command::new(root.join("target/release/memguard-e2e"))
            .args(["soak", "--soak-secs", &SOAK_SECS.to_string(), "--check"])
            .current_dir(root),
    );
    suite.secs = start.elapsed().as_secs_f64();
    let problems: Vec<String> =
        lines.iter().filter_map(|l| l.strip_prefix("SOAK PROBLEM: ")).map(String::from).collect();
    let not_measured: Vec<String> =
        lines.iter().filter_map(|l| l.strip_prefix("NOT MEASURED ")).map(String::from).collect();
    if ok && problems.is_empty() && not_measured.is_empty() {
        suite.passed = 1;
        suite.remark = lines.iter().find(|l| l.starts_with("soak, cgroup")).cloned();
    } else if !not_measured.is_empty() && problems.is_empty() {
        // No cgroup to soak in: a skip locally, a failure in CI (report()).
        suite.unavailable = true;
        suite.remark = Some(not_measured.join("; "));
    } else {
        suite.failed = 1;
        suite.failures = problems.clone();
        if suite.failures.is_empty() {
            suite.failures.push("memguard-e2e soak failed (see above)".into());
        }
        suite.remark = Some(format!("{} problem(s)", problems.len().max(1)));
    }
    suite
}

/// Parse Surefire's per-execution summary (`[INFO] Tests run: 24, Failures: 0, Errors: 0,
/// Skipped: 0`, not the per-class lines with `Time elapsed`) into `(passed, failed + errors,
/// skipped)`.
fn parse_surefire_summary(line: &str) -> Option<(u64, u64, u64)> {
    let t = line.trim();
    let t =
        t.strip_prefix("[INFO] ").or_else(|| t.strip_prefix("[ERROR] ")).or_else(|| t.strip_prefix("[WARNING] "))?;
    let rest = t.strip_prefix("Tests run: ")?;
    if rest.contains("Time elapsed") {
        return None;
    }
    let mut n = [0u64; 4];
    for (i, part) in rest.split(", ").enumerate().take(4) {
        n[i] = part.rsplit(' ').next()?.trim().parse().ok()?;
    }
    let (run, failures, errors, skipped) = (n[0], n[1], n[2], n[3]);
    Some((run.saturating_sub(failures + errors + skipped), failures + errors, skipped))
}

// ------------------------------------------------------------------ compare ----

/// `cargo xtask compare`, short: Python and Rust workers at full speed toward a 256 MiB v1
/// limit, 2 runs each (about 5 s once built): every memguard worker survives, every unguarded one is
/// OOM-killed (the Dask-like poller is run, not judged). A worker that cannot run is skipped
/// locally, a failure in CI.
fn compare_suite() -> Suite {
    let mut suite = Suite { name: "compare (short)", ..Suite::default() };
    banner("compare (short): unguarded, Dask-like and memguard workers at full speed, 2 runs each");
    let start = Instant::now();
    let outcome = crate::compare::short();
    suite.secs = start.elapsed().as_secs_f64();
    match outcome {
        Err(why) => {
            suite.unavailable = true;
            suite.remark = Some(why);
        }
        Ok(o) => {
            suite.passed = o.passed;
            suite.failed = o.failures.len() as u64;
            suite.skipped = o.not_run.len() as u64;
            if in_ci() && !o.not_run.is_empty() {
                suite.failed += suite.skipped;
                suite.skipped = 0;
                suite.failures.extend(o.not_run.iter().map(|n| format!("not run in CI: {n}")));
            }
            suite.failures.extend(o.failures);
            if !o.not_run.is_empty() {
                suite.remark = Some(format!("not run: {}", o.not_run.join("; ")));
            }
        }
    }
    suite
}

// ------------------------------------------------------- model check & miri ----

/// The unit-test modules Miri runs: what needs no system calls beyond memory and threads.
pub const MIRI_MODULES: &[&str] = &["parse::", "level::", "watch::rate", "budget::"];

/// Shuttle model checking of the budget and the callback registry, then Miri on the pure modules ([`MIRI_MODULES`]).
fn checked_concurrency_suite(root: &Path) -> Suite {
    let mut suite = Suite { name: "model check & miri", ..Suite::default() };
    banner("model checking (Shuttle) of the budget and the callback registry; Miri on parsers, levels, growth estimator, budget");
    let start = Instant::now();
    let shuttle_target = root.join("target/shuttle");
    let (ok_shuttle, shuttle_lines) = run_merged(
        Command::new("cargo")
            .args(["test", "-p", "memguard", "--lib", "--target-dir"])
            .arg(&shuttle_target)
            .args(["--", "budget::model_check", "watch::registry_model_check"])
            .env("RUSTFLAGS", "--cfg shuttle")
            .current_dir(root),
    );
    let mut notes = Vec::new();
    let (ok_miri, miri_lines) = match ensure_miri() {
        Ok(()) => run_merged(
            Command::new("cargo")
                .args(["+nightly", "miri", "test", "-p", "memguard", "--lib", "--"])
                .args(MIRI_MODULES)
                .current_dir(root),
        ),
        Err(why) => {
            suite.unavailable = true;
            notes.push(why);
            (false, Vec::new())
        }
    };
    for (ok, lines, what) in [(ok_shuttle, &shuttle_lines, "shuttle"), (ok_miri, &miri_lines, "miri")] {
        let mut counted = false;
        for line in lines {
            if let Some((p, f, s)) = parse_result_line(line.trim()) {
                counted |= p + f > 0;
                suite.add((p, f, s));
            }
        }
        let failures = libtest_failures(lines);
        let not_run = what == "miri" && suite.unavailable;
        if !ok && failures.is_empty() && !not_run {
            // Failed without a failing test: a build error, a crash of the interpreter.
            suite.failed += 1;
            notes.push(format!("{what} failed to run (see above)"));
        }
        suite.failures.extend(failures.into_iter().map(|(_, f)| format!("{what}: {f}")));
        if counted {
            notes.push(what.to_owned());
        }
    }
    suite.secs = start.elapsed().as_secs_f64();
    suite.remark = Some(notes.join(", "));
    suite
}

/// Miri on nightly: `rustup component add miri` when missing.
fn ensure_miri() -> Result<(), String> {
    let have =
        || Command::new("cargo").args(["+nightly", "miri", "--version"]).output().is_ok_and(|o| o.status.success());
    if have() {
        return Ok(());
    }
    banner("installing Miri (rustup component add --toolchain nightly miri rust-src)");
    let _ = Command::new("rustup").args(["component", "add", "--toolchain", "nightly", "miri", "rust-src"]).status();
    if have() {
        Ok(())
    } else {
        Err("Miri is not available for the nightly toolchain (rustup component add miri failed)".into())
    }
}

// --------------------------------------------------------------------- runc ----

/// `runc` on PATH, installed with apt-get when missing (as root).
fn ensure_runc() -> Result<(), String> {
    let ok = || Command::new("runc").arg("--version").output().is_ok_and(|o| o.status.success());
    if ok() {
        return Ok(());
    }
    banner("installing runc (apt-get install -y runc)");
    let (installed, _) =
        run_merged(Command::new("apt-get").args(["install", "-y", "runc"]).env("DEBIAN_FRONTEND", "noninteractive"));
    if installed && ok() {
        Ok(())
    } else {
        Err("runc is missing and `apt-get install -y runc` did not provide it".into())
    }
}

/// Counts from the closing `runc-v1: …` / `runc-v2: …` (or `runc: …`) line of `cargo xtask runc`.
fn runc_counts(suite: &mut Suite, lines: &[String]) -> bool {
    let mut found = false;
    for line in lines {
        if let Some((label, (p, f, s))) = parse_plain_counts(line) {
            if label.starts_with("runc") {
                found = true;
                suite.add((p, f, s));
            }
        }
    }
    found
}

/// The runc suites: `cargo xtask runc` natively (cgroup v1 here) and inside one VM boot (v2).
fn runc_suites(root: &Path, skip_vm: bool) -> Vec<Suite> {
    let mut native = Suite { name: "runc native", ..Suite::default() };
    let mut v2 = Suite { name: "runc cgroup v2 VM", ..Suite::default() };
    banner("runc: memguard in real OCI containers and Kubernetes-shaped cgroups (native, then the cgroup v2 VM)");
    let start = Instant::now();
    // This very binary runs the cases (natively and in the VM). If it was rebuilt while this
    // run goes on, /proc/self/exe names the old file "... (deleted)": the new one at the same
    // path does the same job.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}")).map(|p| {
        let s = p.to_string_lossy();
        s.strip_suffix(" (deleted)").map_or(p.clone(), PathBuf::from)
    });
    let ready = ensure_runc().and_then(|()| exe.clone()).and_then(|exe| {
        let (built, _) = run_merged(
            Command::new("cargo")
                .args([
                    "build",
                    "-p",
                    "memguard",
                    "--bin",
                    "memguard",
                    "-p",
                    "memguard-examples",
                    "--bin",
                    "cache-worker",
                    "-p",
                    "memguard-ffi",
                    "--lib",
                ])
                .current_dir(root),
        );
        if built {
            Ok(exe)
        } else {
            Err("building memguard, cache-worker and the C library failed".into())
        }
    });
    let exe = match ready {
        Ok(exe) => exe,
        Err(why) => {
            for s in [&mut native, &mut v2] {
                s.unavailable = true;
                s.remark = Some(why.clone());
            }
            return vec![native, v2];
        }
    };
    let mut cmd = Command::new(&exe);
    cmd.arg("runc").current_dir(root);
    if let Some(py) = real_python() {
        cmd.env("MEMGUARD_TEST_PYTHON", py);
    }
    let (ok, lines) = run_merged(&mut cmd);
    native.secs = start.elapsed().as_secs_f64();
    if !runc_counts(&mut native, &lines) || (!ok && native.failed == 0) {
        native.failed += 1;
        native.remark = Some("cargo xtask runc failed without its closing line (see above)".into());
    } else if lines.iter().any(|l| l.starts_with("SKIP runc suite:")) {
        native.unavailable = true;
        native.remark = lines.iter().find_map(|l| l.strip_prefix("SKIP runc suite: ")).map(str::to_owned);
    } else {
        native.remark = Some(match leaked_v1_cgroups() {
            Ok(leaked) if leaked.is_empty() => "no test cgroup left behind".into(),
            Ok(leaked) => {
                native.failed += 1;
                format!("test cgroups left behind: {}", leaked.join(", "))
            }
            Err(e) => format!("leak check failed: {e}"),
        });
    }
    if skip_vm {
        v2.unavailable = true;
        v2.remark = Some("--skip-vm given".into());
        return vec![native, v2];
    }
    let start = Instant::now();
    let script =
        concat!(r#""$@" > "$MEMGUARD_VM_OUT/runc.log" 2>&1; rc=$?; cat "$MEMGUARD_VM_OUT/runc.log""#, vm_leak_check!());
    let command =
        vec!["sh".into(), "-c".into(), script.into(), "sh".into(), exe.to_string_lossy().into_owned(), "runc".into()];
    let outcome = vm::run(&test_vm_options(command, root.to_path_buf()));
    v2.secs = start.elapsed().as_secs_f64();
    match outcome {
        Err(e) => {
            v2.failed = 1;
            v2.unavailable = true;
            v2.remark = Some(format!("VM harness failed: {e}"));
        }
        Ok(out) => {
            let log = std::fs::read_to_string(out.out_dir.join("runc.log")).unwrap_or_default();
            let lines: Vec<String> = log.lines().map(str::to_owned).collect();
            if !runc_counts(&mut v2, &lines) || (out.exit_code != 0 && v2.failed == 0) {
                v2.failed += 1;
            }
            v2.remark = Some(format!(
                "one boot: {:.1} s to the command, {:.1} s in all; exit {}",
                out.boot_secs, out.total_secs, out.exit_code
            ));
        }
    }
    vec![native, v2]
}

// --------------------------------------------------------------------- fuzz ----

fn fuzz_suite(root: &Path, enabled: bool, secs: u32) -> Suite {
    let mut suite = Suite { name: "fuzz", ..Suite::default() };
    if !enabled {
        suite.unavailable = true;
        suite.remark = Some("--no-fuzz given".into());
        return suite;
    }
    banner(&format!("cargo fuzz: every target of memguard/fuzz for {secs} s"));
    let start = Instant::now();
    let fuzz_dir = root.join("memguard");
    if let Err(why) = ensure_cargo_fuzz() {
        suite.unavailable = true;
        suite.remark = Some(why);
        return suite;
    }
    let targets = fuzz_targets(&fuzz_dir);
    if targets.is_empty() {
        suite.failed = 1;
        suite.remark = Some("`cargo fuzz list` found no targets".into());
        return suite;
    }
    for t in &targets {
        let max_time = format!("-max_total_time={secs}");
        // The committed corpus is replayed first, then grown (not committed by this run).
        let _ = std::fs::create_dir_all(fuzz_dir.join("fuzz/corpus").join(t));
        // libFuzzer prints a line per new input: keep it out of the log unless the target fails.
        let (ok, lines) = run_quiet(
            Command::new("cargo")
                .args(["+nightly", "fuzz", "run", t])
                .arg(fuzz_dir.join("fuzz/corpus").join(t))
                .args(["--", &max_time, "-print_final_stats=1"])
                .current_dir(&fuzz_dir),
        );
        let runs = lines.iter().rev().find_map(|l| l.strip_prefix("stat::number_of_executed_units:"));
        println!("{t}: {}, {} executions", if ok { "ok" } else { "FAILED" }, runs.map_or("?", str::trim));
        if ok {
            suite.passed += 1;
        } else {
            let tail = lines.len().saturating_sub(60);
            for line in &lines[tail..] {
                println!("{line}");
            }
            suite.failed += 1;
            suite.failures.push(format!("{t}:\n{}", lines[lines.len().saturating_sub(15)..].join("\n")));
        }
    }
    suite.secs = start.elapsed().as_secs_f64();
    suite.remark = Some(format!("{} target(s) × {secs} s: {}", targets.len(), targets.join(", ")));
    suite
}

/// The targets `cargo fuzz list` names in `fuzz_dir` (empty when it fails).
pub fn fuzz_targets(fuzz_dir: &Path) -> Vec<String> {
    match Command::new("cargo").args(["+nightly", "fuzz", "list"]).current_dir(fuzz_dir).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

pub fn ensure_cargo_fuzz() -> Result<(), String> {
    let nightly = Command::new("cargo").args(["+nightly", "--version"]).output();
    if !nightly.is_ok_and(|o| o.status.success()) {
        return Err("no nightly Rust toolchain (cargo fuzz needs one)".into());
    }
    let have = Command::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    banner("installing cargo-fuzz from crates.io");
    let st = Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]).status();
    match st {
        Ok(s) if s.success() => Ok(()),
        _ => Err("`cargo install cargo-fuzz` failed".into()),
    }
}

// --------------------------------------------------------------------- lint ----

/// Formatting, clippy (warnings are errors) and the core's rustdoc (broken links are errors).
fn lint_suite(root: &Path) -> Suite {
    let mut suite = Suite { name: "lint", ..Suite::default() };
    banner("lint: cargo fmt --check, cargo clippy -D warnings, cargo doc -D warnings");
    let start = Instant::now();
    /// One check: a name, the cargo arguments, and an environment variable to set.
    struct Check {
        name: &'static str,
        args: &'static [&'static str],
        env: Option<(&'static str, &'static str)>,
    }
    let checks = [
        Check { name: "fmt", args: &["fmt", "--all", "--", "--check"], env: None },
        Check { name: "clippy", args: &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], env: None },
        Check {
            name: "doc",
            args: &["doc", "--no-deps", "-p", "memguard"],
            env: Some(("RUSTDOCFLAGS", "-D warnings")),
        },
    ];
    let mut failed = Vec::new();
    for check in checks {
        let mut cmd = Command::new("cargo");
        cmd.args(check.args).current_dir(root);
        if let Some((k, v)) = check.env {
            cmd.env(k, v);
        }
        let (ok, _) = run_merged(&mut cmd);
        if ok {
            suite.passed += 1;
        } else {
            suite.failed += 1;
            failed.push(check.name);
        }
    }
    suite.secs = start.elapsed().as_secs_f64();
    suite.remark =
        Some(if failed.is_empty() { "fmt, clippy, doc".into() } else { format!("failed: {}", failed.join(", ")) });
    suite
}

// ------------------------------------------------------------------- common ----

fn banner(what: &str) {
    println!("\n==> {what}");
}

/// Run a command with stdout and stderr merged (order kept), echo every line, return
/// (success, lines).
fn run_merged(cmd: &mut Command) -> (bool, Vec<String>) {
    run_lines(cmd, true)
}

/// [`run_merged`] without the echo.
fn run_quiet(cmd: &mut Command) -> (bool, Vec<String>) {
    run_lines(cmd, false)
}

fn run_lines(cmd: &mut Command, echo: bool) -> (bool, Vec<String>) {
    let program = format!("{cmd:?}");
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(r#""$@" 2>&1"#).arg("sh").arg(cmd.get_program()).args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        sh.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let mut child = match sh.stdout(Stdio::piped()).stdin(Stdio::null()).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xtask test: cannot run {program}: {e}");
            return (false, Vec::new());
        }
    };
    let mut lines = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if echo {
                println!("{line}");
            }
            lines.push(line);
        }
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    (ok, lines)
}

fn report(suites: &[Suite], ci: bool) -> i32 {
    println!("\n==> memguard test summary{}", if ci { " (CI: every suite must run)" } else { "" });
    println!("{:<20} {:>7} {:>7} {:>8} {:>9}  notes", "suite", "passed", "failed", "skipped", "time");
    let (mut p, mut f, mut s) = (0, 0, 0);
    let mut missing = Vec::new();
    for x in suites {
        let status = if x.unavailable { "NOT RUN: " } else { "" };
        println!(
            "{:<20} {:>7} {:>7} {:>8} {:>8.1}s  {status}{}",
            x.name,
            x.passed,
            x.failed,
            x.skipped,
            x.secs,
            x.remark.as_deref().unwrap_or("")
        );
        p += x.passed;
        f += x.failed;
        s += x.skipped;
        if x.unavailable {
            missing.push(x.name);
        }
    }
    let failures: Vec<(&str, &String)> = suites.iter().flat_map(|x| x.failures.iter().map(|f| (x.name, f))).collect();
    if !failures.is_empty() {
        println!("failures:");
        for (suite, failure) in failures {
            let mut lines = failure.lines();
            println!("  [{suite}] {}", lines.next().unwrap_or(""));
            for line in lines {
                println!("      {line}");
            }
        }
    }
    let ci_missing = ci && !missing.is_empty();
    if ci_missing {
        println!("CI requires every suite; not run: {}", missing.join(", "));
        f += missing.len() as u64;
    }
    println!("total: {p} passed, {f} failed, {s} skipped");
    i32::from(f > 0)
}

#[cfg(test)]
mod tests {
    use super::parse_result_line;

    #[test]
    fn names_failures_with_their_reason() {
        let log: Vec<String> = "     Running tests/kernel_v1.rs (target/debug/deps/kernel_v1-abc)
running 2 tests
test a_passes ... ok
test b_fails ... FAILED

failures:

---- b_fails stdout ----
some output
thread 'b_fails' panicked at memguard/tests/kernel_v1.rs:10:5:
level stayed Normal
note: run with `RUST_BACKTRACE=1`

failures:
    b_fails

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s"
            .lines()
            .map(String::from)
            .collect();
        let f = super::libtest_failures(&log);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "tests/kernel_v1.rs");
        assert!(f[0].1.starts_with("b_fails\nthread 'b_fails' panicked at"), "{}", f[0].1);
        assert!(f[0].1.contains("level stayed Normal") && !f[0].1.contains("some output"));
        let c: Vec<String> =
            ["ok   x (1 ms)", "  FAILED t.c:630: wait_count(&p.warnings, 1, 5000)", "FAIL levels (5027 ms)"]
                .iter()
                .map(|s| String::from(*s))
                .collect();
        assert_eq!(
            super::plain_failures(&c),
            vec!["FAIL levels (5027 ms)\nFAILED t.c:630: wait_count(&p.warnings, 1, 5000)"]
        );
    }

    #[test]
    fn parses_pytest_summaries() {
        use super::parse_pytest_summary as p;
        assert_eq!(
            p("====================== 47 passed, 2 deselected in 14.66s ======================="),
            Some((47, 0, 0))
        );
        assert_eq!(p("=== 1 failed, 3 passed, 2 skipped, 1 error in 1.00s ==="), Some((3, 2, 2)));
        assert_eq!(p("collected 3 items in the tests"), None);
        // Past a minute pytest adds the h:mm:ss form (found: the suite counted 0 then).
        assert_eq!(
            p("============ 1 failed, 57 passed, 4 deselected in 97.81s (0:01:37) ============="),
            Some((57, 1, 0))
        );
    }

    #[test]
    fn parses_surefire_summaries() {
        use super::parse_surefire_summary as sf;
        assert_eq!(sf("[INFO] Tests run: 24, Failures: 0, Errors: 0, Skipped: 0"), Some((24, 0, 0)));
        assert_eq!(sf("[ERROR] Tests run: 24, Failures: 1, Errors: 2, Skipped: 3"), Some((18, 3, 3)));
        assert_eq!(
            sf("[INFO] Tests run: 12, Failures: 0, Errors: 0, Skipped: 0, Time elapsed: 2.1 s -- in io.memguard.ApiTest"),
            None
        );
        assert_eq!(sf("jar-checks: 4 passed, 0 failed"), None);
    }

    #[test]
    fn parses_plain_closing_lines() {
        use super::parse_plain_counts as p;
        assert_eq!(p("c-tests: 21 passed, 0 failed, 1 skipped"), Some(("c-tests", (21, 0, 1))));
        assert_eq!(p("kernel-c: 3 passed, 2 failed"), Some(("kernel-c", (3, 2, 0))));
        assert_eq!(p("ok   v1 guarded worker: exit 0, oom_kill 0"), None);
        assert_eq!(p("note: 3 passed, and more"), None);
    }

    #[test]
    fn parses_libtest_result_lines() {
        assert_eq!(
            parse_result_line(
                "test result: ok. 34 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.05s"
            ),
            Some((34, 0, 2))
        );
        assert_eq!(
            parse_result_line("test result: FAILED. 1 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out"),
            Some((1, 3, 0))
        );
        assert_eq!(parse_result_line("running 3 tests"), None);
        assert!((super::finished_in("test result: ok. 1 passed; finished in 2.50s") - 2.5).abs() < 1e-9);
    }
}
