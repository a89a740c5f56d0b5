//! The adaptive sampler: reads usage and working set on an interval that shrinks as headroom
//! shrinks. It backs every kernel notification source and is the only way cgroup v2 sees a
//! usage threshold crossing (v2 has no usage notification).
//!
//! # Interval
//! With `rate` the fastest allocation rate to guard against (default 2 GiB/s), the next sample
//! is due after `distance / rate - slack`, where `distance` is the gap from the working set to
//! the next boundary above it (warning threshold, critical threshold, then the limit) and
//! `slack` (2 ms) covers the time a sample takes and scheduling delay, clamped to
//! `[min_interval, max_interval]` (default 5 ms .. 1 s). A burst at `rate` is therefore seen
//! at least once between any two boundaries wider than `rate * min_interval` (10 MiB at the
//! defaults). Host `MemAvailable` is read at most once a second in cgroup mode.
//!
//! The distance is measured on the pressure measure (memory reclaim cannot free, see
//! [`Sample::unreclaimable`]), the number the levels use, to the nearest boundary in either
//! direction: upward the thresholds and the limit, downward (at `Warning` or `Critical`) the
//! level's hysteresis exit — memory a handler frees must lower the level promptly, so that
//! regrowth is reported again. When the kernel watches the boundaries itself (v1 usage
//! thresholds armed) the sampler relaxes to `max_interval` — but only at `Normal` and while
//! *usage* is below the warning threshold: the kernel's thresholds watch
//! `memory.usage_in_bytes`, page cache included, so once cache holds usage above them no
//! crossing can fire while the measure below keeps moving, and no kernel threshold sits at a
//! hysteresis exit.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use crate::fsroot::FsRoot;
use crate::level::{Level, Thresholds};
use crate::limits::{CgroupVersion, Limits};
use crate::parse::{meminfo, memory_stat, value};

use super::snapshot::LimitSource;

/// Sampler tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerConfig {
    /// Fastest allocation rate to guard against, bytes per second (default 2 GiB/s).
    pub max_rate: u64,
    /// Shortest interval (default 5 ms).
    pub min_interval: Duration,
    /// Longest interval (default 1 s).
    pub max_interval: Duration,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            max_rate: 2 << 30,
            min_interval: Duration::from_millis(5),
            max_interval: Duration::from_secs(1),
        }
    }
}

/// Time a sample and a wake-up may take, subtracted from the time to the next boundary.
pub const SLACK: Duration = Duration::from_millis(2);

/// The interval until the next sample (see the module docs). `measure` is the pressure measure,
/// `usage` what the kernel's v1 thresholds watch, `level` the current level (its hysteresis
/// exit is a boundary too: when memory falls, the level must fall promptly so that regrowth
/// is reported again).
pub fn next_interval(
    cfg: &SamplerConfig,
    measure: u64,
    usage: u64,
    limit: Option<u64>,
    thresholds: &Thresholds,
    level: Level,
    kernel_watches_thresholds: bool,
) -> Duration {
    let Some(limit) = limit.filter(|l| *l > 0) else { return cfg.max_interval };
    let (warn, critical) = thresholds.bytes(limit);
    if kernel_watches_thresholds && level == Level::Normal && usage < warn {
        return cfg.max_interval;
    }
    let up = [warn, critical, limit].into_iter().find(|b| *b > measure).map(|b| b - measure);
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let exit = match level {
        Level::Normal => None,
        Level::Warning => Some(thresholds.warn() - thresholds.hysteresis()),
        Level::Critical => Some(thresholds.critical() - thresholds.hysteresis()),
    }
    .map(|f| (limit as f64 * f.max(0.0)) as u64);
    let down = exit.map(|b| measure.saturating_sub(b));
    let Some(distance) = up.into_iter().chain(down).min() else { return cfg.min_interval };
    #[allow(clippy::cast_precision_loss)]
    let secs = distance as f64 / cfg.max_rate.max(1) as f64 - SLACK.as_secs_f64();
    Duration::from_secs_f64(secs.max(0.0)).clamp(cfg.min_interval, cfg.max_interval)
}

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Usage (cgroup) or host used memory (node).
    pub usage: u64,
    /// Working set, `usage - inactive_file` (cgroup), or host used memory (node).
    pub working_set: u64,
    /// The pressure measure: memory reclaim cannot free, `usage - clean file cache` (cgroup),
    /// or host used memory (node, where `MemAvailable` already counts reclaimable cache).
    pub unreclaimable: u64,
    /// The limit to compare with.
    pub limit: Option<u64>,
    /// What the limit is.
    pub source: LimitSource,
    /// The limit file's current value when it no longer matches detection (re-detect).
    pub limit_file_changed: bool,
    /// Host `MemAvailable`.
    pub host_available: Option<u64>,
    /// v1: the `oom_kill` counter of `memory.oom_control` at the guarded cgroup.
    pub v1_oom_kill: Option<u64>,
}

