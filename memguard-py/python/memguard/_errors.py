"""Exceptions raised by memguard.

The Rust extension maps every error to one of these in a single place
(``memguard-py/src/errors.rs``):

=============================  ==================================================
Rust                           Python
=============================  ==================================================
``Error::Io``                  :class:`MemguardOSError` (``errno``, ``filename``)
``Error::ProcUnavailable``     :class:`ProcUnavailableError`
``Error::InvalidConfig``       :class:`ConfigError` (a ``ValueError``)
``Error::Malformed``           :class:`MalformedFileError` (a ``ValueError``)
``BudgetExceeded``             :class:`BudgetExceeded` (a ``MemoryError``)
closed / forked guard          :class:`GuardClosedError` (a ``RuntimeError``)
=============================  ==================================================

All derive from :class:`MemguardError`, so ``except memguard.MemguardError`` catches
everything memguard raises, while ``except OSError`` / ``except ValueError`` /
``except MemoryError`` keep working as usual.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "MemguardError",
    "MemguardOSError",
    "ProcUnavailableError",
    "ConfigError",
    "MalformedFileError",
    "BudgetExceeded",
    "GuardClosedError",
]


class MemguardError(Exception):
    """Base class of every exception memguard raises."""


class MemguardOSError(MemguardError, OSError):
    """A kernel file could not be read, or an OS resource (eventfd, epoll, thread) could not be
    created. ``errno`` is set when the OS reported one; ``filename`` names the file when known."""


class ProcUnavailableError(MemguardOSError):
    """``/proc`` (or the configured root's ``proc``) cannot be read at all."""


class ConfigError(MemguardError, ValueError):
    """A configuration value does not parse or is out of range (thresholds, soft limit,
    durations, sizes, ``MEMGUARD_*`` variables).

    Attributes:
        setting: the setting, named as the ``Guard`` keyword / Rust builder method
            (``"redetect_interval"``, ``"warn"``, ``"limit_override"``, ...).
        env_var: the ``MEMGUARD_*`` variable the value came from (or systemd's
            ``MEMORY_PRESSURE_WATCH`` / ``MEMORY_PRESSURE_WRITE``), or ``None`` when it was
            passed in code.
        value: the offending value (the variable's text, or the value passed).
    """

    setting: Optional[str] = None
    env_var: Optional[str] = None
    value: Optional[str] = None


class MalformedFileError(MemguardError, ValueError):
    """A kernel file had content memguard does not understand (``filename`` names it)."""

    filename: Optional[str] = None


class BudgetExceeded(MemguardError, MemoryError):
    """A soft-limit budget reservation was refused.

    Attributes:
        requested: bytes asked for.
        available: bytes that could have been granted (0 at ``Level.CRITICAL``).
        soft_limit: the budget's soft limit in bytes (``2**64 - 1`` when no limit is known).
        level: the pressure level when refused (a :class:`memguard.Level`).
        scope: the sub-budget that refused, or ``None`` for the guard's budget.
    """

    def __init__(
        self,
        message: str,
        *,
        requested: int = 0,
        available: int = 0,
        soft_limit: int = 0,
        level: int = 0,
        scope: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        from ._types import Level  # local: _types imports nothing from here

        self.requested = requested
        self.available = available
        self.soft_limit = soft_limit
        self.level = Level(level)
        self.scope = scope

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Picklable (multiprocessing sends exceptions between processes).
        return (
            _rebuild_budget_exceeded,
            (str(self), self.requested, self.available, self.soft_limit, int(self.level), self.scope),
        )


def _rebuild_budget_exceeded(
    message: str, requested: int, available: int, soft_limit: int, level: int, scope: Optional[str]
) -> BudgetExceeded:
    return BudgetExceeded(
        message, requested=requested, available=available, soft_limit=soft_limit, level=level, scope=scope
    )


class GuardClosedError(MemguardError, RuntimeError):
    """The guard was closed, or was started by the parent process before ``os.fork()`` (a guard
    does not survive into a child process; start a new one there)."""
