#![no_main]
//! mountinfo parser and octal unescaping: never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = memguard::parse::mountinfo::parse(&text);
    for m in &parsed.mounts {
        let _ = m.is_v1_with("memory") || m.is_cgroup2();
    }
    let _ = memguard::parse::mountinfo::unescape(&text);
});