/// The cgroup directory whose usage is compared with the effective limit: the cgroup that
/// sets the detected limit (also when an operator's lower override applies to it); for a limit
/// set out of sight (a v1 `hierarchical_memory_limit` above the visible root, an override where
/// none is visible) the top of the visible tree when it has the usage file (a namespaced
/// container's own cgroup), else the process's own cgroup. `None` without a limit (node mode).
pub(crate) fn watch_dir(limits: &Limits, fs: &FsRoot) -> Option<String> {
    limits.limit_bytes?;
    if let Some(dir) = &limits.limit_dir {
        return Some(dir.clone());
    }
    let files = crate::cgroup::MemoryFiles::of(limits.cgroup)?;
    let top = limits.mount_point.as_ref().filter(|m| fs.exists(format!("{m}/{}", files.usage)));
    top.or(limits.cgroup_dir.as_ref()).cloned()
}

/// Open files for sampling (kept open: a sample is a few `pread`s).
#[derive(Debug)]
pub struct Probe {
    cgroup: Option<CgroupFiles>,
    v1_oom_control: Option<File>,
    meminfo: Option<File>,
    eviction_threshold: u64,
    host_total: Option<u64>,
    host_available: Option<(u64, std::time::Instant)>,
    buf: Vec<u8>,
    /// A file the sampler needs could not be opened for a reason other than its absence
    /// (`EMFILE` under a low `RLIMIT_NOFILE`, `EACCES`): `path: error`. While set, every
    /// sample fails with it (nothing is measured rather than a wrong 0), the sampler is listed
    /// as not armed with it, and the reactor opens the files again before each sample.
    open_error: Option<String>,
}

#[derive(Debug)]
struct CgroupFiles {
    usage: File,
    /// The names of the usage, stat and limit files (for errors).
    names: crate::cgroup::MemoryFiles,
    stat: Option<File>,
    /// The limit file, when the limit is a cgroup's own (checked for changes on each sample).
    limit_file: Option<File>,
    /// The effective limit (the detected one, or an operator's lower override).
    limit: u64,
    source: LimitSource,
    /// What the limit file held at detection (compared on each sample).
    detected: Option<u64>,
}

