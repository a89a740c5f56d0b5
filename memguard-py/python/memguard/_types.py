"""Typed, immutable views of what the Rust core reports (frozen dataclasses).

Field names follow ``memguard status --json`` / ``memguard watch --json``; ``to_dict()`` gives
that JSON form back.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple, Union

__all__ = [
    "Level",
    "EventKind",
    "Limits",
    "SourceStatus",
    "Status",
    "PsiAverages",
    "KernelCounters",
    "SubBudgetStats",
    "BudgetStats",
    "ShedderStats",
    "ShedStats",
    "ShedStep",
    "ShedReport",
    "Snapshot",
    "Event",
    "LevelChange",
]


class Level(enum.IntEnum):
    """How close the process is to being killed for memory.

    Ordered: ``Level.NORMAL < Level.WARNING < Level.CRITICAL``. ``str(level)`` is the lowercase
    name used in JSON (``"warning"``).
    """

    NORMAL = 0
    """Comfortably below the warning threshold."""
    WARNING = 1
    """Above the warning threshold, or the kernel reports reclaim pressure: shed caches."""
    CRITICAL = 2
    """Above the critical threshold, or the kernel is at the limit: refuse non-essential work."""

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: Union["Level", int, str]) -> "Level":
        """A level from a ``Level``, an int (0-2) or a name (``"warning"``, any case)."""
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"not a memguard level: {value!r}") from None
        return cls(value)


class EventKind(str, enum.Enum):
    """The kinds of :class:`Event` (equal to their JSON ``kind`` string; the same names as the
    core's ``EventKind::NAMES``, exported as ``memguard._memguard.EVENT_KINDS`` — a test keeps
    the two equal)."""

    HIGH = "high"
    """v2 ``memory.events`` ``high``: usage went over ``memory.high`` (``count``, ``delta``)."""
    MAX = "max"
    """v2 ``memory.events`` ``max``: usage hit ``memory.max`` (``count``, ``delta``)."""
    OOM = "oom"
    """An OOM condition in the guarded cgroup (``count``, ``delta``)."""
    OOM_KILL = "oom_kill"
    """The OOM killer killed a process of the guarded cgroup (``count``, ``delta``)."""
    PSI = "psi"
    """A PSI trigger fired (``stall``: ``"some"``/``"full"``, ``scope``: ``"cgroup"``/``"system"``)."""
    VM_PRESSURE = "vm_pressure"
    """cgroup v1 ``memory.pressure_level`` (``severity``: ``"medium"``/``"critical"``)."""
    THRESHOLD = "threshold"
    """A cgroup v1 usage threshold fired (``direction``: ``"up"``/``"down"``, ``threshold_bytes``)."""
    LIMIT_CHANGED = "limit_changed"
    """The effective limit changed (``old``, ``new``: bytes or ``None``)."""
    CGROUP_REMOVED = "cgroup_removed"
    """The watched cgroup disappeared (``cgroup``)."""
    WATCHER_FAILED = "watcher_failed"
    """memguard's watcher gave up after repeated internal errors (``reason``)."""
    LEVEL_CHANGED = "level_changed"
    """The pressure level changed (``previous``, ``current``; JSON ``from``, ``to``)."""

    def __str__(self) -> str:
        return self.value


def _level(v: Any) -> Level:
    return Level.parse(v)


