//! The guest kernel: Debian's current `linux-image-<ver>-amd64`, downloaded with apt and
//! extracted into the cache, plus the loadable modules the guest needs for 9p and overlayfs.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::packages;

/// The metapackage that always depends on the current generic amd64 kernel.
const METAPACKAGE: &str = "linux-image-amd64";
/// Marker written once a kernel package is fully extracted into its cache dir.
const COMPLETE_MARKER: &str = ".xtask-vm-complete";
/// Modules the guest init loads (their dependencies are added automatically, in order).
pub const ROOT_MODULES: &[&str] =
    &["virtio_pci", "virtio_console", "9pnet_virtio", "9p", "overlay", "loop", "ext4", "crc32c_generic"];

/// An extracted kernel package.
pub struct Kernel {
    /// The kernel release (`uname -r`), e.g. `6.1.0-56-amd64`.
    pub release: String,
    /// Path of the bootable `vmlinuz` (bzImage).
    pub vmlinuz: PathBuf,
    /// The extracted package tree.
    pub dir: PathBuf,
    /// `lib/modules/<release>` inside the extracted package.
    pub modules_dir: PathBuf,
}

/// A module to load in the guest: its name and its (possibly compressed) `.ko` file.
pub struct Module {
    pub name: String,
    pub path: PathBuf,
}

/// Returns the cached kernel for the current `linux-image-amd64`, downloading it if needed.
/// Without apt metadata or network, falls back to any kernel already in the cache.
pub fn ensure_kernel(cache: &Path) -> Result<Kernel, String> {
    let package = match current_kernel_package_cached(cache) {
        Ok(p) => p,
        Err(e) => {
            return newest_cached_kernel(cache).ok_or_else(|| format!("cannot determine the guest kernel package: {e}"))
        }
    };
    let dir = cache.join(&package);
    if !dir.join(COMPLETE_MARKER).is_file() {
        eprintln!("xtask vm: fetching kernel package {package} into {}", cache.display());
        download_and_extract(&package, cache, &dir)?;
    }
    load(&dir)
}

/// Where the resolved package name is remembered, with the apt lists' state it came from.
const RESOLVED_FILE: &str = "kernel-package";
/// apt's package lists; their directory's mtime changes whenever `apt-get update` changes them.
const APT_LISTS: &str = "/var/lib/apt/lists";

/// [`current_kernel_package`], skipping `apt-cache` (about 1 s without apt's binary cache)
/// while the apt lists are unchanged since the last resolution.
fn current_kernel_package_cached(cache: &Path) -> Result<String, String> {
    let stamp = lists_stamp();
    let remembered = cache.join(RESOLVED_FILE);
    if let (Some(stamp), Ok(text)) = (&stamp, std::fs::read_to_string(&remembered)) {
        if let Some((s, package)) = text.trim().split_once(' ') {
            if s == stamp && cache.join(package).join(COMPLETE_MARKER).is_file() {
                return Ok(package.to_string());
            }
        }
    }
    let package = current_kernel_package()?;
    // `apt-get update` may have run inside current_kernel_package: take the stamp again.
    if let Some(stamp) = lists_stamp() {
        let _ = std::fs::write(&remembered, format!("{stamp} {package}\n"));
    }
    Ok(package)
}

fn lists_stamp() -> Option<String> {
    let modified = std::fs::metadata(APT_LISTS).ok()?.modified().ok()?;
    let since_epoch = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since_epoch.as_nanos().to_string())
}

/// `linux-image-<ver>-amd64`, the dependency of the `linux-image-amd64` metapackage.
fn current_kernel_package() -> Result<String, String> {
    let query = || {
        let out = packages::command_stdout(
            Command::new("apt-cache").args(["depends", METAPACKAGE]),
            &format!("apt-cache depends {METAPACKAGE}"),
        )?;
        Ok::<_, String>(parse_kernel_dependency(&out))
    };
    if let Ok(Some(p)) = query() {
        return Ok(p);
    }
    // Fresh machine: no package lists yet.
    packages::apt_update()?;
    query()?.ok_or_else(|| format!("apt-cache depends {METAPACKAGE} names no linux-image-*-amd64 package"))
}

