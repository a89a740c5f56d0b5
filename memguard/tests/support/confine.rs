//! Run a command the way a Kubernetes pod runs it (issue #14): as uid 0 without
//! `CAP_SYS_RESOURCE` (the container runtimes' default set) or as uid 65534 with no capability
//! at all, with every cgroup mount read-only (a private mount namespace, then
//! `mount -o remount,bind,ro`), and with or without a delegated cgroup (the cgroup directory and
//! its files chowned to 65534, as systemd and container runtimes delegate). On v2 the
//! read-only cases also run in a private cgroup namespace, as pods do.
//!
//! Shared by the memguard suites (`unprivileged.rs`) and the examples' shedding suites.

use std::path::Path;

use super::cgroup::Version;
use super::process::runnable_by_anyone;

/// The uid 65534 ("nobody") of the unprivileged cases.
pub const NOBODY: u32 = 65534;

/// Who runs the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    /// uid 0 without `CAP_SYS_RESOURCE` (the default capability set of runc/containerd).
    Root,
    /// uid/gid 65534, no supplementary groups, no capability (bounding and inheritable sets empty).
    Nobody,
}

/// One point of the matrix: who, whether the cgroupfs is read-only, whether the cgroup is
/// delegated to 65534.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confinement {
    /// Who runs the command.
    pub user: User,
    /// Every cgroup mount read-only.
    pub read_only: bool,
    /// The cgroup (directory and files) owned by 65534.
    pub delegated: bool,
}

impl Confinement {
    /// The eight combinations: {root, 65534} × {rw, ro} × {not delegated, delegated}.
    pub fn matrix() -> Vec<Confinement> {
        let mut out = Vec::new();
        for delegated in [false, true] {
            for user in [User::Root, User::Nobody] {
                for read_only in [false, true] {
                    out.push(Confinement { user, read_only, delegated });
                }
            }
        }
        out
    }

    /// The Kubernetes default: uid 65534, read-only cgroupfs, nothing delegated.
    pub fn pod() -> Confinement {
        Confinement { user: User::Nobody, read_only: true, delegated: false }
    }

    /// A short label (`65534 ro delegated`).
    pub fn label(&self) -> String {
        format!(
            "{} {}{}",
            match self.user {
                User::Root => "root",
                User::Nobody => "65534",
            },
            if self.read_only { "ro" } else { "rw" },
            if self.delegated { " delegated" } else { "" }
        )
    }

    /// The program and arguments that run `program args...` confined: `unshare` a private
    /// mount namespace, make the cgroup mounts read-only (when asked), then `setpriv` to the
    /// user. Read-only on v2 is what container runtimes do: a private cgroup namespace (rooted
    /// at the test cgroup) with a fresh cgroup2 mounted read-only on `/sys/fs/cgroup`; on v1
    /// every cgroup hierarchy and the tmpfs holding them are remounted read-only. Run it with
    /// [`TestCgroup::command`](super::cgroup::TestCgroup::command) so that the process is in
    /// the cgroup first. Delegation is [`delegate`], done beforehand.
    pub fn wrap(&self, version: Version, program: &str, args: &[&str]) -> (String, Vec<String>) {
        let remount = match (self.read_only, version) {
            (false, _) => "",
            (true, Version::V1) => {
                r#"for m in $(awk '$3 == "cgroup" || $3 == "cgroup2" || $2 == "/sys/fs/cgroup" {print $2}' /proc/self/mounts); do mount -o remount,bind,ro "$m" || exit 97; done; "#
            }
            (true, Version::V2) => {
                "umount -l /sys/fs/cgroup && mount -t cgroup2 -o ro,nosuid,nodev,noexec pod /sys/fs/cgroup || exit 97; "
            }
        };
        let setpriv = tool("setpriv");
        let drop = match self.user {
            User::Root => format!("{setpriv} --inh-caps=-sys_resource --bounding-set=-sys_resource"),
            User::Nobody => format!(
                "{setpriv} --reuid {NOBODY} --regid {NOBODY} --clear-groups --inh-caps=-all --bounding-set=-all"
            ),
        };
        let script = format!(r#"{remount}exec {drop} "$0" "$@""#);
        let program = match self.user {
            User::Root => program.to_owned(),
            User::Nobody => runnable_by_anyone(program),
        };
        let mut out: Vec<String> = Vec::new();
        if self.read_only && version == Version::V2 {
            out.push("--cgroup".to_owned());
        }
        out.extend(
            ["--mount", "--propagation", "private", "sh", "-c", &script, &program].iter().map(|s| (*s).to_owned()),
        );
        out.extend(args.iter().map(|s| (*s).to_owned()));
        (tool("unshare"), out)
    }
}

/// util-linux's tool by absolute path when installed there (the VM's initramfs puts busybox's
/// `setpriv`, without `--reuid`, first in `PATH`), else the name.
pub fn tool(name: &str) -> String {
    let full = format!("/usr/bin/{name}");
    if Path::new(&full).is_file() {
        full
    } else {
        name.to_owned()
    }
}

/// Delegate `dir` to uid/gid 65534: the directory and the files in it, as systemd's
/// `Delegate=yes` and container runtimes do.
///
/// # Panics
/// If a chown fails (the suites run as root).
pub fn delegate(dir: &Path) {
    let chown = |p: &Path| {
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY))
            .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
    };
    chown(dir);
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            chown(&entry.path());
        }
    }
}

/// Undo [`delegate`]: back to root.
pub fn undelegate(dir: &Path) {
    let _ = std::os::unix::fs::chown(dir, Some(0), Some(0));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let _ = std::os::unix::fs::chown(entry.path(), Some(0), Some(0));
    }
}
