"""drivers.watchdogs finds the TTL watchdogs of an undo function by their command line (real processes:
an integration test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlchaos.safety.watchdog import pending, start_watchdog, stop_covered, stop_watchdog
from tests.support.environment import pythonpath
from tests.support.polling import poll

FUNC = "testdrivers.append_line"

pytestmark = pytest.mark.usefixtures("isolated_state")  # each test's own MLCHAOS_STATE_DIR, as in tests/unit


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_only_the_covered_watchdogs_of_that_function_are_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", pythonpath())  # the watchdog imports testdrivers
    marker = str(tmp_path / "undone")
    mine = start_watchdog(30, FUNC, {"path": marker, "text": "a"})
    other = start_watchdog(30, FUNC, {"path": marker, "text": "b"})
    elsewhere = start_watchdog(30, "testdrivers.echo", {"value": "a"})
    with pytest.MonkeyPatch.context() as other_sandbox:
        other_sandbox.setenv("MLCHAOS_STATE_DIR", str(tmp_path / "another-sandbox"))
        foreign = start_watchdog(30, FUNC, {"path": marker, "text": "a"})  # sees another state directory
    try:
        assert poll(lambda: {mine, other, foreign} <= {p for p, _ in pending(FUNC)}, timeout=5)
        assert dict(pending(FUNC))[mine] == {"path": marker, "text": "a"}
        assert elsewhere not in dict(pending(FUNC))
        stopped = stop_covered(FUNC, lambda a: a.get("text") == "a", same_environment="MLCHAOS_STATE_DIR")
        assert stopped == [mine]
        assert poll(lambda: _gone(mine), timeout=5)
        assert not any(_gone(p) for p in (other, elsewhere, foreign))
    finally:
        for pid in (mine, other, elsewhere, foreign):
            stop_watchdog(pid)
    assert not Path(marker).exists()
