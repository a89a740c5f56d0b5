//! Throwaway memory cgroups for the harness, on cgroup v1 and v2.
//!
//! Layout: `<base>/e2e-<pid>/` ([`Workspace`]) holds one leaf per measurement
//! ([`BenchCgroup`]). `<base>` is this process's own memory cgroup on v1, `$MEMGUARD_VM_CGROUP`
//! inside `cargo xtask vm`, and the parent of this process's own cgroup on a v2 host (v2 allows
//! processes only in leaves once `memory` is enabled for children, hence the extra level).
//!
//! The process moves itself into a leaf (`cgroup.procs`), so the guard it then starts watches
//! that leaf; dropping the leaf moves it back to where it started and removes the directory.
//! Plain file I/O on cgroupfs, as in `memguard/tests/support/cgroup.rs`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{bail, Error, Result};

/// Which hierarchy carries the memory controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// cgroup v1 `memory` hierarchy.
    V1,
    /// cgroup v2 unified hierarchy.
    V2,
}

impl Version {
    /// `"v1"` / `"v2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

/// True inside `cargo xtask vm` (`MEMGUARD_IN_VM=1`).
pub fn in_vm() -> bool {
    std::env::var("MEMGUARD_IN_VM").is_ok_and(|v| v == "1")
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error(format!("{}: {e}", path.display())))
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|e| Error(format!("write {value:?} to {}: {e}", path.display())))
}

/// Mount points from `/proc/self/mounts`: `(fstype, mount point, options)`.
fn mounts() -> Result<Vec<(String, PathBuf, String)>> {
    Ok(read(Path::new("/proc/self/mounts"))?
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.get(2)?.to_string(), PathBuf::from(f.get(1)?), f.get(3)?.to_string()))
        })
        .collect())
}

/// This process's cgroup path for a v1 controller (`Some("memory")`) or the v2 hierarchy (`None`).
fn own_path(controller: Option<&str>) -> Result<Option<String>> {
    Ok(read(Path::new("/proc/self/cgroup"))?.lines().find_map(|l| {
        let mut p = l.splitn(3, ':');
        let (id, ctl, path) = (p.next()?, p.next()?, p.next()?);
        let hit = match controller {
            Some(c) => ctl.split(',').any(|x| x == c),
            None => id == "0" && ctl.is_empty(),
        };
        hit.then(|| path.to_owned())
    }))
}

fn under(mount: &Path, cgroup_path: &str) -> PathBuf {
    mount.join(cgroup_path.trim_start_matches('/'))
}

/// Where this process may create memory cgroups.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// Version of the memory controller.
    pub version: Version,
    /// Directory under which the workspace is created.
    pub base: PathBuf,
    /// This process's cgroup directory at start (where it returns after each measurement).
    pub origin: PathBuf,
}

impl Hierarchy {
    /// Find the memory hierarchy (see the module docs).
    ///
    /// # Errors
    /// No memory controller, or this process's cgroup cannot be found.
    pub fn discover() -> Result<Hierarchy> {
        let mounts = mounts()?;
        let v2_mount = mounts.iter().find(|(t, _, _)| t == "cgroup2").map(|(_, m, _)| m.clone());
        if in_vm() {
            let base = std::env::var_os("MEMGUARD_VM_CGROUP")
                .map(PathBuf::from)
                .ok_or_else(|| Error("MEMGUARD_IN_VM=1 but MEMGUARD_VM_CGROUP is not set".into()))?;
            let (Some(mount), Some(own)) = (v2_mount, own_path(None)?) else {
                bail!("in the VM but no cgroup2 mount or no `0::` line in /proc/self/cgroup");
            };
            return Ok(Hierarchy { version: Version::V2, base, origin: under(&mount, &own) });
        }
        let v1_mount = mounts
            .iter()
            .find(|(t, _, o)| t == "cgroup" && o.split(',').any(|x| x == "memory"))
            .map(|(_, m, _)| m.clone());
        if let (Some(mount), Some(own)) = (v1_mount, own_path(Some("memory"))?) {
            let origin = under(&mount, &own);
            return Ok(Hierarchy { version: Version::V1, base: origin.clone(), origin });
        }
        let (Some(mount), Some(own)) = (v2_mount, own_path(None)?) else {
            bail!("no memory cgroup: neither a v1 memory hierarchy nor a cgroup2 mount with this process in it");
        };
        let controllers = read(&mount.join("cgroup.controllers"))?;
        if !controllers.split_whitespace().any(|c| c == "memory") {
            bail!("the cgroup2 hierarchy at {} has no memory controller", mount.display());
        }
        let origin = under(&mount, &own);
        let Some(base) = origin.parent().filter(|p| p.starts_with(&mount)).map(Path::to_path_buf) else {
            bail!("this process is in the cgroup2 root; run it in a child cgroup");
        };
        Ok(Hierarchy { version: Version::V2, base, origin })
    }
}

