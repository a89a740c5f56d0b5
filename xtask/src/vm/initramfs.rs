//! The guest initramfs: a static busybox, the 9p/overlay modules and the `/init` script that
//! builds the cgroup v2 guest root and runs the command. Cached by kernel release and a hash
//! of everything that goes into it.

use std::path::{Path, PathBuf};

use super::cpio::Cpio;
use super::kernel::{self, Kernel};

/// Mount tag of the read-only host root share.
pub const ROOT_TAG: &str = "hostroot";
/// Mount tag of the read-write output share.
pub const OUT_TAG: &str = "out";
/// Where the output share is mounted in the guest.
pub const GUEST_OUT: &str = "/mnt/out";
/// The cgroup the tests own; they create their own children next to `runner`.
pub const GUEST_CGROUP: &str = "/sys/fs/cgroup/memguard-vm";
/// Harness files (run script, exit code, start marker) live in this subdirectory of the share.
pub const CONTROL_DIR: &str = ".xtask-vm";

/// Stage 1, `/init` in the initramfs. `@MODULES@` is replaced by the module names in load order.
const INIT_TEMPLATE: &str = r#"#!/bin/busybox sh
# cargo xtask vm, stage 1: build the guest root, set up cgroup v2, hand over to stage 2.
/bin/busybox --install -s /bin
export PATH=/bin
die() {
    echo "xtask vm (guest init): $*" >&2
    poweroff -f
    sleep 10
}
mount -t proc proc /proc || die "cannot mount /proc"
mount -t sysfs sysfs /sys || die "cannot mount /sys"
mount -t devtmpfs devtmpfs /dev || die "cannot mount /dev"
for m in @MODULES@; do
    insmod "/modules/$m.ko" || die "insmod $m failed"
done
P9="trans=virtio,version=9p2000.L,msize=512000"
# The host root is read-only and does not change while the guest runs: cache it aggressively.
mount -t 9p -o "ro,$P9,cache=loose" @ROOT_TAG@ /ro || die "cannot mount the host root (9p tag @ROOT_TAG@)"
mount -t tmpfs -o mode=0755 tmpfs /rw || die "cannot mount the overlay tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
    || die "cannot mount the overlay root"
R=/newroot
mount -t proc proc $R/proc || die "cannot mount $R/proc"
mount -t sysfs sysfs $R/sys || die "cannot mount $R/sys"
mount -t devtmpfs devtmpfs $R/dev || die "cannot mount $R/dev"
mkdir -p $R/dev/pts $R/dev/shm $R/tmp $R/run @GUEST_OUT_REL@
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
# /tmp stays the overlay of the host's /tmp (writes go to the tmpfs upper layer): a checkout or
# build under the host's /tmp (CI clones, temp dirs) must be visible to the command.
mount -t tmpfs -o mode=0755 tmpfs $R/run || die "cannot mount $R/run"
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || die "cannot mount cgroup2"
# Written by the guest, read by the host after poweroff: no caching.
mount -t 9p -o "$P9,cache=none" @OUT_TAG@ $R@GUEST_OUT@ || die "cannot mount the output share (9p tag @OUT_TAG@)"
[ -e $R/proc/pressure/memory ] || die "no /proc/pressure/memory (PSI disabled?)"
CG=$R/sys/fs/cgroup
for c in memory pids cpu; do
    grep -qw $c $CG/cgroup.controllers && echo +$c 2>/dev/null > $CG/cgroup.subtree_control
done
grep -qw memory $CG/cgroup.subtree_control || die "cannot enable the memory controller"
mkdir -p $R@GUEST_CGROUP@/runner || die "cannot create @GUEST_CGROUP@/runner"
for c in memory pids cpu; do
    grep -qw $c $CG/cgroup.subtree_control && echo +$c 2>/dev/null > $R@GUEST_CGROUP@/cgroup.subtree_control
done
grep -qw memory $R@GUEST_CGROUP@/cgroup.subtree_control || die "cannot delegate memory to @GUEST_CGROUP@"
# The command's stdout and stderr: virtio-serial ports named by the host (not ttys, as in CI).
for i in 1 2 3 4 5 6 7 8 9 10; do
    for port in /sys/class/virtio-ports/*; do
        [ -e "$port/name" ] && ln -sf "/dev/${port##*/}" "$R/dev/xtask-$(cat "$port/name")"
    done
    [ -c $R/dev/xtask-stdout ] && [ -c $R/dev/xtask-stderr ] && break
    sleep 0.1
