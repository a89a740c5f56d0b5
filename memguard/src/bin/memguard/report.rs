//! The human-readable `memguard status` report.

use std::fmt::Write as _;

use memguard::{CgroupVersion, Status};

/// Bytes as a short binary-unit string: `512.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn opt_bytes(n: Option<u64>) -> String {
    n.map_or_else(|| "unknown".to_owned(), bytes)
}

/// The one-shot status as Prometheus metrics: limit, usage, working set, soft limit and the
/// level a single sample gives with the default thresholds.
pub fn prometheus(s: &Status) -> String {
    let cfg = memguard::watch::Config::default();
    let level =
        s.used_fraction.map_or(memguard::Level::Normal, |f| cfg.thresholds.level_for(f, memguard::Level::Normal));
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let input = memguard::MetricsInput {
        limit_bytes: s.limits.limit_bytes,
        usage_bytes: s.limit_usage_bytes,
        working_set_bytes: s.limit_working_set_bytes,
        soft_limit_bytes: s.limits.limit_bytes.map(|l| (l as f64 * cfg.soft_limit) as u64),
        level,
        cgroup: s.limits.cgroup.as_str().to_owned(),
        ..memguard::MetricsInput::default()
    };
    memguard::render_prometheus(&input).trim_end().to_owned()
}

/// Render the report.
pub fn human(s: &Status, pid: Option<u32>) -> String {
    let l = &s.limits;
    let mut o = String::new();
    let who = pid.map_or_else(|| format!("this process (pid {})", std::process::id()), |p| format!("pid {p}"));
    let _ = writeln!(o, "memguard {} — memory of {who}", s.memguard_version);
    let row = |o: &mut String, k: &str, v: String| {
        let _ = writeln!(o, "  {k:<16}{v}");
    };
    match (l.cgroup, &l.cgroup_path) {
        (CgroupVersion::None, _) | (_, None) => row(&mut o, "cgroup", "none (no memory cgroup)".into()),
        (v, Some(p)) => {
            row(&mut o, "cgroup", format!("{} {p} ({})", v.as_str(), l.cgroup_dir.as_deref().unwrap_or("?")))
        }
    }
    let limit = match (l.limit_bytes, &l.limit_cgroup) {
        (Some(b), Some(c)) => format!("{} set by {c}", bytes(b)),
        (Some(b), None) => format!("{} set above the visible cgroup root", bytes(b)),
        (None, _) if l.limit_maybe_hidden => {
            "none visible — a limit may be hidden above the cgroup namespace root".into()
        }
        (None, _) => format!("none (host memory {} is the bound)", opt_bytes(l.host_total_bytes)),
    };
    row(&mut o, "limit", limit);
    if l.limit_bytes.is_some() && l.limit_maybe_hidden {
        row(&mut o, "", "a tighter limit may be hidden above the cgroup namespace root".into());
    }
    let high_name = if l.cgroup == CgroupVersion::V1 { "soft limit" } else { "memory.high" };
    row(
        &mut o,
        high_name,
        match (l.high_bytes, &l.high_cgroup) {
            (Some(b), Some(c)) => format!("{} set by {c}", bytes(b)),
            _ => "none".into(),
        },
    );
    row(&mut o, "swap limit", l.swap_limit_bytes.map_or_else(|| "none".into(), bytes));
    row(
        &mut o,
        "usage",
        format!(
            "{} (working set {}, peak {})",
            opt_bytes(s.usage_bytes),
            opt_bytes(s.working_set_bytes),
            opt_bytes(s.peak_bytes)
        ),
    );
    if l.limit_dir.is_some() && l.limit_dir != l.cgroup_dir {
        row(
            &mut o,
            "at limit cgroup",
            format!("{} (working set {})", opt_bytes(s.limit_usage_bytes), opt_bytes(s.limit_working_set_bytes)),
        );
    }
    if let (Some(h), Some(f)) = (s.headroom_bytes, s.used_fraction) {
        row(&mut o, "headroom", format!("{} ({:.1}% of the limit in use)", bytes(h), f * 100.0));
    }
    row(
        &mut o,
        "host",
        format!("{} total, {} available", opt_bytes(l.host_total_bytes), opt_bytes(s.host_available_bytes)),
    );
    row(
        &mut o,
        "oom_score_adj",
        match (l.oom_score_adj, l.qos_class) {
            (Some(a), Some(q)) => format!("{a} (Kubernetes QoS {})", q.as_str()),
            (Some(a), None) => format!("{a} (not a value the kubelet sets)"),
            (None, _) => "unknown".into(),
        },
    );
    let armed: Vec<&str> = s.sources.iter().filter(|x| x.armed).map(|x| x.name.as_str()).collect();
    row(&mut o, "event sources", if armed.is_empty() { "none armed".into() } else { armed.join(", ") });
    if !l.notes.is_empty() {
        let _ = writeln!(o, "  notes:");
        for n in &l.notes {
            let _ = writeln!(o, "    - {n}");
        }
    }
    o.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_units() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(512 << 20), "512.0 MiB");
        assert_eq!(super::bytes(3 << 30), "3.0 GiB");
    }
}