/// Picks the first `Depends: linux-image-<ver>-amd64` line from `apt-cache depends` output.
pub fn parse_kernel_dependency(apt_cache_output: &str) -> Option<String> {
    apt_cache_output.lines().find_map(|line| {
        let dep = line.trim().strip_prefix("Depends:")?.trim();
        let dep = dep.trim_start_matches('<').trim_end_matches('>');
        let ok = dep.starts_with("linux-image-") && dep.ends_with("-amd64") && dep != METAPACKAGE;
        ok.then(|| dep.to_string())
    })
}

fn download_and_extract(package: &str, cache: &Path, dir: &Path) -> Result<(), String> {
    let debs = cache.join("debs");
    create_dir(&debs)?;
    let deb = match find_deb(&debs, package) {
        Some(deb) => deb,
        None => {
            packages::apt_download(package, &debs)?;
            find_deb(&debs, package)
                .ok_or_else(|| format!("apt-get download {package} left no .deb in {}", debs.display()))?
        }
    };
    let tmp = cache.join(format!("{package}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    create_dir(&tmp)?;
    packages::command_stdout(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp),
        &format!("dpkg-deb -x {}", deb.display()),
    )?;
    write(&tmp.join(COMPLETE_MARKER), package.as_bytes())?;
    let _ = std::fs::remove_dir_all(dir);
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // A concurrent run may have won the race; that is fine if its copy is complete.
        if !dir.join(COMPLETE_MARKER).is_file() {
            return Err(format!("cannot move {} to {}: {e}", tmp.display(), dir.display()));
        }
    }
    // The extracted tree is what we keep; the .deb is only needed again after a cache wipe.
    let _ = std::fs::remove_file(&deb);
    Ok(())
}

fn find_deb(dir: &Path, package: &str) -> Option<PathBuf> {
    let prefix = format!("{package}_");
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name.starts_with(&prefix) && name.ends_with(".deb")
    })
}

fn newest_cached_kernel(cache: &Path) -> Option<Kernel> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(COMPLETE_MARKER).is_file())
        .collect();
    dirs.sort();
    dirs.iter().rev().find_map(|d| load(d).ok())
}

/// Reads an extracted package tree: its single `lib/modules/<release>` and `boot/vmlinuz-<release>`.
fn load(dir: &Path) -> Result<Kernel, String> {
    let modules_root = dir.join("lib/modules");
    let release = read_dir_names(&modules_root)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("no kernel release under {}", modules_root.display()))?;
    let vmlinuz = dir.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.is_file() {
        return Err(format!("kernel image {} is missing", vmlinuz.display()));
    }
    Ok(Kernel { modules_dir: modules_root.join(&release), release, vmlinuz, dir: dir.to_path_buf() })
}

impl Kernel {
    /// The image to boot: an uncompressed ELF `vmlinux` (cached next to the package tree) if
    /// the kernel supports PVH entry, else the bzImage. Under TCG, decompressing the bzImage
    /// in the guest costs several seconds per boot; qemu loads a PVH ELF directly.
    pub fn boot_image(&self) -> PathBuf {
        let cached = self.dir.join(format!("vmlinux-pvh-{}", self.release));
        if cached.is_file() {
            return cached;
        }
        let config = self.dir.join(format!("boot/config-{}", self.release));
        let pvh = std::fs::read_to_string(&config).is_ok_and(|c| c.lines().any(|l| l == "CONFIG_PVH=y"));
        if !pvh {
            return self.vmlinuz.clone();
        }
        match extract_vmlinux(&self.vmlinuz).and_then(|elf| write_atomic(&cached, &elf)) {
            Ok(()) => cached,
            Err(e) => {
                eprintln!("xtask vm: booting the compressed kernel (slower): {e}");
                self.vmlinuz.clone()
            }
        }
    }

