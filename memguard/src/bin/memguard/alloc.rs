//! `memguard alloc`: allocate (and touch) memory at a set rate — to check that memguard, and
//! whatever you hang on it, reacts in your container before the OOM killer does. The
//! real-kernel tests and benches use it as their allocation ramp.

use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Parse `512M`, `1G`, `100000`, `1.5G` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let v: f64 = num.parse().map_err(|_| format!("not a size: {s:?} (use e.g. 512M, 1G)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("not a size: {s:?}"));
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((v * mult as f64) as u64)
}

/// `--to`: bytes, or a percentage of the effective limit (`90%`, `MEMGUARD_LIMIT` included).
fn target(to: &str) -> Result<u64, String> {
    if let Some(pct) = to.trim().strip_suffix('%') {
        let p: f64 = pct.parse().map_err(|_| format!("not a percentage: {to:?}"))?;
        // The effective limit as the library sees it: MEMGUARD_* honoured (MEMGUARD_LIMIT too).
        let config = memguard::watch::Builder::from_env().and_then(|b| b.config()).map_err(|e| e.to_string())?;
        let limits = config.detector().detect().map_err(|e| e.to_string())?.with_override(config.limit_override());
        let limit = limits.effective_bytes().ok_or("no limit known to take a percentage of")?;
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        return Ok((limit as f64 * p / 100.0) as u64);
    }
    parse_size(to)
}

pub fn run(rate: &str, to: &str, chunk: &str, after_ms: u64, hold_secs: Option<u64>) -> ExitCode {
    let parsed = (|| Ok::<_, String>((parse_size(rate)?, target(to)?, parse_size(chunk)?)))();
    let (rate, target, chunk) = match parsed {
        Ok((r, t, c)) if r > 0 && c > 0 => (r, t, c),
        Ok(_) => {
            crate::output::error("alloc: rate and chunk must be positive");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            crate::output::error(format_args!("alloc: {e}"));
            return ExitCode::FAILURE;
        }
    };
    std::thread::sleep(Duration::from_millis(after_ms));
    let chunk = usize::try_from(chunk).unwrap_or(usize::MAX);
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut allocated = 0u64;
    let start = Instant::now();
    while allocated < target {
        // vec![x; n] with x != 0 writes every byte: the pages are really faulted in and charged.
        held.push(vec![0x5a; chunk]);
        allocated += chunk as u64;
        #[allow(clippy::cast_precision_loss)]
        let due = Duration::from_secs_f64(allocated as f64 / rate as f64);
        let elapsed = start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let achieved = allocated as f64 / secs.max(1e-9);
    let report =
        format!("{{\"allocated_bytes\":{allocated},\"seconds\":{secs:.6},\"rate_bytes_per_sec\":{achieved:.0}}}");
    // A reader that went away does not stop the hold (the memory is the point).
    let _ = crate::output::line(&mut std::io::stdout().lock(), &report);
    match hold_secs {
        Some(s) => std::thread::sleep(Duration::from_secs(s)),
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
    drop(held);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("512M"), Ok(512 << 20));
        assert_eq!(super::parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(super::parse_size("4096"), Ok(4096));
        assert!(super::parse_size("lots").is_err());
        assert!(super::parse_size("-1G").is_err());
    }
}