impl Probe {
    /// Open the files for `limits`: the watched cgroup's usage/stat (and limit file) when a
    /// limit exists (see [`watch_dir`]), else node mode (`/proc/meminfo`).
    pub fn open(limits: &Limits, fs: &FsRoot, eviction_threshold: u64) -> Probe {
        let dir = watch_dir(limits, fs);
        let open_error = std::cell::RefCell::new(None::<String>);
        // A missing file is `None` (the cgroup went away: the caller falls back or re-detects);
        // any other failure is remembered, so that it is reported rather than sampled as 0.
        let open_path = |path: String| match File::open(fs.path(&path)) {
            Ok(f) => Some(f),
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    open_error.borrow_mut().get_or_insert_with(|| format!("{path}: {e}"));
                }
                None
            }
        };
        let cgroup = match (crate::cgroup::MemoryFiles::of(limits.cgroup), &dir, limits.limit_bytes) {
            (Some(files), Some(dir), Some(limit)) => {
                let open = |d: &str, name: &str| open_path(format!("{d}/{name}"));
                open(dir, files.usage).map(|usage| CgroupFiles {
                    usage,
                    names: files,
                    stat: open(dir, files.stat),
                    limit_file: limits.limit_dir.as_deref().and_then(|d| open(d, files.limit)),
                    limit,
                    source: if limits.limit_applied == crate::limits::LimitApplied::Override {
                        LimitSource::Override
                    } else {
                        LimitSource::Cgroup
                    },
                    detected: limits.detected_limit_bytes,
                })
            }
            _ => None,
        };
        let guarded_dir = dir.as_ref().or(limits.cgroup_dir.as_ref());
        let v1_oom_control = match (limits.cgroup, guarded_dir) {
            (CgroupVersion::V1, Some(dir)) => open_path(format!("{dir}/memory.oom_control")),
            _ => None,
        };
        let meminfo = open_path("/proc/meminfo".to_owned());
        Probe {
            cgroup,
            v1_oom_control,
            meminfo,
            eviction_threshold,
            host_total: limits.host_total_bytes,
            host_available: None,
            buf: Vec::with_capacity(8192),
            open_error: open_error.into_inner(),
        }
    }

    /// Why a file the sampler needs could not be opened (`path: error`), if one could not.
    pub fn open_error(&self) -> Option<&str> {
        self.open_error.as_deref()
    }

    /// Every file descriptor the probe holds (for closing them in a forked child).
    pub(crate) fn raw_fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        let mut fds: Vec<std::os::fd::RawFd> = Vec::new();
        if let Some(cg) = &self.cgroup {
            fds.push(cg.usage.as_raw_fd());
            fds.extend(cg.stat.iter().chain(cg.limit_file.iter()).map(AsRawFd::as_raw_fd));
        }
        fds.extend(self.v1_oom_control.iter().chain(self.meminfo.iter()).map(AsRawFd::as_raw_fd));
        fds
    }

    fn pread(buf: &mut Vec<u8>, f: &File) -> io::Result<()> {
        buf.clear();
        buf.resize(buf.capacity().max(8192), 0);
        let mut len = 0;
        loop {
            let n = f.read_at(&mut buf[len..], len as u64)?;
            len += n;
            if n == 0 || len < buf.len() {
                break;
            }
            buf.resize(buf.len() * 2, 0);
        }
        buf.truncate(len);
        Ok(())
    }

    /// Take a sample.
    ///
    /// # Errors
    /// The cgroup's files became unreadable (typically: the cgroup was removed — `ENODEV`).
    pub fn sample(&mut self) -> io::Result<Sample> {
        if let Some(e) = &self.open_error {
            return Err(io::Error::other(e.clone()));
        }
        let now = std::time::Instant::now();
        let fresh = self.host_available.filter(|(_, at)| now.duration_since(*at) < Duration::from_secs(1));
        let host_available = match (&self.meminfo, fresh) {
            (_, Some((v, _))) if self.cgroup.is_some() => Some(v),
            (Some(f), _) => {
                Self::pread(&mut self.buf, f).map_err(in_file("/proc/meminfo"))?;
                let v = meminfo::parse(&String::from_utf8_lossy(&self.buf)).available_bytes;
                self.host_available = v.map(|v| (v, now));
                v
            }
            (None, _) => None,
        };
        let v1_oom_kill = match &self.v1_oom_control {
            Some(f) => {
                Self::pread(&mut self.buf, f).map_err(in_file("memory.oom_control"))?;
                memory_stat::parse(&String::from_utf8_lossy(&self.buf)).get("oom_kill")
            }
            None => None,
        };
        if let Some(cg) = &self.cgroup {
            Self::pread(&mut self.buf, &cg.usage).map_err(in_file(cg.names.usage))?;
            let usage = value::parse_u64(&String::from_utf8_lossy(&self.buf))
                .map_err(|r| io::Error::new(io::ErrorKind::InvalidData, r))
                .map_err(in_file(cg.names.usage))?;
            let stat = match &cg.stat {
                Some(f) => {
                    Self::pread(&mut self.buf, f).map_err(in_file(cg.names.stat))?;
                    memory_stat::ReclaimStat::scan(&String::from_utf8_lossy(&self.buf))
                }
                None => memory_stat::ReclaimStat::default(),
            };
            let limit_file_changed = match &cg.limit_file {
                Some(f) => {
                    Self::pread(&mut self.buf, f).map_err(in_file(cg.names.limit))?;
                    value::parse_limit(&String::from_utf8_lossy(&self.buf)).ok().and_then(|v| v.bytes()) != cg.detected
                }
                None => false,
            };
            return Ok(Sample {
                usage,
                working_set: stat.working_set(usage),
                unreclaimable: stat.unreclaimable(usage),
                limit: Some(cg.limit),
                source: cg.source,
                limit_file_changed,
                host_available,
                v1_oom_kill,
            });
        }
        let used = self.host_total.zip(host_available).map_or(0, |(t, a)| t.saturating_sub(a));
        Ok(Sample {
            usage: used,
            working_set: used,
            unreclaimable: used,
            limit: self.host_total.map(|t| t.saturating_sub(self.eviction_threshold)),
            source: LimitSource::Node,
            limit_file_changed: false,
            host_available,
            v1_oom_kill,
        })
    }
}

/// Prefix an error with the name of the file it came from (the kind is kept: `ENODEV` still
/// means the cgroup went away).
fn in_file(name: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{name}: {e}"))
}