/// `<base>/e2e-<pid>`: removed (after its leaves) on drop.
#[derive(Debug)]
pub struct Workspace {
    /// The hierarchy it lives in.
    pub hierarchy: Hierarchy,
    dir: PathBuf,
}

impl Workspace {
    /// Create `<base>/e2e-<pid>` (on v2 with `memory` enabled for its children).
    ///
    /// # Errors
    /// The kernel's refusal (not root, read-only cgroupfs, controller not delegated).
    pub fn create(hierarchy: Hierarchy) -> Result<Workspace> {
        let dir = hierarchy.base.join(format!("e2e-{}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| Error(format!("cannot create a cgroup at {}: {e}", dir.display())))?;
        let ws = Workspace { hierarchy, dir };
        if ws.hierarchy.version == Version::V2 {
            write(&ws.dir.join("cgroup.subtree_control"), "+memory")?;
        }
        Ok(ws)
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new leaf named `name` with hard limit `limit` (not yet entered).
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn leaf(&self, name: &str, limit: u64) -> Result<BenchCgroup> {
        let dir = self.dir.join(name);
        fs::create_dir(&dir).map_err(|e| Error(format!("mkdir {}: {e}", dir.display())))?;
        let cg =
            BenchCgroup { version: self.hierarchy.version, dir, origin: self.hierarchy.origin.clone(), entered: false };
        cg.set_limit(limit)?;
        Ok(cg)
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Err(e) = remove_dir(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// rmdir, retrying for a few seconds while the kernel still counts a departed task (`EBUSY`).
fn remove_dir(dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// One throwaway leaf cgroup. Dropping it moves this process back to its original cgroup (if
/// it was entered) and removes the directory.
#[derive(Debug)]
pub struct BenchCgroup {
    version: Version,
    dir: PathBuf,
    origin: PathBuf,
    entered: bool,
}

impl BenchCgroup {
    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its memory controller version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Set the hard limit (`memory.limit_in_bytes` / `memory.max`).
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn set_limit(&self, bytes: u64) -> Result<()> {
        let file = match self.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        write(&self.dir.join(file), &bytes.to_string())
    }

    /// v2 `memory.high` (`None` = `max`).
    ///
    /// # Errors
    /// On v1 (no such file), or the kernel's refusal.
    pub fn set_high(&self, bytes: Option<u64>) -> Result<()> {
        if self.version != Version::V2 {
            bail!("memory.high exists only on cgroup v2");
        }
        write(&self.dir.join("memory.high"), &bytes.map_or_else(|| "max".to_owned(), |b| b.to_string()))
    }

    /// Current usage (`memory.usage_in_bytes` / `memory.current`).
    ///
    /// # Errors
    /// Unreadable or malformed file.
    pub fn usage(&self) -> Result<u64> {
        let file = match self.version {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        };
        let path = self.dir.join(file);
        let text = read(&path)?;
        text.trim().parse().map_err(|_| Error(format!("{}: not a number: {text:?}", path.display())))
    }

    /// Move this whole process (every thread) into the cgroup.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn enter(&mut self) -> Result<()> {
        write(&self.dir.join("cgroup.procs"), &std::process::id().to_string())?;
        self.entered = true;
        Ok(())
    }

    /// Move this process back to its original cgroup.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn leave(&mut self) -> Result<()> {
        if self.entered {
            write(&self.origin.join("cgroup.procs"), &std::process::id().to_string())?;
            self.entered = false;
        }
        Ok(())
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.leave() {
            eprintln!("warning: {e}");
        }
        if let Err(e) = remove_dir(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}
