"""Callbacks and shedders on memguard's dispatcher thread (node mode drives the levels)."""

from __future__ import annotations

import logging
import threading
import time
from typing import List

import pytest

import memguard
from memguard import EventKind, Level, LevelChange

from conftest import LIMIT, Node, wait_for


def test_level_callbacks_follow_usage_with_hysteresis(node: Node) -> None:
    with node.guard() as g:
        seen: List[LevelChange] = []
        threads = set()

        @g.on_level
        def record(change: LevelChange) -> None:
            seen.append(change)
            threads.add(threading.current_thread().ident)

        assert isinstance(record, memguard.Subscription) and record.active
        node.set_used(85)
        wait_for("warning", lambda: g.level() == Level.WARNING)
        node.set_used(95)
        wait_for("critical", lambda: g.level() == Level.CRITICAL)
        node.set_used(87)  # inside the hysteresis band: stays critical
        time.sleep(0.1)
        assert g.level() == Level.CRITICAL
        node.set_used(10)
        wait_for("normal", lambda: g.level() == Level.NORMAL)
        wait_for("three callbacks", lambda: len(seen) == 3)
        assert [(c.previous, c.current) for c in seen] == [
            (Level.NORMAL, Level.WARNING),
            (Level.WARNING, Level.CRITICAL),
            (Level.CRITICAL, Level.NORMAL),
        ]
        assert seen[1].snapshot.working_set_bytes >= LIMIT * 95 // 100
        assert seen[0].rising and not seen[2].rising
        assert threading.get_ident() not in threads, "callbacks run on the dispatcher thread"


def test_event_callbacks_and_unsubscribe(node: Node) -> None:
    with node.guard() as g:
        events: List[memguard.Event] = []
        sub = g.on_event(events.append)
        node.set_used(95)
        wait_for("event", lambda: len(events) == 1)
        ev = events[0]
        assert ev.kind == EventKind.LEVEL_CHANGED and ev.kind == "level_changed"
        assert (ev.previous, ev.current, ev.level) == (Level.NORMAL, Level.CRITICAL, Level.CRITICAL)
        assert ev.limit_bytes == LIMIT and ev.monotonic_ns > 0
        assert ev.to_dict()["to"] == "critical"
        with pytest.raises(AttributeError):
            ev.no_such_field  # noqa: B018
        assert sub.unsubscribe() is True
        assert sub.unsubscribe() is False
        node.set_used(10)
        wait_for("normal", lambda: g.level() == Level.NORMAL)
        time.sleep(0.05)
        assert len(events) == 1


def test_exception_in_callback_is_logged_and_the_guard_survives(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="memguard")
    with node.guard() as g:
        calls: List[Level] = []

        @g.on_level
        def broken(change: LevelChange) -> None:
            raise RuntimeError("callback bug")

        g.on_level(lambda c: calls.append(c.current))
        node.set_used(95)
        wait_for("second callback", lambda: len(calls) == 1)
        node.set_used(10)
        wait_for("callbacks after the exception", lambda: len(calls) == 2)
        wait_for("log record", lambda: any("callback bug" in (r.exc_text or "") for r in caplog.records))
        rec = next(r for r in caplog.records if r.exc_info)
        assert rec.name == "memguard" and "on_level callback" in rec.getMessage()
        assert "Traceback" in (rec.exc_text or "") and "broken" in (rec.exc_text or "")
        assert not g.closed


def test_callback_may_call_back_into_the_guard(node: Node) -> None:
    with node.guard() as g:
        nested: List[Level] = []
        seen: List[object] = []
        holder: List[memguard.Subscription] = []

        def cb(change: LevelChange) -> None:
            seen.append((g.level(), g.snapshot().level, g.limits().cgroup, len(g.sources()), g.budget().level))
            with g.reserve(1024):
                pass
            g.prometheus()
            g.on_level(lambda c: nested.append(c.current))
            holder[0].unsubscribe()  # itself, from inside

        holder.append(g.on_level(cb))
        node.set_used(82)  # warning, still under the 85% soft limit
        wait_for("first callback", lambda: len(seen) == 1)
        node.set_used(10)
        wait_for("nested subscriber", lambda: len(nested) == 1)
        time.sleep(0.05)
        assert len(seen) == 1, "unsubscribed from inside itself"


def test_close_from_inside_a_callback(node: Node) -> None:
    g = node.guard()
    done = threading.Event()

    @g.on_level
    def closer(change: LevelChange) -> None:
        g.close()
        done.set()

    node.set_used(95)
    assert done.wait(5)
    wait_for("closed", lambda: g.closed)
    with pytest.raises(memguard.GuardClosedError):
        g.level()
    g.close()  # idempotent


