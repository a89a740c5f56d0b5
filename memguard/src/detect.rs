//! [`Detector`]: reads `/proc` and the cgroup filesystem and reports [`Limits`] and [`Usage`].

use crate::cgroup::locate::{join, relative_to};
use crate::cgroup::{locate, usage, walk, Location, MemoryFiles};
use crate::error::{Error, Result};
use crate::fsroot::FsRoot;
use crate::limits::{CgroupVersion, Limits, Usage};
use crate::parse::meminfo::{self, MemInfo};
use crate::parse::value::V1_UNLIMITED_THRESHOLD;
use crate::parse::{memory_stat, mountinfo, oom_score_adj, proc_cgroup};
use crate::qos::QosClass;

/// Finds the memory limits of a process (this one by default).
///
/// Cheap to build and to clone; every call re-reads the kernel's files, so a process moved to
/// another cgroup, or a limit changed at runtime, is seen by the next call.
///
/// ```
/// let limits = memguard::Detector::from_env().detect()?;
/// match limits.limit_bytes {
///     Some(bytes) => println!("limited to {bytes} bytes by {:?}", limits.limit_cgroup),
///     None if limits.limit_maybe_hidden => println!("no visible limit, but one may be hidden"),
///     None => println!("no cgroup limit; host memory is {:?} bytes", limits.host_total_bytes),
/// }
/// # Ok::<(), memguard::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Detector {
    fs: FsRoot,
    pid: Option<u32>,
}

impl Detector {
    /// Detect for this process, reading from `/`.
    pub fn new() -> Self {
        Detector::default()
    }

    /// Detect for this process, reading from `$MEMGUARD_ROOT` when set ([`ROOT_ENV`](crate::ROOT_ENV)).
    pub fn from_env() -> Self {
        Detector { fs: FsRoot::from_env(), pid: None }
    }

    /// Read the kernel's files under `root` instead of `/` (fixture trees, a host's root
    /// mounted into a sidecar).
    pub fn with_root(mut self, root: impl Into<std::path::PathBuf>) -> Self {
        self.fs = FsRoot::new(root);
        self
    }

    /// Detect for process `pid` instead of this one.
    pub fn with_pid(mut self, pid: u32) -> Self {
        self.pid = Some(pid);
        self
    }

    /// Where files are read from.
    pub fn fs(&self) -> &FsRoot {
        &self.fs
    }

    fn proc_file(&self, name: &str) -> String {
        match self.pid {
            Some(pid) => format!("/proc/{pid}/{name}"),
            None => format!("/proc/self/{name}"),
        }
    }

    /// Find the limits that apply to the process.
    ///
    /// Problems with individual cgroup files do not fail detection: they become documented
    /// fallbacks listed in [`Limits::notes`].
    ///
    /// # Errors
    /// [`Error::ProcUnavailable`] when `/proc/meminfo` cannot be read (no `/proc` at all);
    /// [`Error::Io`] when a specific `pid` was asked for and does not exist.
    pub fn detect(&self) -> Result<Limits> {
        self.detect_with_meminfo().map(|(limits, _)| limits)
    }

    /// [`detect`](Self::detect), also returning the parsed `/proc/meminfo` (for `MemAvailable`).
    pub(crate) fn detect_with_meminfo(&self) -> Result<(Limits, MemInfo)> {
        let meminfo = match self.fs.read("/proc/meminfo") {
            Ok(text) => meminfo::parse(&text),
            Err(Error::Io { path, source }) => return Err(Error::ProcUnavailable { path, source }),
            Err(e) => return Err(e),
        };
        let mut notes = Vec::new();
        if meminfo.total_bytes.is_none() {
            notes.push("MemTotal is missing from /proc/meminfo; limits cannot be compared with host memory".into());
        }
        let procs = match self.read_proc("cgroup", &mut notes)? {
            Some(text) => proc_cgroup::parse(&text),
            None => proc_cgroup::ProcCgroup::default(),
        };
        let cgroup_file = self.proc_file("cgroup");
        notes.extend(procs.rejected.iter().map(|r| format!("skipped {cgroup_file} {r}")));
        let mounts = match self.read_proc("mountinfo", &mut notes)? {
            Some(text) => mountinfo::parse(&text),
            None => mountinfo::MountInfo::default(),
        };
        let mountinfo_file = self.proc_file("mountinfo");
        notes.extend(mounts.rejected.iter().map(|r| format!("skipped {mountinfo_file} {r}")));

        let (location, locate_notes) = locate(&procs, &mounts, &self.fs);
        notes.extend(locate_notes);
        let oom_score_adj = self.read_proc("oom_score_adj", &mut notes)?.and_then(|t| {
            oom_score_adj::parse(&t).map_err(|r| notes.push(format!("{}: {r}", self.proc_file("oom_score_adj")))).ok()
        });

        let mut limits = Limits {
            oom_score_adj,
            qos_class: oom_score_adj.and_then(QosClass::from_oom_score_adj),
            notes,
            ..Limits::host_only(meminfo.total_bytes)
        };
        match location {
            Some(loc) => self.fill_from_cgroup(&loc, &mut limits),
            None => limits.notes.push("no memory cgroup governs this process: host memory is the only limit".into()),
        }
        limits.psi_file = self.psi_file(&procs, &mounts, &limits);
        limits.detected_limit_bytes = limits.limit_bytes;
        // No override at this layer: `limit_applied` follows the detected limit (the same rule).
        Ok((limits.with_override(None), meminfo))
    }