done
[ -c $R/dev/xtask-stdout ] && [ -c $R/dev/xtask-stderr ] || die "no virtio-serial ports stdout/stderr"
cp /stage2 $R/run/xtask-vm-stage2 || die "cannot install stage 2"
umount -l /proc /sys /dev
exec switch_root /newroot /bin/busybox sh /run/xtask-vm-stage2
"#;

/// Stage 2, PID 1 in the final root: run the command (stdout and stderr on the
/// virtio-serial ports),
/// record its exit code in the share, power off.
const STAGE2: &str = r#"# cargo xtask vm, stage 2 (PID 1 in the overlay root)
C=@GUEST_OUT@/@CONTROL_DIR@
/bin/busybox env -i /bin/busybox sh $C/run.sh </dev/null >/dev/xtask-stdout 2>/dev/xtask-stderr
rc=$?
echo $rc > $C/exit_code.tmp && /bin/busybox mv $C/exit_code.tmp $C/exit_code
/bin/busybox sync
/bin/busybox poweroff -f
"#;

/// The stage 1 script for the given module load order.
pub fn init_script(modules: &[String]) -> String {
    substitute(INIT_TEMPLATE).replace("@MODULES@", &modules.join(" "))
}

/// The stage 2 script.
pub fn stage2_script() -> String {
    substitute(STAGE2)
}

fn substitute(template: &str) -> String {
    template
        .replace("@ROOT_TAG@", ROOT_TAG)
        .replace("@OUT_TAG@", OUT_TAG)
        .replace("@GUEST_OUT_REL@", &format!("$R{GUEST_OUT}"))
        .replace("@GUEST_OUT@", GUEST_OUT)
        .replace("@GUEST_CGROUP@", GUEST_CGROUP)
        .replace("@CONTROL_DIR@", CONTROL_DIR)
}

/// Returns the path of a cached initramfs for `kernel`, building it if needed.
pub fn ensure_initramfs(cache: &Path, kernel: &Kernel, busybox: &Path) -> Result<PathBuf, String> {
    let modules = kernel.guest_modules()?;
    let names: Vec<String> = modules.iter().map(|m| m.name.clone()).collect();
    let init = init_script(&names);
    let stage2 = stage2_script();
    let busybox_bytes = std::fs::read(busybox).map_err(|e| format!("cannot read {}: {e}", busybox.display()))?;
    let key = fnv1a64(&[init.as_bytes(), stage2.as_bytes(), &busybox_bytes]);
    let path = cache.join(format!("initramfs-{}-{key:016x}.cpio", kernel.release));
    if path.is_file() {
        return Ok(path);
    }
    let mut cpio = Cpio::new();
    for dir in ["/bin", "/dev", "/proc", "/sys", "/ro", "/rw", "/newroot", "/modules"] {
        cpio.dir(dir, 0o755);
    }
    cpio.char_dev("/dev/console", 0o600, 5, 1);
    cpio.file("/bin/busybox", 0o755, &busybox_bytes);
    cpio.file("/init", 0o755, init.as_bytes());
    cpio.file("/stage2", 0o644, stage2.as_bytes());
    for module in &modules {
        let image = kernel::read_module(&module.path)?;
        cpio.file(&format!("/modules/{}.ko", module.name), 0o644, &image);
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, cpio.finish()).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), path.display()))?;
    Ok(path)
}

/// FNV-1a over several byte strings (stable across Rust versions, unlike `DefaultHasher`).
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_has_modules_and_no_placeholders() {
        let s = init_script(&["virtio".into(), "9p".into()]);
        assert!(s.contains("for m in virtio 9p; do"));
        assert!(!s.contains('@'), "unreplaced placeholder in:\n{s}");
        assert!(s.contains("mount -t cgroup2 cgroup2 $R/sys/fs/cgroup"));
        assert!(!stage2_script().contains('@'));
    }

    #[test]
    fn hash_is_stable_and_separates_parts() {
        assert_eq!(fnv1a64(&[b"abc"]), fnv1a64(&[b"abc"]));
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
    }
}
