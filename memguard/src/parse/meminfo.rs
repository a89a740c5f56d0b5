//! `/proc/meminfo`: `Key:   value kB` lines.

/// The fields memguard uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`, bytes.
    pub total_bytes: Option<u64>,
    /// `MemAvailable`, bytes (absent on kernels before 3.14).
    pub available_bytes: Option<u64>,
    /// `SwapTotal`, bytes.
    pub swap_total_bytes: Option<u64>,
}

/// Parse the text of `/proc/meminfo`. Unknown or malformed lines are ignored.
pub fn parse(text: &str) -> MemInfo {
    let mut out = MemInfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else { continue };
        let slot = match key.trim() {
            "MemTotal" => &mut out.total_bytes,
            "MemAvailable" => &mut out.available_bytes,
            "SwapTotal" => &mut out.swap_total_bytes,
            _ => continue,
        };
        *slot = parse_kb(rest);
    }
    out
}

fn parse_kb(rest: &str) -> Option<u64> {
    let mut it = rest.split_whitespace();
    let n = it.next()?.parse::<u64>().ok()?;
    match it.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_totals_in_bytes() {
        let m = parse("MemTotal:       24683656 kB\nMemFree: 1 kB\nMemAvailable:   1000 kB\nSwapTotal: 0 kB\n");
        assert_eq!(m.total_bytes, Some(24_683_656 * 1024));
        assert_eq!(m.available_bytes, Some(1_024_000));
        assert_eq!(m.swap_total_bytes, Some(0));
    }

    #[test]
    fn tolerates_garbage() {
        let m = parse("MemTotal: lots kB\nnonsense\nMemAvailable: 99999999999999999999 kB\n");
        assert_eq!(m, MemInfo::default());
    }
}
