"""memguard: an in-process memory guard for Python workers in containers.

memguard finds the container's *real* memory limit (cgroup v1, v2 or hybrid; the lowest limit
up the hierarchy), watches the kernel's own notifications (``memory.events``, PSI triggers, v1
eventfds) from a Rust reactor thread, and turns them into a pressure :class:`Level`, callbacks,
a soft-limit budget and cache shedding — so a worker sheds caches or rejects work *before* the
OOM killer ends it::

    import memguard

    with memguard.Guard() as guard:
        guard.register_shedder("lru", lambda target: cache.evict(target))

        @guard.on_level
        def changed(change: memguard.LevelChange) -> None:
            print("memory level", change.previous, "->", change.current)

        try:
            with guard.reserve(len(payload) * 4):
                handle(payload)
        except memguard.BudgetExceeded as e:
            reject(f"busy: {e.available} bytes available")

Logging goes to the ``memguard`` logger (and its children, named after the Rust modules).
See the package README for the threading model, ``fork()`` behaviour and errors.
"""

from __future__ import annotations

import atexit as _atexit
import os as _os

from . import _memguard
from ._errors import (
    BudgetExceeded,
    ConfigError,
    GuardClosedError,
    MalformedFileError,
    MemguardError,
    MemguardOSError,
    ProcUnavailableError,
)
from ._guard import Guard, Reservation, ShedderHandle, Subscription, status
from ._guard import _after_fork_in_child, _close_all_at_exit
from ._types import (
    BudgetStats,
    Event,
    EventKind,
    KernelCounters,
    Level,
    LevelChange,
    Limits,
    PsiAverages,
    ShedderStats,
    ShedReport,
    ShedStats,
    ShedStep,
    Snapshot,
    SourceStatus,
    Status,
    SubBudgetStats,
)

__version__: str = _memguard.__version__
"""The memguard (Rust core) version this package was built from."""

ENV_VARS = tuple(_memguard.ENV_VARS)
"""The ``MEMGUARD_*`` environment variables a :class:`Guard` reads (``from_env=True``)."""

__all__ = [
    "Guard",
    "Level",
    "Event",
    "EventKind",
    "LevelChange",
    "Snapshot",
    "Limits",
    "Status",
    "SourceStatus",
    "PsiAverages",
    "KernelCounters",
    "BudgetStats",
    "SubBudgetStats",
    "ShedReport",
    "ShedStep",
    "ShedStats",
    "ShedderStats",
    "Reservation",
    "Subscription",
    "ShedderHandle",
    "status",
    "MemguardError",
    "MemguardOSError",
    "ProcUnavailableError",
    "ConfigError",
    "MalformedFileError",
    "BudgetExceeded",
    "GuardClosedError",
    "ENV_VARS",
    "__version__",
]

# A guard's threads exist only in the process that started it: mark every guard inherited
# through fork() unusable in the child (it is forgotten there, never joined).
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)

# Stop every guard's threads before the interpreter finalizes (callbacks need a live interpreter).
_atexit.register(_close_all_at_exit)
