#![no_main]
//! `/proc/<pid>/cgroup` parser: never panics; every accepted path is absolute.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = memguard::parse::proc_cgroup::parse(&text);
    for e in &parsed.entries {
        assert!(e.path.starts_with('/'));
    }
    let _ = parsed.v1_entry("memory");
    let _ = parsed.unified_entry();
});
