"""``os.fork()`` with a running guard: the child never hangs and can start its own guard; the
parent's guard keeps working."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from typing import List

import pytest

import memguard
from memguard import Level

from conftest import Node, wait_for


def _wait_child(pid: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child hung")


def _child_checks(node: Node, g: memguard.Guard) -> int:
    """Runs in the child; returns an exit code (0 = all good)."""
    try:
        assert g.forked and g.closed
        for call in (g.level, g.snapshot, lambda: g.reserve(1), lambda: g.on_level(print)):
            try:
                call()
            except memguard.GuardClosedError as e:
                assert "fork" in str(e)
            else:
                return 3
        assert g.next_event(timeout=0.01) is None
        g.close()  # a no-op: never joins the parent's threads
        with node.guard() as mine:  # a fresh guard of the child's own
            seen = threading.Event()
            mine.on_level(lambda c: seen.set())
            node.set_used(95)
            if not seen.wait(5):
                return 4
            assert mine.level() == Level.CRITICAL
        del g
        return 0
    except AssertionError:
        import traceback

        traceback.print_exc()
        return 2


def test_fork_with_a_running_guard(node: Node) -> None:
    g = node.guard()
    parent_levels: List[Level] = []
    g.on_level(lambda c: parent_levels.append(c.current))
    # A callback is registered and the threads are idle-waiting: fork now.
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            code = _child_checks(node, g)
        finally:
            os._exit(code)
    assert _wait_child(pid) == 0
    # The parent's guard still works (and saw the child's write to the shared fixture file).
    assert not g.closed and not g.forked
    wait_for("parent critical", lambda: g.level() == Level.CRITICAL)
    node.set_used(10)
    wait_for("parent normal", lambda: g.level() == Level.NORMAL)
    wait_for("parent callbacks", lambda: parent_levels[-1:] == [Level.NORMAL])
    g.close()


def _mp_child(root: str, q: "multiprocessing.Queue[str]") -> None:
    # Inherits the parent's module state (fork start method), including its guard object.
    parent_guard = _MP_GUARDS[0]
    try:
        parent_guard.level()
        q.put("inherited guard usable?!")
        return
    except memguard.GuardClosedError:
        pass
    with Node(__import__("pathlib").Path(root), used_pct=10).guard() as g:
        q.put(f"child level {g.level()}")


_MP_GUARDS: List[memguard.Guard] = []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_multiprocessing_fork_start_method(node: Node) -> None:
    ctx = multiprocessing.get_context("fork")
    with node.guard() as g:
        _MP_GUARDS.append(g)
        try:
            q: "multiprocessing.Queue[str]" = ctx.Queue()
            procs = [ctx.Process(target=_mp_child, args=(str(node.root), q)) for _ in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(30)
                assert p.exitcode == 0, "a forked worker hung or failed"
            results = sorted(q.get(timeout=5) for _ in procs)
            assert results == ["child level normal"] * 3
            assert g.level() == Level.NORMAL and not g.closed
        finally:
            _MP_GUARDS.clear()


def test_fork_while_a_callback_is_running(node: Node) -> None:
    g = node.guard()
    entered = threading.Event()
    release = threading.Event()

    @g.on_level
    def slow(change: memguard.LevelChange) -> None:
        entered.set()
        release.wait(5)

    node.set_used(95)
    assert entered.wait(5)
    pid = os.fork()  # the dispatcher thread is inside Python code right now
    if pid == 0:
        code = 1
        try:
            assert g.closed
            del g
            import gc

            gc.collect()  # dropping the inherited guard must not join anything
            with Node(node.root).guard() as mine:
                mine.level()
            code = 0
        finally:
            os._exit(code)
    assert _wait_child(pid) == 0
    release.set()
    g.close()
