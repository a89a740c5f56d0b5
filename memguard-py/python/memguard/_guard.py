"""The :class:`Guard` API on top of the native extension."""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import threading
import weakref
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Deque,
    Dict,
    List,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

from . import _memguard
from ._errors import GuardClosedError
from ._types import (
    BudgetStats,
    Event,
    Level,
    LevelChange,
    Limits,
    ShedReport,
    Snapshot,
    SourceStatus,
)

__all__ = ["Guard", "Subscription", "ShedderHandle", "Reservation", "PathLike"]

log = logging.getLogger("memguard")

Reservation = _memguard.Reservation
"""Bytes reserved from the soft-limit budget; returned once by ``release()``, a ``with`` block's
end or garbage collection. Attributes: ``nbytes``, ``released``; method ``resize(nbytes)``."""

PathLike = Union[str, "os.PathLike[str]"]
F = TypeVar("F", bound=Callable[..., Any])

# Every live guard (for the fork and exit hooks), and the event pump threads.
_guards: "weakref.WeakSet[Guard]" = weakref.WeakSet()
_pumps: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()
_END = object()
_LEVELS = tuple(Level)


class Subscription:
    """A registered ``on_level`` / ``on_event`` callback.

    ``unsubscribe()`` (alias ``close()``) removes it; usable as a context manager. Calling the
    subscription calls the callback, so a decorated function stays callable.
    """

    __slots__ = ("_guard", "_native_id", "_key", "callback", "__weakref__")

    def __init__(self, guard: "Guard", native_id: int, key: int, callback: Callable[..., Any]) -> None:
        self._guard = weakref.ref(guard)
        self._native_id = native_id
        self._key = key
        self.callback = callback

    @property
    def active(self) -> bool:
        """True while registered (and the guard runs)."""
        g = self._guard()
        return g is not None and not g.closed and self._key in g._callbacks

    def unsubscribe(self) -> bool:
        """Remove the callback (also from inside a callback). Returns whether it was registered."""
        g = self._guard()
        if g is None:
            return False
        found = g._callbacks.pop(self._key, None) is not None
        try:
            g._native.unsubscribe(self._native_id)
        except GuardClosedError:
            pass
        return found

    close = unsubscribe

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.callback(*args, **kwargs)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        return f"<memguard.Subscription {getattr(self.callback, '__qualname__', self.callback)!s} active={self.active}>"


class ShedderHandle:
    """A registered shedder; ``unregister()`` (alias ``close()``) removes it."""

    __slots__ = ("_guard", "_native_id", "_key", "name", "priority", "callback", "__weakref__")

    def __init__(
        self, guard: "Guard", native_id: int, key: int, name: str, priority: int, callback: Callable[[int], int]
    ) -> None:
        self._guard = weakref.ref(guard)
        self._native_id = native_id
        self._key = key
        self.name = name
        self.priority = priority
        self.callback = callback

    def unregister(self) -> bool:
        """Remove the shedder (also from inside a shedder). Returns whether it was registered."""
        g = self._guard()
        if g is None:
            return False
        found = g._callbacks.pop(self._key, None) is not None
        try:
            g._native.unregister_shedder(self._native_id)
        except GuardClosedError:
            pass
        return found

    close = unregister

    def __call__(self, target_bytes: int) -> int:
        return self.callback(target_bytes)

    def __repr__(self) -> str:
        return f"<memguard.ShedderHandle {self.name!r} priority={self.priority}>"


# Trampolines: the native closures hold only these small functions, which reach the user's
# callable through a weak reference to the guard. Strong references to user callables live in
# ``Guard._callbacks``, where the garbage collector sees them, so a callback that refers to its
# guard does not keep it alive forever.


def _event_trampoline(guard_ref: "weakref.ref[Guard]", key: int) -> Callable[[Dict[str, Any]], None]:
    def deliver(d: Dict[str, Any]) -> None:
        g = guard_ref()
        fn = g._callbacks.get(key) if g is not None else None
        if fn is None:
            return
        try:
            fn(Event._from_dict(d))
        except BaseException:  # noqa: BLE001 - a callback must never kill the dispatcher
            log.exception("memguard on_event callback %r raised; the guard keeps running", fn)

    return deliver


