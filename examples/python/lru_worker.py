#!/usr/bin/env python3
"""A Python worker with an LRU cache, guarded by memguard.

Every request computes a response of ``--entry`` bytes and caches it — the classic way a
service walks into its container's memory limit. With memguard:

* the LRU cache is registered as a *shedder*: on entering Warning (and again on Critical)
  memguard asks it for the bytes needed to get back under the warning threshold, and it evicts
  its least recently used entries;
* every request first reserves its size from the soft-limit budget; a refusal
  (``memguard.BudgetExceeded``: at Critical, or when the budget is spent) rejects the request
  instead of allocating — the way a web worker would answer 503.

Run ``python lru_worker.py --help``; see README.md for running it in a limited cgroup next to
its unguarded twin (``--no-guard``), which the OOM killer ends with SIGKILL (exit 137).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from typing import Optional

import memguard

MIB = 1 << 20


class LruCache:
    """A byte-size-aware LRU cache, safe to shed from memguard's dispatcher thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: "OrderedDict[int, bytes]" = OrderedDict()
        self.nbytes = 0
        self.evicted_bytes = 0

    def get(self, key: int) -> Optional[bytes]:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: int, value: bytes) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            self.nbytes += len(value) - (len(old) if old is not None else 0)
            self._entries[key] = value

    def shed(self, target_bytes: int) -> int:
        """Evict least recently used entries until ``target_bytes`` are freed; return the bytes freed."""
        freed = 0
        with self._lock:
            while self._entries and freed < target_bytes:
                _, value = self._entries.popitem(last=False)
                freed += len(value)
            self.nbytes -= freed
            self.evicted_bytes += freed
        return freed

    def __len__(self) -> int:
        return len(self._entries)


def size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B") if hasattr(str, "removesuffix") else text.strip().upper()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=400, help="requests to serve (default 400)")
    p.add_argument("--entry", type=size, default=2 * MIB, help="response size, e.g. 2M (default)")
    p.add_argument("--rate", type=size, default=100 * MIB, help="bytes of responses per second (default 100M)")
    p.add_argument("--no-guard", action="store_true", help="run without memguard (the twin that gets OOM-killed)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("lru_worker")

    cache = LruCache()
    guard: Optional[memguard.Guard] = None
    if not args.no_guard:
        guard = memguard.Guard()  # thresholds from MEMGUARD_* or the defaults (0.80 / 0.90)
        guard.register_shedder("lru-cache", cache.shed, priority=0)

        @guard.on_level
        def level_changed(change: memguard.LevelChange) -> None:
            snap = change.snapshot
            log.info(
                "memory level %s -> %s: working set %.1f MiB of %.1f MiB; cache %.1f MiB",
                change.previous, change.current, snap.working_set_bytes / MIB,
                (snap.limit_bytes or 0) / MIB, cache.nbytes / MIB,
            )

        limits = guard.limits()
        log.info("memguard: cgroup %s, limit %s set by %s", limits.cgroup, limits.limit_bytes, limits.limit_cgroup)

    served = rejected = 0
    start = time.monotonic()
    for request in range(args.requests):
        try:
            if guard is not None:
                # Admission control: reserve the response's size before building it.
                with guard.reserve(args.entry):
                    cache.put(request, bytes([request % 251 + 1]) * args.entry)  # touches every page
            else:
                cache.put(request, bytes([request % 251 + 1]) * args.entry)
            served += 1
        except memguard.BudgetExceeded as e:
            rejected += 1
            if rejected == 1 or rejected % 50 == 0:
                log.warning("rejecting request %d (%d so far): %s", request, rejected, e)
        due = (request + 1) * args.entry / args.rate
        time.sleep(max(0.0, due - (time.monotonic() - start)))

    summary = {
        "served": served,
        "rejected": rejected,
        "cached_entries": len(cache),
        "cached_bytes": cache.nbytes,
        "evicted_bytes": cache.evicted_bytes,
        "seconds": round(time.monotonic() - start, 3),
    }
    if guard is not None:
        snap = guard.snapshot()
        summary.update(level=str(snap.level), shed_runs=snap.shed.runs if snap.shed else 0)
        guard.close()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
