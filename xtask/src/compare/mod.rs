//! `cargo xtask compare`: memguard against what users would use instead, on the same real
//! kernel in the same run — survival of a growing cache at a 256 MiB limit (unguarded, polling
//! watchdogs built like Dask's, Ray's and the kubelet's, the JVM's `MemoryPoolMXBean`
//! threshold, Go's `automemlimit`, memguard from Python, Rust, C and Java), what each tool
//! detects in the real-kernel suites' cgroup layouts, and what memguard costs. Writes
//! `docs/benchmarks.md` and the PNG plots under `docs/benchmarks/` (see `USAGE`).
//!
//! The contenders are data ([`contenders::CONTENDERS`]); the campaign runs natively on this
//! machine's cgroup version and, with `--vm`, inside the cgroup v2 VM (`cargo xtask vm`).

mod contenders;
mod cost;
mod report;
mod survival;
mod truth;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::runc::cgroup::{Kit, Version};
use crate::runc::{in_ci, workspace_root};
use crate::vm;
use contenders::{Contender, FULL_SPEED};

const USAGE: &str = "\
usage: cargo xtask compare [--runs N] [--vm] [--vm-runs N] [--vm-rates LIST] [--only SUBSTRING] [--rates LIST]
                           [--out DIR] [--skip-truth] [--skip-cost] [--check] [--vm-only] [--report-only] [--short]
                           [--cost-only]

