"""Closing and garbage collection release every fd and thread."""

from __future__ import annotations

import gc
import os
import threading
import time

import memguard

from conftest import Node


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tasks() -> int:
    return len(os.listdir("/proc/self/task"))


def settle(baseline_fds: int, baseline_tasks: int, timeout: float = 5.0) -> tuple:
    """Wait for detached helper threads (the log forwarder idles out after 1 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fds() <= baseline_fds and tasks() <= baseline_tasks:
            break
        time.sleep(0.05)
    return fds(), tasks()


def _warm_up(node: Node) -> None:
    with node.guard() as g:
        g.on_level(lambda c: None)
        node.set_used(95)
        g.next_event(timeout=5)
        node.set_used(10)
        g.next_event(timeout=5)


def test_fifty_guards_closed_leave_nothing(node: Node) -> None:
    _warm_up(node)
    memguard._memguard._flush_logs(2.0)
    base_fds, base_tasks, base_threads = fds(), tasks(), threading.active_count()
    time.sleep(1.5)  # let the log forwarder idle out
    base_fds, base_tasks = min(base_fds, fds()), min(base_tasks, tasks())
    for i in range(50):
        g = node.guard()
        g.on_event(lambda e: None)
        g.register_shedder("x", lambda t: 0)
        r = g.reserve_forced(1024)
        assert tasks() >= base_tasks + 2  # reactor + dispatcher
        if i % 10 == 0:
            node.set_used(95 if i % 20 == 0 else 10)
        g.close()
        r.release()
    after_fds, after_tasks = settle(base_fds, base_tasks)
    assert after_fds <= base_fds, f"fds leaked: {base_fds} -> {after_fds}"
    assert after_tasks <= base_tasks, f"threads leaked: {base_tasks} -> {after_tasks}"
    assert threading.active_count() <= base_threads


def test_del_and_gc_release_everything(node: Node) -> None:
    _warm_up(node)
    time.sleep(1.5)
    base_fds, base_tasks = fds(), tasks()
    for _ in range(20):
        g = node.guard()
        # A reference cycle through a callback: only the cycle collector can free it.
        g.on_level(lambda c, g=g: g.level())
        g.register_shedder("cycle", lambda t, g=g: 0)
        del g
    gc.collect()
    after_fds, after_tasks = settle(base_fds, base_tasks)
    assert after_fds <= base_fds, f"fds leaked: {base_fds} -> {after_fds}"
    assert after_tasks <= base_tasks, f"threads leaked: {base_tasks} -> {after_tasks}"


def test_guard_without_cycle_is_freed_by_refcount(node: Node) -> None:
    time.sleep(1.2)
    base_fds, base_tasks = fds(), tasks()
    g = node.guard()
    g.on_level(lambda c: None)
    del g  # no gc.collect(): plain reference counting closes it
    after_fds, after_tasks = settle(base_fds, base_tasks)
    assert (after_fds, after_tasks) == (base_fds, base_tasks) or (after_fds <= base_fds and after_tasks <= base_tasks)
