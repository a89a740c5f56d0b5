"""The Python probe of `cargo xtask compare`'s per-language cost table: the same scenario as
`benches/src/bin/cost-probe.rs` (read it for the details), through the `memguard` package.

    python3 probe.py SHM_FILE ROUNDS

Prints one JSON line of raw figures; xtask summarises them. The callback's first statement runs
on memguard's dispatcher thread once it holds the GIL, after the package's trampoline built the
`Event`.
"""

import json
import os
import sys
import time

import memguard

PAIRS_PER_ROUND = 5000  # 20 MiB of churn a round: within the soft limit's room
RESERVE_ROUNDS = 8  # the first 3 warm up, the last 5 are kept


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def wait_level(guard: memguard.Guard, normal: bool) -> None:
    end = time.monotonic() + 5
    while (guard.level() == memguard.Level.NORMAL) != normal and time.monotonic() < end:
        time.sleep(0.001)


def main() -> None:
    path, rounds = sys.argv[1], int(sys.argv[2])
    rss_before, threads_before = rss_bytes(), threads()
    guard = memguard.Guard(limit_override=128 << 20, psi=False, from_env=False)
    events = []

    def on_event(e: memguard.Event) -> None:
        now = time.monotonic_ns()
        if e.kind == memguard.EventKind.LEVEL_CHANGED:
            events.append((e.monotonic_ns, now))

    guard.on_event(on_event)
    time.sleep(0.2)
    rss_after, threads_after = rss_bytes(), threads()

    reserve_ns = []
    for rnd in range(RESERVE_ROUNDS):
        time.sleep(0.1)  # the previous round's bytes settle
        start = time.perf_counter_ns()
        for _ in range(PAIRS_PER_ROUND):
            r = guard.try_reserve(4096)
            if r is None:
                sys.exit("try_reserve refused")
            r.release()
        if rnd >= 3:
            reserve_ns.append((time.perf_counter_ns() - start) / PAIRS_PER_ROUND)

    chunk = b"\x01" * (1 << 20)
    triggers = []
    with open(path, "w+b", buffering=0) as f:
        for _ in range(rounds):
            f.seek(0)
            for _ in range(120):
                triggers.append(time.monotonic_ns())
                f.write(chunk)
            wait_level(guard, False)
            triggers.append(time.monotonic_ns())
            f.truncate(0)
            wait_level(guard, True)
    time.sleep(0.2)
    guard.close()
    os.unlink(path)
    print(json.dumps({
        "events": events, "triggers": triggers, "reserve_ns": reserve_ns,
        "rss_before": rss_before, "rss_after": rss_after,
        "threads_before": threads_before, "threads_after": threads_after,
    }))


main()
