"""``python -m memguard status [--json]`` and ``python -m memguard watch [--json]``.

Mirrors the ``memguard`` CLI: ``status`` prints the limits and usage of this process (or
``--pid``), ``watch`` runs a guard and prints its events until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any, List, Optional, Sequence

from . import Guard, GuardClosedError, MemguardError, status
from ._types import Event, Status


def _bytes(n: Optional[int]) -> str:
    if n is None:
        return "unknown"
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    v = float(n)
    unit = 0
    while v >= 1024.0 and unit < len(units) - 1:
        v /= 1024.0
        unit += 1
    return f"{n} B" if unit == 0 else f"{v:.1f} {units[unit]}"


def _human_status(s: Status, pid: Optional[int]) -> str:
    lim = s.limits
    who = f"pid {pid}" if pid is not None else f"this process (pid {os.getpid()})"
    out: List[str] = [f"memguard {s.memguard_version} — memory of {who}"]

    def row(k: str, v: str) -> None:
        out.append(f"  {k:<16}{v}")

    if lim.cgroup == "none" or lim.cgroup_path is None:
        row("cgroup", "none (no memory cgroup)")
    else:
        row("cgroup", f"{lim.cgroup} {lim.cgroup_path} ({lim.cgroup_dir or '?'})")
    if lim.limit_bytes is not None and lim.limit_cgroup is not None:
        limit = f"{_bytes(lim.limit_bytes)} set by {lim.limit_cgroup}"
    elif lim.limit_bytes is not None:
        limit = f"{_bytes(lim.limit_bytes)} set above the visible cgroup root"
    elif lim.limit_maybe_hidden:
        limit = "none visible — a limit may be hidden above the cgroup namespace root"
    else:
        limit = f"none (host memory {_bytes(lim.host_total_bytes)} is the bound)"
    row("limit", limit)
    high_name = "soft limit" if lim.cgroup == "v1" else "memory.high"
    row(high_name, f"{_bytes(lim.high_bytes)} set by {lim.high_cgroup}" if lim.high_bytes is not None else "none")
    row("swap limit", _bytes(lim.swap_limit_bytes) if lim.swap_limit_bytes is not None else "none")
    row(
        "usage",
        f"{_bytes(s.usage_bytes)} (working set {_bytes(s.working_set_bytes)}, peak {_bytes(s.peak_bytes)})",
    )
    if lim.limit_dir is not None and lim.limit_dir != lim.cgroup_dir:
        row("at limit cgroup", f"{_bytes(s.limit_usage_bytes)} (working set {_bytes(s.limit_working_set_bytes)})")
    if s.headroom_bytes is not None and s.used_fraction is not None:
        row("headroom", f"{_bytes(s.headroom_bytes)} ({s.used_fraction * 100:.1f}% of the limit in use)")
    row("host", f"{_bytes(lim.host_total_bytes)} total, {_bytes(s.host_available_bytes)} available")
    if lim.oom_score_adj is None:
        adj = "unknown"
    elif lim.qos_class:
        adj = f"{lim.oom_score_adj} (Kubernetes QoS {lim.qos_class})"
    else:
        adj = f"{lim.oom_score_adj} (not a value the kubelet sets)"
    row("oom_score_adj", adj)
    armed = [x.name for x in s.sources if x.armed]
    row("event sources", ", ".join(armed) if armed else "none armed")
    if lim.notes:
        out.append("  notes:")
        out.extend(f"    - {n}" for n in lim.notes)
    return "\n".join(out)


def _human_event(ev: Event) -> str:
    d: Any = ev.details
    k = str(ev.kind)
    if k == "level_changed":
        what = f"level {d['from']} -> {d['to']}"
    elif k in ("high", "max", "oom", "oom_kill"):
        label = {"high": "memory.high exceeded", "max": "memory.max hit", "oom": "OOM in cgroup"}.get(k)
        what = (
            f"OOM KILL: {d['delta']} process(es) killed (total {d['count']})"
            if k == "oom_kill"
            else f"{label} (+{d['delta']}, total {d['count']})"
        )
    elif k == "psi":
        what = f"PSI {d['stall']} trigger fired ({d['scope']})"
    elif k == "vm_pressure":
        what = f"v1 memory pressure {d['severity']}"
    elif k == "threshold":
        what = f"usage crossed {_bytes(d['threshold_bytes'])} {d['direction']}"
    elif k == "limit_changed":
        old = _bytes(d["old"]) if d["old"] is not None else "none"
        new = _bytes(d["new"]) if d["new"] is not None else "none"
        what = f"limit changed {old} -> {new}"
    elif k == "cgroup_removed":
        what = f"cgroup {d['cgroup']} removed"
    else:
        what = f"{k} {dict(d)}"
    ws = _bytes(ev.working_set_bytes) if ev.working_set_bytes is not None else "?"
    limit = _bytes(ev.limit_bytes) if ev.limit_bytes is not None else "none"
    return f"[{ev.monotonic_ns / 1e9:>14.6f}] {str(ev.level):<8} {what}  (working set {ws} / limit {limit})"


def _cmd_status(args: argparse.Namespace) -> int:
    try:
        s = status(root=args.root, pid=args.pid)
    except MemguardError as e:
        print(f"memguard: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(s.to_dict(), indent=2))
    else:
        print(_human_status(s, args.pid))
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        guard = Guard(pid=args.pid)
    except MemguardError as e:
        print(f"memguard: {e}", file=sys.stderr)
        return 1
    with guard:
        snap = guard.snapshot()
        if args.json:
            header = {
                "kind": "started",
                "monotonic_ns": snap.monotonic_ns,
                "level": str(snap.level),
                "limit_bytes": snap.limit_bytes,
                "working_set_bytes": snap.working_set_bytes,
                "sources": [{"name": s.name, "armed": s.armed, "detail": s.detail} for s in guard.sources()],
            }
            print(json.dumps(header), flush=True)
        else:
            limit = _bytes(snap.limit_bytes) if snap.limit_bytes is not None else "none"
            print(
                f"memguard watch: level {snap.level}, working set {_bytes(snap.working_set_bytes)} / limit {limit} "
                f"({snap.limit_source})"
            )
            for s in guard.sources():
                mark = "armed  " if s.armed else "absent "
                print(f"  {mark} {s.name:<22} {s.detail or ''}")
            sys.stdout.flush()
        every = args.snapshot_every_ms / 1000.0 if args.snapshot_every_ms > 0 else None
        next_snap = time.monotonic() + every if every else None
        try:
            while not stopping:
                ev = guard.next_event(0.1)
                if ev is not None:
                    print(json.dumps(ev.to_dict()) if args.json else _human_event(ev), flush=True)
                if every and next_snap is not None and time.monotonic() >= next_snap:
                    next_snap += every
                    s = guard.snapshot()
                    if args.json:
                        print(json.dumps({"kind": "snapshot", "level": str(s.level),
                                          "working_set_bytes": s.working_set_bytes,
                                          "limit_bytes": s.limit_bytes,
                                          "monotonic_ns": s.monotonic_ns}), flush=True)
                    else:
                        frac = (s.used_fraction or 0.0) * 100
                        print(
                            f"[{s.monotonic_ns / 1e9:>14.6f}] {str(s.level):<8} snapshot: working set "
                            f"{_bytes(s.working_set_bytes)} ({frac:.1f}%), interval {s.sample_interval_ms:.1f} ms",
                            flush=True,
                        )
        except KeyboardInterrupt:
            pass
        except GuardClosedError:
            pass
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m memguard``."""
    p = argparse.ArgumentParser(prog="python -m memguard", description="memguard: the real memory limit of this container")
    sub = p.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="report the limits and usage of this process (or --pid)")
    st.add_argument("--json", action="store_true", help="print one JSON object (as `memguard status --json`)")
    st.add_argument("--pid", type=int, help="report on another process")
    st.add_argument("--root", help="read /proc and /sys/fs/cgroup under this directory")
    w = sub.add_parser("watch", help="print events until SIGINT/SIGTERM")
    w.add_argument("--json", action="store_true", help="one JSON object per line")
    w.add_argument("--pid", type=int, help="guard the cgroup of another process")
    w.add_argument("--snapshot-every-ms", type=int, default=0, metavar="MS", help="also print a snapshot every MS")
    args = p.parse_args(argv)
    if args.command == "status":
        return _cmd_status(args)
    return _cmd_watch(args)


if __name__ == "__main__":
    sys.exit(main())
