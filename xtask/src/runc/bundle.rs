//! One OCI bundle run by `runc`: a generated `config.json` and a rootfs that is empty but for
//! read-only bind mounts of the host's `/usr` and `/etc` (`/bin`, `/lib`, `/lib64`, `/sbin` are
//! the usual `usr/` symlinks), the workspace (built binaries, workers) and the Python prefixes.
//!
//! The container runs in the foreground without a terminal (`runc run`), with its cgroup at a
//! path the test chose (under the test's own cgroup), an optional memory limit, an optional
//! `oom_score_adj` (what the kubelet passes through the CRI) and with or without a private
//! cgroup namespace. [`Bundle`] removes the container (`runc delete -f`) and its files on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Spec {
    /// argv inside the container.
    pub args: Vec<String>,
    /// Extra environment (`PATH` is always set).
    pub env: Vec<(String, String)>,
    /// `cgroupsPath`: absolute (from the hierarchy root) or relative to runc's own cgroup.
    pub cgroups_path: String,
    /// `linux.resources.memory.limit`.
    pub memory_limit: Option<u64>,
    /// `process.oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
    /// A private cgroup namespace (`linux.namespaces` gets `cgroup`).
    pub cgroup_ns: bool,
    /// Host directories bind-mounted read-only at the same path.
    pub binds: Vec<PathBuf>,
}

/// A container's outcome.
#[derive(Debug)]
pub struct Outcome {
    /// `runc run`'s exit status: the container process's (137 when SIGKILLed).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub secs: f64,
}

/// A bundle directory plus the runc state directory; removed (container deleted first) on drop.
pub struct Bundle {
    id: String,
    dir: PathBuf,
}

impl Bundle {
    /// Write the bundle for `spec` under the system's temporary directory.
    ///
    /// # Errors
    /// When the files cannot be written.
    pub fn new(spec: &Spec) -> Result<Bundle, String> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("memguard-test-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&id);
        let bundle = Bundle { id, dir };
        let rootfs = bundle.dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(|e| format!("mkdir {}: {e}", rootfs.display()))?;
        for link in ["bin", "lib", "lib64", "sbin"] {
            std::os::unix::fs::symlink(format!("usr/{link}"), rootfs.join(link))
                .map_err(|e| format!("symlink in {}: {e}", rootfs.display()))?;
        }
        let config = serde_json::to_string_pretty(&config(spec)).map_err(|e| e.to_string())?;
        std::fs::write(bundle.dir.join("config.json"), config).map_err(|e| format!("write config.json: {e}"))?;
        Ok(bundle)
    }

    fn runc(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(self.dir.join("state"));
        c
    }

    /// `runc run` in the foreground, killed after `timeout`.
    ///
    /// # Errors
    /// When runc cannot be started or the container outlives `timeout`.
    pub fn run(&self, timeout: Duration) -> Result<Outcome, String> {
        let start = Instant::now();
        let mut child = self
            .runc()
            .arg("run")
            .arg("--bundle")
            .arg(&self.dir)
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("runc: {e}"))?;
        let (out, err) = (read_all(child.stdout.take()), read_all(child.stderr.take()));
        let status = loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                break st;
            }
            if start.elapsed() > timeout {
                let _ = self.runc().args(["kill", &self.id, "KILL"]).output();
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("container {} still running after {timeout:?}", self.id));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        Ok(Outcome { code: status.code().unwrap_or(-1), stdout, stderr, secs: start.elapsed().as_secs_f64() })
    }
}

/// Read a pipe to its end on a thread (stdout and stderr both, so neither can fill and block).
fn read_all<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = pipe {
            let _ = r.read_to_string(&mut s);
        }
        s
    })
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = self.runc().args(["delete", "-f", &self.id]).stderr(Stdio::null()).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `config.json`: `runc spec`'s defaults (namespaces, masked paths, read-only `/sys` and
/// `/sys/fs/cgroup`, no new privileges) with the spec's process, mounts and cgroup.
fn config(spec: &Spec) -> Value {
    let mut env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()];
    env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut process = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": spec.args,
        "env": env,
        "cwd": "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": true,
    });
    if let Some(adj) = spec.oom_score_adj {
        process["oomScoreAdj"] = json!(adj);
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=1777", "size=16m"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for dir in [Path::new("/usr"), Path::new("/etc")].into_iter().chain(spec.binds.iter().map(PathBuf::as_path)) {
        mounts.push(json!({"destination": dir, "type": "bind", "source": dir, "options": ["rbind", "ro"]}));
    }
    let mut namespaces =
        vec![json!({"type": "pid"}), json!({"type": "ipc"}), json!({"type": "uts"}), json!({"type": "mount"})];
    if spec.cgroup_ns {
        namespaces.push(json!({"type": "cgroup"}));
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(limit) = spec.memory_limit {
        resources["memory"] = json!({"limit": limit});
    }
    json!({
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "memguard-test",
        "mounts": mounts,
        "linux": {
            "cgroupsPath": spec.cgroups_path,
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    })
}