Runs every contender's growing-cache worker toward a 256 MiB limit (each run in a fresh cgroup
of its own: 128 MiB cached at once, then 4 MiB entries at the rate up to 320 MiB), the detection
truth table and the cost measurements, on this machine's kernel, and writes DIR/benchmarks.md
with DIR/benchmarks/*.png and DIR/benchmarks/results.json. The defaults take about 17 minutes
on 2 shared cores (the survival runs ~15); --vm adds about 11 (the Java cells in a second VM).

options:
  --runs N         runs per contender and rate natively (default 20)
  --vm             also run the survival campaign inside the cgroup v2 VM (qemu TCG: slow)
  --vm-runs N      runs per cell in the VM (default 5); the VM runs the contenders marked in_vm,
                   the Java ones in a second VM with one vCPU (JIT crashes under multi-vCPU TCG)
  --vm-rates LIST  allocation rates in the VM (default 256,full)
  --only S         only the contenders whose id contains S (repeatable)
  --rates LIST     allocation rates in MiB/s, `full` for as fast as the worker goes
                   (default 96,512,full)
  --out DIR        where benchmarks.md and benchmarks/ go (default docs)
  --skip-truth     no detection truth table
  --skip-cost      no cost measurements
  --check          fail (exit 1) when a memguard contender does not survive every run or an
                   unguarded one survives
  --vm-only        only the VM campaign (as --vm), replacing the cgroup v2 survival and truth
                   table in DIR/benchmarks/results.json, then rewrite the report
  --cost-only      only the cost measurements (about 3 minutes), replacing the cost in
                   DIR/benchmarks/results.json, then rewrite the report
  --report-only    measure nothing: rewrite DIR/benchmarks.md and the plots from
                   DIR/benchmarks/results.json (a run's raw data)
  --timeline       only the memory-over-time picture: one traced run of each Python contender
                   (unguarded, the three pollers, memguard on_level and shedder) at each of
                   --rates natively (and --vm-rates in the VM with --vm): the cgroup's usage every
                   2 ms, the worker's level changes and shed points; added to
                   DIR/benchmarks/results.json, then the report is rewritten
  --short          only the short version `cargo xtask test` runs (Python and Rust workers at
                   full speed, 2 runs each, checked as --check; report in a temporary directory)
  -h, --help       this help

Needs root and a writable memory cgroup, Python 3 with the memguard package, a JDK 17 and Maven,
Go (the automemlimit module comes from the Go module proxy), a C compiler; matplotlib is
installed with pip when missing. A contender whose worker cannot be built is reported as not run
(an error with CI=true).
";

/// Parsed command line.
#[derive(Clone)]
pub struct Options {
    runs: u32,
    vm: bool,
    vm_runs: u32,
    vm_rates: Vec<u64>,
    only: Vec<String>,
    rates: Vec<u64>,
    out: PathBuf,
    truth: bool,
    cost: bool,
    check: bool,
    /// Set by the host when it runs this command inside the VM (survival only, JSON out).
    inside_vm: bool,
    /// Inside the VM: only the [`Contender::one_vcpu`] contenders (else all the others).
    one_vcpu: bool,
    /// Only the short version `cargo xtask test` runs ([`short`]).
    short: bool,
    /// Only rewrite the report from `out/benchmarks/results.json`.
    report_only: bool,
    /// Only the VM campaign, replacing the cgroup v2 parts of `out/benchmarks/results.json`.
    vm_only: bool,
    /// Only the cost measurements, replacing the cost in `out/benchmarks/results.json`.
    cost_only: bool,
    /// Only the memory-over-time runs (natively, and in the VM with `--vm`), added to
    /// `out/benchmarks/results.json`.
    timeline: bool,
}

/// The native campaign's default rates: slow, medium, as fast as the worker goes. The slow
/// rate was 64 MiB/s: with 16 contenders x 20 runs per rate, its column alone took 28 of the
/// run's 43 minutes (a survivor ran 6 s). With the workers starting from a warm cache
/// ([`contenders::WARM_MIB`]) and asking for 1.25x the limit instead of 1.5x
/// ([`contenders::TOTAL_MIB`]), the columns cost here, per 20 runs: 96 MiB/s ~620 s, 512 MiB/s
/// ~175 s, full speed ~95 s; with the build, the truth table and the cost (~110 s) the default
/// run takes ~17 min. 96 rather than 128 MiB/s: the slow column is where a 250 ms poller still
/// keeps up (the Ray-like one survived every run at 64 and 96 MiB/s, none at 128).
const DEFAULT_RATES: [u64; 3] = [96, 512, FULL_SPEED];

fn rates(list: &str) -> Result<Vec<u64>, String> {
    list.split(',')
        .map(|r| if r == "full" { Ok(FULL_SPEED) } else { r.parse().map_err(|e| format!("rate {r}: {e}")) })
        .collect()
}

fn rate_list(rates: &[u64]) -> String {
    let v: Vec<String> = rates.iter().map(|&r| if r >= FULL_SPEED { "full".into() } else { r.to_string() }).collect();
    v.join(",")
}

fn parse(args: Vec<String>) -> Result<Option<Options>, String> {
    let mut o = Options {
        runs: 20,
        vm: false,
        vm_runs: 5,
        vm_rates: vec![256, FULL_SPEED],
        only: Vec::new(),
        rates: DEFAULT_RATES.to_vec(),
        out: workspace_root().join("docs"),
        truth: true,
        cost: true,
        check: false,
        inside_vm: false,
        one_vcpu: false,
        short: false,
        report_only: false,
        vm_only: false,
        cost_only: false,
        timeline: false,
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--runs" => o.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--vm-runs" => o.vm_runs = value()?.parse().map_err(|e| format!("--vm-runs: {e}"))?,
            "--vm" => o.vm = true,
            "--only" => o.only.push(value()?),
            "--rates" => o.rates = rates(&value()?)?,
            "--vm-rates" => o.vm_rates = rates(&value()?)?,
            "--out" => o.out = PathBuf::from(value()?),
            "--skip-truth" => o.truth = false,
            "--skip-cost" => o.cost = false,
            "--check" => o.check = true,
            "--inside-vm" => o.inside_vm = true,
            "--one-vcpu" => o.one_vcpu = true,
            "--short" => o.short = true,
            "--report-only" => o.report_only = true,
            "--vm-only" => (o.vm, o.vm_only) = (true, true),
            "--timeline" => o.timeline = true,
            "--cost-only" => o.cost_only = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if o.runs == 0 || o.rates.is_empty() {
        return Err("--runs and --rates must not be empty".into());
    }
    Ok(Some(o))
}

pub fn main(args: Vec<String>) -> i32 {
    let opts = match parse(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("xtask compare: {e}\n{USAGE}");
            return 2;
        }
    };
    if opts.inside_vm {
        return inside_vm(&opts);
    }
    if opts.report_only || opts.vm_only || opts.timeline || opts.cost_only {
        let path = opts.out.join("benchmarks/results.json");
        let mut results: Value = match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                eprintln!("xtask compare: {}: {e}", path.display());
                return 1;
            }
        };
        if opts.vm_only {
            println!("== compare: survival and truth table inside the cgroup v2 VM, {} run(s) per cell", opts.vm_runs);
            let v = match vm_campaign(&opts, &workspace_root()) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("xtask compare: the VM campaign failed: {e}");
                    return 1;
                }
            };
            merge_vm(&mut results, &v);
        }
        if opts.cost_only {
            match cost_only() {
                Ok(c) => results["cost"] = c,
                Err(e) => {
                    eprintln!("xtask compare --cost-only: {e}");
                    return 1;
                }
            }
        }
        if opts.timeline {
            match timelines(&opts) {
                Ok(t) => results["timelines"] = Value::Array(t),
                Err(e) => {
                    eprintln!("xtask compare --timeline: {e}");
                    return 1;
                }
            }
        }
        return match report::write(&opts.out, &results) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("xtask compare: writing the report: {e}");
                1
            }
        };
    }
    if opts.short {
        return match short() {
            Ok(o) => {
                for f in o.failures.iter().chain(&o.not_run) {
                    println!("FAIL {f}");
                }
                println!(
                    "compare (short): {} passed, {} failed, {} not run",
                    o.passed,
                    o.failures.len(),
                    o.not_run.len()
                );
                i32::from(!o.failures.is_empty() || (in_ci() && !o.not_run.is_empty()))
            }
            Err(e) => {
                println!("compare (short): cannot run: {e}");
                1
            }
        };
    }
    let started = Instant::now();
    let root = workspace_root();
    let target = contenders::target_dir(&root);
    let kit = match Kit::v1()
        .or_else(|v1| Kit::v2().map_err(|v2| format!("no writable memory cgroup: v1: {v1}; v2: {v2}")))
    {
        Ok(k) => k,
        Err(e) => {
            eprintln!("xtask compare: {e}");
            return 1;
        }
    };
    println!("== compare: building the workers");
    let tools = contenders::prepare(&root, &target, true);
    let select = |c: &Contender| opts.only.is_empty() || opts.only.iter().any(|o| c.id.contains(o.as_str()));
    println!("== compare: survival, {} run(s) per cell, cgroup {}", opts.runs, version_name(kit.version));
    let cells = survival::campaign(&kit, &tools, &opts.rates, opts.runs, &select);
    let mut campaigns = vec![campaign_json(&machine(kit.version, false), opts.runs, &cells, &native_command(&opts))];
    let mut failures: Vec<String> = Vec::new();
    for cell in &cells {
        if let Some(v) = cell.violation() {
            let line = format!("{} @ {}: {v}", cell.contender.id, survival::rate_name(cell.rate));
            println!("  {}: {line}", if opts.check { "FAIL" } else { "note" });
            failures.push(line);
        }
    }
    let mut truth = Vec::new();
    if opts.truth {
        println!("== compare: detection truth table (cgroup {})", version_name(kit.version));
        let mut t = truth::rows(&kit, &target);
        t["machine"] = machine(kit.version, false);
        truth.push(t);
    }
    if opts.vm {
        println!("== compare: survival and truth table inside the cgroup v2 VM, {} run(s) per cell", opts.vm_runs);
        match vm_campaign(&opts, &root) {
            Ok(v) => {
                campaigns.push(v["survival"].clone());
                if !v["truth"].is_null() {
                    truth.push(v["truth"].clone());
                }
            }
            Err(e) => {
                println!("  the VM campaign failed: {e}");
                failures.push(format!("VM campaign: {e}"));
            }
        }
    }
    let truth = (!truth.is_empty()).then_some(truth);
    let cost = if opts.cost {
        println!("== compare: cost");
        Some(cost::measure(&kit, &root, &target))
    } else {
        None
    };
    let results = json!({
        "campaigns": campaigns, "truth": truth, "cost": cost,
        "elapsed_secs": started.elapsed().as_secs_f64(),
    });
    if let Err(e) = report::write(&opts.out, &results) {
        eprintln!("xtask compare: writing the report: {e}");
        return 1;
    }
    println!(
        "== compare: wrote {} ({:.0} s)",
        opts.out.join("benchmarks.md").display(),
        started.elapsed().as_secs_f64()
    );
    if opts.check && !failures.is_empty() {
        println!("compare: {} check(s) failed", failures.len());
        return 1;
    }
    if in_ci() && failures.iter().any(|f| f.contains("not run")) {
        println!("compare: a contender could not run in CI");
        return 1;
    }
    0
}

/// Replaces the cgroup v2 parts of `results` with what a VM campaign measured: its survival
/// campaign if it has cells (`--only` matching nothing measures the truth table alone), its
/// truth table if any.
fn merge_vm(results: &mut Value, vm: &Value) {
    let measured = [
        ("campaigns", &vm["survival"], vm["survival"]["cells"].as_array().is_some_and(|c| !c.is_empty())),
        ("truth", &vm["truth"], !vm["truth"].is_null()),
    ];
    for (key, new, yes) in measured {
        if !yes {
            continue;
        }
        if results[key].is_null() {
            results[key] = json!([]); // a run made with --skip-truth
        }
        if let Some(list) = results[key].as_array_mut() {
            list.retain(|x| x["machine"]["cgroup"] != "v2");
            list.push(new.clone());
        }
    }
}

/// The command line that reproduces the native figures.
fn native_command(o: &Options) -> String {
    let mut c = format!("cargo xtask compare --runs {} --rates {}", o.runs, rate_list(&o.rates));
    for s in &o.only {
        c.push_str(&format!(" --only {s}"));
    }
    if o.vm {
        c.push_str(&format!(" --vm --vm-runs {} --vm-rates {}", o.vm_runs, rate_list(&o.vm_rates)));
    }
    c
}

fn version_name(v: Version) -> &'static str {
    match v {
        Version::V1 => "v1",
        Version::V2 => "v2",
    }
}

fn campaign_json(machine: &Value, runs: u32, cells: &[survival::Cell], command: &str) -> Value {
    json!({
        "machine": machine, "runs": runs, "limit": survival::LIMIT, "command": command,
        "total_mib": contenders::TOTAL_MIB, "step_mib": contenders::STEP_MIB, "warm_mib": contenders::WARM_MIB,
        "cells": cells.iter().map(survival::Cell::to_json).collect::<Vec<_>>(),
    })
}

/// What the figures ran on: CPU model and cores, kernel, cgroup version, emulation.
pub fn machine(version: Version, in_vm: bool) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let hypervisor = cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    let emulation = if in_vm {
        "qemu TCG (emulated CPU, ~5-10x slower)".to_owned()
    } else if hypervisor {
        "none (a hypervisor guest, hardware-virtualised)".to_owned()
    } else {
        "none".to_owned()
    };
    json!({"cpu": model, "cores": cores, "kernel": kernel, "cgroup": version_name(version), "emulation": emulation})
}

/// Runs the survival campaign inside the VM and returns its JSON: one boot with two vCPUs for
/// the truth table and every `in_vm` contender but the [`Contender::one_vcpu`] ones, then (for
/// the survival campaign, when any is selected) one boot with one vCPU for those, whose cells
/// are appended (their ids listed in `survival.one_vcpu`).
fn vm_campaign(o: &Options, root: &std::path::Path) -> Result<Value, String> {
    let mut v = vm_boot(o, root, false)?;
    let selected = |c: &&Contender| c.in_vm && (o.only.is_empty() || o.only.iter().any(|s| c.id.contains(s.as_str())));
    let one: Vec<&str> = contenders::CONTENDERS.iter().filter(selected).filter(|c| c.one_vcpu).map(|c| c.id).collect();
    if !o.timeline && !one.is_empty() {
        println!("== compare: the {} inside a VM with one vCPU", one.join(", "));
        let single = vm_boot(o, root, true)?;
        let cells = single["survival"]["cells"].as_array().cloned().unwrap_or_default();
        if let Some(all) = v["survival"]["cells"].as_array_mut() {
            all.extend(cells);
        }
        v["survival"]["one_vcpu"] = json!(one);
    }
    Ok(v)
}

/// One VM boot of [`vm_campaign`]: `one_vcpu` selects its contenders and its vCPU count.
fn vm_boot(o: &Options, root: &std::path::Path, one_vcpu: bool) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out_dir = contenders::target_dir(root).join("compare/vm-out");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("mkdir {}: {e}", out_dir.display()))?;
    let mut command = vec![exe.display().to_string(), "compare".into(), "--inside-vm".into()];
    command.extend(["--runs".into(), o.vm_runs.to_string(), "--rates".into(), rate_list(&o.vm_rates)]);
    for s in &o.only {
        command.extend(["--only".into(), s.clone()]);
    }
    if !o.truth || one_vcpu {
        command.push("--skip-truth".into());
    }
    if o.timeline {
        command.push("--timeline".into());
    }
    if one_vcpu {
        command.push("--one-vcpu".into());
    }
    let mut opts = vm::VmOptions::new(command);
    opts.cwd = root.to_path_buf();
    opts.out_dir = Some(out_dir.clone());
    opts.timeout = Duration::from_secs(3600);
    if one_vcpu {
        opts.cpus = 1;
    }
    if let Some(py) = crate::runc::python_setup(root).ok().map(|(exe, _)| exe) {
        opts.env.push(("MEMGUARD_TEST_PYTHON".into(), py));
    }
    let outcome = vm::run(&opts)?;
    let text = std::fs::read_to_string(out_dir.join("survival.json"))
        .map_err(|e| format!("the VM wrote no survival.json (exit {}): {e}", outcome.exit_code))?;
    serde_json::from_str(&text).map_err(|e| format!("survival.json: {e}"))
}

/// Only the cost measurements ([`cost::measure`]), after building what they run.
fn cost_only() -> Result<Value, String> {
    let root = workspace_root();
    let target = contenders::target_dir(&root);
    let kit =
        Kit::v1().or_else(|v1| Kit::v2().map_err(|v2| format!("no writable memory cgroup: v1: {v1}; v2: {v2}")))?;
    println!("== compare: building the workers");
    contenders::prepare(&root, &target, true);
    println!("== compare: cost");
    Ok(cost::measure(&kit, &root, &target))
}

/// The memory-over-time runs: natively at `--rates`, and in the VM at `--vm-rates` with `--vm`;
/// one JSON object per cgroup version (machine, command, series).
fn timelines(o: &Options) -> Result<Vec<Value>, String> {
    let root = workspace_root();
    let target = contenders::target_dir(&root);
    let kit =
        Kit::v1().or_else(|v1| Kit::v2().map_err(|v2| format!("no writable memory cgroup: v1: {v1}; v2: {v2}")))?;
    println!("== compare: memory over time (cgroup {})", version_name(kit.version));
    let tools = contenders::prepare(&root, &target, true);
    let select = |c: &Contender| o.only.is_empty() || o.only.iter().any(|s| c.id.contains(s.as_str()));
    let mut command = format!("cargo xtask compare --timeline --rates {}", rate_list(&o.rates));
    if o.vm {
        command.push_str(&format!(" --vm --vm-rates {}", rate_list(&o.vm_rates)));
    }
    let mut out = vec![json!({
        "machine": machine(kit.version, false), "command": command, "limit": survival::LIMIT,
        "series": survival::timeline(&kit, &tools, &o.rates, &select),
    })];
    if o.vm {
        println!("== compare: memory over time inside the cgroup v2 VM");
        let vm_opts = Options { truth: false, ..o.clone() };
        let v = vm_campaign(&vm_opts, &root)?;
        let mut t = v["timeline"].clone();
        t["command"] = Value::String(command);
        out.push(t);
    }
    Ok(out)
}

/// Inside the VM: the survival campaign of the `in_vm` contenders on cgroup v2, written as JSON
/// to `$MEMGUARD_VM_OUT/survival.json`.
fn inside_vm(o: &Options) -> i32 {
    let root = workspace_root();
    let target = contenders::target_dir(&root);
    let kit = match Kit::v2() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("compare --inside-vm: {e}");
            return 1;
        }
    };
    // Charge the workers' text to this cgroup once (re-read over 9p in every small cgroup
    // otherwise, slowly; see the runc suite).
    let tools = contenders::prepare(&root, &target, false);
    let select = |c: &Contender| {
        c.in_vm && c.one_vcpu == o.one_vcpu && (o.only.is_empty() || o.only.iter().any(|s| c.id.contains(s.as_str())))
    };
    for c in contenders::CONTENDERS.iter().filter(|c| select(c)) {
        if let Ok(argv) = (c.argv)(&tools, FULL_SPEED) {
            let mut small: Vec<String> = argv.clone();
            if let Some(i) = small.iter().position(|a| a == "--total") {
                small[i + 1] = if c.lang == "Rust" { "8M".into() } else { "8".into() };
            }
            let _ = Command::new(&small[0]).args(&small[1..]).output();
        }
    }
    if o.timeline {
        let v = json!({"timeline": {
            "machine": machine(Version::V2, true), "limit": survival::LIMIT,
            "series": survival::timeline(&kit, &tools, &o.rates, &select),
        }});
        let out = std::env::var_os("MEMGUARD_VM_OUT").map_or_else(|| PathBuf::from("/mnt/out"), PathBuf::from);
        return match std::fs::write(out.join("survival.json"), v.to_string()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("compare --inside-vm: write survival.json: {e}");
                1
            }
        };
    }
    let cells = survival::campaign(&kit, &tools, &o.rates, o.runs, &select);
    let command = format!("cargo xtask compare --vm-only --vm-runs {} --vm-rates {}", o.runs, rate_list(&o.rates));
    let mut v = json!({"survival": campaign_json(&machine(Version::V2, true), o.runs, &cells, &command)});
    if o.truth {
        let mut t = truth::rows(&kit, &target);
        t["machine"] = machine(Version::V2, true);
        v["truth"] = t;
    }
    let out = std::env::var_os("MEMGUARD_VM_OUT").map_or_else(|| PathBuf::from("/mnt/out"), PathBuf::from);
    match std::fs::write(out.join("survival.json"), v.to_string()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("compare --inside-vm: write survival.json: {e}");
            1
        }
    }
}

/// The contenders of the short version `cargo xtask test` runs.
const SHORT: &[&str] = &[
    "py-unguarded",
    "py-dask-like",
    "py-memguard-level",
    "py-memguard-shedder",
    "rust-unguarded",
    "rust-memguard-shedder",
];

/// Outcome of the short version: cells as expected, cells contradicting their expectation
/// (each with why), cells that could not run (each with why).
pub struct ShortOutcome {
    pub passed: u64,
    pub failures: Vec<String>,
    pub not_run: Vec<String>,
}

/// The short version of the comparison for `cargo xtask test`: [`SHORT`] natively at full
/// speed, 2 runs each; memguard must survive every run and the unguarded workers must die. The
/// report goes to a temporary directory (the committed docs are never touched).
///
/// # Errors
/// No writable memory cgroup here.
pub fn short() -> Result<ShortOutcome, String> {
    let root = workspace_root();
    let target = contenders::target_dir(&root);
    let kit =
        Kit::v1().or_else(|v1| Kit::v2().map_err(|v2| format!("no writable memory cgroup: v1: {v1}; v2: {v2}")))?;
    let tools = contenders::prepare(&root, &target, true);
    let select = |c: &Contender| SHORT.contains(&c.id);
    let runs = 2;
    let cells = survival::campaign(&kit, &tools, &[FULL_SPEED], runs, &select);
    let mut out = ShortOutcome { passed: 0, failures: Vec::new(), not_run: Vec::new() };
    for cell in &cells {
        let name = format!("{} @ {}", cell.contender.id, survival::rate_name(cell.rate));
        match (&cell.runs, cell.violation()) {
            (Err(why), _) => out.not_run.push(format!("{name}: {why}")),
            (Ok(_), Some(v)) => out.failures.push(format!("{name}: {v}")),
            (Ok(_), None) => out.passed += 1,
        }
    }
    let dir = std::env::temp_dir().join(format!("memguard-compare-short-{}", std::process::id()));
    let results = json!({"campaigns": [campaign_json(&machine(kit.version, false), runs, &cells, "cargo xtask test (compare, short)")]});
    if let Err(e) = report::write(&dir, &results) {
        out.failures.push(format!("writing the report: {e}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}
