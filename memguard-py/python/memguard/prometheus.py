"""A ``prometheus_client`` collector: a guard's ``memguard_*`` metrics on a service's existing
``/metrics``, without hand-written glue::

    from prometheus_client import REGISTRY
    from memguard.prometheus import MemguardCollector

    guard = memguard.Guard()
    REGISTRY.register(MemguardCollector(guard))    # or MemguardCollector(guard, registry=REGISTRY)

Install with ``pip install memguard[prometheus]``. ``import memguard`` never imports
``prometheus_client``; importing this module does.

One source of truth: every scrape parses the core's own Prometheus text
(:meth:`memguard.Guard.prometheus`, the same text as ``memguard status --prometheus``) with
``prometheus_client.parser.text_string_to_metric_families``, so names, types, HELP and labels are
exactly the core's (a counter such as ``memguard_events_total`` is the family ``memguard_events``
in ``prometheus_client``'s model and is exposed again as ``memguard_events_total``).

A closed guard (or one inherited through ``fork()``) yields no metrics rather than failing the
whole scrape. Registering a collector twice, or a second guard's collector, in one registry raises
``prometheus_client``'s own ``ValueError`` ("Duplicated timeseries") at ``register()`` and leaves
the registry as it was (``describe()`` names the families): one guard per registry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterator, List, Optional

from prometheus_client.parser import text_string_to_metric_families

from ._errors import GuardClosedError

if TYPE_CHECKING:  # pragma: no cover
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from ._guard import Guard

__all__ = ["MemguardCollector"]

log = logging.getLogger("memguard.prometheus")


class MemguardCollector:
    """Collects a :class:`memguard.Guard`'s ``memguard_*`` metric families at every scrape.

    ``registry``: register with it at once (like ``prometheus_client``'s ``ProcessCollector``
    and ``GCCollector``, but off by default: pass ``registry=REGISTRY`` or call
    ``REGISTRY.register(collector)`` yourself — not both). ``registry.unregister(collector)``
    removes it; the guard is not closed by either.
    """

    def __init__(self, guard: "Guard", registry: Optional["CollectorRegistry"] = None) -> None:
        self._guard = guard
        if registry is not None:
            registry.register(self)

    @property
    def guard(self) -> "Guard":
        """The guard whose metrics this collector exports."""
        return self._guard

    def collect(self) -> Iterator["Metric"]:
        """The metric families of the guard's current snapshot; none once it is closed."""
        try:
            text = self._guard.prometheus()
        except GuardClosedError:
            log.debug("memguard guard is closed: no metrics collected")
            return
        yield from text_string_to_metric_families(text)

    def describe(self) -> List["Metric"]:
        """The families the guard exports now, for the registry's duplicate check at
        ``register()`` (every registry, also one made with ``auto_describe=False``):
        ``memguard_build_info`` is always among them, so a second memguard collector in the
        same registry is refused."""
        return list(self.collect())

    def __repr__(self) -> str:
        return f"MemguardCollector({self._guard!r})"