def _level_trampoline(guard_ref: "weakref.ref[Guard]", key: int) -> Callable[[int, int, Dict[str, Any]], None]:
    def deliver(previous: int, current: int, snap: Dict[str, Any]) -> None:
        g = guard_ref()
        fn = g._callbacks.get(key) if g is not None else None
        if fn is None:
            return
        try:
            fn(LevelChange(Level(previous), Level(current), Snapshot._from_dict(snap)))
        except BaseException:  # noqa: BLE001
            log.exception("memguard on_level callback %r raised; the guard keeps running", fn)

    return deliver


def _shedder_trampoline(guard_ref: "weakref.ref[Guard]", key: int, name: str) -> Callable[[int], int]:
    def shed(target: int) -> int:
        g = guard_ref()
        fn = g._callbacks.get(key) if g is not None else None
        if fn is None:
            return 0
        try:
            freed = fn(target)
        except BaseException:  # noqa: BLE001
            log.exception("memguard shedder %r raised; counted as 0 bytes freed", name)
            return 0
        try:
            return max(0, int(freed or 0))
        except (TypeError, ValueError):
            log.error("memguard shedder %r returned %r, not a byte count; counted as 0", name, freed)
            return 0

    return shed


class Guard:
    """A running memory guard for this process's cgroup.

    Starting one detects the effective memory limit (cgroup v1, v2 or hybrid; the lowest limit
    up the hierarchy, or the node's eviction point without one), arms every kernel notification
    source available (``memory.events``, PSI triggers, v1 eventfds) and starts two threads owned
    by the Rust core: the *reactor* (an epoll over the kernel sources plus an adaptive sampler)
    and the *dispatcher* (runs callbacks and shedders). Use it as a context manager, or call
    :meth:`close`.

    Every keyword left to ``None`` takes its ``MEMGUARD_*`` environment value (unless
    ``from_env=False``), else memguard's default:

    Args:
        warn: warning threshold, fraction of the limit (0.80).
        critical: critical threshold, fraction of the limit (0.90).
        hysteresis: band below a threshold to leave its level (0.05).
        soft_limit: budget soft limit, fraction of the limit (0.85).
        root: read ``/proc`` and ``/sys/fs/cgroup`` under this directory (fixtures, sidecars).
        pid: guard the cgroup of another process.
        eviction_threshold: without a cgroup limit, the "limit" is ``MemTotal`` minus this (100 MiB).
        max_alloc_rate: fastest allocation rate the sampler keeps up with, bytes/s (2 GiB/s).
        sample_interval: ``(min, max)`` sampling interval bounds in seconds (0.005, 1.0).
        event_hold: seconds a kernel event's level floor holds (2.0).
        horizon: ``(warn, critical)`` predictive horizons in seconds ((0.25, 0.1); 0 disables):
            the level rises when memory, growing steadily, would reach the limit sooner.
        psi: arm PSI triggers (True).
        cgroup_events: arm ``memory.events`` / v1 eventfds (True).
        debounce: minimum seconds between two ``high``/``max`` events (0.1).
        shed_interval: minimum seconds between two shedding runs (1.0).
        malloc_trim: return freed heap to the OS after shedding (True).
        trim_interval: minimum seconds between two ``malloc_trim`` calls (0.01).
        redetect_interval: seconds between re-detections of the limit (10.0).
        limit_override: the operator's limit in bytes (``MEMGUARD_LIMIT``; none): the lower of
            it and the detected limit applies.
        queue_capacity: events kept for :meth:`next_event` before the oldest are dropped (1024).
        from_env: read ``MEMGUARD_*`` for settings left to ``None`` (True).

    Raises:
        ConfigError: a setting (or ``MEMGUARD_*`` variable) is out of range.
        ProcUnavailableError: ``/proc`` cannot be read.
        MemguardOSError: epoll/eventfd/threads could not be created.

    Threads and the GIL: callbacks and shedders run on the dispatcher thread, holding the GIL
    only while Python code runs; memguard holds none of its locks meanwhile, so a callback may
    call any method of the guard, including :meth:`close`. Blocking calls (start, ``close``,
    ``next_event``) release the GIL. A callback that raises is logged (logger ``memguard``,
    with the traceback) and the guard keeps running.

    ``os.fork()``: a guard does not survive into a child process — its threads exist only in
    the parent, which keeps running it. In the child the guard reports ``closed`` and
    ``forked``, every method raises :class:`GuardClosedError`, and closing or collecting it
    there never joins threads (the Rust guard is forgotten). Start a new guard in the child.
    """

    def __init__(
        self,
        *,
        warn: Optional[float] = None,
        critical: Optional[float] = None,
        hysteresis: Optional[float] = None,
        soft_limit: Optional[float] = None,
        root: Optional[PathLike] = None,
        pid: Optional[int] = None,
        eviction_threshold: Optional[int] = None,
        max_alloc_rate: Optional[int] = None,
        sample_interval: Optional[Tuple[float, float]] = None,
        event_hold: Optional[float] = None,
        horizon: Optional[Tuple[float, float]] = None,
        psi: Optional[bool] = None,
        cgroup_events: Optional[bool] = None,
        debounce: Optional[float] = None,
        shed_interval: Optional[float] = None,
        malloc_trim: Optional[bool] = None,
        trim_interval: Optional[float] = None,
        redetect_interval: Optional[float] = None,
        limit_override: Optional[int] = None,
        queue_capacity: Optional[int] = None,
        from_env: bool = True,
    ) -> None:
        self._callbacks: Dict[int, Callable[..., Any]] = {}
        self._keys = itertools.count(1)
        self._events_active = False
        self._pending: Deque[Dict[str, Any]] = collections.deque()
        self._pump: Optional[threading.Thread] = None
        self._native = _memguard.Guard(
            warn=warn,
            critical=critical,
            hysteresis=hysteresis,
            soft_limit=soft_limit,
            root=os.fspath(root) if root is not None else None,
            pid=pid,
            eviction_threshold=eviction_threshold,
            max_alloc_rate=max_alloc_rate,
            sample_interval=sample_interval,
            event_hold=event_hold,
            horizon=horizon,
            psi=psi,
            cgroup_events=cgroup_events,
            debounce=debounce,
            shed_interval=shed_interval,
            malloc_trim=malloc_trim,
            trim_interval=trim_interval,
            redetect_interval=redetect_interval,
            limit_override=limit_override,
            queue_capacity=queue_capacity,
            from_env=from_env,
        )
        _guards.add(self)

    # -- state ----------------------------------------------------------------------------

    def level(self) -> Level:
        """The current level (one atomic load)."""
        return _LEVELS[self._native.level()]

    def snapshot(self) -> Snapshot:
        """The latest snapshot (no syscall), with budget and shedding counters."""
        return Snapshot._from_dict(self._native.snapshot())

    def limits(self) -> Limits:
        """The limits as last detected (re-detected every ``redetect_interval``)."""
        return Limits._from_dict(self._native.limits())

    def sources(self) -> List[SourceStatus]:
        """Every kernel event source tried, armed or not, with details."""
        return [SourceStatus._from_dict(s) for s in self._native.sources()]

    def config(self) -> Dict[str, Any]:
        """The configuration in force (thresholds, soft limit, intervals)."""
        return dict(self._native.config())

    def budget(self) -> BudgetStats:
        """Budget counters: soft limit, usage, outstanding, settling, stocked and available
        bytes, granted/refused."""
        stats = BudgetStats._from_dict(self._native.budget())
        assert stats is not None
        return stats

    def last_shed(self) -> Optional[ShedReport]:
        """The report of the latest shedding run, if any."""
        return ShedReport._from_dict(self._native.last_shed())

    def prometheus(self) -> str:
        """The metrics in the Prometheus text format, for a service's own ``/metrics``."""
        return self._native.prometheus()

    def dropped_events(self) -> int:
        """Events dropped from the pull queue (``next_event``/``events()``) because nobody read them."""
        return self._native.dropped_events()

    def reactor_thread_id(self) -> int:
        """The reactor thread's kernel thread id (for CPU accounting)."""
        return self._native.reactor_thread_id()

    @property
    def closed(self) -> bool:
        """True once closed, and in a child process for a guard inherited through ``fork()``."""
        return self._native.is_closed()

    def is_closed(self) -> bool:
        """Same as :attr:`closed`."""
        return self._native.is_closed()

    @property
    def forked(self) -> bool:
        """True in a child process for a guard its parent started before ``fork()``."""
        return self._native.is_forked()

    # -- callbacks --------------------------------------------------------------------------

    def on_level(self, callback: Callable[[LevelChange], Any]) -> Subscription:
        """Call ``callback(change)`` (a :class:`LevelChange`) on every level change, on the
        dispatcher thread. Usable as a decorator; returns a :class:`Subscription`."""
        key = next(self._keys)
        self._callbacks[key] = callback
        try:
            native_id = self._native.on_level(_level_trampoline(weakref.ref(self), key))
        except BaseException:
            self._callbacks.pop(key, None)
            raise
        return Subscription(self, native_id, key, callback)

    def on_event(self, callback: Callable[[Event], Any]) -> Subscription:
        """Call ``callback(event)`` (an :class:`Event`) on every event — kernel notifications and
        level changes — on the dispatcher thread. Usable as a decorator; returns a
        :class:`Subscription`."""
        key = next(self._keys)
        self._callbacks[key] = callback
        try:
            native_id = self._native.on_event(_event_trampoline(weakref.ref(self), key))
        except BaseException:
            self._callbacks.pop(key, None)
            raise
        return Subscription(self, native_id, key, callback)

    def unsubscribe(self, subscription: Subscription) -> bool:
        """Remove a callback (same as ``subscription.unsubscribe()``)."""
        return subscription.unsubscribe()

    def register_shedder(
        self, name: str, callback: Callable[[int], int], priority: int = 0
    ) -> ShedderHandle:
        """Register a cache that can free memory.

        On entering ``WARNING``, and again on entering ``CRITICAL``, memguard asks shedders,
        lowest ``priority`` first, for the bytes still needed to get back under the warning
        threshold: ``callback(target_bytes)`` frees what it can and returns the bytes freed.
        Then it may call ``malloc_trim``. Runs on the dispatcher thread; an exception counts as
        0 bytes freed and is logged.
        """
        key = next(self._keys)
        self._callbacks[key] = callback
        try:
            native_id = self._native.register_shedder(
                name, int(priority), _shedder_trampoline(weakref.ref(self), key, name)
            )
        except BaseException:
            self._callbacks.pop(key, None)
            raise
        return ShedderHandle(self, native_id, key, name, int(priority), callback)

    def shedder(self, name: str, priority: int = 0) -> Callable[[F], F]:
        """Decorator form of :meth:`register_shedder` (the function is returned unchanged)."""

        def register(fn: F) -> F:
            self.register_shedder(name, fn, priority)
            return fn

        return register

    def unregister_shedder(self, handle: ShedderHandle) -> bool:
        """Remove a shedder (same as ``handle.unregister()``)."""
        return handle.unregister()

    # -- budget -----------------------------------------------------------------------------

    def try_reserve(self, nbytes: int) -> Optional[Reservation]:
        """Reserve ``nbytes`` from the soft-limit budget: a :class:`Reservation`, or ``None``
        when refused. Never blocks, no syscall.

        Granted while ``usage + outstanding + settling + nbytes <= soft limit`` and the level is
        not ``CRITICAL``: released bytes stay counted (settling) until a usage sample taken
        after their release. Release a reservation once its memory is allocated (touched), or
        hold it only for short-lived memory: held and sampled, it counts twice.
        """
        return self._native.try_reserve(nbytes)

    def reserve(self, nbytes: int) -> Reservation:
        """Reserve ``nbytes`` or raise :class:`BudgetExceeded`; use as ``with guard.reserve(n):``."""
        return self._native.reserve(nbytes)

    def reserve_forced(self, nbytes: int) -> Reservation:
        """Reserve ``nbytes`` unconditionally (essential work); it still counts against others."""
        return self._native.reserve_forced(nbytes)

    # -- pull API ---------------------------------------------------------------------------

    def next_event(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event from the pull queue (events are queued from the start, up to 1024),
        waiting up to ``timeout`` seconds (``None``: until one arrives or the guard closes).
        ``None`` on timeout or once closed. Releases the GIL while waiting."""
        if self._pending:
            return Event._from_dict(self._pending.popleft())
        d = self._native.next_event(timeout)
        return None if d is None else Event._from_dict(d)

    async def events(self, *, poll_interval: float = 0.1) -> AsyncIterator[Event]:
        """Iterate over events from asyncio without blocking the loop::

            async for event in guard.events():
                ...

        A helper thread waits on the pull queue (GIL released) and hands events to the loop
        with ``call_soon_threadsafe``. Iteration ends when the guard closes; breaking out,
        cancelling the task or ``aclose()`` stops the thread within ``poll_interval`` seconds
        (an event it takes meanwhile is kept for the next reader, not lost). The pull queue has
        one reader: only one ``events()`` iterator may run per guard at a time, and it competes
        with :meth:`next_event`.
        """
        if self._events_active:
            raise RuntimeError("an events() iterator is already running for this guard")
        loop = asyncio.get_running_loop()
        queue: "asyncio.Queue[object]" = asyncio.Queue()
        stop = threading.Event()
        closed = False  # set and read on the loop thread only
        pending = self._pending
        native = self._native

        def deliver(item: object) -> None:  # on the loop thread
            if not closed:
                queue.put_nowait(item)
            elif item is not _END:
                pending.append(item)

        def post(item: object) -> bool:
            try:
                loop.call_soon_threadsafe(deliver, item)
                return True
            except RuntimeError:  # the loop is closed: keep the event for the next reader
                if item is not _END:
                    pending.append(item)
                return False

        def pump() -> None:
            try:
                while not stop.is_set():
                    d = native.next_event(poll_interval)
                    if d is None:
                        if native.is_closed():
                            break
                        continue
                    if not post(d):
                        return
            except Exception:  # noqa: BLE001
                log.exception("memguard events() helper thread failed")
            finally:
                post(_END)

        self._events_active = True
        try:
            # An earlier iterator's helper thread stops within poll_interval; wait for it (and
            # for the events it handed to the loop) so that no event goes to a dead iterator.
            prev = self._pump
            while prev is not None and prev.is_alive():
                await asyncio.sleep(0.005)
            await asyncio.sleep(0)
            while pending:  # taken from the queue by an earlier iterator's helper
                yield Event._from_dict(pending.popleft())
            if native.is_closed():
                return
            thread = threading.Thread(target=pump, name="memguard-events", daemon=True)
            thread.start()
            self._pump = thread
            _pumps.add(thread)
            while True:
                item = await queue.get()
                if item is _END:
                    return
                assert isinstance(item, dict)
                yield Event._from_dict(item)
        finally:
            stop.set()
            closed = True
            while not queue.empty():
                item = queue.get_nowait()
                if item is not _END:
                    pending.append(item)
            self._events_active = False

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the reactor and dispatcher threads and release every file descriptor.

        Idempotent; callable from any thread, also from inside a callback. The GIL is released
        while the threads are joined. In a child process after ``fork()`` it only marks the
        inherited guard closed.
        """
        self._native.close()
        self._callbacks.clear()

    def __enter__(self) -> "Guard":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.forked:
            return "<memguard.Guard forked (inherited from the parent process)>"
        if self.closed:
            return "<memguard.Guard closed>"
        try:
            s = self._native.snapshot()
            return (
                f"<memguard.Guard level={Level.parse(s['level'])!s} working_set={s['working_set_bytes']} "
                f"limit={s['limit_bytes']} ({s['limit_source']})>"
            )
        except GuardClosedError:
            return "<memguard.Guard closed>"


def status(
    root: Optional[PathLike] = None, pid: Optional[int] = None, probe_psi: bool = False, from_env: bool = True
) -> "Status":
    """A one-shot report, like ``memguard status``: the limits detection finds (with the
    ``MEMGUARD_LIMIT`` override applied), usage at the process's cgroup and at the limiting
    cgroup, host memory, the level the configured thresholds give, and the event sources a
    guard would arm here. ``root`` reads the kernel's files under a prefix (default
    ``$MEMGUARD_ROOT``, else ``/``); ``pid`` reports on another process; ``from_env=False``
    ignores the ``MEMGUARD_*`` variables.

    Raises:
        ConfigError: a ``MEMGUARD_*`` variable does not parse or is out of range.
        ProcUnavailableError: ``/proc`` cannot be read.
        MemguardOSError: the ``pid`` asked for does not exist.
    """
    from ._types import Status

    raw = _memguard.status(os.fspath(root) if root is not None else None, pid, probe_psi, from_env)
    return Status._from_dict(raw)


def _after_fork_in_child() -> None:
    _memguard._after_fork_child()
    for g in list(_guards):
        g._events_active = False
        g._pump = None
        g._callbacks.clear()


def _close_all_at_exit(join_timeout: float = 1.0) -> None:
    for g in list(_guards):
        try:
            g.close()
        except Exception:  # noqa: BLE001
            log.debug("closing a guard at exit failed", exc_info=True)
    for t in list(_pumps):
        if t is not threading.current_thread():
            t.join(join_timeout)
    _memguard._flush_logs(0.5)
    _memguard._shutdown()
