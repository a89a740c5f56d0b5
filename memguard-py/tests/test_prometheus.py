"""The ``prometheus_client`` collector, tested with the real library (installed by run-tests.sh)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import memguard

from conftest import LIMIT, Node, in_ci, wait_for

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - run-tests.sh installs it
    if in_ci():
        raise
    pytest.skip("prometheus_client is not installed (run-tests.sh installs it)", allow_module_level=True)

from memguard.prometheus import MemguardCollector


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(text: str, sample_name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"{sample_name}{labels} not in:\n{text}")


def test_import_memguard_does_not_import_prometheus_client() -> None:
    code = "import sys, memguard; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"
    code = "import sys, memguard.prometheus; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "True"


def test_metrics_appear_in_generate_latest_with_the_core_types_and_help(node: Node) -> None:
    registry = CollectorRegistry()
    with node.guard(soft_limit=0.5) as guard:
        guard.register_shedder("lru", lambda target: 0)
        collector = MemguardCollector(guard)
        registry.register(collector)
        out = generate_latest(registry).decode()
        core = guard.prometheus()

    # Every family of the core's text, same TYPE and HELP lines, same samples.
    core_lines = core.splitlines()
    for line in core_lines:
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            assert line in out.splitlines(), f"{line!r} missing from:\n{out}"
    assert "# TYPE memguard_events_total counter" in out or "memguard_events_total" not in core
    assert "# TYPE memguard_limit_bytes gauge" in out
    assert "# TYPE memguard_seconds_in_level_total counter" in out
    assert "# TYPE memguard_reservations_total counter" in out
    assert 'memguard_build_info{version="%s"} 1.0' % memguard.__version__ in out
    # Nothing but memguard's own families.
    names = [line.split()[2] for line in out.splitlines() if line.startswith("# TYPE ")]
    assert names and all(n.startswith("memguard_") for n in names)
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(line.split()[2] for line in core_lines if line.startswith("# TYPE "))


def test_values_match_the_snapshot(node: Node) -> None:
    registry = CollectorRegistry()
    node.set_used(85)
    with node.guard() as guard:
        MemguardCollector(guard, registry=registry)
        wait_for("warning", lambda: guard.level() == memguard.Level.WARNING)
        snap = guard.snapshot()
        out = generate_latest(registry).decode()
    assert snap.limit_bytes == LIMIT
    assert value(out, "memguard_limit_bytes") == snap.limit_bytes
    assert value(out, "memguard_usage_bytes") == snap.usage_bytes
    assert value(out, "memguard_unreclaimable_bytes") == snap.unreclaimable_bytes
    assert value(out, "memguard_level") == int(snap.level) == 1
    assert value(out, "memguard_level_info", level="warning") == 1
    assert value(out, "memguard_level_info", level="normal") == 0
    for kind, n in snap.events_total.items():
        assert value(out, "memguard_events_total", kind=kind) == n
    assert snap.budget is not None
    assert value(out, "memguard_soft_limit_bytes") == snap.budget.soft_limit_bytes


def test_duplicate_registration_and_unregister(node: Node) -> None:
    registry = CollectorRegistry()
    with node.guard() as guard, node.guard() as other:
        collector = MemguardCollector(guard, registry=registry)
        # The same collector twice, or a second guard's collector, in one registry: the
        # library's own error, and the registry is left as it was.
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            registry.register(collector)
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            MemguardCollector(other, registry=registry)
        out = generate_latest(registry).decode()
        assert out.count("# TYPE memguard_level gauge") == 1
        # Unregister removes every family; registering again works.
        registry.unregister(collector)
        assert "memguard_" not in generate_latest(registry).decode()
        registry.register(MemguardCollector(other))
        assert "memguard_level " in generate_latest(registry).decode()
        assert not guard.closed, "unregistering never closes the guard"


def test_a_closed_guard_yields_nothing_and_the_scrape_still_works(node: Node) -> None:
    registry = CollectorRegistry()
    prometheus_client.Gauge("app_up", "The application is up.", registry=registry).set(1)
    guard = node.guard()
    MemguardCollector(guard, registry=registry)
    assert "memguard_level " in generate_latest(registry).decode()
    guard.close()
    out = generate_latest(registry).decode()
    assert "memguard_" not in out
    assert "app_up 1.0" in out


def test_the_default_registry(node: Node) -> None:
    with node.guard() as guard:
        collector = MemguardCollector(guard, registry=prometheus_client.REGISTRY)
        try:
            assert "memguard_level " in generate_latest().decode()
            assert prometheus_client.REGISTRY.get_sample_value("memguard_level") == 0
        finally:
            prometheus_client.REGISTRY.unregister(collector)
        assert prometheus_client.REGISTRY.get_sample_value("memguard_level") is None
