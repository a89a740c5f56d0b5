//! `/proc/<pid>/oom_score_adj`: one integer in `-1000..=1000`.

/// Parse `oom_score_adj`.
///
/// # Errors
/// A human-readable reason when the text is not an integer in `-1000..=1000`.
pub fn parse(text: &str) -> Result<i32, String> {
    let t = text.trim();
    match t.parse::<i32>() {
        Ok(v) if (-1000..=1000).contains(&v) => Ok(v),
        _ => Err(format!("expected an integer in -1000..=1000, got {}", super::excerpt(t))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn range_checked() {
        assert_eq!(super::parse("-997\n"), Ok(-997));
        assert!(super::parse("1001").is_err());
        assert!(super::parse("").is_err());
    }
}
