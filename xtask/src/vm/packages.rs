//! Host tools the VM needs, installed on demand through apt (Debian/Ubuntu hosts).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

/// The statically linked busybox shipped by Debian's `busybox-static`.
pub const BUSYBOX: &str = "/bin/busybox";
/// Debian packages providing everything [`ensure_host_tools`] checks for.
const TOOL_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static"];

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Host tools the harness runs.
pub struct HostTools {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// A statically linked busybox, copied into the initramfs.
    pub busybox: PathBuf,
}

/// Finds qemu and a static busybox, installing the Debian packages once if either is missing.
pub fn ensure_host_tools() -> Result<HostTools, String> {
    if let Some(tools) = find_host_tools() {
        return Ok(tools);
    }
    eprintln!("xtask vm: installing {} with apt-get", TOOL_PACKAGES.join(" "));
    apt_install(TOOL_PACKAGES)?;
    find_host_tools().ok_or_else(|| {
        format!(
            "`apt-get install {}` succeeded but qemu-system-x86_64 or a static {BUSYBOX} is still missing",
            TOOL_PACKAGES.join(" ")
        )
    })
}

fn find_host_tools() -> Option<HostTools> {
    let qemu = find_in_path("qemu-system-x86_64")?;
    let busybox = PathBuf::from(BUSYBOX);
    is_static_elf(&busybox).then_some(HostTools { qemu, busybox })
}

/// Looks `name` up in `$PATH` (plus the sbin directories, which non-login root shells may lack).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// True if `path` is an ELF executable without a program interpreter (statically linked).
fn is_static_elf(path: &Path) -> bool {
    std::fs::read(path).map(|bytes| elf_is_static(&bytes)).unwrap_or(false)
}

/// True if `bytes` is a 64-bit little-endian ELF image with no `PT_INTERP` program header.
pub fn elf_is_static(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| bytes.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |o: usize| bytes.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at =
        |o: usize| bytes.get(o..o + 8).and_then(|b| usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok());
    // 64-bit (class 2), little-endian (data 1).
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..phnum).all(|i| {
        let offset = phoff.saturating_add(i.saturating_mul(phentsize));
        u32_at(offset).is_some_and(|p_type| p_type != PT_INTERP)
    })
}

/// `apt-get update`, at most once per process.
pub fn apt_update() -> Result<(), String> {
    if APT_UPDATED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    run_apt(Command::new("apt-get").args(["-q", "update"]), "apt-get update")
}

/// `apt-get install -y --no-install-recommends <packages>` (after one `apt-get update`).
pub fn apt_install(packages: &[&str]) -> Result<(), String> {
    apt_update()?;
    let mut cmd = Command::new("apt-get");
    cmd.args(["-q", "install", "-y", "--no-install-recommends"]).args(packages);
    run_apt(&mut cmd, &format!("apt-get install {}", packages.join(" ")))
}

/// `apt-get download <package>` into `dir`.
pub fn apt_download(package: &str, dir: &Path) -> Result<(), String> {
    let mut cmd = Command::new("apt-get");
    // The sandbox user `_apt` cannot write into root-owned cache dirs; downloading as root is fine.
    cmd.args(["-q", "-o", "APT::Sandbox::User=root", "download", package]).current_dir(dir);
    run_apt(&mut cmd, &format!("apt-get download {package} (in {})", dir.display()))
}

fn run_apt(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        // apt's progress goes to our stderr so that stdout stays the guest command's.
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("cannot run {what}: {e} (is this a Debian/Ubuntu host?)"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed with {status} (apt needs root and a reachable Debian mirror)"))
    }
}

/// Output of a command that must succeed, as text.
pub fn command_stdout(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{what} failed with {}: {}", out.status, err.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(phdr_types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(phdr_types.len() as u16).to_le_bytes());
        for t in phdr_types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            b.extend(ph);
        }
        b
    }

    #[test]
    fn detects_static_and_dynamic_elf() {
        assert!(elf_is_static(&elf(&[1, 1, 4])));
        assert!(!elf_is_static(&elf(&[6, 3, 1])));
        assert!(!elf_is_static(b"#!/bin/sh\n"));
        // Truncated program headers are not trusted.
        let mut truncated = elf(&[1, 1]);
        truncated.truncate(100);
        assert!(!elf_is_static(&truncated));
    }
}
