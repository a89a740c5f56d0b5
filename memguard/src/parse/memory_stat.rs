//! `memory.stat` (both versions): `key value` lines.

use super::{excerpt, RejectedLine};

/// The parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStat {
    /// `(key, value)` pairs in file order.
    pub entries: Vec<(String, u64)>,
    /// Lines that were skipped.
    pub rejected: Vec<RejectedLine>,
}

impl MemoryStat {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Inactive file cache to subtract from usage for the working set: v1's hierarchical
    /// `total_inactive_file` when present, else `inactive_file` (v2, or v1 without hierarchy).
    pub fn inactive_file(&self) -> Option<u64> {
        self.get("total_inactive_file").or_else(|| self.get("inactive_file"))
    }
}

/// Parse the text of `memory.stat`.
pub fn parse(text: &str) -> MemoryStat {
    let mut out = MemoryStat::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        match (it.next(), it.next().map(str::parse::<u64>), it.next()) {
            (Some(k), Some(Ok(v)), None) => out.entries.push((k.to_owned(), v)),
            _ => out
                .rejected
                .push(RejectedLine { line: i + 1, reason: format!("expected `key value`, got {}", excerpt(line)) }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_hierarchical_inactive_file() {
        let s =
            parse("cache 10\ninactive_file 5\ntotal_inactive_file 7\nhierarchical_memory_limit 9223372036854771712\n");
        assert_eq!(s.inactive_file(), Some(7));
        assert_eq!(s.get("hierarchical_memory_limit"), Some(9_223_372_036_854_771_712));
        assert_eq!(parse("inactive_file 5\n").inactive_file(), Some(5));
    }

    #[test]
    fn rejects_odd_lines() {
        let s = parse("a 1\nb\nc x\nd 1 2\n");
        assert_eq!(s.entries, vec![("a".to_owned(), 1)]);
        assert_eq!(s.rejected.len(), 3);
    }
}
