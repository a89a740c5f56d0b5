//! Values of `MEMGUARD_*` environment variables: durations, booleans, fractions and counts
//! (byte quantities are in [`quantity`](super::quantity)).
//!
//! * Durations: a number and a unit — `250ms`, `2s`, `1.5s`, `5m`, `1h`, `100us` — or a bare
//!   number of seconds (`0.25`). Note that `m` is minutes here (in a byte quantity it is milli).
//! * Booleans: `1`/`0`, `true`/`false` (any case).
//! * Fractions: a decimal number (`0.8`); range checks are the builder's.
//!
//! Surrounding whitespace is ignored; anything else is an error with the reason.

use std::time::Duration;

/// Parse a duration (see the module docs).
///
/// # Errors
/// A reason for anything that is not a non-negative finite duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = |why: &str| Err(format!("{} is not a duration: {why} (use e.g. 250ms, 2s, 1.5s, 5m)", super::excerpt(t)));
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let secs_per_unit = match unit.trim_start() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ if num.is_empty() && t.starts_with('-') => return bad("negative"),
        _ => return bad("unknown unit (ms, s, m, h; a bare number is seconds)"),
    };
    let Some(value) = parse_decimal(num) else { return bad("not a number") };
    Duration::try_from_secs_f64(value * secs_per_unit).or_else(|_| bad("too large"))
}

/// Parse a boolean: `1`, `0`, `true`, `false` (any case).
///
/// # Errors
/// A reason for anything else.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(format!("{} is not a boolean (use 1, 0, true or false)", super::excerpt(text.trim()))),
    }
}

/// Parse a fraction or any finite decimal number (`0.8`, `.85`, `1`).
///
/// # Errors
/// A reason for anything that is not a finite decimal number.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let body = t.strip_prefix('-').unwrap_or(t);
    match parse_decimal(body) {
        Some(v) if body.len() < t.len() => Ok(-v),
        Some(v) => Ok(v),
        None => Err(format!("{} is not a decimal number (use e.g. 0.8)", super::excerpt(t))),
    }
}

/// Parse an unsigned integer (`1024`).
///
/// # Errors
/// A reason for anything else.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{} is not a whole number", super::excerpt(t)));
    }
    t.parse().map_err(|_| format!("{} is too large", super::excerpt(t)))
}

/// Digits with at most one decimal point, at least one digit (no sign, exponent, `inf`, `NaN`).
fn parse_decimal(s: &str) -> Option<f64> {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let points = s.bytes().filter(|b| *b == b'.').count();
    if digits == 0 || points > 1 || digits + points != s.len() {
        return None;
    }
    s.parse().ok().filter(|v: &f64| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, d) in [
            ("250ms", Duration::from_millis(250)),
            ("2s", Duration::from_secs(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("100us", Duration::from_micros(100)),
            ("2", Duration::from_secs(2)),
            ("0.25", Duration::from_millis(250)),
            (" 10 s ", Duration::from_secs(10)),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Ok(d), "{text:?}");
        }
        for text in [
            "",
            "ms",
            "-1s",
            "-5",
            "1.2.3s",
            "5 minutes",
            "1d",
            "1e3",
            "inf",
            "NaN",
            "1e400",
            "99999999999999999999999h",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?}");
        }
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
    }

    #[test]
    fn booleans_fractions_counts() {
        for (t, b) in [("1", true), ("0", false), ("true", true), ("FALSE", false), (" True ", true)] {
            assert_eq!(parse_bool(t), Ok(b), "{t}");
        }
        for t in ["", "yes", "2", "on", "-1"] {
            assert!(parse_bool(t).is_err(), "{t}");
        }
        assert_eq!(parse_fraction("0.8"), Ok(0.8));
        assert_eq!(parse_fraction(".85"), Ok(0.85));
        assert_eq!(parse_fraction("-0.5"), Ok(-0.5));
        for t in ["", "80%", "inf", "NaN", "0.8.1", "1e-1", "--1"] {
            assert!(parse_fraction(t).is_err(), "{t}");
        }
        assert_eq!(parse_count("1024"), Ok(1024));
        for t in ["", "-1", "1.5", "1k", "99999999999999999999999"] {
            assert!(parse_count(t).is_err(), "{t}");
        }
    }
}
