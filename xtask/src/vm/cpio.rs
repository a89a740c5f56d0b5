//! A minimal writer for the "newc" (SVR4, no CRC) cpio format the kernel unpacks as an initramfs.

/// File-type bits of `st_mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

/// An in-memory newc archive; entries are written in the order they are added, so add a
/// directory before anything inside it.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    next_ino: u32,
}

impl Cpio {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory with permission bits `perm` (e.g. `0o755`).
    pub fn dir(&mut self, name: &str, perm: u32) {
        self.entry(name, S_IFDIR | perm, 2, (0, 0), &[]);
    }

    /// A regular file with permission bits `perm` and contents `data`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | perm, 1, (0, 0), data);
    }

    /// A character device node `name` with device number `major:minor`.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | perm, 1, (major, minor), &[]);
    }

    /// Appends the trailer and returns the archive bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 1, (0, 0), 0, 0);
        self.buf
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.next_ino += 1;
        let ino = self.next_ino;
        // File sizes in the initramfs are far below 4 GiB; saturate rather than wrap.
        let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.header(name.trim_start_matches('/'), mode, nlink, rdev, size, ino);
        self.buf.extend_from_slice(data);
        self.pad4();
    }

    fn header(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), size: u32, ino: u32) {
        let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0];
        self.buf.extend_from_slice(b"070701");
        for field in fields {
            self.buf.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad4();
    }

    fn pad4(&mut self) {
        // (`len() & 3` rather than `is_multiple_of`, which is newer than the MSRV.)
        while self.buf.len() & 3 != 0 {
            self.buf.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a newc archive back into (name, mode, rdevmajor, rdevminor, data) tuples.
    fn parse(mut bytes: &[u8]) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            assert_eq!(&bytes[..6], b"070701", "magic at offset {offset}");
            let field = |i: usize| {
                let s = std::str::from_utf8(&bytes[6 + i * 8..6 + (i + 1) * 8]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (mode, size, rmaj, rmin, namesize) = (field(1), field(6), field(9), field(10), field(11));
            let name_end = 110 + namesize as usize;
            let name = std::str::from_utf8(&bytes[110..name_end - 1]).unwrap().to_string();
            assert_eq!(bytes[name_end - 1], 0);
            let data_start = (name_end + 3) & !3;
            let data_end = data_start + size as usize;
            let data = bytes[data_start..data_end].to_vec();
            let next = (data_end + 3) & !3;
            offset += next;
            bytes = &bytes[next..];
            if name == "TRAILER!!!" {
                assert!(bytes.is_empty());
                return out;
            }
            out.push((name, mode, rmaj, rmin, data));
        }
    }

    #[test]
    fn round_trips_all_entry_kinds() {
        let mut c = Cpio::new();
        c.dir("/bin", 0o755);
        c.file("/bin/busybox", 0o755, b"\x7fELF-ish");
        c.char_dev("/dev/console", 0o600, 5, 1);
        c.file("/init", 0o755, b"");
        let bytes = c.finish();
        assert_eq!(bytes.len() % 4, 0);
        let entries = parse(&bytes);
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["bin", "bin/busybox", "dev/console", "init"]);
        assert_eq!(entries[0].1, 0o040755);
        assert_eq!(entries[1].1, 0o100755);
        assert_eq!(entries[1].4, b"\x7fELF-ish");
        assert_eq!((entries[2].1, entries[2].2, entries[2].3), (0o020600, 5, 1));
        assert!(entries[3].4.is_empty());
    }

    #[test]
    fn header_is_110_bytes_and_name_padded() {
        let mut c = Cpio::new();
        c.file("a", 0o644, b"xyz");
        let bytes = c.finish();
        // 110-byte header + "a\0" = 112 (aligned), 3 data bytes padded to 4.
        assert_eq!(&bytes[112..115], b"xyz");
        assert_eq!(bytes[115], 0);
        assert_eq!(&bytes[116..122], b"070701");
    }
}
