//! `/proc/<pid>/mountinfo` (see `proc(5)`):
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)   (4)   (5)      (6)      (7..)          (8) (9)   (10)      (11)
//! ```
//!
//! Traps handled: zero or several optional fields before the `-` separator; octal escapes
//! (`\040` space, `\011` tab, `\012` newline, `\134` backslash) in the root and mount point;
//! an empty mount source.

use super::{excerpt, RejectedLine};

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Mount ID.
    pub mount_id: u64,
    /// Parent mount ID.
    pub parent_id: u64,
    /// The directory of the filesystem that forms this mount's root (unescaped). For a cgroup
    /// mount, the cgroup path that appears at the mount point.
    pub root: String,
    /// Where it is mounted (unescaped).
    pub mount_point: String,
    /// Filesystem type (`cgroup`, `cgroup2`, ...).
    pub fs_type: String,
    /// Mount source (unescaped).
    pub source: String,
    /// Per-superblock options; for cgroup v1 these name the controllers (`rw,memory`).
    pub super_options: Vec<String>,
}

impl MountEntry {
    /// True for a cgroup v1 mount carrying `controller`.
    pub fn is_v1_with(&self, controller: &str) -> bool {
        self.fs_type == "cgroup" && self.super_options.iter().any(|o| o == controller)
    }

    /// True for a cgroup v2 mount.
    pub fn is_cgroup2(&self) -> bool {
        self.fs_type == "cgroup2"
    }
}

/// The parsed file: the mounts understood and the lines skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountInfo {
    /// Understood mounts, in file order.
    pub mounts: Vec<MountEntry>,
    /// Lines that were skipped.
    pub rejected: Vec<RejectedLine>,
}

/// Parse the text of `/proc/<pid>/mountinfo`.
pub fn parse(text: &str) -> MountInfo {
    let mut out = MountInfo::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(m) => out.mounts.push(m),
            Err(reason) => out.rejected.push(RejectedLine { line: i + 1, reason }),
        }
    }
    out
}

fn parse_line(line: &str) -> Result<MountEntry, String> {
    let fields: Vec<&str> = line.split(' ').collect();
    let sep =
        fields.iter().position(|f| *f == "-").ok_or_else(|| format!("no ` - ` separator in {}", excerpt(line)))?;
    if sep < 6 || fields.len() < sep + 3 {
        return Err(format!("too few fields in {}", excerpt(line)));
    }
    let num =
        |s: &str, what: &str| s.parse::<u64>().map_err(|_| format!("{what} is not a number in {}", excerpt(line)));
    Ok(MountEntry {
        mount_id: num(fields[0], "mount id")?,
        parent_id: num(fields[1], "parent id")?,
        root: unescape(fields[3]),
        mount_point: unescape(fields[4]),
        fs_type: fields[sep + 1].to_owned(),
        source: unescape(fields[sep + 2]),
        super_options: fields.get(sep + 3).map(|o| o.split(',').map(str::to_owned).collect()).unwrap_or_default(),
    })
}

/// Undo the kernel's octal escaping (`\040` → space). Malformed escapes are kept verbatim.
pub fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_optional_fields_and_super_options() {
        let m = parse(
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 master:3 - cgroup cgroup rw,memory\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
        );
        assert!(m.rejected.is_empty());
        assert!(m.mounts[0].is_v1_with("memory"));
        assert!(m.mounts[1].is_cgroup2());
        assert_eq!(m.mounts[1].mount_point, "/sys/fs/cgroup/unified");
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape(r"/mnt/my\040dir"), "/mnt/my dir");
        assert_eq!(unescape(r"a\134b\011c"), "a\\b\tc");
        assert_eq!(unescape(r"trailing\04"), r"trailing\04");
        assert_eq!(unescape(r"\777x"), r"\777x");
        let m = parse(r"1 0 0:1 /docker/a\040b /sys/fs/cgroup/mem\040ory rw - cgroup cgroup rw,memory");
        assert_eq!(m.mounts[0].root, "/docker/a b");
        assert_eq!(m.mounts[0].mount_point, "/sys/fs/cgroup/mem ory");
    }

    #[test]
    fn malformed_lines_are_rejected() {
        let m = parse("1 2 3\nx 0 0:1 / /a rw - cgroup c rw\n5 1 0:1 / /ok rw - tmpfs  rw\n");
        assert_eq!(m.rejected.len(), 2);
        assert_eq!(m.mounts.len(), 1);
        assert_eq!(m.mounts[0].source, "");
    }
}