    /// The cgroup PSI file for the process (see [`Limits::psi_file`]).
    fn psi_file(
        &self,
        procs: &proc_cgroup::ProcCgroup,
        mounts: &mountinfo::MountInfo,
        limits: &Limits,
    ) -> Option<String> {
        let dir = if limits.cgroup == CgroupVersion::V2 {
            limits.limit_dir.clone().or_else(|| limits.cgroup_dir.clone())?
        } else {
            let entry = procs.unified_entry()?;
            mounts
                .mounts
                .iter()
                .filter(|m| m.is_cgroup2())
                .find_map(|m| relative_to(&m.root, &entry.path).map(|rel| join(&m.mount_point, &rel)))?
        };
        let file = format!("{dir}/memory.pressure");
        self.fs.exists(&file).then_some(file)
    }

    /// Read a `/proc/<pid>/` file: `Ok(None)` (noted) when unreadable, an error only when an
    /// explicit pid does not exist.
    fn read_proc(&self, name: &str, notes: &mut Vec<String>) -> Result<Option<String>> {
        match self.fs.read(self.proc_file(name)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if self.pid.is_some() && e.is_not_found() => Err(e),
            Err(e) => {
                notes.push(e.to_string());
                Ok(None)
            }
        }
    }

    fn fill_from_cgroup(&self, loc: &Location, limits: &mut Limits) {
        let Some(files) = MemoryFiles::of(loc.version) else { return };
        let levels = walk::levels(loc);
        let ceiling = limits.host_total_bytes;
        let notes = &mut limits.notes;
        limits.cgroup = loc.version;
        limits.cgroup_path = Some(loc.cgroup_path.clone());
        limits.cgroup_dir = Some(loc.dir());
        limits.mount_point = Some(loc.mount_point.clone());

        let limit = walk::lowest_limit(&self.fs, &levels, files.limit, ceiling, notes);
        if let Some((bytes, i)) = limit.at {
            limits.limit_bytes = Some(bytes);
            limits.limit_cgroup = Some(levels[i].cgroup.clone());
            limits.limit_dir = Some(levels[i].dir.clone());
        }
        limits.limit_unknown = !limit.unreadable.is_empty();
        limits.limit_unknown_files = limit.unreadable;
        if let Some((bytes, i)) = walk::lowest_limit(&self.fs, &levels, files.high, ceiling, notes).at {
            limits.high_bytes = Some(bytes);
            limits.high_cgroup = Some(levels[i].cgroup.clone());
        }
        match loc.version {
            CgroupVersion::V1 => {
                // Without a memory limit the swap allowance is meaningless: skip three reads.
                let swap = limits
                    .limit_bytes
                    .and_then(|_| walk::lowest_limit(&self.fs, &levels, files.swap, None, notes).at)
                    .map(|(b, _)| b);
                // memsw limits memory + swap together; the swap allowance is the difference.
                limits.swap_limit_bytes = match (swap, limits.limit_bytes) {
                    (Some(memsw), Some(mem)) => Some(memsw.saturating_sub(mem)),
                    _ => None,
                };
                self.apply_v1_hierarchical_limit(loc, limits, ceiling);
            }
            CgroupVersion::V2 => {
                limits.swap_limit_bytes =
                    walk::lowest_limit(&self.fs, &levels, files.swap, None, notes).at.map(|(b, _)| b);
                self.flag_v2_hidden_limit(loc, &levels, limits);
            }
            CgroupVersion::None => {}
        }
    }

