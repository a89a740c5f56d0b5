"""Real kernels: a Python worker with a growing dict cache in a limited cgroup sheds it through
memguard and survives, while its unguarded twin is OOM-killed (SIGKILL).

``kernel_v1`` runs natively on a cgroup v1 memory controller (root, a writable memory cgroup);
``kernel_v2`` runs inside the ``cargo xtask vm`` guest (``MEMGUARD_IN_VM=1``), where TCG makes
Python about 3x slower, so the ramp is slower there. Both skip with the reason locally and fail
in CI (``CI=true``) when they cannot run.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any, Dict

import pytest

from conftest import WORKERS, Kit, in_vm

MIB = 1 << 20
LIMIT = 128 * MIB
WORKER = str(WORKERS / "cache_worker.py")
# (MiB per step, MiB/s): the host allocates ~0.5 GB/s from Python, the TCG guest ~150 MB/s.
STEP, RATE = (2, 48) if in_vm() else (2, 256)
TOTAL = 3 * LIMIT // MIB  # three times the limit: the twin cannot survive
TIMEOUT = 240 if in_vm() else 60


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("MEMGUARD_") and k not in ("MEMGUARD_IN_VM",):
            env.pop(k)
    return env


def _run(kit: Kit, label: str, mode: str) -> "tuple[int, str, str, Any]":
    cg = kit.cgroup(label)
    cg.set_limit(LIMIT)
    argv = [sys.executable, WORKER, "--guard", mode, "--step", str(STEP), "--rate", str(RATE), "--total", str(TOTAL)]
    out = cg.run(argv, timeout=TIMEOUT, env=_env())
    return out.returncode, out.stdout, out.stderr, cg


def _guarded_survives(kit: Kit, mode: str) -> Dict[str, Any]:
    code, stdout, stderr, cg = _run(kit, f"guarded-{mode}", mode)
    assert code == 0, f"the guarded worker ({mode}) died with {code}: {stderr[-2000:]}"
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["limit_bytes"] == LIMIT and report["limit_source"] == "cgroup", report
    assert report["evicted"] > 0, report
    # It kept serving after its cache first filled: entries were shed and replaced. (Not
    # `served > LIMIT`: the budget no longer over-grants past its soft limit into Critical, so
    # the cache refills only as fast as the shedder frees it — at Warning, once per shed
    # interval — and a 1.5 s run on the host sees one or two shedding runs.)
    assert report["served"] * STEP * MIB > report["peak_cached"], f"the worker recycled its cache: {report}"
    assert cg.oom_kills() == 0, "no process of the guarded cgroup was OOM-killed"
    if mode == "shedder":
        assert report["shed_runs"] >= 1, report
    print(f"\n{kit.version} guarded ({mode}): {json.dumps(report)}")
    return report


def _twin_is_killed(kit: Kit) -> None:
    code, stdout, stderr, cg = _run(kit, "unguarded", "none")
    assert code == -signal.SIGKILL, f"the unguarded twin was expected to be OOM-killed, got {code}: {stdout} {stderr}"
    assert cg.oom_kills() >= 1
    print(f"\n{kit.version} unguarded twin: killed by SIGKILL, oom_kill={cg.oom_kills()}")


@pytest.mark.kernel_v1
def test_v1_shedder_survives_twin_is_oom_killed(cgroup_v1: Kit) -> None:
    _guarded_survives(cgroup_v1, "shedder")
    _twin_is_killed(cgroup_v1)


@pytest.mark.kernel_v1
def test_v1_on_level_callback_survives(cgroup_v1: Kit) -> None:
    _guarded_survives(cgroup_v1, "on_level")


@pytest.mark.kernel_v2
def test_v2_shedder_survives_twin_is_oom_killed(cgroup_v2: Kit) -> None:
    _guarded_survives(cgroup_v2, "shedder")
    _twin_is_killed(cgroup_v2)


@pytest.mark.kernel_v2
def test_v2_on_level_callback_survives(cgroup_v2: Kit) -> None:
    _guarded_survives(cgroup_v2, "on_level")


# --- full speed (issue #9) ------------------------------------------------------------------
# The worker appends 4 MiB buffers with no pause (about 2 GB/s here) toward a 256 MiB limit: the
# last 20% of the limit lasts about 20 ms. Each handler style must survive every one of 20 runs,
# and the unguarded twin must die, in the same test.
FULL_LIMIT = 256 * MIB
FULL_RUNS = 20


def _full_speed(kit: Kit, mode: str, *extra: str, total: int = 768) -> "tuple[int, Dict[str, Any]]":
    cg = kit.cgroup(f"full-{mode}")
    cg.set_limit(FULL_LIMIT)
    argv = [sys.executable, WORKER, "--guard", mode, "--step", "4", "--rate", "1000000", "--total", str(total), *extra]
    out = cg.run(argv, timeout=120, env=_env())
    kills = cg.oom_kills()
    cg.remove()
    report = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}
    assert out.returncode in (0, -signal.SIGKILL), f"{mode}: unexpected exit {out.returncode}: {out.stderr[-2000:]}"
    assert (out.returncode == 0) == (kills == 0), f"{mode}: exit {out.returncode} with {kills} OOM kill(s)"
    return out.returncode, report


@pytest.mark.kernel_v1
@pytest.mark.parametrize("mode", ["clear", "on_level", "shedder"])
def test_v1_full_speed_worker_survives_20_of_20(cgroup_v1: Kit, mode: str) -> None:
    twin, _ = _full_speed(cgroup_v1, "none")
    assert twin == -signal.SIGKILL, "at full speed the unguarded twin must be OOM-killed"
    results = [_full_speed(cgroup_v1, mode) for _ in range(FULL_RUNS)]
    survived = [r for code, r in results if code == 0]
    served = sorted(r["served"] for r in survived)
    print(f"\nv1 full speed, {mode}: survived {len(survived)}/{FULL_RUNS}; requests served {served[0] if served else 0}..{served[-1] if served else 0} of 192")
    assert len(survived) == FULL_RUNS, f"{mode}: survived {len(survived)}/{FULL_RUNS}"
    for r in survived:
        # Real work past the limit, not a worker that stopped early.
        assert r["served"] * 4 * MIB > FULL_LIMIT or r["rejected"] > 0, r


# --- predictive warning (issue #15) ------------------------------------------------------
# The same full-speed worker, whose on_level handler works 30 ms (sleeping, so the worker keeps
# allocating) before it clears anything: at ~2 GB/s the last 20% of the limit lasts ~20 ms, so
# a warning at 80% comes too late for it. With prediction (the default) the level rises when the
# time left at the measured growth falls under 250 ms. Both in the same test, for comparison.
SLOW_HANDLER = ("--handler-delay-ms", "30")
# Under emulation Python allocates ~150 MB/s: fewer megabytes per run keep the VM suite short.
PREDICT_TOTAL = 384 if in_vm() else 768
NO_PREDICT_RUNS = 5 if in_vm() else 20


def _slow_handler(kit: Kit) -> None:
    predicted = [_full_speed(kit, "clear", *SLOW_HANDLER, total=PREDICT_TOTAL) for _ in range(FULL_RUNS)]
    plain = [_full_speed(kit, "clear", *SLOW_HANDLER, "--no-predict", total=PREDICT_TOTAL) for _ in range(NO_PREDICT_RUNS)]
    ok = sum(1 for code, _ in predicted if code == 0)
    ok_plain = sum(1 for code, _ in plain if code == 0)
    print(f"\n{kit.version} full speed, on_level handler working 30 ms before freeing: "
          f"with prediction survived {ok}/{FULL_RUNS}, without prediction {ok_plain}/{NO_PREDICT_RUNS}")
    assert ok == FULL_RUNS, f"with prediction: survived {ok}/{FULL_RUNS}"


@pytest.mark.kernel_v1
def test_v1_prediction_saves_a_slow_handler(cgroup_v1: Kit) -> None:
    _slow_handler(cgroup_v1)


@pytest.mark.kernel_v2
def test_v2_prediction_saves_a_slow_handler(cgroup_v2: Kit) -> None:
    _slow_handler(cgroup_v2)


BURSTY = str(WORKERS / "bursty_worker.py")


def _bursty(kit: Kit, seconds: float) -> None:
    cg = kit.cgroup("bursty")
    cg.set_limit(FULL_LIMIT)
    out = cg.run([sys.executable, BURSTY, "--seconds", str(seconds)], timeout=seconds + 120, env=_env())
    cg.remove()
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n{kit.version} bursty service (20 MiB bursts at 50-60% of 256 MiB): {json.dumps(r)}")
    assert r["steady_warnings"] == 0, r
    assert r["level_1s_after_load"] == "normal", r


@pytest.mark.kernel_v1
def test_v1_bursty_steady_service_is_never_warned(cgroup_v1: Kit) -> None:
    _bursty(cgroup_v1, 20)


@pytest.mark.kernel_v2
def test_v2_bursty_steady_service_is_never_warned(cgroup_v2: Kit) -> None:
    _bursty(cgroup_v2, 10)
