#![no_main]
//! Whole detection on a fuzzed tree: the input is split into the files of a fixture root
//! (`/proc/self/cgroup`, `/proc/self/mountinfo`, and limit/usage files of a few cgroups), and
//! `Detector::status` must return without panicking.
use libfuzzer_sys::fuzz_target;

const FILES: &[&str] = &[
    "proc/self/cgroup",
    "proc/self/mountinfo",
    "proc/meminfo",
    "proc/self/oom_score_adj",
    "sys/fs/cgroup/cgroup.controllers",
    "sys/fs/cgroup/memory.max",
    "sys/fs/cgroup/a/memory.max",
    "sys/fs/cgroup/a/memory.current",
    "sys/fs/cgroup/a/memory.stat",
    "sys/fs/cgroup/memory/memory.limit_in_bytes",
    "sys/fs/cgroup/memory/a/memory.limit_in_bytes",
    "sys/fs/cgroup/memory/a/memory.stat",
];

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempdir() else { return };
    let mut parts = data.split(|b| *b == 0xFF);
    for f in FILES {
        let Some(content) = parts.next() else { break };
        let p = dir.join(f);
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&p, content);
    }
    let detector = memguard::Detector::new().with_root(&dir);
    let _ = memguard::Status::gather(&detector, &memguard::Config::default(), false);
    let _ = std::fs::remove_dir_all(&dir);
});

fn tempdir() -> std::io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("memguard-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