@dataclass(frozen=True)
class Limits:
    """What detection found (see ``memguard status`` in the main README for every field)."""

    cgroup: str
    """``"v1"``, ``"v2"`` or ``"none"``."""
    cgroup_path: Optional[str]
    cgroup_dir: Optional[str]
    mount_point: Optional[str]
    limit_bytes: Optional[int]
    """The effective hard limit: the lowest of the detected limit and the override; ``None``
    when neither is known (check ``limit_maybe_hidden`` and ``limit_unknown`` first)."""
    limit_applied: str
    """What ``limit_bytes`` is: ``"cgroup"`` (detected), ``"override"`` or ``"none"``."""
    detected_limit_bytes: Optional[int]
    """The limit detection found (lowest up the hierarchy)."""
    limit_cgroup: Optional[str]
    limit_dir: Optional[str]
    limit_maybe_hidden: bool
    """A tighter limit may exist above the visible cgroup root: never silently "unlimited"."""
    limit_unknown: bool
    """A limit file exists but could not be read or parsed: the limit is unknown, not absent."""
    limit_unknown_files: Tuple[str, ...]
    """The limit files that could not be read or parsed."""
    limit_override_bytes: Optional[int]
    """The operator's override (``MEMGUARD_LIMIT`` or ``Guard(limit_override=...)``)."""
    limit_override_source: Optional[str]
    """``"MEMGUARD_LIMIT"`` or ``"builder"``."""
    high_bytes: Optional[int]
    high_cgroup: Optional[str]
    swap_limit_bytes: Optional[int]
    host_total_bytes: Optional[int]
    psi_file: Optional[str]
    oom_score_adj: Optional[int]
    qos_class: Optional[str]
    notes: Tuple[str, ...]

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> "Limits":
        return cls(
            cgroup=d["cgroup"],
            cgroup_path=d.get("cgroup_path"),
            cgroup_dir=d.get("cgroup_dir"),
            mount_point=d.get("mount_point"),
            limit_bytes=d.get("limit_bytes"),
            limit_applied=d.get("limit_applied", "none"),
            detected_limit_bytes=d.get("detected_limit_bytes"),
            limit_cgroup=d.get("limit_cgroup"),
            limit_dir=d.get("limit_dir"),
            limit_maybe_hidden=bool(d.get("limit_maybe_hidden", False)),
            limit_unknown=bool(d.get("limit_unknown", False)),
            limit_unknown_files=tuple(d.get("limit_unknown_files") or ()),
            limit_override_bytes=d.get("limit_override_bytes"),
            limit_override_source=d.get("limit_override_source"),
            high_bytes=d.get("high_bytes"),
            high_cgroup=d.get("high_cgroup"),
            swap_limit_bytes=d.get("swap_limit_bytes"),
            host_total_bytes=d.get("host_total_bytes"),
            psi_file=d.get("psi_file"),
            oom_score_adj=d.get("oom_score_adj"),
            qos_class=d.get("qos_class"),
            notes=tuple(d.get("notes") or ()),
        )

    @property
    def effective_bytes(self) -> Optional[int]:
        """The limit that bounds the process in practice: the cgroup limit (or the override),
        else host memory."""
        return self.limit_bytes if self.limit_bytes is not None else self.host_total_bytes


@dataclass(frozen=True)
class SourceStatus:
    """One kernel event source and whether it is armed."""

    name: str
    armed: bool
    detail: Optional[str]

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> "SourceStatus":
        return cls(name=d["name"], armed=bool(d["armed"]), detail=d.get("detail"))


