//! `/proc/<pid>/cgroup`: `hierarchy-ID:controller-list:cgroup-path`, one line per hierarchy.
//!
//! Traps handled: the path may itself contain colons (systemd's cgroup driver names scopes
//! `…slice:cri-containerd:<id>`), so only the first two colons split; the v2 line is
//! `0::<path>`; v1 named hierarchies appear as `name=systemd`; paths may start with `/..` when
//! the process sits outside the reader's cgroup namespace.

use super::{excerpt, RejectedLine};

/// One line of `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroupEntry {
    /// Hierarchy ID: 0 for the cgroup v2 unified hierarchy.
    pub hierarchy_id: u32,
    /// Controllers bound to the hierarchy (empty for v2 and for named-only v1 hierarchies).
    pub controllers: Vec<String>,
    /// The process's cgroup path in that hierarchy, relative to the reader's cgroup namespace root.
    pub path: String,
}

impl ProcCgroupEntry {
    /// True for the cgroup v2 line (`0::/path`).
    pub fn is_unified(&self) -> bool {
        self.hierarchy_id == 0 && self.controllers.is_empty()
    }

    /// True if the (v1) hierarchy carries `controller`.
    pub fn has_controller(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The parsed file: the lines understood and the lines skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroup {
    /// Understood lines, in file order.
    pub entries: Vec<ProcCgroupEntry>,
    /// Lines that were skipped.
    pub rejected: Vec<RejectedLine>,
}

impl ProcCgroup {
    /// The v1 entry carrying `controller`, if any.
    pub fn v1_entry(&self, controller: &str) -> Option<&ProcCgroupEntry> {
        self.entries.iter().find(|e| !e.is_unified() && e.has_controller(controller))
    }

    /// The v2 (`0::`) entry, if any.
    pub fn unified_entry(&self) -> Option<&ProcCgroupEntry> {
        self.entries.iter().find(|e| e.is_unified())
    }
}

/// Parse the text of `/proc/<pid>/cgroup`.
pub fn parse(text: &str) -> ProcCgroup {
    let mut out = ProcCgroup::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(e) => out.entries.push(e),
            Err(reason) => out.rejected.push(RejectedLine { line: i + 1, reason }),
        }
    }
    out
}

fn parse_line(line: &str) -> Result<ProcCgroupEntry, String> {
    let mut parts = line.splitn(3, ':');
    let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("expected `id:controllers:path`, got {}", excerpt(line)));
    };
    let hierarchy_id = id.parse::<u32>().map_err(|_| format!("hierarchy id is not a number in {}", excerpt(line)))?;
    if !path.starts_with('/') {
        return Err(format!("cgroup path is not absolute in {}", excerpt(line)));
    }
    let controllers = ctrls.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect();
    Ok(ProcCgroupEntry { hierarchy_id, controllers, path: path.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_host_lines() {
        let p = parse("12:memory:/process_api/abc\n1:name=systemd:/\n0::/\n");
        assert!(p.rejected.is_empty());
        assert_eq!(p.v1_entry("memory").unwrap().path, "/process_api/abc");
        assert_eq!(p.unified_entry().unwrap().path, "/");
        assert!(p.v1_entry("cpu").is_none());
    }

    #[test]
    fn colons_in_path_are_kept() {
        let p = parse("0::/kubepods.slice/kubepods-burstable.slice/cri-containerd:abc:def.scope\n");
        assert_eq!(
            p.unified_entry().unwrap().path,
            "/kubepods.slice/kubepods-burstable.slice/cri-containerd:abc:def.scope"
        );
    }

    #[test]
    fn comounted_controllers() {
        let p = parse("4:cpu,cpuacct:/a\n5:memory,hugetlb:/b\n");
        assert_eq!(p.v1_entry("cpuacct").unwrap().path, "/a");
        assert_eq!(p.v1_entry("memory").unwrap().path, "/b");
    }

    #[test]
    fn bad_lines_are_rejected_not_fatal() {
        let p = parse("garbage\nx:memory:/a\n3:memory:relative\n4:memory:/ok\n\n");
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.rejected.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1, 2, 3]);
    }
}
