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
}

/// The `memory.stat` fields that tell what reclaim can free, read in one pass without
/// allocating (the sampler reads `memory.stat` up to every few milliseconds under pressure).
///
/// v1 keys are the hierarchical `total_*` ones when present (they include child cgroups, as
/// usage does); otherwise the local keys (v2 names, or v1 without hierarchy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReclaimStat {
    /// `inactive_file`: page cache on the inactive list (what the kubelet subtracts).
    pub inactive_file: Option<u64>,
    /// `active_file`: page cache on the active list.
    pub active_file: Option<u64>,
    /// Dirty file pages (`file_dirty` on v2, `dirty` on v1): reclaim must write them first.
    pub dirty: Option<u64>,
    /// File pages under writeback (`file_writeback` on v2, `writeback` on v1).
    pub writeback: Option<u64>,
    /// Anonymous memory (`anon` on v2, `rss` on v1).
    pub anon: Option<u64>,
    /// File cache (`file` on v2, `cache` on v1; includes shmem/tmpfs).
    pub file: Option<u64>,
}

impl ReclaimStat {
    /// Scan the text of `memory.stat`. Malformed lines are ignored (the lenient [`parse`]
    /// reports them).
    pub fn scan(text: &str) -> ReclaimStat {
        // (local, hierarchical) values per field, in the order of the struct.
        let mut v = [[None::<u64>; 2]; 6];
        for line in text.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(key), Some(value)) = (it.next(), it.next()) else { continue };
            let (key, slot) = match key.strip_prefix("total_") {
                Some(k) => (k, 1),
                None => (key, 0),
            };
            let field = match key {
                "inactive_file" => 0,
                "active_file" => 1,
                "dirty" | "file_dirty" => 2,
                "writeback" | "file_writeback" => 3,
                "anon" | "rss" => 4,
                "file" | "cache" => 5,
                _ => continue,
            };
            if let Ok(n) = value.parse::<u64>() {
                v[field][slot] = Some(n);
            }
        }
        let pick = |i: usize| v[i][1].or(v[i][0]);
        ReclaimStat {
            inactive_file: pick(0),
            active_file: pick(1),
            dirty: pick(2),
            writeback: pick(3),
            anon: pick(4),
            file: pick(5),
        }
    }

    /// Clean page cache on the file LRU lists: what reclaim can drop without writing anything
    /// (`active_file + inactive_file - dirty - writeback`; a missing list counts as 0). `None`
    /// without either LRU field. Shared memory and tmpfs live on the anonymous lists and are
    /// never counted here.
    pub fn clean_file_cache(&self) -> Option<u64> {
        if self.active_file.is_none() && self.inactive_file.is_none() {
            return None;
        }
        let lru = self.active_file.unwrap_or(0).saturating_add(self.inactive_file.unwrap_or(0));
        let unclean = self.dirty.unwrap_or(0).saturating_add(self.writeback.unwrap_or(0));
        Some(lru.saturating_sub(unclean))
    }

    /// What reclaim cannot free out of `usage` (see
    /// [`Usage::unreclaimable_bytes`](crate::Usage)): `usage - clean file cache`, or `usage`
    /// when the statistics are missing (the conservative answer).
    pub fn unreclaimable(&self, usage: u64) -> u64 {
        usage.saturating_sub(self.clean_file_cache().unwrap_or(0))
    }

    /// The working set the kubelet computes: `usage - inactive_file`.
    pub fn working_set(&self, usage: u64) -> u64 {
        usage.saturating_sub(self.inactive_file.unwrap_or(0))
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
        assert_eq!(ReclaimStat::scan("cache 10\ninactive_file 5\ntotal_inactive_file 7\n").inactive_file, Some(7));
        assert_eq!(s.get("hierarchical_memory_limit"), Some(9_223_372_036_854_771_712));
        assert_eq!(ReclaimStat::scan("inactive_file 5\n").inactive_file, Some(5));
    }

    #[test]
    fn reclaim_fields_v1_prefer_hierarchical() {
        let s = ReclaimStat::scan(
            "cache 1\nrss 2\ndirty 3\nwriteback 4\ninactive_file 5\nactive_file 6\n\
             total_cache 100\ntotal_rss 200\ntotal_dirty 10\ntotal_writeback 5\n\
             total_inactive_file 40\ntotal_active_file 60\n",
        );
        assert_eq!((s.file, s.anon, s.inactive_file, s.active_file), (Some(100), Some(200), Some(40), Some(60)));
        assert_eq!(s.clean_file_cache(), Some(85));
        assert_eq!(s.unreclaimable(300), 215);
        assert_eq!(s.working_set(300), 260);
    }

    #[test]
    fn reclaim_fields_v2_and_fallbacks() {
        let s = ReclaimStat::scan(
            "anon 7\nfile 90\nfile_dirty 2\nfile_writeback 1\ninactive_file 50\nactive_file 30\nshmem 10\n",
        );
        assert_eq!(s.clean_file_cache(), Some(77));
        assert_eq!(s.unreclaimable(100), 23);
        let missing = ReclaimStat::scan("garbage\nanon x\n");
        assert_eq!(missing.clean_file_cache(), None);
        assert_eq!(missing.unreclaimable(100), 100, "no statistics: everything counts");
        let over = ReclaimStat::scan("inactive_file 500\nactive_file 500\n");
        assert_eq!(over.unreclaimable(100), 0, "never negative");
    }

    #[test]
    fn rejects_odd_lines() {
        let s = parse("a 1\nb\nc x\nd 1 2\n");
        assert_eq!(s.entries, vec![("a".to_owned(), 1)]);
        assert_eq!(s.rejected.len(), 3);
    }
}
