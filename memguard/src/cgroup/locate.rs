//! From `/proc/<pid>/cgroup` and `/proc/<pid>/mountinfo` to the process's memory cgroup
//! directory on this host.
//!
//! Rules, each tested on fixture trees (`memguard/tests/fixtures/`):
//! 1. A v1 `memory` line with a v1 `memory` mount wins (hybrid hosts keep memory on v1).
//!    A v1 `memory` line without such a mount is a stray line and ignored (with a note).
//! 2. Otherwise the `0::` line with a `cgroup2` mount is used if the cgroup's
//!    `cgroup.controllers` lists `memory`.
//! 3. When the controller is mounted more than once, the mount whose root contains the
//!    process's path and shows the most ancestors (shortest root) wins; ties prefer mounts
//!    under `/sys/fs/cgroup`.
//! 4. A path outside every mount root (`/..` in a cgroup namespace, a process moved after the
//!    mount) or a cgroup directory that does not exist falls back to the mount point itself,
//!    which is what a container's private mount shows; the fallback is noted.

use crate::fsroot::FsRoot;
use crate::limits::CgroupVersion;
use crate::parse::mountinfo::{MountEntry, MountInfo};
use crate::parse::proc_cgroup::ProcCgroup;

/// Where the process's memory cgroup is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// V1 or V2 (never `None`).
    pub version: CgroupVersion,
    /// The path from `/proc/<pid>/cgroup`.
    pub cgroup_path: String,
    /// Mount point of the hierarchy used.
    pub mount_point: String,
    /// The cgroup shown at the mount point (mountinfo's root field).
    pub mount_root: String,
    /// The cgroup directory relative to the mount point (`""` = the mount point itself).
    pub rel: String,
    /// True when the process's cgroup could not be mapped under the mount and the mount point
    /// is used instead (rule 4).
    pub fell_back: bool,
}

impl Location {
    /// The process's cgroup directory on this host.
    pub fn dir(&self) -> String {
        join(&self.mount_point, &self.rel)
    }

    /// The cgroup path of the directory used (equals `cgroup_path` unless `fell_back`).
    pub fn used_cgroup(&self) -> String {
        join(&self.mount_root, &self.rel)
    }
}

/// Join a base path and a relative path without doubling or dropping slashes.
pub(crate) fn join(base: &str, rel: &str) -> String {
    let rel = rel.trim_matches('/');
    if rel.is_empty() {
        return base.to_owned();
    }
    format!("{}/{rel}", base.trim_end_matches('/'))
}

/// Locate the memory cgroup. Returns `None` when no memory cgroup governs the process, and
/// notes explaining every fallback taken.
pub fn locate(procs: &ProcCgroup, mounts: &MountInfo, fs: &FsRoot) -> (Option<Location>, Vec<String>) {
    let mut notes = Vec::new();
    if let Some(entry) = procs.v1_entry("memory") {
        let candidates: Vec<&MountEntry> = mounts.mounts.iter().filter(|m| m.is_v1_with("memory")).collect();
        if candidates.is_empty() {
            notes.push(format!(
                "the process has a v1 memory cgroup ({}) but no v1 memory hierarchy is mounted; ignoring that line",
                entry.path
            ));
        } else {
            return (Some(place(CgroupVersion::V1, &entry.path, &candidates, fs, &mut notes)), notes);
        }
    }
    if let Some(entry) = procs.unified_entry() {
        let candidates: Vec<&MountEntry> = mounts.mounts.iter().filter(|m| m.is_cgroup2()).collect();
        if candidates.is_empty() {
            notes.push("the process has a cgroup v2 path but no cgroup2 filesystem is mounted".to_owned());
        } else {
            let loc = place(CgroupVersion::V2, &entry.path, &candidates, fs, &mut notes);
            let controllers = format!("{}/cgroup.controllers", loc.dir());
            match fs.read(&controllers) {
                Ok(text) if text.split_whitespace().any(|c| c == "memory") => return (Some(loc), notes),
                Ok(_) => notes.push(format!(
                    "cgroup v2 is mounted at {} but the memory controller is not enabled for {}",
                    loc.mount_point,
                    loc.used_cgroup()
                )),
                Err(e) => {
                    notes
                        .push(format!("cannot tell whether the v2 memory controller is enabled ({e}); assuming it is"));
                    return (Some(loc), notes);
                }
            }
        }
    }
    (None, notes)
}

fn place(
    version: CgroupVersion,
    path: &str,
    candidates: &[&MountEntry],
    fs: &FsRoot,
    notes: &mut Vec<String>,
) -> Location {
    let under_sys = |m: &MountEntry| !m.mount_point.starts_with("/sys/fs/cgroup");
    let best = candidates
        .iter()
        .filter_map(|m| relative_to(&m.root, path).map(|rel| (*m, rel)))
        .min_by_key(|(m, _)| (m.root.len(), under_sys(m)));
    let fallback = |m: &MountEntry| Location {
        version,
        cgroup_path: path.to_owned(),
        mount_point: m.mount_point.clone(),
        mount_root: m.root.clone(),
        rel: String::new(),
        fell_back: true,
    };
    match best {
        Some((m, rel)) => {
            let loc = Location {
                version,
                cgroup_path: path.to_owned(),
                mount_point: m.mount_point.clone(),
                mount_root: m.root.clone(),
                rel,
                fell_back: false,
            };
            if fs.exists(loc.dir()) {
                return loc;
            }
            notes.push(format!(
                "cgroup directory {} does not exist; using the mount point {} instead",
                loc.dir(),
                m.mount_point
            ));
            fallback(m)
        }
        None => {
            let m = candidates.iter().min_by_key(|m| under_sys(m)).copied().unwrap_or(candidates[0]);
            notes.push(format!(
                "the process's cgroup {path} is outside the root {} of the mount at {} (moved after the mount, \
                 or outside this cgroup namespace); using the mount point instead",
                m.root, m.mount_point
            ));
            fallback(m)
        }
    }
}

/// `path` relative to the cgroup `root`, or `None` when `path` is not under `root`
/// (including any path with a `..` component).
pub(crate) fn relative_to(root: &str, path: &str) -> Option<String> {
    if path.split('/').any(|c| c == "..") || root.split('/').any(|c| c == "..") {
        return None;
    }
    let root = root.trim_end_matches('/');
    let path = path.trim_end_matches('/');
    if root.is_empty() {
        return Some(path.trim_start_matches('/').to_owned());
    }
    if path == root {
        return Some(String::new());
    }
    path.strip_prefix(root).and_then(|rest| rest.strip_prefix('/')).map(|rest| rest.trim_start_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(relative_to("/", "/a/b").as_deref(), Some("a/b"));
        assert_eq!(relative_to("/", "/").as_deref(), Some(""));
        assert_eq!(relative_to("/docker/x", "/docker/x").as_deref(), Some(""));
        assert_eq!(relative_to("/docker/x", "/docker/x/y").as_deref(), Some("y"));
        assert_eq!(relative_to("/docker/x", "/docker/xy"), None);
        assert_eq!(relative_to("/", "/../../a"), None);
        assert_eq!(relative_to("/a", "/b"), None);
    }

    #[test]
    fn joins() {
        assert_eq!(join("/sys/fs/cgroup", ""), "/sys/fs/cgroup");
        assert_eq!(join("/sys/fs/cgroup/", "/a/b/"), "/sys/fs/cgroup/a/b");
        assert_eq!(join("/", "a"), "/a");
    }
}
