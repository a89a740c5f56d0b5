"""Status, Level, errors, typing metadata and the ``python -m memguard`` CLI."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import memguard
from memguard import Level

from conftest import LIMIT, Node


def test_version_and_exports() -> None:
    assert memguard.__version__.count(".") == 2
    for name in memguard.__all__:
        assert hasattr(memguard, name), name
    assert "MEMGUARD_WARN" in memguard.ENV_VARS


def test_level_is_an_ordered_int_enum() -> None:
    assert Level.NORMAL < Level.WARNING < Level.CRITICAL
    assert [int(x) for x in Level] == [0, 1, 2]
    assert str(Level.WARNING) == "warning"
    assert Level.parse("Critical") is Level.CRITICAL
    assert Level.parse(1) is Level.WARNING
    with pytest.raises(ValueError):
        Level.parse("panic")


def test_status_of_this_process() -> None:
    s = memguard.status()
    assert s.cgroup in ("v1", "v2", "none")
    assert s.limits.host_total_bytes and s.limits.host_total_bytes > 0
    d = s.to_dict()
    assert d["cgroup"] == s.cgroup
    assert d["memguard_version"] == memguard.__version__
    # The same field order as `memguard status --json`.
    assert list(d)[:3] == ["memguard_version", "cgroup", "cgroup_path"]
    json.dumps(d)
    assert all(isinstance(x, memguard.SourceStatus) for x in s.sources)


def test_status_on_a_fixture_root(node: Node) -> None:
    s = memguard.status(root=node.root)
    assert s.cgroup == "none"
    assert s.limit_bytes is None
    assert s.limits.host_total_bytes == LIMIT
    assert s.host_available_bytes == LIMIT * 90 // 100


def test_os_errors_carry_errno_and_filename() -> None:
    with pytest.raises(OSError) as info:
        memguard.status(pid=2**22 + 12345)
    e = info.value
    assert isinstance(e, memguard.MemguardOSError) and isinstance(e, memguard.MemguardError)
    assert e.errno == 2
    assert e.filename and e.filename.startswith("/proc/")


def test_proc_unavailable(tmp_path: Path) -> None:
    with pytest.raises(memguard.ProcUnavailableError) as info:
        memguard.Guard(root=tmp_path, from_env=False)
    assert isinstance(info.value, OSError)
    assert info.value.errno == 2


def test_invalid_config_is_a_value_error(node: Node) -> None:
    with pytest.raises(memguard.ConfigError) as info:
        node.guard(warn=0.95, critical=0.9)
    assert isinstance(info.value, ValueError)
    assert "warn" in str(info.value)
    with pytest.raises(ValueError):
        node.guard(soft_limit=1.5)
    with pytest.raises(ValueError):
        node.guard(event_hold=-1.0)
    with pytest.raises(ValueError):
        node.guard(sample_interval=(0.5, 0.1))


def test_invalid_environment_is_reported(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMGUARD_WARN", "lots")
    with pytest.raises(memguard.ConfigError, match="MEMGUARD_WARN"):
        node.guard(from_env=True)


def test_budget_exceeded_is_a_picklable_memory_error() -> None:
    e = memguard.BudgetExceeded("x", requested=5, available=3, soft_limit=9, level=2, scope=None)
    assert isinstance(e, MemoryError) and isinstance(e, memguard.MemguardError)
    e2 = pickle.loads(pickle.dumps(e))
    assert (e2.requested, e2.available, e2.soft_limit, e2.level) == (5, 3, 9, Level.CRITICAL)


def test_typing_metadata_is_installed() -> None:
    pkg = Path(memguard.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_memguard.pyi").exists()


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "memguard", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_cli_status(node: Node) -> None:
    out = _cli("status")
    assert out.returncode == 0, out.stderr
    assert "memguard " in out.stdout and "limit" in out.stdout
    out = _cli("status", "--json", "--root", str(node.root))
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["cgroup"] == "none" and d["host_total_bytes"] == LIMIT
    out = _cli("status", "--pid", str(2**22 + 12345))
    assert out.returncode == 1 and "cannot read" in out.stderr


def test_cli_watch_until_sigterm(node: Node) -> None:
    import signal
    import time

    env = dict(os.environ, MEMGUARD_ROOT=str(node.root), MEMGUARD_EVICTION_THRESHOLD="0")
    p = subprocess.Popen(
        [sys.executable, "-m", "memguard", "watch", "--json"], stdout=subprocess.PIPE, text=True, env=env
    )
    assert p.stdout is not None
    header = json.loads(p.stdout.readline())
    assert header["kind"] == "started" and header["limit_bytes"] == LIMIT
    node.set_used(95)
    ev = json.loads(p.stdout.readline())
    assert ev["kind"] == "level_changed" and ev["to"] in ("warning", "critical")
    time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0


def test_event_kinds_match_the_core() -> None:
    from memguard import _memguard

    assert [k.value for k in memguard.EventKind] == list(_memguard.EVENT_KINDS)


def test_config_errors_name_the_setting_and_variable(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(memguard.ConfigError) as info:
        node.guard(redetect_interval=0.0)
    assert (info.value.setting, info.value.env_var) == ("redetect_interval", None)
    monkeypatch.setenv("MEMGUARD_REDETECT_INTERVAL", "0")
    with pytest.raises(memguard.ConfigError) as info:
        node.guard(from_env=True)
    e = info.value
    assert (e.setting, e.env_var, e.value) == ("redetect_interval", "MEMGUARD_REDETECT_INTERVAL", "0")
    assert 'MEMGUARD_REDETECT_INTERVAL="0"' in str(e)
    g = node.guard(limit_override=256 << 20, queue_capacity=8)
    try:
        assert g.config()["limit_override"] == 256 << 20
        assert g.config()["queue_capacity"] == 8
    finally:
        g.close()


def _v2_namespaced_root(tmp_path: Path) -> Path:
    """`0::/` in a private cgroup namespace whose own cgroup has a 256 MiB limit: a tighter
    limit may be hidden above it."""
    files = {
        "proc/meminfo": "MemTotal: 16777216 kB\nMemAvailable: 8388608 kB\n",
        "proc/self/oom_score_adj": "0\n",
        "proc/self/cgroup": "0::/\n",
        "proc/self/mountinfo": "29 23 0:26 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n",
        "sys/fs/cgroup/cgroup.controllers": "memory\n",
        "sys/fs/cgroup/cgroup.type": "domain\n",
        "sys/fs/cgroup/memory.max": str(256 << 20),
        "sys/fs/cgroup/memory.current": str(100 << 20),
        "sys/fs/cgroup/memory.stat": "anon 1\ninactive_file 0\n",
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_cli_status_is_the_core_rendering(tmp_path: Path) -> None:
    from memguard import _memguard

    root = _v2_namespaced_root(tmp_path)
    out = _cli("status", "--root", str(root))
    assert out.returncode == 0, out.stderr
    assert "a tighter limit may be hidden above the cgroup namespace root" in out.stdout
    # Everything but the first line (it names the pid) is what the core renders.
    core = _memguard.render_status("text", str(root))
    assert out.stdout.splitlines()[1:] == core.splitlines()[1:]
    out = _cli("status", "--json", "--root", str(root))
    assert json.loads(out.stdout) == json.loads(_memguard.render_status("json", str(root)))
    out = _cli("status", "--prometheus", "--root", str(root))
    assert "memguard_limit_bytes 268435456" in out.stdout.splitlines()


def test_cli_status_honours_memguard_variables(node: Node) -> None:
    env = dict(os.environ, MEMGUARD_ROOT=str(node.root), MEMGUARD_LIMIT="512Mi", MEMGUARD_PSI="0")
    out = _cli("status", "--json", env=env)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert (d["limit_bytes"], d["limit_applied"], d["limit_override_source"]) == (512 << 20, "override", "MEMGUARD_LIMIT")
    assert {"name": "psi", "armed": False, "detail": "disabled by configuration"} in d["sources"]
    out = _cli("status", env=dict(env, MEMGUARD_LIMIT="1e3k"))
    assert out.returncode == 2 and 'MEMGUARD_LIMIT="1e3k"' in out.stderr, out


def test_cli_to_a_closed_pipe_exits_quietly(node: Node) -> None:
    env = dict(os.environ, MEMGUARD_ROOT=str(node.root))
    for args in (["status", "--json"], ["watch", "--snapshot-every", "20"]):
        r, w = os.pipe()
        os.close(r)  # every write to `w` gets EPIPE
        p = subprocess.Popen([sys.executable, "-m", "memguard", *args], stdout=w, stderr=subprocess.PIPE, env=env)
        os.close(w)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, (args, err)
        assert b"Traceback" not in err and b"BrokenPipe" not in err, (args, err)


def test_cli_watch_snapshot_lines_are_the_whole_snapshot(node: Node) -> None:
    import signal

    env = dict(os.environ, MEMGUARD_ROOT=str(node.root))
    p = subprocess.Popen(
        [sys.executable, "-m", "memguard", "watch", "--json", "--snapshot-every", "20"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert p.stdout is not None
    try:
        assert json.loads(p.stdout.readline())["kind"] == "started"
        line = json.loads(p.stdout.readline())
        assert line["kind"] == "snapshot"
        snap = line["snapshot"]
        assert {"level", "limit_bytes", "working_set_bytes", "events_total", "samples", "budget"} <= set(snap)
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
