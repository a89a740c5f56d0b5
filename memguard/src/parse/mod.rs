//! Pure parsers for the kernel files memguard reads, and for the values of its `MEMGUARD_*`
//! variables ([`quantity`], [`setting`]): text in, typed values out.
//!
//! No parser touches the filesystem and none panics, whatever the input (each has a
//! `cargo fuzz` target in `memguard/fuzz/` and a smoke test of random input in the test suite).
//! Line-oriented parsers are lenient: a line they cannot understand is returned as a
//! [`RejectedLine`] next to the lines they could, so one odd line never hides the rest.

pub mod meminfo;
pub mod memory_stat;
pub mod mountinfo;
pub mod oom_score_adj;
pub mod proc_cgroup;
pub mod quantity;
pub mod setting;
pub mod value;

#[cfg(test)]
mod robustness_tests;

/// A line a lenient parser skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    /// 1-based line number.
    pub line: usize,
    /// Why the line was skipped.
    pub reason: String,
}

impl std::fmt::Display for RejectedLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Shorten a line for an error message (kernel lines can be long; fuzz input can be huge).
pub(crate) fn excerpt(line: &str) -> String {
    const MAX: usize = 80;
    if line.chars().count() <= MAX {
        format!("{line:?}")
    } else {
        let cut: String = line.chars().take(MAX).collect();
        format!("{cut:?}...")
    }
}
