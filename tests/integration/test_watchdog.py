"""The detached TTL watchdog undoes a fault by itself, unless the rollback stopped it first (real detached
processes over seconds of their TTLs: an integration test)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mlchaos.safety.watchdog import start_watchdog, stop_watchdog
from tests.support.environment import pythonpath
from tests.support.polling import poll

pytestmark = pytest.mark.usefixtures("isolated_state")  # each test's own MLCHAOS_STATE_DIR, as in tests/unit


def test_the_watchdog_runs_the_undo_after_its_ttl(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", pythonpath())  # the watchdog imports testdrivers
    marker = tmp_path / "undone"
    pid = start_watchdog(0.3, "testdrivers.append_line", {"path": str(marker), "text": "undone"})
    assert poll(marker.exists, timeout=15)
    assert marker.read_text() == "undone\n"
    assert poll(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), timeout=5)


def test_a_stopped_watchdog_does_not_undo(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", pythonpath())  # the watchdog imports testdrivers
    marker = tmp_path / "undone"
    pid = start_watchdog(1.0, "testdrivers.append_line", {"path": str(marker), "text": "undone"})
    assert poll(lambda: b"mlchaos.safety.watchdog" in Path(f"/proc/{pid}/cmdline").read_bytes(), timeout=5)
    assert stop_watchdog(pid) is True
    time.sleep(1.5)  # past the TTL: the undo must not have run
    assert not marker.exists()


def test_stop_leaves_an_unrelated_process_alone():
    assert stop_watchdog(os.getpid()) is False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True