    /// [`ROOT_MODULES`] and their dependencies as files, dependencies first. Modules built
    /// into the kernel (listed in `modules.builtin`) are skipped.
    pub fn guest_modules(&self) -> Result<Vec<Module>, String> {
        let files = index_module_files(&self.modules_dir.join("kernel"))?;
        let builtin = self.builtin_modules();
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for root in ROOT_MODULES {
            self.visit(root, &files, &builtin, &mut seen, &mut order)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        files: &BTreeMap<String, PathBuf>,
        builtin: &HashSet<String>,
        seen: &mut HashSet<String>,
        order: &mut Vec<Module>,
    ) -> Result<(), String> {
        let name = normalize(name);
        if !seen.insert(name.clone()) {
            return Ok(());
        }
        let Some(path) = files.get(&name) else {
            if builtin.contains(&name) {
                return Ok(());
            }
            return Err(format!(
                "kernel {} has no module `{name}` (neither a file under {} nor in modules.builtin)",
                self.release,
                self.modules_dir.display()
            ));
        };
        let image = read_module(path)?;
        for dep in module_depends(&image) {
            self.visit(&dep, files, builtin, seen, order)?;
        }
        order.push(Module { name, path: path.clone() });
        Ok(())
    }

    fn builtin_modules(&self) -> HashSet<String> {
        let text = std::fs::read_to_string(self.modules_dir.join("modules.builtin")).unwrap_or_default();
        text.lines().filter_map(module_name_of).collect()
    }
}

/// Decompresses the `vmlinux` ELF embedded in a bzImage (like the kernel's
/// `scripts/extract-vmlinux`), with the host's `xz`, `zstd` or `gzip`.
fn extract_vmlinux(bzimage: &Path) -> Result<Vec<u8>, String> {
    let image = std::fs::read(bzimage).map_err(|e| format!("cannot read {}: {e}", bzimage.display()))?;
    let formats: [(&[u8], &str, &[&str]); 3] = [
        (b"\xfd7zXZ\x00", "xz", &["-dcq", "--single-stream"]),
        (b"\x28\xb5\x2f\xfd", "zstd", &["-dcq"]),
        (b"\x1f\x8b\x08", "gzip", &["-dcq"]),
    ];
    for (magic, tool, args) in formats {
        let mut start = 0;
        while let Some(pos) = find(&image[start..], magic) {
            let offset = start + pos;
            if let Some(elf) = decompress_with(tool, args, &image[offset..]) {
                if elf_is_complete(&elf) {
                    return Ok(elf);
                }
            }
            start = offset + 1;
        }
    }
    Err(format!("found no decompressible vmlinux ELF in {} (xz, zstd or gzip missing?)", bzimage.display()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs `tool args` with `input` on stdin; returns stdout whatever the exit status (trailing
/// bytes after the stream make some tools complain; the output is validated by the caller).
fn decompress_with(tool: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().ok()?;
    let _ = writer.join();
    Some(out.stdout)
}

/// True if `elf` is a 64-bit ELF whose program and section headers and segments all lie
/// inside it (so a truncated decompression is rejected).
pub fn elf_is_complete(elf: &[u8]) -> bool {
    let num = |o: usize, n: usize| -> Option<u64> {
        let b = elf.get(o..o + n)?;
        Some(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    };
    let check = || -> Option<bool> {
        if elf.get(..5)? != b"\x7fELF\x02" {
            return Some(false);
        }
        let len = elf.len() as u64;
        let (phoff, shoff) = (num(0x20, 8)?, num(0x28, 8)?);
        let (phentsize, phnum) = (num(0x36, 2)?, num(0x38, 2)?);
        let (shentsize, shnum) = (num(0x3a, 2)?, num(0x3c, 2)?);
        if phnum == 0 || phoff + phentsize * phnum > len || shoff + shentsize * shnum > len {
            return Some(false);
        }
        for i in 0..phnum {
            let ph = usize::try_from(phoff + i * phentsize).ok()?;
            let (offset, filesz) = (num(ph + 8, 8)?, num(ph + 32, 8)?);
            if offset.checked_add(filesz)? > len {
                return Some(false);
            }
        }
        Some(true)
    };
    check().unwrap_or(false)
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    write(&tmp, data)?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), path.display()))
}

/// Module name of a path like `kernel/fs/9p/9p.ko.xz` (dashes normalised to underscores).
pub fn module_name_of(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|ext| file.strip_suffix(ext))?;
    Some(normalize(stem))
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// All module files under `dir`, by module name.
fn index_module_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.to_str().and_then(module_name_of) {
                out.insert(name, path);
            }
        }
    }
    Ok(out)
}

