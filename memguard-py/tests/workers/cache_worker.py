"""A Python worker whose dict cache grows by ``--step`` MiB per request until it has been asked
for ``--total`` MiB — run inside a limited cgroup by ``test_kernel.py``.

``--guard shedder``: the cache is a memguard shedder (evicts oldest entries on Warning/Critical)
and every insert first reserves its size from the soft-limit budget (a refusal rejects the
request). ``--guard on_level``: an ``on_level`` callback drops the oldest half of the cache when
the level rises, and while the level is Warning or above the cache replaces entries instead of
growing. ``--guard clear``: what a new user writes first — an ``on_level`` callback that clears the whole
cache whenever the level rises, and nothing else (memory regrows at full speed afterwards);
``--handler-delay-ms`` makes that callback work that long before it frees anything, and
``--no-predict`` turns memguard's predictive warning off (fraction thresholds only).
``--guard none``: the unguarded twin, which the OOM killer ends. ``--guard dask|ray|kubelet``: the
``on_level`` variant with memguard replaced by a polling watchdog built like Dask's, Ray's or the
kubelet's (``pollers.py``): the same handler, only detection differs (``cargo xtask compare``).

``--warm`` MiB are cached without pause first (a cache already warm when the service starts
growing); ``--rate`` applies after them.

``--events`` prints ``EVENT level <from>-><to>`` and ``EVENT shed <bytes>`` lines on stderr as they
happen (``cargo xtask compare --timeline`` timestamps them).

Prints one JSON line when done.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import OrderedDict

MIB = 1 << 20


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--guard", choices=["none", "shedder", "on_level", "clear", "dask", "ray", "kubelet"], default="none")
    p.add_argument("--step", type=float, default=2.0, help="MiB per request")
    p.add_argument("--total", type=float, default=384.0, help="MiB requested in all")
    p.add_argument("--rate", type=float, default=256.0, help="MiB/s")
    p.add_argument("--warm", type=float, default=0.0, help="MiB cached without pause before --rate applies")
    p.add_argument("--handler-delay-ms", type=float, default=0.0, help="the on_level handler works this long before freeing")
    p.add_argument("--no-predict", action="store_true", help="disable predictive warning (horizon 0)")
    p.add_argument("--events", action="store_true", help="EVENT lines on stderr (level changes, sheds)")
    a = p.parse_args()

    def event(text: str) -> None:
        if a.events:
            print(f"EVENT {text}", file=sys.stderr, flush=True)
    step = int(a.step * MIB)
    lock = threading.Lock()
    cache: "OrderedDict[int, bytes]" = OrderedDict()
    state = {"cached": 0, "evicted": 0, "rejected": 0, "served": 0, "peak_cached": 0, "level_events": 0}

    def evict(target: int) -> int:
        freed = 0
        with lock:
            while cache and freed < target:
                _, v = cache.popitem(last=False)
                freed += len(v)
            state["cached"] -= freed
            state["evicted"] += freed
        return freed

    def shed(target: int) -> int:
        """Evict for a handler or a shedder (not the per-request replacement): a shed point."""
        freed = evict(target)
        event(f"shed {freed}")
        return freed

    guard = None
    start = time.monotonic()
    polled = a.guard in ("dask", "ray", "kubelet")
    if polled:
        from pollers import Poller

        guard = Poller(a.guard)
    elif a.guard != "none":
        import memguard

        guard = memguard.Guard(horizon=(0.0, 0.0)) if a.no_predict else memguard.Guard()
        if a.guard == "shedder":
            guard.register_shedder("dict-cache", shed)
        elif a.guard == "clear":

            @guard.on_level
            def clear(change: "memguard.LevelChange") -> None:
                state["level_events"] += 1
                # A trace on stderr (line-buffered) says what happened when the run is killed.
                snap = change.snapshot
                ttl = f"{snap.time_to_limit * 1000:.0f} ms" if snap.time_to_limit is not None else "-"
                print(f"{time.monotonic() - start:.3f}s {change.previous}->{change.current} at "
                      f"{snap.used_fraction:.3f}, time to limit {ttl}, cached {state['cached'] >> 20} MiB",
                      file=sys.stderr)
                if change.rising:
                    if a.handler_delay_ms:
                        time.sleep(a.handler_delay_ms / 1000.0)  # work before anything is freed
                    shed(1 << 62)

    if a.guard == "on_level" or polled:

        @guard.on_level
        def halve(change: "memguard.LevelChange") -> None:
            state["level_events"] += 1
            if change.rising:
                shed(max(state["cached"] // 2, step))

    if guard is not None and a.events:

        @guard.on_level
        def trace(change: "memguard.LevelChange") -> None:
            event(f"level {int(change.previous)}->{int(change.current)}")

    n = int(a.total * MIB) // step
    paced_from = start  # when the warm part ended (start: the guard's start-up counts, as before)
    for i in range(n):
        if (a.guard == "on_level" or polled) and guard.level() >= (1 if polled else memguard.Level.WARNING):
            evict(step)  # under pressure the cache replaces entries instead of growing
        reservation = guard.try_reserve(step) if guard is not None and a.guard == "shedder" else None
        if guard is not None and a.guard == "shedder" and reservation is None:
            state["rejected"] += 1
            time.sleep(0.001)  # a refused request is answered (503) while the next one arrives
        else:
            value = bytes([i % 251 + 1]) * step  # touches every page
            with lock:
                cache[i] = value
                state["cached"] += step
                state["peak_cached"] = max(state["peak_cached"], state["cached"])
            del value
            state["served"] += 1
            if reservation is not None:
                reservation.release()  # the bytes are now in the cache, hence in measured usage
        done = (i + 1) * step - a.warm * MIB
        if done <= 0:
            paced_from = time.monotonic()  # still warming: no pause
            continue
        wait = done / (a.rate * MIB) - (time.monotonic() - paced_from)
        if wait > 0:
            time.sleep(wait)
    out = dict(state, seconds=round(time.monotonic() - start, 3), guard=a.guard)
    if polled:
        out.update(polls=guard.polls, limit_bytes=guard.limit)
        guard.close()
    elif guard is not None:
        snap = guard.snapshot()
        out.update(
            level=str(snap.level),
            limit_bytes=snap.limit_bytes,
            shed_runs=snap.shed.runs if snap.shed else 0,
            limit_source=snap.limit_source,
            sources=[s.name for s in guard.sources() if s.armed],
        )
        guard.close()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
