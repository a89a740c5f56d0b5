"""Soft-limit budget semantics across the boundary (node mode: limit 1 GB, 10% used)."""

from __future__ import annotations

import gc
import threading

import pytest

import memguard
from memguard import Level

from conftest import LIMIT, Node, wait_for

SOFT = int(LIMIT * 0.85)
USED = LIMIT * 10 // 100


def test_reserve_within_and_over_the_soft_limit(node_guard: memguard.Guard) -> None:
    b = node_guard.budget()
    assert b.soft_limit_bytes == SOFT
    assert b.usage_bytes == USED
    assert b.available_bytes == SOFT - USED
    assert (b.settling_bytes, b.stocked_bytes) == (0, 0)

    with pytest.raises(memguard.BudgetExceeded) as info:
        node_guard.reserve(SOFT)
    e = info.value
    assert isinstance(e, MemoryError)
    assert (e.requested, e.available, e.soft_limit, e.level, e.scope) == (SOFT, SOFT - USED, SOFT, Level.NORMAL, None)
    assert "requested" in str(e)

    with node_guard.reserve(100 << 20) as r:
        assert isinstance(r, memguard.Reservation)
        assert r.nbytes == 100 << 20 and not r.released
        assert node_guard.budget().outstanding_bytes == 100 << 20
        assert node_guard.budget().available_bytes == SOFT - USED - (100 << 20)
    assert r.released and r.nbytes == 0
    assert node_guard.budget().outstanding_bytes == 0
    # Released bytes stay counted (settling) until a usage sample taken after the release.
    wait_for("a sample after the release", lambda: node_guard.budget().settling_bytes == 0)
    assert node_guard.budget().available_bytes == SOFT - USED
    stats = node_guard.budget()
    assert (stats.granted, stats.refused) == (1, 1)


def test_try_reserve_returns_none_when_refused(node_guard: memguard.Guard) -> None:
    r = node_guard.try_reserve(SOFT - USED)
    assert r is not None
    # committed = usage + outstanding + settling: nothing is left.
    assert node_guard.budget().available_bytes == 0
    assert node_guard.try_reserve(1) is None
    r.release()
    r.release()  # exactly once
    assert node_guard.budget().outstanding_bytes == 0
    wait_for("a sample after the release", lambda: node_guard.budget().settling_bytes == 0)
    assert node_guard.try_reserve(1) is not None  # dropped at once: returns its bytes


def test_with_block_releases_on_exception(node_guard: memguard.Guard) -> None:
    with pytest.raises(KeyError):
        with node_guard.reserve(1 << 20):
            raise KeyError("boom")
    assert node_guard.budget().outstanding_bytes == 0


def test_garbage_collected_reservation_returns_its_bytes(node_guard: memguard.Guard) -> None:
    r = node_guard.reserve(1 << 20)
    assert node_guard.budget().outstanding_bytes == 1 << 20
    del r
    gc.collect()
    assert node_guard.budget().outstanding_bytes == 0


def test_resize(node_guard: memguard.Guard) -> None:
    r = node_guard.reserve(10)
    r.resize(1000)
    assert node_guard.budget().outstanding_bytes == 1000
    with pytest.raises(memguard.BudgetExceeded):
        r.resize(SOFT)
    assert r.nbytes == 1000
    r.resize(5)
    assert node_guard.budget().outstanding_bytes == 5
    r.release()
    with pytest.raises(ValueError):
        r.resize(10)


def test_critical_refuses_everything_but_forced(node: Node) -> None:
    with node.guard() as g:
        node.set_used(95)
        wait_for("critical", lambda: g.level() == Level.CRITICAL)
        with pytest.raises(memguard.BudgetExceeded) as info:
            g.reserve(1)
        assert info.value.level == Level.CRITICAL and info.value.available == 0
        forced = g.reserve_forced(1 << 20)
        assert forced.nbytes == 1 << 20
        assert g.budget().forced == 1
        forced.release()
        node.set_used(10)
        wait_for("normal", lambda: g.level() == Level.NORMAL)
        assert g.try_reserve(1) is not None


def test_usage_growth_shrinks_the_budget(node: Node) -> None:
    with node.guard() as g:
        node.set_used(50)
        wait_for("usage sampled", lambda: g.budget().usage_bytes == LIMIT // 2)
        assert g.budget().available_bytes == SOFT - LIMIT // 2


def test_reservations_from_many_threads_balance(node_guard: memguard.Guard) -> None:
    def work() -> None:
        for _ in range(2000):
            r = node_guard.try_reserve(4096)
            if r is not None:
                r.release()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert node_guard.budget().outstanding_bytes == 0


def test_closed_guard_refuses_with_guard_closed(node: Node) -> None:
    g = node.guard()
    r = g.reserve(100)
    g.close()
    with pytest.raises(memguard.GuardClosedError):
        g.reserve(1)
    with pytest.raises(memguard.GuardClosedError):
        g.try_reserve(1)
    r.release()  # a reservation outlives its guard harmlessly