def test_close_while_a_callback_runs_and_needs_the_gil(node: Node) -> None:
    g = node.guard()
    entered = threading.Event()
    finished = threading.Event()

    @g.on_level
    def slow(change: LevelChange) -> None:
        entered.set()
        # Pure Python work that needs the GIL while the main thread is inside close().
        t = time.monotonic()
        while time.monotonic() - t < 0.3:
            sum(range(1000))
        finished.set()

    node.set_used(95)
    assert entered.wait(5)
    t0 = time.monotonic()
    g.close()  # joins the dispatcher: must release the GIL meanwhile
    assert finished.is_set()
    assert time.monotonic() - t0 < 5


def test_callbacks_fire_while_the_main_thread_is_busy(node: Node) -> None:
    with node.guard() as g:
        seen = threading.Event()
        g.on_level(lambda c: seen.set())
        node.set_used(95)
        deadline = time.monotonic() + 5
        while not seen.is_set() and time.monotonic() < deadline:
            sum(range(10000))  # holds the GIL most of the time
        assert seen.is_set()


def test_shedders_are_asked_lowest_priority_first(node: Node) -> None:
    with node.guard() as g:
        calls: List[tuple] = []

        def cheap(target: int) -> int:
            calls.append(("cheap", target))
            return target // 2

        def costly(target: int) -> int:
            calls.append(("costly", target))
            return target

        h2 = g.register_shedder("costly", costly, priority=10)
        h1 = g.register_shedder("cheap", cheap)
        assert isinstance(h1, memguard.ShedderHandle) and h1.priority == 0
        node.set_used(85)
        wait_for("shedding", lambda: len(calls) == 2)
        assert [c[0] for c in calls] == ["cheap", "costly"]
        # Back under warning minus the 5% margin: 85% - 75% of the limit.
        target = calls[0][1]
        assert abs(target - LIMIT * 10 // 100) < LIMIT // 100
        assert calls[1][1] == target - target // 2
        wait_for("report", lambda: g.last_shed() is not None)
        report = g.last_shed()
        assert report is not None and report.met_target and len(report.steps) == 2
        stats = g.snapshot().shed
        assert stats is not None and stats.runs == 1
        assert {s.name for s in stats.shedders} == {"cheap", "costly"}
        assert h1.unregister() and h2.unregister() and not h1.unregister()


def test_shedder_exception_counts_as_zero_and_is_logged(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="memguard")
    with node.guard() as g:
        later: List[int] = []

        def bad(target: int) -> int:
            raise ValueError("cannot shed")

        g.register_shedder("bad", bad, priority=0)
        g.register_shedder("good", lambda t: later.append(t) or t, priority=1)
        node.set_used(85)
        wait_for("second shedder", lambda: len(later) == 1)
        wait_for("report", lambda: g.last_shed() is not None)
        report = g.last_shed()
        assert report is not None
        assert [s.freed_bytes for s in report.steps] == [0, later[0]]
        wait_for("log", lambda: any("cannot shed" in (r.exc_text or "") for r in caplog.records))


def test_shedder_decorator_and_bad_return_value(node: Node) -> None:
    with node.guard() as g:
        asked: List[int] = []

        @g.shedder("weird")
        def weird(target: int) -> int:
            asked.append(target)
            return "lots"  # type: ignore[return-value]

        assert callable(weird)
        node.set_used(85)
        wait_for("shedder", lambda: len(asked) == 1)
        wait_for("report", lambda: g.last_shed() is not None)
        report = g.last_shed()
        assert report is not None and report.freed_bytes == 0


def test_next_event_pull_api(node: Node) -> None:
    with node.guard() as g:
        assert g.next_event(timeout=0.01) is None
        node.set_used(95)
        ev = g.next_event(timeout=5)
        assert ev is not None and ev.kind == EventKind.LEVEL_CHANGED and ev.current == Level.CRITICAL
        node.set_used(10)
        ev = g.next_event(timeout=5)
        assert ev is not None and ev.current == Level.NORMAL

        # A blocking wait ends when another thread closes the guard.
        threading.Timer(0.2, g.close).start()
        t0 = time.monotonic()
        assert g.next_event() is None
        assert time.monotonic() - t0 < 3


def test_guard_keeps_no_reference_cycle_alive(node: Node) -> None:
    import gc
    import weakref

    g = node.guard()
    g.on_level(lambda c: g.level())  # the callback refers to its guard
    g.register_shedder("self", lambda t: g.level() and 0)
    ref = weakref.ref(g)
    del g
    gc.collect()
    assert ref() is None
