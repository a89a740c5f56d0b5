"""Polling memory watchdogs as the field builds them, for ``cache_worker.py --guard dask|ray|kubelet``.

Each is a thread that reads one memory figure every ``interval`` and turns it into a level
(0 Normal, 1 Warning, 2 Critical) against the cgroup's limit; a rise calls the same ``on_level``
handler the memguard variant of the worker registers, so only detection differs:

* ``dask``: the process's RSS (``psutil.Process().memory_info().rss``, read here from
  ``/proc/self/statm``) every 100 ms (``distributed.worker.memory.monitor-interval``), Warning at
  80% of the limit (``distributed.worker.memory.pause``), Critical at 95% (``...terminate``);
* ``ray``: the cgroup's usage minus its inactive file cache every 250 ms
  (``RAY_memory_monitor_refresh_ms``), Warning at 95% (``RAY_memory_usage_threshold``);
* ``kubelet``: the working set (usage minus inactive file cache, cAdvisor's
  ``container_memory_working_set_bytes``) every 10 s (``--housekeeping-interval``), Warning when
  less than 100 MiB is left (``evictionHard: memory.available<100Mi``).
"""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

PAGE = os.sysconf("SC_PAGE_SIZE")


def _cgroup_dir() -> tuple[str, int]:
    """The memory cgroup directory of this process and its cgroup version."""
    with open("/proc/self/cgroup") as f:
        lines = [ln.rstrip("\n").split(":", 2) for ln in f]
    for _, ctrls, path in lines:
        if "memory" in ctrls.split(","):
            return "/sys/fs/cgroup/memory" + path, 1
    for hid, ctrls, path in lines:
        if hid == "0" and ctrls == "":
            return "/sys/fs/cgroup" + path, 2
    raise RuntimeError("no memory cgroup")


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            v = f.read().strip()
    except OSError:
        return None
    return None if v == "max" else int(v)


def _stat(path: str, key: str) -> int:
    with open(path) as f:
        for ln in f:
            k, v = ln.split()
            if k == key:
                return int(v)
    return 0


class Poller:
    """A watchdog with memguard's ``on_level``/``level()`` surface, driven by polling."""

    KINDS = {
        # name: (interval s, figure, Warning fraction or None, Critical fraction or None, headroom bytes)
        "dask": (0.100, "rss", 0.80, 0.95, None),
        "ray": (0.250, "working_set", 0.95, None, None),
        "kubelet": (10.0, "working_set", None, None, 100 << 20),
    }

    def __init__(self, kind: str) -> None:
        self.interval, self.figure, self.warn, self.crit, self.headroom = self.KINDS[kind]
        self.dir, self.version = _cgroup_dir()
        limit_file = "memory.limit_in_bytes" if self.version == 1 else "memory.max"
        self.limit = _read_int(os.path.join(self.dir, limit_file)) or (1 << 62)
        self.handlers: list = []
        self._level = 0
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{kind}-watchdog", daemon=True)
        self._thread.start()

    def on_level(self, fn):
        self.handlers.append(fn)
        return fn

    def level(self) -> int:
        return self._level

    def used(self) -> int:
        if self.figure == "rss":
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * PAGE
        if self.version == 1:
            usage = _read_int(os.path.join(self.dir, "memory.usage_in_bytes")) or 0
            return usage - _stat(os.path.join(self.dir, "memory.stat"), "total_inactive_file")
        usage = _read_int(os.path.join(self.dir, "memory.current")) or 0
        return usage - _stat(os.path.join(self.dir, "memory.stat"), "inactive_file")

    def judge(self, used: int) -> int:
        if self.headroom is not None:
            return 1 if self.limit - used < self.headroom else 0
        frac = used / self.limit
        if self.crit is not None and frac >= self.crit:
            return 2
        return 1 if frac >= self.warn else 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.polls += 1
            new = self.judge(self.used())
            if new != self._level:
                change = SimpleNamespace(previous=self._level, current=new, rising=new > self._level)
                self._level = new
                for fn in self.handlers:
                    fn(change)

    def close(self) -> None:
        self._stop.set()
