//! Starting `qemu-system-x86_64` (TCG), streaming the guest consoles to the host's stdout and
//! stderr, and waiting for it with a wall-clock limit. qemu never outlives the harness: it is
//! killed on timeout and gets `SIGKILL` if the harness process dies (`PR_SET_PDEATHSIG`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::initramfs::{OUT_TAG, ROOT_TAG};

/// Kernel command line: serial console, quiet, pure cgroup v2 with PSI, exit qemu on panic.
/// The kernel console is the serial port (a log file), so that the command's stdout
/// carries nothing else.
pub const KERNEL_CMDLINE: &str = "console=ttyS0 quiet loglevel=1 panic=-1 oops=panic \
     cgroup_no_v1=all psi=1 mitigations=off tsc=reliable no_timer_check rdinit=/init";

/// What qemu boots and shares.
pub struct QemuConfig<'a> {
    pub qemu: &'a Path,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Host directory shared read-write as tag `out`.
    pub out_dir: &'a Path,
    /// Host directory for the console logs and qemu's own stderr.
    pub log_dir: &'a Path,
    /// Firmware to use instead of qemu's default SeaBIOS.
    pub bios: Option<PathBuf>,
}

/// qemu's `qboot.rom`, if installed next to its other firmware.
pub fn find_qboot(qemu: &Path) -> Option<PathBuf> {
    let prefix = qemu.parent()?.parent()?;
    [prefix.join("share/qemu/qboot.rom"), PathBuf::from("/usr/share/qemu/qboot.rom")].into_iter().find(|p| p.is_file())
}

/// The log files qemu writes: the guest's virtio-serial ports `stdout` and `stderr` (the
/// command's), and ttyS0 = the kernel console (with the init scripts' diagnostics).
pub fn stdout_log(log_dir: &Path) -> PathBuf {
    log_dir.join("console-stdout.log")
}
pub fn stderr_log(log_dir: &Path) -> PathBuf {
    log_dir.join("console-stderr.log")
}
pub fn kernel_log(log_dir: &Path) -> PathBuf {
    log_dir.join("console-kernel.log")
}
pub fn qemu_log(log_dir: &Path) -> PathBuf {
    log_dir.join("qemu.log")
}

/// qemu's argument vector.
pub fn qemu_args(c: &QemuConfig) -> Vec<String> {
    let s = |p: &Path| escape_opt(&p.to_string_lossy());
    let mut args: Vec<String> =
        ["-accel", "tcg,thread=multi", "-cpu", "max", "-nographic", "-no-reboot", "-nodefaults"]
            .map(String::from)
            .to_vec();
    args.extend([
        "-smp".into(),
        c.cpus.to_string(),
        "-m".into(),
        c.memory_mib.to_string(),
        "-kernel".into(),
        c.kernel.to_string_lossy().into_owned(),
        "-initrd".into(),
        c.initrd.to_string_lossy().into_owned(),
        "-append".into(),
        KERNEL_CMDLINE.into(),
        "-virtfs".into(),
        format!("local,path=/,mount_tag={ROOT_TAG},security_model=none,readonly=on,multidevs=remap"),
        "-virtfs".into(),
        format!("local,path={},mount_tag={OUT_TAG},security_model=none,multidevs=remap", s(c.out_dir)),
        // The command's stdout and stderr: virtio-serial ports named `stdout` and `stderr`
        // (under TCG a serial port manages ~150 KB/s and an hvc console far less; a port
        // takes 32 KiB writes).
        "-device".into(),
        "virtio-serial-pci,id=vser".into(),
        "-chardev".into(),
        format!("file,id=con0,path={}", s(&stdout_log(c.log_dir))),
        "-device".into(),
        "virtserialport,chardev=con0,bus=vser.0,nr=1,name=stdout".into(),
        "-chardev".into(),
        format!("file,id=con1,path={}", s(&stderr_log(c.log_dir))),
        "-device".into(),
        "virtserialport,chardev=con1,bus=vser.0,nr=2,name=stderr".into(),
        // The kernel console (and init's diagnostics): the serial port, logged only.
        "-chardev".into(),
        format!("file,id=con2,path={}", s(&kernel_log(c.log_dir))),
        "-serial".into(),
        "chardev:con2".into(),
    ]);
    // qboot boots faster than SeaBIOS and prints nothing on the serial ports.
    if let Some(bios) = &c.bios {
        args.extend(["-bios".into(), bios.to_string_lossy().into_owned()]);
    }
    args
}

