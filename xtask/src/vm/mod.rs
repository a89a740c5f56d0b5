//! `cargo xtask vm`: run one command inside a throwaway qemu guest with a pure cgroup v2
//! hierarchy (the host may be cgroup v1, as CI hosts are).
//!
//! The guest boots Debian's current `linux-image-*-amd64` under TCG with a generated
//! initramfs (busybox + 9p/overlay modules); the host root is its root (read-only 9p with a
//! tmpfs overlay), cgroup2 is mounted at `/sys/fs/cgroup` with `memory`, `pids` (and `cpu`)
//! delegated to `/sys/fs/cgroup/memguard-vm`, and the command runs in
//! `/sys/fs/cgroup/memguard-vm/runner`. Tests create sibling cgroups under `memguard-vm/`.
//! A host directory is shared read-write at `/mnt/out`; the harness keeps its own files in
//! `/mnt/out/.xtask-vm/` (run script, exit code, console logs, qemu log).
//!
//! Everything is installed and fetched on demand (apt) and cached in `target/vm-cache/`.

mod cli;
mod cpio;
mod initramfs;
mod kernel;
pub mod packages;
mod qemu;
mod runscript;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Default wall-clock limit of one VM run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Exit status of `main` when the VM timed out.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit status of `main` on a harness failure.
pub const EXIT_HARNESS: i32 = 125;
/// Run directories kept under `target/vm/` (older `run-*` ones are deleted).
const KEEP_RUN_DIRS: usize = 10;

/// What to run in the VM and how.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// argv run inside the guest (looked up in the guest `PATH`, which is the host's).
    pub command: Vec<String>,
    /// Whole-VM wall timeout; qemu is killed after it.
    pub timeout: Duration,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// Extra environment for the command (wins over the variables taken from the host).
    pub env: Vec<(String, String)>,
    /// Guest working directory: a host path, visible in the guest through the shared root.
    pub cwd: PathBuf,
    /// Host directory shared read-write at `/mnt/out`; `None` = a fresh `target/vm/run-*`.
    pub out_dir: Option<PathBuf>,
}

