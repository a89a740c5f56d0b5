//! Single-value cgroup files: `memory.max`, `memory.limit_in_bytes`, `memory.current`, ...

/// Largest value the v1 memory controller reports for "no limit" is `i64::MAX` rounded down to
/// the page size (`9223372036854771712` with 4 KiB pages). Anything at or above this bound —
/// `i64::MAX` rounded down to 64 KiB pages, the largest page size Linux uses — is "unlimited".
pub const V1_UNLIMITED_THRESHOLD: u64 = 0x7FFF_FFFF_FFFF_0000;

/// A limit as written in a cgroup file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitValue {
    /// No limit: `max` (v2), the page-rounded `i64::MAX` sentinel or `-1` (v1).
    Unlimited,
    /// A limit in bytes.
    Bytes(u64),
}

impl LimitValue {
    /// The limit in bytes, or `None` for unlimited.
    pub fn bytes(self) -> Option<u64> {
        match self {
            LimitValue::Unlimited => None,
            LimitValue::Bytes(b) => Some(b),
        }
    }
}

/// Parse a limit file (`memory.max`, `memory.high`, `memory.swap.max`,
/// `memory.limit_in_bytes`, `memory.soft_limit_in_bytes`, `memory.memsw.limit_in_bytes`).
///
/// Accepts both versions' spellings of "unlimited" wherever they appear.
///
/// # Errors
/// A human-readable reason when the text is not a limit.
pub fn parse_limit(text: &str) -> Result<LimitValue, String> {
    let t = text.trim();
    if t == "max" || t == "-1" {
        return Ok(LimitValue::Unlimited);
    }
    let v = parse_u64(t)?;
    Ok(if v >= V1_UNLIMITED_THRESHOLD { LimitValue::Unlimited } else { LimitValue::Bytes(v) })
}

/// Parse a counter file holding one unsigned number (`memory.current`, `memory.usage_in_bytes`).
///
/// # Errors
/// A human-readable reason when the text is not an unsigned number.
pub fn parse_u64(text: &str) -> Result<u64, String> {
    let t = text.trim();
    t.parse::<u64>().map_err(|_| format!("expected an unsigned number, got {}", super::excerpt(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_spellings() {
        for t in ["max\n", "-1", "9223372036854771712\n", "9223372036854775807", "9223372036854710272"] {
            assert_eq!(parse_limit(t), Ok(LimitValue::Unlimited), "{t}");
        }
    }

    #[test]
    fn byte_values_and_errors() {
        assert_eq!(parse_limit("536870912\n"), Ok(LimitValue::Bytes(536_870_912)));
        assert_eq!(parse_limit("0"), Ok(LimitValue::Bytes(0)));
        assert!(parse_limit("").is_err());
        assert!(parse_limit("12k").is_err());
        assert!(parse_limit("-5").is_err());
        assert_eq!(parse_u64(" 42 \n"), Ok(42));
    }
}
