//! Byte quantities as Kubernetes writes them (`resource.Quantity`): `536870912`, `512Mi`, `1G`,
//! `1.5Gi`, `129e6`, `128974848000m` — what a Downward-API `resourceFieldRef: limits.memory`
//! or a human puts in `MEMGUARD_LIMIT`.
//!
//! # Grammar (Kubernetes `k8s.io/apimachinery/pkg/api/resource`)
//!
//! ```text
//! quantity        ::= signedNumber suffix
//! signedNumber    ::= number | "+" number | "-" number
//! number          ::= digits | digits "." digits | digits "." | "." digits
//! suffix          ::= binarySI | decimalExponent | decimalSI
//! binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei                 (powers of 1024)
//! decimalSI       ::= n | u | m | "" | k | M | G | T | P | E     (powers of 1000)
//! decimalExponent ::= "e" signedInteger | "E" signedInteger       (powers of 10)
//! ```
//!
//! As in Kubernetes, `1E` is 10^18 (the exa suffix) while `1E3` is 1000; suffixes are
//! case-sensitive (`k` is kilo, `K` and `KB` are errors); a suffix cannot be combined with an
//! exponent (`1e3k` is rejected, as Kubernetes rejects it). Arithmetic is exact (no floating
//! point), and a fractional byte count is rounded **up** to a whole byte, as Kubernetes'
//! `Quantity.Value()` does (`100m` is 1 byte). A Downward-API value is always a plain integer
//! (the limit divided by the default divisor `1`, rounded up).
//!
//! Negative values, values that do not fit in 64 bits and anything else are errors, with the
//! reason; surrounding whitespace is ignored.

/// Parse a byte quantity (see the module docs).
///
/// # Errors
/// A human-readable reason for anything that is not a non-negative Kubernetes quantity of at
/// most `u64::MAX` bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty quantity".into());
    }
    let bad = |why: &str| {
        Err(format!("{} is not a byte quantity: {why} (use e.g. 536870912, 512Mi, 1.5Gi, 2G)", super::excerpt(t)))
    };
    let body = match t.as_bytes()[0] {
        b'-' => return bad("negative"),
        b'+' => &t[1..],
        _ => t,
    };
    // The number: digits, an optional point, digits (at least one digit overall).
    let int_end = body.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(body.len());
    let (int_digits, rest) = body.split_at(int_end);
    let (frac_digits, suffix) = match rest.strip_prefix('.') {
        Some(after) => {
            let end = after.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(after.len());
            after.split_at(end)
        }
        None => ("", rest),
    };
    if int_digits.is_empty() && frac_digits.is_empty() {
        return bad("no digits");
    }
    let (pow2, mut pow10): (u32, i64) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        s if s.starts_with(['e', 'E']) => match parse_exponent(&s[1..]) {
            Some(e) => (0, e),
            None => return bad("the exponent after `e` must be an integer, with no unit after it"),
        },
        _ => return bad("unknown suffix (binary: Ki Mi Gi Ti Pi Ei; decimal: k M G T P E; or e<exponent>)"),
    };
    // mantissa = int_digits ++ frac_digits, scaled by 10^-len(frac_digits).
    let digits = format!("{int_digits}{frac_digits}");
    let digits = digits.trim_start_matches('0');
    pow10 -= i64::try_from(frac_digits.len()).unwrap_or(i64::MAX);
    if digits.is_empty() {
        return Ok(0);
    }
    // Drop trailing zeros into the exponent (keeps "128974848000m" small).
    let trimmed = digits.trim_end_matches('0');
    pow10 += i64::try_from(digits.len() - trimmed.len()).unwrap_or(0);
    if trimmed.len() > 38 {
        return bad("too many significant digits");
    }
    let too_large = || format!("{} is too large: at most {} bytes", super::excerpt(t), u64::MAX);
    let mantissa: u128 = trimmed.parse().map_err(|_| too_large())?;
    let scaled = mantissa.checked_mul(1u128 << pow2).ok_or_else(too_large)?;
    let bytes = if pow10 >= 0 {
        let factor = u32::try_from(pow10).ok().and_then(|p| 10u128.checked_pow(p)).ok_or_else(too_large)?;
        scaled.checked_mul(factor).ok_or_else(too_large)?
    } else {
        // Round a fraction of a byte up. A divisor beyond u128 leaves less than one byte.
        match u32::try_from(-pow10).ok().and_then(|p| 10u128.checked_pow(p)) {
            Some(div) => scaled.div_ceil(div),
            None => 1,
        }
    };
    u64::try_from(bytes).map_err(|_| too_large())
}

/// `[+-]digits`, bounded so the arithmetic above cannot overflow.
fn parse_exponent(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    const MI: u64 = 1 << 20;
    const GI: u64 = 1 << 30;

    #[test]
    fn kubernetes_spellings() {
        for (text, bytes) in [
            ("536870912", 512 * MI),
            ("512Mi", 512 * MI),
            ("1Gi", GI),
            ("1.5Gi", 3 * GI / 2),
            (".5Gi", GI / 2),
            ("1.Gi", GI),
            ("+1Gi", GI),
            ("1G", 1_000_000_000),
            ("1k", 1000),
            ("129e6", 129_000_000),
            ("129E6", 129_000_000),
            ("1e+3", 1000),
            ("1E", 1_000_000_000_000_000_000),
            ("128974848000m", 128_974_848),
            ("966367641600m", 966_367_642), // 0.9Gi as Kubernetes serialises it, rounded up
            ("100m", 1),
            ("1500u", 1),
            ("1e-3", 1),
            ("0", 0),
            ("0.0Gi", 0),
            (" 256Mi\n", 256 * MI),
            ("15Ei", 15 << 60),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text:?}");
        }
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        for text in [
            "",
            " ",
            "lots",
            "-1",
            "-512Mi",
            "1e3k",
            "1K",
            "1KB",
            "1MB",
            "1gi",
            "1 Gi",
            "Gi",
            ".",
            "1..5",
            "1.5.5",
            "0x10",
            "1e",
            "1e3.5",
            "1ee3",
            "16Ei",
            "18446744073709551616",
            "1e30",
            "inf",
            "NaN",
            "1_000",
            "999999999999999999999999999999999999999999",
        ] {
            let err = parse_bytes(text).expect_err(text);
            assert!(!err.is_empty(), "{text:?}");
        }
        assert!(parse_bytes("-1").unwrap_err().contains("negative"));
        assert!(parse_bytes("1e3k").unwrap_err().contains("exponent"));
        assert!(parse_bytes("16Ei").unwrap_err().contains("too large"));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in ["\u{0}", "1\u{e9}", "é", "1e99999", "1e-99999", "0.000000000000000000000000000000000000000000001"]
        {
            let _ = parse_bytes(text);
        }
        assert_eq!(parse_bytes("1e-9999"), Ok(1));
    }
}
