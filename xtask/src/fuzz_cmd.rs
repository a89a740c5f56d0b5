//! `cargo xtask fuzz [--minutes N] [--target NAME]...`: a fuzzing campaign over every
//! `cargo fuzz` target of `memguard/fuzz`, the minutes shared equally between the targets.
//!
//! Each target starts from, and grows, its committed corpus `memguard/fuzz/corpus/<target>/`
//! (the one `cargo xtask test` replays before fuzzing briefly); `--minimize` runs
//! `cargo fuzz cmin` on each corpus afterwards so what is committed stays small. A crash leaves
//! its input in `memguard/fuzz/artifacts/<target>/` and makes the command fail. The closing
//! table gives, per target, the executions, the corpus size before and after, and the outcome.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask fuzz [--minutes N] [--target NAME]... [--minimize]

Fuzzes every target of memguard/fuzz (or the ones named) for N minutes in all (default 60),
starting from and growing the committed corpora in memguard/fuzz/corpus/. Fails on a crash.
";

pub fn main(args: Vec<String>) -> i32 {
    let mut minutes = 60.0f64;
    let mut only: Vec<String> = Vec::new();
    let mut minimize = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--minutes" => match it.next().and_then(|v| v.parse::<f64>().ok()).filter(|m| *m > 0.0) {
                Some(m) => minutes = m,
                None => return usage_error("--minutes needs a positive number"),
            },
            "--target" => match it.next() {
                Some(t) => only.push(t),
                None => return usage_error("--target needs a name"),
            },
            "--minimize" => minimize = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return 0;
            }
            other => return usage_error(&format!("unknown argument `{other}`")),
        }
    }
    let fuzz_dir = crate::test_cmd::workspace_root().join("memguard");
    if let Err(why) = crate::test_cmd::ensure_cargo_fuzz() {
        eprintln!("xtask fuzz: {why}");
        return 1;
    }
    let mut targets = crate::test_cmd::fuzz_targets(&fuzz_dir);
    if !only.is_empty() {
        if let Some(unknown) = only.iter().find(|t| !targets.contains(t)) {
            return usage_error(&format!("no fuzz target `{unknown}` (targets: {})", targets.join(", ")));
        }
        targets.retain(|t| only.contains(t));
    }
    if targets.is_empty() {
        eprintln!("xtask fuzz: `cargo fuzz list` found no targets");
        return 1;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let secs = ((minutes * 60.0) / targets.len() as f64).round().max(1.0) as u64;
    println!("xtask fuzz: {} target(s) × {secs} s", targets.len());
    let mut rows = Vec::new();
    let mut failed = false;
    for t in &targets {
        let corpus = fuzz_dir.join("fuzz/corpus").join(t);
        let _ = std::fs::create_dir_all(&corpus);
        let before = count_files(&corpus);
        let start = Instant::now();
        let out = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", t])
            .arg(&corpus)
            .args(["--", &format!("-max_total_time={secs}"), "-print_final_stats=1"])
            .current_dir(&fuzz_dir)
            .output();
        let (ok, text) = match out {
            Ok(o) => (
                o.status.success(),
                format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
            ),
            Err(e) => (false, format!("cargo fuzz: {e}")),
        };
        let execs = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned());
        if !ok {
            failed = true;
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(40)..] {
                println!("{line}");
            }
        }
        if ok && minimize {
            let _ = Command::new("cargo")
                .args(["+nightly", "fuzz", "cmin", t])
                .arg(&corpus)
                .current_dir(&fuzz_dir)
                .output();
        }
        let after = count_files(&corpus);
        let row = format!(
            "{t:<16} {:>8.0}s {execs:>14} {before:>8} {after:>8}  {}",
            start.elapsed().as_secs_f64(),
            if ok { "ok" } else { "CRASH (see memguard/fuzz/artifacts)" }
        );
        println!("{row}");
        rows.push(row);
    }
    println!("\n{:<16} {:>9} {:>14} {:>8} {:>8}  outcome", "target", "time", "executions", "corpus", "after");
    for r in &rows {
        println!("{r}");
    }
    i32::from(failed)
}

fn usage_error(msg: &str) -> i32 {
    eprintln!("xtask fuzz: {msg}\n{USAGE}");
    2
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).count()).unwrap_or(0)
}