/// The sampler's line in the list of sources.
pub fn status(
    limits: &Limits,
    cfg: &SamplerConfig,
    eviction_threshold: u64,
    kernel_thresholds: bool,
) -> crate::status::SourceStatus {
    let detail = if limits.limit_bytes.is_some() {
        format!(
            "adaptive, {:?}..{:?}, guarding against {} MiB/s{}",
            cfg.min_interval,
            cfg.max_interval,
            cfg.max_rate >> 20,
            if kernel_thresholds { " (relaxed: kernel thresholds armed)" } else { "" }
        )
    } else {
        format!("node mode: /proc/meminfo MemAvailable vs eviction threshold {eviction_threshold} bytes")
    };
    crate::status::SourceStatus { name: "sampler".into(), armed: true, detail: Some(detail) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// Simulate a linear ramp from zero at `rate` bytes/s, sampling on the computed intervals
    /// with `cost` per sample; return the working set at the first sample at or above each
    /// of the warning, critical and limit boundaries.
    fn ramp(limit: u64, rate: u64, cost: Duration) -> [Option<u64>; 3] {
        let cfg = SamplerConfig::default();
        let th = Thresholds::default();
        let mut t = 0.0f64;
        let mut seen = [None; 3];
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        loop {
            let ws = (t * rate as f64) as u64;
            let f = ws as f64 / limit as f64;
            for (i, b) in [th.warn(), th.critical(), 1.0].iter().enumerate() {
                if f >= *b && seen[i].is_none() {
                    seen[i] = Some(ws);
                }
            }
            if ws >= limit {
                return seen;
            }
            t += (next_interval(&cfg, ws, ws, Some(limit), &th, Level::Normal, false) + cost).as_secs_f64();
        }
    }

    #[test]
    fn one_gib_per_second_ramp_is_seen_at_warning_before_95_percent() {
        for limit in [256 * MIB, 512 * MIB, GIB, 4 * GIB, 16 * GIB, 64 * GIB] {
            let seen = ramp(limit, GIB, Duration::from_micros(200));
            let warn_at = seen[0].expect("warning seen");
            #[allow(clippy::cast_precision_loss)]
            let frac = warn_at as f64 / limit as f64;
            assert!(frac < 0.95, "limit {limit}: warning first seen at {frac:.3}");
        }
    }

    #[test]
    fn two_gib_per_second_burst_cannot_cross_from_warning_to_the_limit_unseen() {
        for limit in [128 * MIB, 256 * MIB, GIB, 8 * GIB, 64 * GIB] {
            let seen = ramp(limit, 2 * GIB, Duration::from_micros(200));
            let crit = seen[1].expect("critical seen");
            assert!(crit < limit, "limit {limit}: critical first seen at the limit");
        }
    }

    #[test]
    fn intervals_shrink_with_headroom_and_relax_when_the_kernel_watches() {
        let cfg = SamplerConfig::default();
        let th = Thresholds::default();
        let far = next_interval(&cfg, 0, 0, Some(64 * GIB), &th, Level::Normal, false);
        let near = next_interval(&cfg, 700 * MIB, 700 * MIB, Some(GIB), &th, Level::Normal, false);
        assert_eq!(far, cfg.max_interval);
        assert!(near < Duration::from_millis(60), "{near:?}");
        assert_eq!(next_interval(&cfg, GIB, GIB, Some(GIB), &th, Level::Normal, false), cfg.min_interval);
        assert_eq!(next_interval(&cfg, 700 * MIB, 700 * MIB, Some(GIB), &th, Level::Normal, true), cfg.max_interval);
        assert_eq!(next_interval(&cfg, 700 * MIB, 700 * MIB, None, &th, Level::Normal, false), cfg.max_interval);
    }

    #[test]
    fn kernel_thresholds_relax_the_sampler_only_below_them() {
        // v1: the kernel's thresholds watch usage_in_bytes, page cache included. With cache
        // holding usage above the warning threshold no crossing fires, so the sampler must keep
        // sizing itself on the measure (here 700 MiB of anon under 1 GiB usage).
        let cfg = SamplerConfig::default();
        let th = Thresholds::default();
        let cached = next_interval(&cfg, 700 * MIB, GIB - MIB, Some(GIB), &th, Level::Normal, true);
        assert!(cached < Duration::from_millis(60), "{cached:?}");
        assert_eq!(next_interval(&cfg, 100 * MIB, 700 * MIB, Some(GIB), &th, Level::Normal, true), cfg.max_interval);
    }

    #[test]
    fn above_normal_the_hysteresis_exit_is_watched_too() {
        // A handler freed memory while the level was Warning: at 79% the level has not fallen
        // yet (the exit is 75%), and no kernel threshold sits at 75% — the sampler must not
        // relax to a second, or regrowth past 80% would never be reported as a new Warning.
        let cfg = SamplerConfig::default();
        let th = Thresholds::default();
        let limit = 256 * MIB;
        let m = limit * 79 / 100;
        let iv = next_interval(&cfg, m, m, Some(limit), &th, Level::Warning, true);
        assert_eq!(iv, cfg.min_interval, "{iv:?}");
        assert_eq!(next_interval(&cfg, m, m, Some(limit), &th, Level::Normal, true), cfg.max_interval);
    }

    #[test]
    fn idle_below_half_the_limit_samples_rarely() {
        // Idle cost: below half of a 1 GiB limit the sampler runs at most ~5 times a second.
        let iv = next_interval(
            &SamplerConfig::default(),
            500 * MIB,
            500 * MIB,
            Some(GIB),
            &Thresholds::default(),
            Level::Normal,
            false,
        );
        assert!(iv >= Duration::from_millis(150), "{iv:?}");
    }
}