impl VmOptions {
    /// Options with the defaults: 600 s timeout, 2048 MiB, 2 CPUs, no extra env, the current
    /// directory, a fresh output directory.
    pub fn new(command: Vec<String>) -> Self {
        Self {
            command,
            timeout: DEFAULT_TIMEOUT,
            memory_mib: 2048,
            cpus: 2,
            env: Vec::new(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            out_dir: None,
        }
    }
}

/// Result of a VM run whose command finished.
#[derive(Debug, Clone)]
#[allow(dead_code)] // read by `cargo xtask test` (test_cmd.rs)
pub struct VmOutcome {
    /// The command's exit code (128 + signal number if it was killed by a signal).
    pub exit_code: i32,
    /// Seconds from starting qemu to the command's start.
    pub boot_secs: f64,
    /// Seconds for the whole `run` call (tool/kernel checks, boot, command, poweroff).
    pub total_secs: f64,
    /// The host directory that was shared at `/mnt/out`.
    pub out_dir: PathBuf,
}

/// Why a run produced no exit code.
#[derive(Debug)]
enum RunError {
    /// The VM ran past its timeout and was killed.
    Timeout(String),
    /// Anything else: missing tools, kernel fetch, qemu failure, guest crash.
    Harness(String),
}

impl From<String> for RunError {
    fn from(msg: String) -> Self {
        RunError::Harness(msg)
    }
}

/// Boots a VM, runs `opts.command` in it and returns its exit code and timings. The
/// command's stdout and stderr are copied to this process's stdout and stderr as it runs;
/// one timing line (`xtask vm: exit code ..; boot .. s, ..`) goes to stderr.
///
/// `Err` is a harness failure with a one-line message (tools missing and not installable,
/// kernel fetch failed, qemu failed, guest crashed without an exit code, or the timeout
/// passed; a timeout message starts with `timed out`).
#[allow(dead_code)] // called by `cargo xtask test` (test_cmd.rs)
pub fn run(opts: &VmOptions) -> Result<VmOutcome, String> {
    run_inner(opts).map_err(|e| match e {
        RunError::Timeout(m) | RunError::Harness(m) => m,
    })
}

/// The `cargo xtask vm` command: see `cargo xtask vm --help`. Returns the command's exit
/// code, 124 on timeout, 125 on a harness failure, 2 on a usage error.
pub fn main(args: Vec<String>) -> i32 {
    let opts = match cli::parse(&args) {
        Ok(cli::Cli::Help) => {
            print!("{}", cli::USAGE);
            return 0;
        }
        Ok(cli::Cli::Run(opts)) => opts,
        Err(e) => {
            eprintln!("xtask vm: {e} (see `cargo xtask vm --help`)");
            return 2;
        }
    };
    match run_inner(&opts) {
        Ok(outcome) => outcome.exit_code,
        Err(RunError::Timeout(m)) => {
            eprintln!("xtask vm: {m}");
            EXIT_TIMEOUT
        }
        Err(RunError::Harness(m)) => {
            eprintln!("xtask vm: {m}");
            EXIT_HARNESS
        }
    }
}

fn run_inner(opts: &VmOptions) -> Result<VmOutcome, RunError> {
    let t0 = Instant::now();
    let tools = packages::ensure_host_tools()?;
    let root = workspace_root();
    let cache = cache_dir(&root);
    create_dir(&cache)?;
    let kernel = kernel::ensure_kernel(&cache)?;
    let initrd = initramfs::ensure_initramfs(&cache, &kernel, &tools.busybox)?;
    let boot_image = kernel.boot_image();
    let out_dir = prepare_out_dir(opts.out_dir.as_deref(), &root)?;
    let control = out_dir.join(initramfs::CONTROL_DIR);
    write_run_script(opts, &control)?;

    let config = qemu::QemuConfig {
        qemu: &tools.qemu,
        kernel: &boot_image,
        initrd: &initrd,
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        out_dir: &out_dir,
        log_dir: &control,
        bios: qemu::find_qboot(&tools.qemu),
    };
    let spawned_at = SystemTime::now();
    let mut vm = qemu::spawn(&config)?;
    let end = vm.wait(vm.started + opts.timeout)?;
    let qemu_secs = vm.started.elapsed().as_secs_f64();
    vm.finish_streams();
    drop(vm);

    let boot_secs = boot_secs(&control, spawned_at);
    let status = match end {
        qemu::WaitEnd::TimedOut => {
            return Err(RunError::Timeout(format!(
                "timed out after {} s (qemu killed; console logs in {})",
                opts.timeout.as_secs_f64(),
                control.display()
            )))
        }
        qemu::WaitEnd::Exited(status) => status,
    };
    let exit_code = read_exit_code(&control).ok_or_else(|| {
        format!(
            "the guest stopped without writing an exit code (qemu {status}, command started: {}); {}; logs in {}",
            if boot_secs.is_some() { "yes" } else { "no" },
            failure_summary(&control),
            control.display()
        )
    })?;
    let total_secs = t0.elapsed().as_secs_f64();
    let boot = boot_secs.unwrap_or(f64::NAN);
    eprintln!(
        "xtask vm: exit code {exit_code}; boot {boot:.1} s, command {:.1} s, total {total_secs:.1} s (kernel {})",
        qemu_secs - boot,
        kernel.release
    );
    Ok(VmOutcome { exit_code, boot_secs: boot, total_secs, out_dir })
}

/// Writes `<control>/run.sh` for the guest.
fn write_run_script(opts: &VmOptions, control: &Path) -> Result<(), String> {
    let host_env: Vec<(String, String)> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    let env = runscript::guest_env(&host_env, &opts.env);
    let cwd = absolute(&opts.cwd);
    let script = runscript::run_script(&opts.command, &env, &cwd)?;
    let path = control.join("run.sh");
    std::fs::write(&path, script).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Creates the output directory (default: a new `target/vm/run-*`) and an empty control dir.
fn prepare_out_dir(requested: Option<&Path>, root: &Path) -> Result<PathBuf, String> {
    let dir = match requested {
        Some(dir) => absolute(dir),
        None => {
            let runs = root.join("target/vm");
            prune_run_dirs(&runs);
            let millis = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
            runs.join(format!("run-{millis}-{}", std::process::id()))
        }
    };
    let control = dir.join(initramfs::CONTROL_DIR);
    if control.exists() {
        std::fs::remove_dir_all(&control).map_err(|e| format!("cannot clear {}: {e}", control.display()))?;
    }
    create_dir(&control)?;
    Ok(dir)
}

/// Deletes all but the newest [`KEEP_RUN_DIRS`] `run-*` directories in `runs`.
fn prune_run_dirs(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else { return };
    let mut dirs: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("run-"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(KEEP_RUN_DIRS - 1);
    for (_, dir) in dirs.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Seconds from qemu's start to the command's start (the mtime of the guest's start marker).
fn boot_secs(control: &Path, spawned_at: SystemTime) -> Option<f64> {
    let modified = std::fs::metadata(control.join("started")).ok()?.modified().ok()?;
    modified.duration_since(spawned_at).ok().map(|d| d.as_secs_f64())
}

fn read_exit_code(control: &Path) -> Option<i32> {
    std::fs::read_to_string(control.join("exit_code")).ok()?.trim().parse().ok()
}

/// The last line qemu printed, else the last line of the guest kernel console.
fn failure_summary(control: &Path) -> String {
    let last_line = |path: PathBuf, preferred: &[&str]| {
        let text = std::fs::read(path).unwrap_or_default();
        let text = String::from_utf8_lossy(&text).into_owned();
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let wanted = lines.iter().rev().find(|l| preferred.iter().any(|p| l.contains(p)));
        wanted.or(lines.last()).map(|l| l.to_string())
    };
    // Init-script failures and panics are the useful lines, not the panic's trailer.
    let guest_markers = ["xtask vm (guest", "Kernel panic", "BUG:", "Oops"];
    if let Some(line) = last_line(qemu::qemu_log(control), &[]) {
        format!("qemu said: {line}")
    } else if let Some(line) = last_line(qemu::kernel_log(control), &guest_markers) {
        format!("guest console: {line}")
    } else {
        "qemu and the guest console printed nothing".into()
    }
}

/// The workspace root: the parent of this crate's manifest dir if it is a workspace, else
/// the nearest ancestor of the current directory whose Cargo.toml has `[workspace]`.
fn workspace_root() -> PathBuf {
    let is_workspace =
        |dir: &Path| std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"));
    let manifest_parent = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf);
    if let Some(dir) = manifest_parent.filter(|d| is_workspace(d)) {
        return dir;
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors().find(|d| is_workspace(d)).map(Path::to_path_buf).unwrap_or(cwd)
}

/// `MEMGUARD_VM_CACHE`, or `<workspace>/target/vm-cache`.
fn cache_dir(root: &Path) -> PathBuf {
    match std::env::var_os("MEMGUARD_VM_CACHE") {
        Some(dir) if !dir.is_empty() => absolute(Path::new(&dir)),
        _ => root.join("target/vm-cache"),
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    }
}

fn create_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_defaults() {
        let o = VmOptions::new(vec!["true".into()]);
        assert_eq!(o.timeout, Duration::from_secs(600));
        assert_eq!((o.memory_mib, o.cpus), (2048, 2));
        assert_eq!(o.cwd, std::env::current_dir().unwrap());
        assert!(o.out_dir.is_none() && o.env.is_empty());
    }

    #[test]
    fn workspace_root_has_the_workspace_manifest() {
        let root = workspace_root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }

    #[test]
    fn exit_code_and_control_dir() {
        let base = std::env::temp_dir().join(format!("xtask-vm-test-{}", std::process::id()));
        let out = prepare_out_dir(Some(&base), Path::new("/nonexistent")).unwrap();
        let control = out.join(initramfs::CONTROL_DIR);
        assert_eq!(read_exit_code(&control), None);
        std::fs::write(control.join("exit_code"), "137\n").unwrap();
        assert_eq!(read_exit_code(&control), Some(137));
        // A reused output dir gets a fresh control dir.
        prepare_out_dir(Some(&base), Path::new("/nonexistent")).unwrap();
        assert_eq!(read_exit_code(&control), None);
        std::fs::remove_dir_all(base).unwrap();
    }
}
