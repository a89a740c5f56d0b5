//! Where memguard reads the kernel's files from: `/` normally, a fixture tree in tests.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the environment variable that sets the root prefix for detection: `/proc` and
/// `/sys/fs/cgroup` are read under it (fixture trees, a host root mounted into a sidecar).
pub const ROOT_ENV: &str = "MEMGUARD_ROOT";

/// A root prefix under which absolute kernel paths (`/proc/...`, `/sys/fs/cgroup/...`) are read.
///
/// Every parser is exercised on fixture trees by pointing an `FsRoot` at a directory that
/// mimics `/proc` and `/sys/fs/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsRoot {
    root: PathBuf,
}

impl Default for FsRoot {
    fn default() -> Self {
        FsRoot { root: PathBuf::from("/") }
    }
}

impl FsRoot {
    /// Read from `root` instead of `/`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsRoot { root: root.into() }
    }

    /// `$MEMGUARD_ROOT` if set and non-empty, otherwise `/`.
    pub fn from_env() -> Self {
        match std::env::var_os(ROOT_ENV) {
            Some(v) if !v.is_empty() => FsRoot::new(v),
            _ => FsRoot::default(),
        }
    }

    /// The root prefix.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Map an absolute kernel path to where it lives under this root.
    ///
    /// `..` components are dropped rather than followed, so a hostile path can never
    /// leave the root.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let mut out = self.root.clone();
        for c in abs.as_ref().components() {
            if let Component::Normal(part) = c {
                out.push(part);
            }
        }
        out
    }

    /// Read a whole (small) kernel file as text.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file as seen on this host.
    pub fn read(&self, abs: impl AsRef<Path>) -> Result<String> {
        let p = self.path(abs);
        // Kernel files report a size of 0 or 4096, so std's size hint would start with a tiny
        // probing read; one 8 KiB read usually returns the whole file (and a seq_file is then
        // generated once).
        // A short read of a seq_file means the end of it, which saves the final empty read.
        let read = |f: &mut fs::File| -> std::io::Result<Vec<u8>> {
            let mut bytes = vec![0u8; 8192];
            let n = f.read(&mut bytes)?;
            if n < bytes.len() {
                bytes.truncate(n);
                return Ok(bytes);
            }
            f.read_to_end(&mut bytes)?;
            Ok(bytes)
        };
        fs::File::open(&p)
            .and_then(|mut f| read(&mut f))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|source| Error::Io { path: p, source })
    }

    /// True if the file or directory exists under this root.
    pub fn exists(&self, abs: impl AsRef<Path>) -> bool {
        self.path(abs).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_absolute_paths_under_the_root_and_ignores_dotdot() {
        let r = FsRoot::new("/fixture");
        assert_eq!(r.path("/proc/self/cgroup"), PathBuf::from("/fixture/proc/self/cgroup"));
        assert_eq!(r.path("/sys/../../etc"), PathBuf::from("/fixture/sys/etc"));
        assert_eq!(FsRoot::default().path("/proc"), PathBuf::from("/proc"));
    }

    #[test]
    fn missing_file_is_a_typed_not_found_error() {
        let err = FsRoot::new("/nonexistent-memguard-root").read("/proc/meminfo").unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("/nonexistent-memguard-root/proc/meminfo"));
    }
}
