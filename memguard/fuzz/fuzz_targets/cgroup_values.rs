#![no_main]
//! Single-value and key-value cgroup/proc files, and MEMGUARD_* values: never panic.
use libfuzzer_sys::fuzz_target;
use memguard::parse::{meminfo, memory_stat, oom_score_adj, quantity, setting, value};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = value::parse_limit(&text);
    let _ = value::parse_u64(&text);
    let _ = memory_stat::ReclaimStat::scan(&text).clean_file_cache();
    let _ = meminfo::parse(&text);
    let _ = oom_score_adj::parse(&text);
    let _ = quantity::parse_bytes(&text);
    let _ = setting::parse_duration(&text);
    let _ = setting::parse_bool(&text);
    let _ = setting::parse_fraction(&text);
    let _ = setting::parse_count(&text);
});
