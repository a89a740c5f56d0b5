//! Throwaway memory cgroups on the real kernel, v1 or v2, created under the test process's own
//! cgroup (v1) or the VM harness's test cgroup (v2, `$MEMGUARD_VM_CGROUP`).
//!
//! A [`TestCgroup`] kills every process left in it and removes itself when
//! dropped, so a failing test leaves nothing behind; `cargo xtask test` checks that no
//! `memguard-test-*` cgroup survives a suite.
//!
//! This is plain file I/O on cgroupfs rather than the `cgroups-rs` crate: the tests need
//! mkdir / write / rmdir on both versions, and cgroups-rs 0.5 brings a D-Bus stack (zbus) that
//! costs about a minute of compile time on CI's two cores for that.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Prefix of every cgroup the suites create (checked for leaks after a suite).
pub const PREFIX: &str = "memguard-test-";

/// Which memory cgroup version the kernel offers here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// cgroup v1 memory controller.
    V1,
    /// cgroup v2 unified hierarchy.
    V2,
}

/// Where tests may create cgroups.
#[derive(Debug, Clone)]
pub struct Kit {
    /// Version of the memory controller.
    pub version: Version,
    /// Mount point of the memory hierarchy.
    pub mount: PathBuf,
    /// Directory under which test cgroups are created.
    pub base: PathBuf,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Kit {
    /// The v1 memory controller, with test cgroups under this process's own memory cgroup.
    ///
    /// # Errors
    /// Why it is not available (no v1 memory hierarchy, not writable).
    pub fn v1() -> Result<Kit, String> {
        let mounts = fs::read_to_string("/proc/self/mounts").map_err(|e| format!("/proc/self/mounts: {e}"))?;
        let mount = mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() > 3 && f[2] == "cgroup" && f[3].split(',').any(|o| o == "memory")).then(|| PathBuf::from(f[1]))
            })
            .next()
            .ok_or("no cgroup v1 memory hierarchy is mounted")?;
        let own = fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
        let path = own
            .lines()
            .find_map(|l| {
                let mut p = l.splitn(3, ':');
                let (_, c, path) = (p.next()?, p.next()?, p.next()?);
                c.split(',').any(|c| c == "memory").then(|| path.to_owned())
            })
            .ok_or("this process has no v1 memory cgroup")?;
        let base = mount.join(path.trim_start_matches('/'));
        check_writable(&base)?;
        Ok(Kit { version: Version::V1, mount, base })
    }

    /// The v2 hierarchy inside the VM harness (`$MEMGUARD_VM_CGROUP`, memory enabled in its
    /// `cgroup.subtree_control`).
    ///
    /// # Errors
    /// Why it is not available (not inside the VM, no memory controller).
    pub fn v2() -> Result<Kit, String> {
        let base = std::env::var_os("MEMGUARD_VM_CGROUP")
            .map(PathBuf::from)
            .ok_or("MEMGUARD_VM_CGROUP is not set: the cgroup v2 suite runs inside the VM (`cargo xtask test`)")?;
        let ctl =
            fs::read_to_string(base.join("cgroup.subtree_control")).map_err(|e| format!("{}: {e}", base.display()))?;
        if !ctl.split_whitespace().any(|c| c == "memory") {
            return Err(format!("memory is not enabled in {}/cgroup.subtree_control", base.display()));
        }
        check_writable(&base)?;
        Ok(Kit { version: Version::V2, mount: PathBuf::from("/sys/fs/cgroup"), base })
    }

    /// A new, empty cgroup directly under [`base`](Self::base).
    ///
    /// # Panics
    /// If the kernel refuses (the kit was checked writable).
    pub fn cgroup(&self, label: &str) -> TestCgroup {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{label}", std::process::id());
        TestCgroup::create(self.version, &self.mount, self.base.join(name))
    }
}

fn check_writable(dir: &Path) -> Result<(), String> {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let probe = dir.join(format!("{PREFIX}probe-{}-{n}", std::process::id()));
    fs::create_dir(&probe).map_err(|e| format!("cannot create a cgroup under {}: {e}", dir.display()))?;
    fs::remove_dir(&probe).map_err(|e| format!("cannot remove {}: {e}", probe.display()))
}

/// A cgroup that removes itself (and kills what is left in it) on drop.
#[derive(Debug)]
pub struct TestCgroup {
    version: Version,
    mount: PathBuf,
    dir: PathBuf,
}

impl TestCgroup {
    fn create(version: Version, mount: &Path, dir: PathBuf) -> TestCgroup {
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TestCgroup { version, mount: mount.to_owned(), dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cgroup path as `/proc/<pid>/cgroup` shows it.
    pub fn path(&self) -> String {
        let rel = self.dir.strip_prefix(&self.mount).expect("under mount");
        format!("/{}", rel.display())
    }

    /// Create a child cgroup (v2: enables `memory` for children first). Declare it after its
    /// parent so that it is dropped (removed) first.
    pub fn child(&self, name: &str) -> TestCgroup {
        if self.version == Version::V2 {
            self.write("cgroup.subtree_control", "+memory");
        }
        TestCgroup::create(self.version, &self.mount, self.dir.join(name))
    }

    /// Write a control file.
    ///
    /// # Panics
    /// If the write fails.
    pub fn write(&self, file: &str, value: &str) {
        let p = self.dir.join(file);
        fs::write(&p, value).unwrap_or_else(|e| panic!("write {value:?} to {}: {e}", p.display()));
    }

    /// Set the hard limit (`memory.limit_in_bytes` / `memory.max`).
    pub fn set_limit(&self, bytes: u64) {
        match self.version {
            Version::V1 => self.write("memory.limit_in_bytes", &bytes.to_string()),
            Version::V2 => self.write("memory.max", &bytes.to_string()),
        }
    }

    /// Set `memory.high` (v2) or the soft limit (v1).
    pub fn set_high(&self, bytes: u64) {
        match self.version {
            Version::V1 => self.write("memory.soft_limit_in_bytes", &bytes.to_string()),
            Version::V2 => self.write("memory.high", &bytes.to_string()),
        }
    }

    /// Move process `pid` into this cgroup.
    pub fn add_pid(&self, pid: u32) {
        self.write("cgroup.procs", &pid.to_string());
    }

    /// Spawn `program args...` inside this cgroup: a shell joins the cgroup, then execs the
    /// program, so even its first instruction is accounted here.
    ///
    /// # Panics
    /// If the shell cannot be spawned.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Child {
        self.command(program, args).spawn().unwrap_or_else(|e| panic!("spawn {program}: {e}"))
    }

    /// Like [`spawn`](Self::spawn) but returns the command (to capture output, set env).
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
            .arg(&self.dir)
            .arg(program)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Run a command inside this cgroup and return its stdout (asserting success).
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program, args).output().unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn remove(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for pid in self.pids() {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
            match fs::remove_dir(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("warning: could not remove test cgroup {}: {e}", self.dir.display());
        }
    }
}
