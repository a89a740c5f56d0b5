//! Files on a real block-backed filesystem, for page-cache workloads: reading them fills the
//! reading cgroup with clean, reclaimable page cache (a file on tmpfs would be shared memory,
//! which is not reclaimable at all).
//!
//! Natively the cargo target directory is on a disk. In the VM the root is a 9p share under a
//! tmpfs overlay, so a small ext4 image (on tmpfs) is loop-mounted instead (the `loop`, `ext4`
//! and `crc32c_generic` modules are loaded by the VM's initramfs).

use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} {args:?}: {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A directory on a disk-backed filesystem, removed (and unmounted) on drop.
#[derive(Debug)]
pub struct DiskDir {
    dir: PathBuf,
    /// `(mount point, image file)` when a loop-mounted image provides the filesystem.
    loop_mount: Option<(PathBuf, PathBuf)>,
}

impl DiskDir {
    /// A fresh directory able to hold `capacity` bytes of files.
    ///
    /// # Errors
    /// Why no disk-backed filesystem is available (no loop device, no ext4, no space).
    pub fn new(label: &str, capacity: u64) -> Result<DiskDir, String> {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let name = format!("memguard-files-{}-{label}", std::process::id());
        let fs_type = run("stat", &["-f", "-c", "%T", &base.display().to_string()])?;
        let fs_type = fs_type.trim();
        if !matches!(fs_type, "tmpfs" | "overlayfs" | "v9fs" | "ramfs") {
            let dir = base.join(name);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            return Ok(DiskDir { dir, loop_mount: None });
        }
        // The VM: an ext4 image on the tmpfs, loop-mounted. Without metadata checksums (no
        // crc32c needed) and without a journal (nothing to replay; less memory).
        let image = PathBuf::from("/tmp").join(format!("{name}.img"));
        let mount = PathBuf::from("/tmp").join(format!("{name}.mnt"));
        let size = format!("{}M", capacity / MIB + 64);
        run("truncate", &["-s", &size, &image.display().to_string()])?;
        let cleanup = |e: String| {
            let _ = std::fs::remove_file(&image);
            e
        };
        run("mkfs.ext4", &["-q", "-F", "-O", "^metadata_csum,^has_journal", &image.display().to_string()])
            .map_err(cleanup)?;
        std::fs::create_dir_all(&mount).map_err(|e| cleanup(format!("{}: {e}", mount.display())))?;
        run("mount", &["-o", "loop", &image.display().to_string(), &mount.display().to_string()]).map_err(cleanup)?;
        Ok(DiskDir { dir: mount.clone(), loop_mount: Some((mount, image)) })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A file of `bytes` (zeros) written with direct I/O, so that none of it is cached yet.
    ///
    /// # Panics
    /// If `dd` fails.
    pub fn file(&self, name: &str, bytes: u64) -> PathBuf {
        let path = self.dir.join(name);
        let of = format!("of={}", path.display());
        let count = format!("count={}", bytes / MIB);
        run("dd", &["if=/dev/zero", &of, "bs=1M", &count, "oflag=direct", "status=none"])
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

/// Drop `path` from the page cache (whichever cgroup its pages are charged to), so the next
/// reader fills its own cgroup with it.
///
/// # Panics
/// If `dd` fails.
pub fn drop_cached(path: &Path) {
    let iff = format!("if={}", path.display());
    run("dd", &[&iff, "iflag=nocache", "count=0", "status=none"])
        .unwrap_or_else(|e| panic!("dropping {} from the page cache: {e}", path.display()));
}

impl Drop for DiskDir {
    fn drop(&mut self) {
        match &self.loop_mount {
            Some((mount, image)) => {
                let _ = run("umount", &[&mount.display().to_string()]);
                let _ = std::fs::remove_dir(mount);
                let _ = std::fs::remove_file(image);
            }
            None => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}