@dataclass(frozen=True)
class Status:
    """A one-shot report (:func:`memguard.status`): detection plus current usage."""

    memguard_version: str
    limits: Limits
    usage_bytes: Optional[int]
    """Usage of the process's own cgroup."""
    working_set_bytes: Optional[int]
    """Usage minus inactive file cache, of the process's own cgroup."""
    peak_bytes: Optional[int]
    limit_usage_bytes: Optional[int]
    """Usage at the cgroup that sets the limit."""
    limit_working_set_bytes: Optional[int]
    """Working set at the cgroup that sets the limit (the kubelet's eviction number)."""
    headroom_bytes: Optional[int]
    """``limit_bytes - limit_unreclaimable_bytes``."""
    used_fraction: Optional[float]
    """``limit_unreclaimable_bytes / limit_bytes``: what the thresholds apply to."""
    host_available_bytes: Optional[int]
    level: Level
    """The level this one sample gives with the configured thresholds."""
    warn_bytes: Optional[int]
    critical_bytes: Optional[int]
    budget_soft_limit_bytes: Optional[int]
    """The soft-limit budget's limit in bytes (``soft_limit`` fraction of the effective limit)."""
    sources: Tuple[SourceStatus, ...]
    _raw: Mapping[str, Any] = field(repr=False, compare=False)
    unreclaimable_bytes: Optional[int] = None
    """Memory reclaim cannot free (usage minus clean page cache), of the process's own cgroup."""
    limit_unreclaimable_bytes: Optional[int] = None
    """The pressure measure at the cgroup that sets the limit: what the levels compare."""

    @classmethod
    def _from_dict(cls, d: Dict[str, Any]) -> "Status":
        return cls(
            memguard_version=d.get("memguard_version", ""),
            limits=Limits._from_dict(d),
            usage_bytes=d.get("usage_bytes"),
            working_set_bytes=d.get("working_set_bytes"),
            peak_bytes=d.get("peak_bytes"),
            limit_usage_bytes=d.get("limit_usage_bytes"),
            limit_working_set_bytes=d.get("limit_working_set_bytes"),
            headroom_bytes=d.get("headroom_bytes"),
            used_fraction=d.get("used_fraction"),
            host_available_bytes=d.get("host_available_bytes"),
            level=_level(d.get("level", "normal")),
            warn_bytes=d.get("warn_bytes"),
            critical_bytes=d.get("critical_bytes"),
            budget_soft_limit_bytes=d.get("budget_soft_limit_bytes"),
            sources=tuple(SourceStatus._from_dict(s) for s in d.get("sources") or ()),
            _raw=d,
            unreclaimable_bytes=d.get("unreclaimable_bytes"),
            limit_unreclaimable_bytes=d.get("limit_unreclaimable_bytes"),
        )

    @property
    def cgroup(self) -> str:
        """``"v1"``, ``"v2"`` or ``"none"`` (``limits.cgroup``)."""
        return self.limits.cgroup

    @property
    def limit_bytes(self) -> Optional[int]:
        """The effective hard limit (``limits.limit_bytes``)."""
        return self.limits.limit_bytes

    def to_dict(self) -> Dict[str, Any]:
        """The ``memguard status --json`` object (a deep copy)."""
        return copy.deepcopy(dict(self._raw))