/// The uncompressed module image (decompressing `.ko.xz`/`.ko.zst`/`.ko.gz` with the host tool,
/// since busybox `insmod` may not handle compressed modules).
pub fn read_module(path: &Path) -> Result<Vec<u8>, String> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else if name.ends_with(".gz") {
        "gzip"
    } else {
        return std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run `{tool} -dc {}`: {e} (install {tool})", path.display()))?;
    if !out.status.success() {
        return Err(format!("`{tool} -dc {}` failed with {}", path.display(), out.status));
    }
    Ok(out.stdout)
}

/// The `depends=` list of a module's `.modinfo` section.
pub fn module_depends(image: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(start) = image.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &image[start + KEY.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).split(',').map(str::trim).filter(|s| !s.is_empty()).map(normalize).collect()
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

fn create_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

fn write(path: &Path, data: &[u8]) -> Result<(), String> {
    std::fs::write(path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metapackage_dependency() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(parse_kernel_dependency(out).as_deref(), Some("linux-image-6.1.0-56-amd64"));
        let virt = "linux-image-amd64\n  Depends: <linux-image-6.12.9-amd64>\n  Recommends: x\n";
        assert_eq!(parse_kernel_dependency(virt).as_deref(), Some("linux-image-6.12.9-amd64"));
        assert_eq!(parse_kernel_dependency("linux-image-amd64\n  Recommends: firmware\n"), None);
    }

    #[test]
    fn module_names_from_paths() {
        assert_eq!(module_name_of("kernel/fs/9p/9p.ko").as_deref(), Some("9p"));
        assert_eq!(module_name_of("kernel/a/virtio-pci.ko.xz").as_deref(), Some("virtio_pci"));
        assert_eq!(module_name_of("kernel/a/x.ko.zst").as_deref(), Some("x"));
        assert_eq!(module_name_of("modules.order"), None);
    }

    #[test]
    fn elf_completeness() {
        let mut elf = vec![0u8; 0x40 + 56];
        elf[..5].copy_from_slice(b"\x7fELF\x02");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        // One segment: offset 0, size = whole file.
        let len = elf.len() as u64;
        elf[0x40 + 32..0x40 + 40].copy_from_slice(&len.to_le_bytes());
        assert!(elf_is_complete(&elf));
        elf[0x40 + 32..0x40 + 40].copy_from_slice(&(len + 1).to_le_bytes());
        assert!(!elf_is_complete(&elf));
        assert!(!elf_is_complete(b"\x7fELF\x02"));
        assert!(!elf_is_complete(b"MZ"));
    }

    #[test]
    fn reads_modinfo_depends() {
        let image = b"\x7fELF...\0license=GPL\0depends=9pnet,fscache,netfs\0vermagic=6.1\0";
        assert_eq!(module_depends(image), ["9pnet", "fscache", "netfs"]);
        assert!(module_depends(b"\0depends=\0name=overlay\0").is_empty());
        assert!(module_depends(b"no modinfo").is_empty());
    }
}
