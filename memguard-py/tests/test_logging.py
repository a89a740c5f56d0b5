"""Rust ``tracing`` events reach Python ``logging`` (logger ``memguard`` and children)."""

from __future__ import annotations

import logging

import pytest

import memguard
from memguard import Level

from conftest import Node, wait_for


def test_rust_events_are_forwarded_to_python_logging(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="memguard")
    with node.guard() as g:
        node.set_used(95)
        wait_for("critical", lambda: g.level() == Level.CRITICAL)
        g.try_reserve(1)  # refused at critical: a rate-limited debug record from memguard.budget
    assert memguard._memguard._flush_logs(5.0)
    by_name = {(r.name, r.getMessage().split(" ")[0]) for r in caplog.records}
    changed = [r for r in caplog.records if r.name == "memguard.watch.reactor" and "level changed" in r.getMessage()]
    assert changed, sorted(by_name)
    assert changed[0].levelno == logging.INFO
    assert "to=critical" in changed[0].getMessage()
    assert getattr(changed[0], "memguard_thread", None) == "memguard-reactor"
    refused = [r for r in caplog.records if r.name == "memguard.budget"]
    assert refused and refused[0].levelno == logging.DEBUG and "requested=1" in refused[0].getMessage()


def test_disabled_levels_are_not_emitted(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="memguard")
    with node.guard() as g:
        node.set_used(95)
        wait_for("critical", lambda: g.level() == Level.CRITICAL)
    memguard._memguard._flush_logs(5.0)
    assert not [r for r in caplog.records if r.name.startswith("memguard") and r.levelno < logging.WARNING]