    /// v1 reports the effective limit over *all* ancestors in `memory.stat`
    /// (`hierarchical_memory_limit`), including ancestors above a cgroup namespace or a
    /// container's private mount. A value below the walk's means the limit is set out of sight.
    fn apply_v1_hierarchical_limit(&self, loc: &Location, limits: &mut Limits, ceiling: Option<u64>) {
        let stat_path = format!("{}/memory.stat", loc.dir());
        let hierarchical =
            self.fs.read(&stat_path).ok().and_then(|t| memory_stat::parse(&t).get("hierarchical_memory_limit"));
        match hierarchical {
            Some(h) => {
                let binds = h < V1_UNLIMITED_THRESHOLD && ceiling.map_or(true, |c| h < c);
                let unreadable = limits.limit_unknown_files.clone();
                if limits.limit_unknown {
                    // The kernel's own summary covers every level, unreadable files included.
                    limits.limit_unknown = false;
                    limits.notes.push(format!(
                        "memory.stat's hierarchical_memory_limit ({}) gives the limit that {} could not tell",
                        if binds { format!("{h} bytes") } else { "none".to_owned() },
                        unreadable.join(", ")
                    ));
                }
                if binds && limits.limit_bytes.map_or(true, |l| h < l) {
                    if unreadable.is_empty() {
                        limits.notes.push(format!(
                            "memory.stat reports hierarchical_memory_limit {h} bytes, set by an ancestor above \
                             the visible cgroup root {}",
                            loc.mount_root
                        ));
                    }
                    limits.limit_bytes = Some(h);
                    limits.limit_cgroup = None;
                    limits.limit_dir = None;
                }
            }
            None => {
                limits.limit_maybe_hidden = loc.fell_back || loc.mount_root != "/" || loc.cgroup_path == "/";
                if limits.limit_maybe_hidden {
                    limits.notes.push(format!(
                        "{stat_path} has no hierarchical_memory_limit and the tree above {} is not visible: \
                         a limit may be hidden",
                        loc.mount_root
                    ));
                }
            }
        }
    }

    /// v2 has no hierarchical summary: if the top of the visible tree is not the real root
    /// cgroup (it has `memory.max` / `cgroup.type`, which the root lacks), a limit may be hidden.
    fn flag_v2_hidden_limit(&self, loc: &Location, levels: &[walk::Level], limits: &mut Limits) {
        let top = levels.last().map_or(loc.mount_point.as_str(), |l| l.dir.as_str());
        let top_is_real_root =
            !self.fs.exists(format!("{top}/memory.max")) && !self.fs.exists(format!("{top}/cgroup.type"));
        limits.limit_maybe_hidden = loc.fell_back || !top_is_real_root;
        if limits.limit_maybe_hidden {
            limits.notes.push(format!(
                "the cgroup tree visible here stops at {} (a cgroup namespace or private mount): a tighter \
                 limit set above it cannot be seen",
                loc.mount_root
            ));
        }
    }

    /// Usage and working set of the process's own cgroup (host-wide without a memory cgroup,
    /// or when the cgroup has no usage file, like the v2 root).
    ///
    /// # Errors
    /// [`Error::ProcUnavailable`] when neither the cgroup nor `/proc/meminfo` can be read.
    pub fn usage(&self, limits: &Limits) -> Result<Usage> {
        self.usage_at(limits, limits.cgroup_dir.as_deref())
    }

    /// Usage and working set at the cgroup that sets the limit (what the OOM killer compares
    /// with the limit). Falls back like [`usage`](Self::usage).
    ///
    /// # Errors
    /// As [`usage`](Self::usage).
    pub fn limit_usage(&self, limits: &Limits) -> Result<Usage> {
        self.usage_at(limits, limits.limit_dir.as_deref().or(limits.cgroup_dir.as_deref()))
    }

    fn usage_at(&self, limits: &Limits, dir: Option<&str>) -> Result<Usage> {
        if let (Some(files), Some(dir)) = (MemoryFiles::of(limits.cgroup), dir) {
            match usage::read_usage(&self.fs, &files, dir) {
                Ok(u) => return Ok(u),
                Err(e) => tracing::debug!(error = %e, "cgroup usage unreadable; using host usage"),
            }
        }
        let text = self.fs.read("/proc/meminfo").map_err(|e| match e {
            Error::Io { path, source } => Error::ProcUnavailable { path, source },
            other => other,
        })?;
        usage::host_usage(&meminfo::parse(&text))
            .ok_or_else(|| Error::malformed(self.fs.path("/proc/meminfo"), "no MemTotal/MemAvailable"))
    }
}
