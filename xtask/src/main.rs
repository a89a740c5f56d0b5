//! Project automation for memguard, run as `cargo xtask <command>`.
//!
//! * `cargo xtask test` — the one test command: unit and fixture tests, the native cgroup v1
//!   real-kernel suite and the cgroup v2 suite inside a throwaway VM, with counts per suite.
//! * `cargo xtask fuzz [--minutes N]` — a fuzzing campaign growing the committed corpora.
//! * `cargo xtask runc` — memguard inside real `runc` containers and Kubernetes-shaped cgroup
//!   hierarchies on this machine's cgroup version (see `runc/mod.rs`).
//! * `cargo xtask compare [--runs N] [--vm]` — memguard against polling watchdogs, the JVM's
//!   thresholds and Go's `automemlimit` on the same kernel; writes `docs/benchmarks.md` (see
//!   `compare/mod.rs`).
//! * `cargo xtask vm [options] -- <cmd> [args...]` — run one command inside a throwaway
//!   `qemu-system-x86_64` guest with a pure cgroup v2 hierarchy (see `vm/mod.rs`).

mod compare;
mod fuzz_cmd;
mod runc;
mod test_cmd;
mod vm;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  test [--skip-vm] [--no-fuzz]    run every test suite (unit, native cgroup v1, cgroup v2 VM)
  fuzz [--minutes N] [--minimize] a fuzzing campaign over every target (default 60 minutes),
                                  growing the committed corpora in memguard/fuzz/corpus/
  runc [--matrix-only] [--table] [--only S]
                                  memguard in runc containers and Kubernetes-shaped cgroups
                                  (this machine's cgroup version; needs root and runc)
  compare [--runs N] [--vm] ...   memguard against the alternatives (survival, detection,
                                  cost); writes docs/benchmarks.md and its plots
                                  (`cargo xtask compare --help`)
  vm [options] -- <cmd> [args]    run a command inside a throwaway cgroup v2 VM
                                  (`cargo xtask vm --help` for options)
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(cmd) = args.next() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = args.collect();
    let code = match cmd.as_str() {
        "test" => test_cmd::main(rest),
        "vm" => vm::main(rest),
        "fuzz" => fuzz_cmd::main(rest),
        "runc" => runc::main(rest),
        "compare" => compare::main(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            0
        }
        other => {
            eprintln!("xtask: unknown command `{other}`\n{USAGE}");
            2
        }
    };
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}
