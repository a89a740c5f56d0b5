"""``async for event in guard.events()`` never blocks the loop and stops cleanly."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import List

import pytest

import memguard
from memguard import EventKind, Level

from conftest import Node


def pumps() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "memguard-events")


def wait_no_pumps(timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while pumps() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pumps() == 0, "the events() helper thread did not stop"


def test_events_are_delivered_without_blocking_the_loop(node: Node) -> None:
    async def main() -> List[memguard.Event]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        t = asyncio.create_task(ticker())
        got: List[memguard.Event] = []
        with node.guard() as g:
            loop = asyncio.get_running_loop()
            loop.call_later(0.2, node.set_used, 95)
            loop.call_later(0.4, node.set_used, 10)
            async for ev in g.events():
                got.append(ev)
                if len(got) == 2:
                    break
        t.cancel()
        assert ticks > 20, "the event loop was blocked"
        return got

    got = asyncio.run(main())
    assert [e.kind for e in got] == [EventKind.LEVEL_CHANGED] * 2
    assert [e.current for e in got] == [Level.CRITICAL, Level.NORMAL]
    wait_no_pumps()


def test_iteration_ends_when_the_guard_closes(node: Node) -> None:
    async def main() -> int:
        g = node.guard()
        asyncio.get_running_loop().call_later(0.2, g.close)
        n = 0
        async for _ in g.events():
            n += 1
        return n

    assert asyncio.run(asyncio.wait_for(main(), 10)) == 0
    wait_no_pumps()


def test_cancelling_the_consumer_stops_the_thread(node: Node) -> None:
    async def main() -> None:
        with node.guard() as g:

            async def consume() -> None:
                async for _ in g.events():
                    pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.2)
            assert pumps() == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
        # A new iterator may start once the old one is gone.

    asyncio.run(main())
    wait_no_pumps()


def test_aclose_and_single_consumer(node: Node) -> None:
    async def main() -> None:
        with node.guard() as g:
            it = g.events()
            first = asyncio.ensure_future(it.__anext__())
            await asyncio.sleep(0.1)
            with pytest.raises(RuntimeError, match="already running"):
                await g.events().__anext__()
            node.set_used(95)
            ev = await asyncio.wait_for(first, 5)
            assert ev.current == Level.CRITICAL
            await it.aclose()
            # Free again after aclose().
            it2 = g.events()
            node.set_used(10)
            ev2 = await asyncio.wait_for(it2.__anext__(), 5)
            assert ev2.current == Level.NORMAL
            await it2.aclose()

    asyncio.run(main())
    wait_no_pumps()
