"""Journals and watchdogs written by mlchaos before the layout of issue 14 still work with today's code.

The fixtures in tests/fixtures/journals/premove/ were recorded by real runs of the code of commit
72ff95a (the flat layout): one journal per sandbox and Docker drill, a runner killed mid-fault,
and every Kubernetes fault's change record with the command lines of the TTL watchdogs it started.
Here: every undo those records name still resolves to a declared undo (recovery calls no other function)
and accepts its recorded arguments, and a
watchdog with a pre-move command line is still found and stopped. tests/integration/
test_premove_recovery.py runs ``mlchaos recover`` on pre-move journals for real.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlchaos.safety.declared_undos import is_declared, resolve
from mlchaos.safety.undo import recorded_changes
from mlchaos.safety.watchdog import pending, stop_covered, stop_watchdog
from tests.support.paths import FIXTURES
from tests.support.polling import poll

PREMOVE = FIXTURES / "journals" / "premove"
JOURNALS = sorted(p for p in PREMOVE.glob("*.json") if p.name != "kubernetes-records.json")
KUBERNETES = PREMOVE / "kubernetes-records.json"


def _records() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in JOURNALS:
        journal = json.loads(path.read_text())
        found += [(f"{path.stem}:{r.action}", {"func": r.undo.get("func"), "arguments": r.undo.get("arguments")})
                  for r in recorded_changes(journal) if r.undo.get("func")]
    for record in json.loads(KUBERNETES.read_text())["records"]:
        if record.get("undo"):
            found.append((f"kubernetes:{record['action']}", record["undo"]))
    return found


RECORDS = _records()


def test_the_fixtures_cover_every_driver_family_with_an_undo():
    families = {undo["func"].split(".")[1] for _, undo in RECORDS}
    assert families >= {"docker", "kubernetes", "model", "pipeline", "process", "prometheus", "proxy", "tls"}
    assert len(RECORDS) >= 25


@pytest.mark.parametrize(("where", "undo"), RECORDS, ids=[where for where, _ in RECORDS])
def test_every_recorded_undo_is_declared_and_takes_its_recorded_arguments(where, undo):
    func = resolve(undo["func"])  # raises UndoRefused when recovery would refuse it
    assert is_declared(func), where
    inspect.signature(func).bind(**undo["arguments"])  # raises TypeError when an argument no longer fits


def _legacy_watchdogs() -> list[list[str]]:
    return json.loads(KUBERNETES.read_text())["watchdog_command_lines"]


@pytest.mark.parametrize("argv", _legacy_watchdogs(), ids=lambda argv: argv[argv.index("--func") + 1])
def test_a_watchdog_started_before_the_move_is_found_and_stopped(argv):
    """A process whose command line is a pre-move watchdog's (``python -m mlchaos.watchdog --func ...``),
    standing for one still sleeping through an upgrade: the rollback's search finds it and stops it."""
    assert argv[1:3] == ["-m", "mlchaos.watchdog"]
    # the same argument vector after `python -c <sleep>`: /proc shows the recorded words, nothing runs the undo
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv[1:]],
                                start_new_session=True)
    try:
        func = argv[argv.index("--func") + 1]
        arguments = json.loads(argv[argv.index("--arguments") + 1])
        assert poll(lambda: any(pid == stand_in.pid for pid, _ in pending(func)), timeout=10)
        assert (stand_in.pid, arguments) in pending(func)
        assert stop_covered(func, lambda found: found == arguments) == [stand_in.pid]
        assert stand_in.wait(timeout=10) != 0  # SIGTERM
        assert stop_watchdog(stand_in.pid) is False  # gone: nothing left to stop, a reused pid is left alone
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
            stand_in.wait()


def test_stop_watchdog_stops_a_pre_move_watchdog_by_its_pid(tmp_path: Path):
    argv = ["-m", "mlchaos.watchdog", "--after", "120", "--func", "drivers.process.actions.continue_replicas",
            "--arguments", json.dumps({"service": "model", "replicas": ["model-1"]})]
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv],
                                start_new_session=True, env={**os.environ})
    try:
        assert poll(lambda: b"mlchaos.watchdog" in Path(f"/proc/{stand_in.pid}/cmdline").read_bytes(), timeout=10)
        assert stop_watchdog(stand_in.pid) is True
        assert stand_in.wait(timeout=10) != 0
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
            stand_in.wait()
