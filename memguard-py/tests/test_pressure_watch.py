"""systemd's memory pressure protocol through the Python package: ``status()`` and ``Guard()``
read ``MEMORY_PRESSURE_WATCH`` / ``MEMORY_PRESSURE_WRITE`` like the core (``from_env=True``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Run in a child so that the variables never leak into this process's environment.
CODE = r"""
import json, memguard
try:
    s = memguard.status()
    print(json.dumps({"sources": [[x.name, x.armed, x.detail] for x in s.sources]}))
except memguard.ConfigError as e:
    print(json.dumps({"error": type(e).__name__, "env_var": e.env_var, "value": e.value, "is_value_error": isinstance(e, ValueError)}))
"""


def run(**env: str) -> dict:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_PRESSURE_")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", CODE], env=full, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def test_dev_null_turns_psi_off() -> None:
    r = run(MEMORY_PRESSURE_WATCH="/dev/null")
    psi = [s for s in r["sources"] if s[0].startswith("psi")]
    assert psi == [["psi", False, "turned off by MEMORY_PRESSURE_WATCH=/dev/null"]], r


def test_invalid_values_are_config_errors_naming_the_variable() -> None:
    r = run(MEMORY_PRESSURE_WATCH="memory.pressure")
    assert r == {"error": "ConfigError", "env_var": "MEMORY_PRESSURE_WATCH", "value": "memory.pressure", "is_value_error": True}
    r = run(MEMORY_PRESSURE_WATCH="/proc/pressure/memory", MEMORY_PRESSURE_WRITE="%%")
    assert r["error"] == "ConfigError" and r["env_var"] == "MEMORY_PRESSURE_WRITE", r


def test_a_missing_file_is_listed_and_memguard_falls_back() -> None:
    r = run(MEMORY_PRESSURE_WATCH="/nonexistent/memory.pressure", MEMORY_PRESSURE_WRITE="c29tZSAyMDAwMDAgMjAwMDAwMAA=")
    watch = [s for s in r["sources"] if s[0] == "psi-watch"]
    assert len(watch) == 1 and watch[0][1] is False and "falling back" in watch[0][2], r
