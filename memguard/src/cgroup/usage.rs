//! Usage and working set of one cgroup, or of the host when no cgroup accounts the process.

use super::files::MemoryFiles;
use crate::error::{Error, Result};
use crate::fsroot::FsRoot;
use crate::limits::{Usage, UsageSource};
use crate::parse::meminfo::MemInfo;
use crate::parse::{memory_stat, value};

/// Read usage, working set and peak of the cgroup at `dir`.
///
/// # Errors
/// When the usage file cannot be read or parsed. A missing or unreadable `memory.stat` is not
/// an error: the working set then equals usage and `inactive_file_bytes` is `None`.
pub fn read_usage(fs: &FsRoot, files: &MemoryFiles, dir: &str) -> Result<Usage> {
    let usage_path = format!("{dir}/{}", files.usage);
    let usage_bytes =
        value::parse_u64(&fs.read(&usage_path)?).map_err(|r| Error::malformed(fs.path(&usage_path), r))?;
    let stat = fs.read(format!("{dir}/{}", files.stat)).ok().map(|t| memory_stat::ReclaimStat::scan(&t));
    let inactive_file_bytes = stat.and_then(|s| s.inactive_file);
    let peak_bytes = fs.read(format!("{dir}/{}", files.peak)).ok().and_then(|t| value::parse_u64(&t).ok());
    Ok(Usage {
        source: UsageSource::Cgroup(dir.to_owned()),
        usage_bytes,
        working_set_bytes: usage_bytes.saturating_sub(inactive_file_bytes.unwrap_or(0)),
        unreclaimable_bytes: stat.map_or(usage_bytes, |s| s.unreclaimable(usage_bytes)),
        inactive_file_bytes,
        peak_bytes,
    })
}

/// Host-wide usage (`MemTotal - MemAvailable`), for processes no memory cgroup accounts.
pub fn host_usage(meminfo: &MemInfo) -> Option<Usage> {
    let used = meminfo.total_bytes?.saturating_sub(meminfo.available_bytes?);
    Some(Usage {
        source: UsageSource::Host,
        usage_bytes: used,
        working_set_bytes: used,
        unreclaimable_bytes: used,
        inactive_file_bytes: None,
        peak_bytes: None,
    })
}
