"""``python -m memguard status|watch``: the ``memguard`` CLI, from Python.

Every line is rendered by the Rust core (``memguard::render``), the same code the ``memguard``
binary prints with, so the two never drift: ``status`` prints the limits and usage of this
process (or ``--pid``) as text, ``--json`` or ``--prometheus``; ``watch`` runs a guard and
prints its events until SIGINT/SIGTERM. Both honour every ``MEMGUARD_*`` variable. Exit
status: 0, 1 when ``/proc`` (or the ``--pid``) cannot be read or the guard cannot start, 2 for
an invalid ``MEMGUARD_*`` variable; a reader that goes away (``| head``) ends the output
quietly.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any, NoReturn, Optional, Sequence

from . import _memguard
from ._errors import ConfigError, GuardClosedError, MemguardError
from ._guard import Guard


class _Stop(Exception):
    """Raised by the SIGTERM handler (SIGINT raises KeyboardInterrupt)."""


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _error(e: BaseException) -> int:
    print(f"memguard: {e}", file=sys.stderr)
    return 2 if isinstance(e, ConfigError) else 1


def _cmd_status(args: argparse.Namespace) -> int:
    fmt = "prometheus" if args.prometheus else "json" if args.json else "text"
    try:
        out = _memguard.render_status(fmt, args.root, args.pid, args.probe)
    except MemguardError as e:
        return _error(e)
    _write(out)
    return 0


def _on_sigterm(signum: int, frame: Any) -> NoReturn:
    raise _Stop()


def _cmd_watch(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    fmt = "json" if args.json else "text"
    try:
        guard = Guard(pid=args.pid)
    except MemguardError as e:
        return _error(e)
    native = guard._native
    with guard:
        _write(native.render_header(fmt))
        every = args.snapshot_every / 1000.0 if args.snapshot_every > 0 else None
        next_snap = time.monotonic() + every if every else None
        try:
            while True:
                # Wait for an event (signals are still handled), or until the next snapshot.
                wait = None if next_snap is None else max(0.0, next_snap - time.monotonic())
                line = native.next_event_line(wait, fmt)
                if line is not None:
                    _write(line)
                elif guard.closed:
                    break
                if every and next_snap is not None and time.monotonic() >= next_snap:
                    now = time.monotonic()
                    next_snap = next_snap + every if next_snap + every > now else now + every
                    _write(native.render_snapshot(fmt))
        except (KeyboardInterrupt, _Stop, GuardClosedError):
            pass
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m memguard``."""
    p = argparse.ArgumentParser(
        prog="python -m memguard",
        description="memguard: the real memory limit of this container (the `memguard` CLI, from Python)",
        epilog="Every MEMGUARD_* variable is honoured: " + ", ".join(_memguard.ENV_VARS),
    )
    sub = p.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="report the limits and usage of this process (or --pid)")
    st.add_argument("--json", action="store_true", help="print one JSON object (as `memguard status --json`)")
    st.add_argument("--prometheus", action="store_true", help="print the Prometheus text format")
    st.add_argument("--pid", type=int, help="report on another process")
    st.add_argument("--root", help="read /proc and /sys/fs/cgroup under this directory")
    st.add_argument("--probe", action="store_true", help="create real PSI triggers to test them")
    w = sub.add_parser("watch", help="print events until SIGINT/SIGTERM")
    w.add_argument("--json", action="store_true", help="one JSON object per line")
    w.add_argument("--pid", type=int, help="guard the cgroup of another process")
    w.add_argument(
        "--snapshot-every", "--snapshot-every-ms", type=int, default=0, metavar="MS",
        help="also print a snapshot line every MS milliseconds (0: never)",
    )
    args = p.parse_args(argv)
    if args.command == "status" and args.json and args.prometheus:
        p.error("--json and --prometheus exclude each other")
    try:
        return _cmd_status(args) if args.command == "status" else _cmd_watch(args)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep the interpreter's final
        # flush of stdout from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
