"""The README's "Deploying" section stays true: its YAML parses, the Kubernetes manifests say what
the text says, and the alert rules use only series, labels and variables memguard really has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

import memguard

from conftest import in_ci

try:
    import yaml
except ImportError:  # pragma: no cover - run-tests.sh installs PyYAML
    if in_ci():
        raise
    pytest.skip("PyYAML is not installed (run-tests.sh installs it)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LIB_RS = ROOT / "memguard" / "src" / "lib.rs"


def code_blocks(text: str) -> List[Tuple[str, str]]:
    """Every fenced block as ``(language, body)``."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```([\w,.+-]*)\n(.*?)^```", text, re.S | re.M)]


def deploying() -> str:
    text = README.read_text()
    start = text.index("\n## Deploying\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def documents() -> List[dict]:
    docs = []
    for lang, body in code_blocks(deploying()):
        if lang == "yaml":
            docs.extend(d for d in yaml.safe_load_all(body) if d is not None)
    return docs


def by_kind(kind: str) -> dict:
    found = [d for d in documents() if d.get("kind") == kind]
    assert len(found) == 1, f"one {kind} in the Deploying section, found {len(found)}"
    return found[0]


def exported_families() -> Dict[str, str]:
    """The core's documented metrics (a Rust test checks this table against the output): name -> labels cell."""
    rows = re.findall(r"^//! \| `(memguard_\w+)` \| (\w+) \| ([^|]*)\|", LIB_RS.read_text(), re.M)
    assert len(rows) > 20, "the Metrics table of memguard/src/lib.rs moved"
    return {name: labels for name, _kind, labels in rows}


def test_every_yaml_block_in_the_readme_parses() -> None:
    blocks = [body for lang, body in code_blocks(README.read_text()) if lang == "yaml"]
    assert len(blocks) >= 4
    for body in blocks:
        list(yaml.safe_load_all(body))


def test_the_deployment_is_guaranteed_and_gets_its_limit_from_the_downward_api() -> None:
    d = by_kind("Deployment")
    assert d["apiVersion"] == "apps/v1"
    spec = d["spec"]["template"]["spec"]
    assert d["spec"]["selector"]["matchLabels"] == d["spec"]["template"]["metadata"]["labels"]
    (c,) = spec["containers"]
    res = c["resources"]
    # Guaranteed: requests equal limits for CPU and memory.
    assert set(res["requests"]) == {"cpu", "memory"} and res["requests"] == res["limits"]
    env = {e["name"]: e for e in c["env"]}
    ref = env["MEMGUARD_LIMIT"]["valueFrom"]["resourceFieldRef"]
    assert ref == {"containerName": c["name"], "resource": "limits.memory"}
    for name, e in env.items():
        assert name in memguard.ENV_VARS, f"{name} is not a variable memguard reads"
        if "value" in e:
            assert isinstance(e["value"], str), f"{name}: env values must be strings in Kubernetes"
    assert {p["name"] for p in c["ports"]} >= {"metrics"}


def test_the_pod_monitor_scrapes_the_deployments_metrics_port() -> None:
    pm = by_kind("PodMonitor")
    d = by_kind("Deployment")
    assert pm["spec"]["selector"]["matchLabels"] == d["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"] for p in d["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert all(e["port"] in ports for e in pm["spec"]["podMetricsEndpoints"])


def test_alert_rules_use_only_what_memguard_exports() -> None:
    rule = by_kind("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    families = exported_families()
    kinds = {k.value for k in memguard.EventKind}
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    names: Set[str] = set()
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
        assert r["alert"] not in names, f"duplicate alert {r['alert']}"
        names.add(r["alert"])
        expr = r["expr"]
        assert isinstance(expr, str) and expr.count("(") == expr.count(")"), r
        text = expr + " " + " ".join(str(v) for v in (r.get("annotations") or {}).values())
        for series in re.findall(r"\bmemguard_\w+", text):
            assert series in families, f"{r['alert']}: {series} is not a metric memguard exports"
        for op, value in re.findall(r'\bkind(=~|=)"([^"]*)"', expr):
            for k in value.split("|") if op == "=~" else [value]:
                assert k in kinds, f"{r['alert']}: kind {k!r} is not an event kind"
        for value in re.findall(r'\bresult="([^"]*)"', expr):
            assert value in ("granted", "refused", "forced"), value
        assert r["labels"]["severity"] in ("info", "warning", "critical")
        assert r["annotations"]["summary"]
    # Every rule the runbook table names exists, and the other way round.
    table = set(re.findall(r"`((?:Memguard|Container)\w+)`", deploying().split("```yaml\napiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule")[0]))
    assert table == names, (table, names)


def test_the_systemd_unit_sets_the_limit_and_the_pressure_watch() -> None:
    (unit,) = [body for lang, body in code_blocks(deploying()) if lang == "ini"]
    settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line)
    assert settings["MemoryMax"] and settings["MemoryPressureWatch"] == "on"
    for line in unit.splitlines():
        if line.startswith("Environment="):
            var = line.split("=", 2)[1]
            assert var in memguard.ENV_VARS, var


def test_the_kubectl_commands_use_real_cli_options() -> None:
    (sh,) = [body for lang, body in code_blocks(deploying()) if lang == "sh"]
    for line in sh.splitlines():
        cmd = line.split("#")[0].split(" -- ", 1)[1].split()
        assert "status" in cmd
        for opt in [w for w in cmd if w.startswith("--")]:
            assert opt in ("--pid", "--json", "--prometheus"), opt
