//! Command-line parsing for `cargo xtask vm`.

use std::path::PathBuf;
use std::time::Duration;

use super::VmOptions;

/// Help text of `cargo xtask vm --help`.
pub const USAGE: &str = "\
usage: cargo xtask vm [options] -- <cmd> [args...]

Runs <cmd> inside a throwaway qemu (TCG) guest with a pure cgroup v2 hierarchy. The host root
is the guest's root (read-only, with a tmpfs overlay); the command runs as root in cgroup
/sys/fs/cgroup/memguard-vm/runner, in the host's current directory. Its stdout and stderr are
streamed to the host's, and its exit code is returned.

options:
  --timeout SECS   kill the VM after SECS seconds of wall time (default 600; exit code 124)
  --mem MIB        guest memory in MiB (default 2048)
  --cpus N         guest CPUs (default 2)
  --env K=V        extra environment variable for the command (repeatable)
  --out DIR        host directory shared read-write at /mnt/out (default: a new
                   directory under target/vm/)
  -h, --help       this help

guest environment: PATH, CI, RUST_BACKTRACE, RUST_LOG and MEMGUARD_* from the host, HOME=/root,
the --env ones, MEMGUARD_IN_VM=1, MEMGUARD_VM_CGROUP=/sys/fs/cgroup/memguard-vm,
MEMGUARD_VM_OUT=/mnt/out.
environment: MEMGUARD_VM_CACHE overrides the kernel/initramfs cache (default target/vm-cache).
exit status: the command's, 124 on timeout, 125 on a harness failure, 2 on a usage error.
";

/// What the command line asks for.
#[derive(Debug)]
pub enum Cli {
    Help,
    Run(VmOptions),
}

/// Parses the arguments after `vm`.
pub fn parse(args: &[String]) -> Result<Cli, String> {
    let mut opts = VmOptions::new(Vec::new());
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            opts.command = args[i + 1..].to_vec();
            break;
        }
        if !arg.starts_with('-') {
            opts.command = args[i..].to_vec();
            break;
        }
        if arg == "-h" || arg == "--help" {
            return Ok(Cli::Help);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            args.get(i).cloned().ok_or_else(|| format!("{name} needs a value"))
        };
        match name {
            "--timeout" => opts.timeout = Duration::from_secs_f64(parse_secs(&value()?)?),
            "--mem" => opts.memory_mib = parse_number(name, &value()?, 64)?,
            "--cpus" => opts.cpus = parse_number(name, &value()?, 1)?,
            "--env" => opts.env.push(parse_env(&value()?)?),
            "--out" => opts.out_dir = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown option `{arg}`")),
        }
        i += 1;
    }
    if opts.command.is_empty() {
        return Err("missing command: cargo xtask vm [options] -- <cmd> [args...]".into());
    }
    Ok(Cli::Run(opts))
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        _ => Err(format!("--timeout: `{s}` is not a positive number of seconds")),
    }
}

fn parse_number(name: &str, s: &str, min: u32) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(format!("{name}: `{s}` is not a whole number >= {min}")),
    }
}

/// Parses `K=V` (V may be empty or contain `=`).
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("--env: `{s}` is not K=V"))?;
    if !super::runscript::is_valid_env_name(k) {
        return Err(format!("--env: `{k}` is not a valid variable name"));
    }
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> VmOptions {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args) {
            Ok(Cli::Run(o)) => o,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn parse_err(args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&args).unwrap_err()
    }

    #[test]
    fn defaults() {
        let o = parse_ok(&["--", "true"]);
        assert_eq!(o.command, ["true"]);
        assert_eq!(o.timeout, Duration::from_secs(600));
        assert_eq!((o.memory_mib, o.cpus), (2048, 2));
        assert!(o.env.is_empty() && o.out_dir.is_none());
    }

    #[test]
    fn all_options() {
        let o = parse_ok(&[
            "--timeout",
            "20",
            "--mem=512",
            "--cpus",
            "1",
            "--env",
            "A=b=c",
            "--env=E=",
            "--out",
            "/tmp/o",
            "--",
            "sh",
            "-c",
            "exit 3",
            "--mem",
        ]);
        assert_eq!(o.timeout, Duration::from_secs(20));
        assert_eq!((o.memory_mib, o.cpus), (512, 1));
        assert_eq!(o.env, [("A".into(), "b=c".into()), ("E".into(), String::new())]);
        assert_eq!(o.out_dir.as_deref(), Some(std::path::Path::new("/tmp/o")));
        assert_eq!(o.command, ["sh", "-c", "exit 3", "--mem"]);
    }

    #[test]
    fn command_without_separator() {
        assert_eq!(parse_ok(&["--cpus", "1", "ls", "-l"]).command, ["ls", "-l"]);
    }

    #[test]
    fn errors() {
        assert!(parse_err(&["--",]).contains("missing command"));
        assert!(parse_err(&[]).contains("missing command"));
        assert!(parse_err(&["--timeout"]).contains("needs a value"));
        assert!(parse_err(&["--timeout", "x", "--", "a"]).contains("--timeout"));
        assert!(parse_err(&["--timeout", "-1", "--", "a"]).contains("--timeout"));
        assert!(parse_err(&["--mem", "1", "--", "a"]).contains("--mem"));
        assert!(parse_err(&["--env", "NOVALUE", "--", "a"]).contains("K=V"));
        assert!(parse_err(&["--env", "1A=2", "--", "a"]).contains("valid variable name"));
        assert!(parse_err(&["--bogus", "--", "a"]).contains("unknown option"));
        assert!(matches!(parse(&["-h".to_string()]), Ok(Cli::Help)));
    }
}
