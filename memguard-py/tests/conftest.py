"""Fixtures for the memguard Python suite.

* ``node``: a fixture root with only ``proc/meminfo``: a guard started on it runs in node mode
  (limit = ``MemTotal``, usage = ``MemTotal - MemAvailable``), so rewriting ``MemAvailable``
  drives real level changes through the real reactor, dispatcher and pull queue.
* ``cgroup_v1`` / ``cgroup_v2``: throwaway memory cgroups on the real kernel (v1 natively under
  this process's own memory cgroup, v2 inside the ``cargo xtask vm`` guest). When they cannot
  be created the test is skipped with the reason — or fails when ``CI=true``.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

import memguard

TOTAL_KB = 1_000_000
LIMIT = TOTAL_KB * 1024  # node-mode limit with eviction_threshold=0
PREFIX = "memguard-test-"  # `cargo xtask test` checks that no such cgroup is left behind
WORKERS = Path(__file__).resolve().parent / "workers"
_counter = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kernel_v1: needs the native cgroup v1 memory controller and root")
    config.addinivalue_line("markers", "kernel_v2: needs the cgroup v2 VM (MEMGUARD_IN_VM=1)")


def in_ci() -> bool:
    return os.environ.get("CI", "") in ("true", "1")


def in_vm() -> bool:
    return os.environ.get("MEMGUARD_IN_VM") == "1"


def unavailable(why: str) -> None:
    """A kernel capability is missing: fail in CI, skip (with the reason) elsewhere."""
    if in_ci():
        pytest.fail(f"required kernel capability missing in CI: {why}")
    pytest.skip(why)


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 5.0, interval: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Node:
    """A node-mode fixture root."""

    def __init__(self, root: Path, used_pct: int = 10) -> None:
        self.root = root
        (root / "proc").mkdir(parents=True, exist_ok=True)
        self.path = root / "proc" / "meminfo"
        self.set_used(used_pct)

    def set_used(self, pct: float) -> None:
        """Rewrite MemAvailable in place (same length, one write), so a concurrent read never
        sees a truncated file."""
        avail = int(TOTAL_KB * (100 - pct) / 100)
        text = f"MemTotal:       {TOTAL_KB:>10} kB\nMemAvailable:   {avail:>10} kB\n".encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, text, 0)
        finally:
            os.close(fd)

    def guard(self, **kwargs: object) -> memguard.Guard:
        opts: dict = dict(
            root=self.root,
            eviction_threshold=0,
            sample_interval=(0.001, 0.01),
            event_hold=0.05,
            from_env=False,
        )
        opts.update(kwargs)
        return memguard.Guard(**opts)  # type: ignore[arg-type]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


@pytest.fixture
def node_guard(node: Node) -> Iterator[memguard.Guard]:
    g = node.guard()
    try:
        yield g
    finally:
        g.close()


# --- real cgroups ---------------------------------------------------------------------------


class TestCgroup:
    """A cgroup that kills what is left in it and removes itself (``remove()``)."""

    __test__ = False  # not a test class

    def __init__(self, version: str, path: Path) -> None:
        self.version = version
        self.dir = path
        path.mkdir()

    def write(self, name: str, value: str) -> None:
        (self.dir / name).write_text(value)

    def read(self, name: str) -> str:
        return (self.dir / name).read_text()

    def set_limit(self, nbytes: int) -> None:
        if self.version == "v1":
            self.write("memory.limit_in_bytes", str(nbytes))
            if (self.dir / "memory.memsw.limit_in_bytes").exists():
                self.write("memory.memsw.limit_in_bytes", str(nbytes))  # no swapping instead of OOM
        else:
            self.write("memory.max", str(nbytes))
            if (self.dir / "memory.swap.max").exists():
                self.write("memory.swap.max", "0")

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        for line in self.read(name).splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def command(self, argv: List[str]) -> List[str]:
        """``argv`` run inside this cgroup from its first instruction (a shell joins, then execs)."""
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.dir), *argv]

    def run(self, argv: List[str], timeout: float, env: Optional[dict] = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env
        )

    def pids(self) -> List[int]:
        try:
            return [int(x) for x in self.read("cgroup.procs").split()]
        except OSError:
            return []

    def remove(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.dir.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    print(f"warning: could not remove test cgroup {self.dir}", file=sys.stderr)
                    return
                time.sleep(0.02)


class Kit:
    """Where tests may create cgroups."""

    def __init__(self, version: str, base: Path) -> None:
        self.version = version
        self.base = base
        self.created: List[TestCgroup] = []

    def cgroup(self, label: str) -> TestCgroup:
        cg = TestCgroup(self.version, self.base / f"{PREFIX}py-{os.getpid()}-{next(_counter)}-{label}")
        self.created.append(cg)
        return cg

    def cleanup(self) -> None:
        for cg in reversed(self.created):
            cg.remove()


def _check_writable(base: Path) -> None:
    probe = base / f"{PREFIX}py-probe-{os.getpid()}-{next(_counter)}"
    probe.mkdir()
    probe.rmdir()


def _v1_kit() -> Kit:
    if in_vm():
        pytest.skip("the cgroup v1 suite runs natively, not in the cgroup v2 VM")
    mount = None
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 3 and fields[2] == "cgroup" and "memory" in fields[3].split(","):
                mount = Path(fields[1])
                break
    if mount is None:
        unavailable("no cgroup v1 memory hierarchy is mounted (this is not a v1/hybrid host)")
    own = None
    with open("/proc/self/cgroup") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3 and "memory" in parts[1].split(","):
                own = parts[2]
    if own is None:
        unavailable("this process has no v1 memory cgroup")
    base = mount / own.lstrip("/")  # type: ignore[union-attr,operator]
    try:
        _check_writable(base)
    except OSError as e:
        unavailable(f"cannot create a cgroup under {base}: {e} (needs root and a writable memory cgroup)")
    return Kit("v1", base)


def _v2_kit() -> Kit:
    if not in_vm():
        unavailable("the cgroup v2 suite runs inside the VM (MEMGUARD_IN_VM=1): memguard-py/run-tests.sh")
    base_env = os.environ.get("MEMGUARD_VM_CGROUP")
    if not base_env:
        unavailable("MEMGUARD_VM_CGROUP is not set")
    base = Path(base_env)  # type: ignore[arg-type]
    try:
        ctl = (base / "cgroup.subtree_control").read_text().split()
    except OSError as e:
        unavailable(f"{base}: {e}")
        raise
    if "memory" not in ctl:
        unavailable(f"memory is not enabled in {base}/cgroup.subtree_control")
    try:
        _check_writable(base)
    except OSError as e:
        unavailable(f"cannot create a cgroup under {base}: {e}")
    return Kit("v2", base)


@pytest.fixture
def cgroup_v1() -> Iterator[Kit]:
    kit = _v1_kit()
    try:
        yield kit
    finally:
        kit.cleanup()


@pytest.fixture
def cgroup_v2() -> Iterator[Kit]:
    kit = _v2_kit()
    try:
        yield kit
    finally:
        kit.cleanup()