/// Escapes a value inside a qemu `key=value,...` option (commas are doubled).
pub fn escape_opt(value: &str) -> String {
    value.replace(',', ",,")
}

/// A running qemu with its console streamers.
pub struct Qemu {
    child: Child,
    pub started: Instant,
    stop: Arc<AtomicBool>,
    streams: Vec<JoinHandle<()>>,
}

/// How the wait ended.
pub enum WaitEnd {
    Exited(ExitStatus),
    TimedOut,
}

extern "C" {
    fn prctl(option: i32, ...) -> i32;
}
const PR_SET_PDEATHSIG: i32 = 1;
const SIGKILL: i32 = 9;

/// Starts qemu and the threads copying the guest consoles to our stdout/stderr.
pub fn spawn(c: &QemuConfig) -> Result<Qemu, String> {
    let qemu_log_path = qemu_log(c.log_dir);
    let qemu_stderr =
        File::create(&qemu_log_path).map_err(|e| format!("cannot create {}: {e}", qemu_log_path.display()))?;
    for log in [stdout_log(c.log_dir), stderr_log(c.log_dir), kernel_log(c.log_dir)] {
        File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    }
    let mut cmd = Command::new(c.qemu);
    cmd.args(qemu_args(c)).stdin(Stdio::null()).stdout(qemu_stderr.try_clone().map_err(|e| e.to_string())?);
    cmd.stderr(qemu_stderr);
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if prctl(PR_SET_PDEATHSIG, SIGKILL as std::ffi::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", c.qemu.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let streams = vec![
        stream(stdout_log(c.log_dir), Box::new(std::io::stdout()), stop.clone()),
        stream(stderr_log(c.log_dir), Box::new(std::io::stderr()), stop.clone()),
    ];
    Ok(Qemu { child, started, stop, streams })
}

impl Qemu {
    /// Waits until qemu exits or `deadline` passes (then kills and reaps it).
    pub fn wait(&mut self, deadline: Instant) -> Result<WaitEnd, String> {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(WaitEnd::Exited(status)),
                Ok(None) => {}
                Err(e) => return Err(format!("cannot wait for qemu: {e}")),
            }
            if Instant::now() >= deadline {
                self.kill();
                return Ok(WaitEnd::TimedOut);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills and reaps qemu (idempotent).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the console streamers after a final drain.
    pub fn finish_streams(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for handle in self.streams.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
        self.finish_streams();
    }
}

/// Follows `path` (like `tail -f`) into `sink` until `stop` is set, then drains it. The
/// bytes are passed on unchanged: the ports are not ttys, so nothing adds `\r`.
fn stream(path: PathBuf, mut sink: Box<dyn Write + Send>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut file) = File::open(&path) else { return };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // Read `stop` before reading the file, so the last pass sees everything qemu wrote.
            let stopping = stop.load(Ordering::SeqCst);
            let n = file.read(&mut buf).unwrap_or(0);
            if n > 0 {
                let _ = sink.write_all(&buf[..n]);
                let _ = sink.flush();
                continue;
            }
            if stopping {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_escape_commas_and_include_essentials() {
        let c = QemuConfig {
            qemu: Path::new("/usr/bin/qemu-system-x86_64"),
            kernel: Path::new("/k"),
            initrd: Path::new("/i"),
            memory_mib: 2048,
            cpus: 2,
            out_dir: Path::new("/tmp/a,b"),
            log_dir: Path::new("/tmp/l"),
            bios: None,
        };
        let args = qemu_args(&c).join(" ");
        assert!(args.contains("-accel tcg,thread=multi -cpu max"));
        assert!(args.contains("-smp 2 -m 2048"));
        assert!(args.contains("path=/tmp/a,,b,mount_tag=out"));
        assert!(args.contains("cgroup_no_v1=all psi=1"));
    }
}