@dataclass(frozen=True)
class PsiAverages:
    """PSI averages (percent of time stalled) and totals (microseconds)."""

    some_avg10: float
    some_avg60: float
    some_total_us: int
    full_avg10: float
    full_avg60: float
    full_total_us: int

    @classmethod
    def _from_dict(cls, d: Optional[Mapping[str, Any]]) -> Optional["PsiAverages"]:
        if d is None:
            return None
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class KernelCounters:
    """Kernel event counters of the guarded cgroup (v2 ``memory.events``; v1 ``memory.oom_control``)."""

    high: int = 0
    max: int = 0
    oom: int = 0
    oom_kill: int = 0

    @classmethod
    def _from_dict(cls, d: Optional[Mapping[str, Any]]) -> "KernelCounters":
        d = d or {}
        return cls(**{k: d.get(k, 0) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class SubBudgetStats:
    """Counters of one sub-budget."""

    name: str
    cap_bytes: int
    outstanding_bytes: int
    granted: int
    refused: int
    forced: int


@dataclass(frozen=True)
class BudgetStats:
    """Counters of the soft-limit budget."""

    soft_limit_bytes: int
    """``2**64 - 1`` while no limit is known."""
    usage_bytes: int
    outstanding_bytes: int
    available_bytes: int
    level: Level
    granted: int
    refused: int
    forced: int
    sub_budgets: Tuple[SubBudgetStats, ...] = ()
    settling_bytes: int = 0
    """Released bytes still counted until a usage sample taken after their release."""
    stocked_bytes: int = 0
    """Bytes pre-charged in per-thread stocks (at most 64 KiB per thread; counted)."""

    @classmethod
    def _from_dict(cls, d: Optional[Mapping[str, Any]]) -> Optional["BudgetStats"]:
        if d is None:
            return None
        return cls(
            soft_limit_bytes=d["soft_limit_bytes"],
            usage_bytes=d["usage_bytes"],
            outstanding_bytes=d["outstanding_bytes"],
            available_bytes=d["available_bytes"],
            level=_level(d["level"]),
            granted=d["granted"],
            refused=d["refused"],
            forced=d["forced"],
            sub_budgets=tuple(SubBudgetStats(**s) for s in d.get("sub_budgets") or ()),
            settling_bytes=d.get("settling_bytes", 0),
            stocked_bytes=d.get("stocked_bytes", 0),
        )


@dataclass(frozen=True)
class ShedderStats:
    """Cumulative counters of the shedders registered under one name."""

    name: str
    freed_bytes: int
    calls: int
    panics: int


@dataclass(frozen=True)
class ShedStats:
    """Cumulative shedding counters."""

    runs: int
    skipped_busy: int
    freed_bytes_total: int
    trims: int
    shedders: Tuple[ShedderStats, ...] = ()

    @classmethod
    def _from_dict(cls, d: Optional[Mapping[str, Any]]) -> Optional["ShedStats"]:
        if d is None:
            return None
        return cls(
            runs=d["runs"],
            skipped_busy=d["skipped_busy"],
            freed_bytes_total=d["freed_bytes_total"],
            trims=d["trims"],
            shedders=tuple(ShedderStats(**s) for s in d.get("shedders") or ()),
        )


@dataclass(frozen=True)
class ShedStep:
    """One shedder's part in a :class:`ShedReport`."""

    name: str
    priority: int
    asked_bytes: int
    freed_bytes: int
    panicked: bool
    """True when it raised (Python) or panicked (Rust); counted as 0 bytes freed."""


@dataclass(frozen=True)
class ShedReport:
    """What one shedding run did."""

    target_bytes: int
    freed_bytes: int
    steps: Tuple[ShedStep, ...]
    skipped_busy: bool
    elapsed: float
    """Seconds spent calling shedders."""

    @classmethod
    def _from_dict(cls, d: Optional[Mapping[str, Any]]) -> Optional["ShedReport"]:
        if d is None:
            return None
        el = d.get("elapsed") or {}
        return cls(
            target_bytes=d["target_bytes"],
            freed_bytes=d["freed_bytes"],
            steps=tuple(ShedStep(**s) for s in d.get("steps") or ()),
            skipped_busy=bool(d["skipped_busy"]),
            elapsed=float(el.get("secs", 0)) + float(el.get("nanos", 0)) / 1e9,
        )

    @property
    def met_target(self) -> bool:
        """Whether the shedders freed at least the target."""
        return self.freed_bytes >= self.target_bytes


@dataclass(frozen=True)
class Snapshot:
    """The watcher's latest view (:meth:`memguard.Guard.snapshot`)."""

    level: Level
    limit_bytes: Optional[int]
    """The effective limit the level is computed against (``None``: nothing known)."""
    limit_source: str
    """``"cgroup"``, or ``"node"`` (no cgroup limit: ``MemTotal`` minus the eviction threshold)."""
    usage_bytes: int
    working_set_bytes: int
    """Usage minus inactive page cache (what the kubelet evicts on); reported for parity."""
    unreclaimable_bytes: int
    """The pressure measure the levels, the budget and shedding use: memory reclaim cannot free
    (usage minus clean page cache)."""
    headroom_bytes: Optional[int]
    """``limit - unreclaimable``."""
    used_fraction: Optional[float]
    """``unreclaimable / limit``: what the level thresholds apply to."""
    time_to_limit: Optional[float]
    """Predicted seconds to the limit at the current steady growth (``None``: not growing steadily)."""
    growth_rate: Optional[float]
    """Growth of the measure in bytes per second (median slope of the last half second)."""
    host_available_bytes: Optional[int]
    psi: Optional[PsiAverages]
    kernel_counters: KernelCounters
    events_total: Mapping[str, int]
    samples: int
    sample_interval_ms: float
    seconds_in_level: Tuple[float, float, float]
    monotonic_ns: int
    """``CLOCK_MONOTONIC`` ns of the latest sample (comparable with ``time.monotonic_ns()``)."""
    budget: Optional[BudgetStats]
    """Budget counters (``None`` in the snapshot handed to level callbacks)."""
    shed: Optional[ShedStats]
    callback_events_dropped: int = 0
    """Events not delivered to callbacks because one blocked and the queue was full."""
    watcher_panics: int = 0
    """Internal errors caught (and recovered) on memguard's threads."""
    failed: Optional[str] = None
    """Set once memguard's watcher gave up: memory is no longer watched."""

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> "Snapshot":
        sil = tuple(d.get("seconds_in_level") or (0.0, 0.0, 0.0))
        return cls(
            level=_level(d["level"]),
            limit_bytes=d.get("limit_bytes"),
            limit_source=d.get("limit_source", "node"),
            usage_bytes=d.get("usage_bytes", 0),
            working_set_bytes=d.get("working_set_bytes", 0),
            unreclaimable_bytes=d.get("unreclaimable_bytes", 0),
            headroom_bytes=d.get("headroom_bytes"),
            used_fraction=d.get("used_fraction"),
            time_to_limit=d.get("time_to_limit"),
            growth_rate=d.get("growth_rate"),
            host_available_bytes=d.get("host_available_bytes"),
            psi=PsiAverages._from_dict(d.get("psi")),
            kernel_counters=KernelCounters._from_dict(d.get("kernel_counters")),
            events_total=dict(d.get("events_total") or {}),
            samples=d.get("samples", 0),
            sample_interval_ms=d.get("sample_interval_ms", 0.0),
            seconds_in_level=(float(sil[0]), float(sil[1]), float(sil[2])),
            monotonic_ns=d.get("monotonic_ns", 0),
            budget=BudgetStats._from_dict(d.get("budget")),
            shed=ShedStats._from_dict(d.get("shed")),
            callback_events_dropped=d.get("callback_events_dropped", 0),
            watcher_panics=d.get("watcher_panics", 0),
            failed=d.get("failed"),
        )


_EVENT_COMMON = ("kind", "monotonic_ns", "level", "working_set_bytes", "unreclaimable_bytes", "limit_bytes")


@dataclass(frozen=True)
class Event:
    """What happened: a kernel notification or a level change.

    Kind-specific fields (``count``/``delta`` for ``oom_kill``, ``stall``/``scope`` for ``psi``,
    ``previous``/``current`` for ``level_changed``, ...) are in :attr:`details` and readable as
    attributes: ``event.delta``. See :class:`EventKind`.
    """

    kind: Union[EventKind, str]
    monotonic_ns: int
    """``CLOCK_MONOTONIC`` ns when memguard's reactor woke for it (``time.monotonic_ns()`` clock)."""
    level: Level
    """The level after this event."""
    working_set_bytes: Optional[int]
    limit_bytes: Optional[int]
    details: Mapping[str, Any] = field(default_factory=dict)
    unreclaimable_bytes: Optional[int] = None
    """The pressure measure (memory reclaim cannot free), latest sample."""

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> "Event":
        raw_kind = d["kind"]
        try:
            kind: Union[EventKind, str] = EventKind(raw_kind)
        except ValueError:
            kind = raw_kind
        details = {k: v for k, v in d.items() if k not in _EVENT_COMMON}
        if kind == EventKind.LEVEL_CHANGED:
            details["from"] = details["previous"] = _level(details["from"])
            details["to"] = details["current"] = _level(details["to"])
        return cls(
            kind=kind,
            monotonic_ns=d["monotonic_ns"],
            level=_level(d["level"]),
            working_set_bytes=d.get("working_set_bytes"),
            limit_bytes=d.get("limit_bytes"),
            unreclaimable_bytes=d.get("unreclaimable_bytes"),
            details=details,
        )

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not fields: the kind-specific details.
        if name != "details":
            details = self.__dict__.get("details")
            if details is not None and name in details:
                return details[name]
        raise AttributeError(f"{type(self).__name__!s} of kind {self.__dict__.get('kind')!s} has no {name!r}")

    def to_dict(self) -> Dict[str, Any]:
        """The ``memguard watch --json`` form of this event."""
        out: Dict[str, Any] = {"kind": str(self.kind)}
        for k, v in self.details.items():
            if k in ("previous", "current"):
                continue
            out[k] = str(v) if isinstance(v, Level) else v
        out.update(
            monotonic_ns=self.monotonic_ns,
            level=str(self.level),
            working_set_bytes=self.working_set_bytes,
            limit_bytes=self.limit_bytes,
        )
        return out


@dataclass(frozen=True)
class LevelChange:
    """A level change, as handed to :meth:`memguard.Guard.on_level` callbacks."""

    previous: Level
    current: Level
    snapshot: Snapshot
    """The sample that caused it (``budget``/``shed`` are ``None`` here)."""

    @property
    def rising(self) -> bool:
        """True when the level went up."""
        return self.current > self.previous
