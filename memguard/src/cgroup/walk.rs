//! The chain of cgroups from the process's own up to the mount root, and the lowest value of
//! a limit file along it (limits are hierarchical: the tightest ancestor wins).

use super::locate::{join, Location};
use crate::error::Error;
use crate::fsroot::FsRoot;
use crate::parse::value::{parse_limit, LimitValue};

/// One cgroup on the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// Cgroup path (as the kernel names it).
    pub cgroup: String,
    /// Directory on this host.
    pub dir: String,
}

/// The process's cgroup first, then each ancestor up to and including the mount root.
pub fn levels(loc: &Location) -> Vec<Level> {
    let parts: Vec<&str> = loc.rel.split('/').filter(|p| !p.is_empty()).collect();
    (0..=parts.len())
        .rev()
        .map(|n| {
            let rel = parts[..n].join("/");
            Level { cgroup: join(&loc.mount_root, &rel), dir: join(&loc.mount_point, &rel) }
        })
        .collect()
}

/// The lowest limit in a file along the walk (see [`lowest_limit`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lowest {
    /// `(bytes, index into levels)` of the lowest readable limit, if any.
    pub at: Option<(u64, usize)>,
    /// Files that exist but could not be read or parsed (directories on this host + file name):
    /// the true lowest limit may be below `at`, or exist where `at` is `None`.
    pub unreadable: Vec<String>,
}

/// The lowest limit in `file` along `levels`.
///
/// Missing files are skipped silently (the root cgroup has no limit files); unreadable or
/// malformed files are listed in [`Lowest::unreadable`] and noted, limits at or above
/// `ceiling` (host memory: such a limit can never bind) are skipped with a note. On a tie the
/// level nearest the process wins.
pub fn lowest_limit(
    fs: &FsRoot,
    levels: &[Level],
    file: &str,
    ceiling: Option<u64>,
    notes: &mut Vec<String>,
) -> Lowest {
    let mut out = Lowest::default();
    for (i, level) in levels.iter().enumerate() {
        let bytes = match read_limit(fs, &level.dir, file, notes) {
            LimitRead::Bytes(b) => b,
            LimitRead::Unlimited => continue,
            LimitRead::Unreadable(path) => {
                out.unreadable.push(path);
                continue;
            }
        };
        if let Some(c) = ceiling {
            if bytes >= c {
                notes.push(format!(
                    "{file} of {} is {bytes} bytes, not below host memory ({c} bytes); it cannot bind",
                    level.cgroup
                ));
                continue;
            }
        }
        if out.at.map_or(true, |(b, _)| bytes < b) {
            out.at = Some((bytes, i));
        }
    }
    out
}

/// One limit file, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitRead {
    /// A limit in bytes.
    Bytes(u64),
    /// No limit: `max` or the v1 sentinel, or no such file.
    Unlimited,
    /// The file exists but could not be read or parsed (noted): its path on this host.
    Unreadable(String),
}

/// Read one limit file (unreadable and malformed files are noted).
pub fn read_limit(fs: &FsRoot, dir: &str, file: &str, notes: &mut Vec<String>) -> LimitRead {
    let path = format!("{dir}/{file}");
    match fs.read(&path) {
        Ok(text) => match parse_limit(&text) {
            Ok(LimitValue::Bytes(b)) => LimitRead::Bytes(b),
            Ok(LimitValue::Unlimited) => LimitRead::Unlimited,
            Err(reason) => {
                notes.push(Error::malformed(fs.path(&path), reason).to_string());
                LimitRead::Unreadable(path)
            }
        },
        Err(e) if e.is_not_found() => LimitRead::Unlimited,
        Err(e) => {
            notes.push(e.to_string());
            LimitRead::Unreadable(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::CgroupVersion;

    #[test]
    fn levels_from_own_to_mount_root() {
        let loc = Location {
            version: CgroupVersion::V2,
            cgroup_path: "/kubepods/pod1/c1".into(),
            mount_point: "/sys/fs/cgroup".into(),
            mount_root: "/".into(),
            rel: "kubepods/pod1/c1".into(),
            fell_back: false,
        };
        let l = levels(&loc);
        assert_eq!(
            l.iter().map(|l| l.cgroup.as_str()).collect::<Vec<_>>(),
            vec!["/kubepods/pod1/c1", "/kubepods/pod1", "/kubepods", "/"]
        );
        assert_eq!(l[1].dir, "/sys/fs/cgroup/kubepods/pod1");
        assert_eq!(l[3].dir, "/sys/fs/cgroup");
    }
}
