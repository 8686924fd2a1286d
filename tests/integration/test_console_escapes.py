"""Text from drivers and the network reaches the terminal escaped, through the real CLI: a probe's output, an
action's exception and a journal's undo carry terminal escape sequences (clear the screen, set the window
title); what `mlchaos run` and `mlchaos recover` print shows them as ``\\x1b``..., never sends them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlchaos.engine import exit_codes
from mlchaos.safety.changes import ChangeRecord, Target

pytestmark = pytest.mark.usefixtures("isolated_state")  # each test's own MLCHAOS_STATE_DIR, as in tests/unit

CLEAR, TITLE = "\x1b[2J", "\x1b]0;owned\x07"


def _probe(name: str, func: str, **arguments) -> dict:
    return {"type": "probe", "name": name,
            "provider": {"type": "python", "module": "testdrivers", "func": func, "arguments": arguments}}


def test_run_shows_escape_sequences_from_outputs_and_errors_escaped(tmp_path, subprocess_env):
    experiment = tmp_path / "experiment.json"
    experiment.write_text(json.dumps({"title": "hostile answers", "description": "d", "method": [
        _probe("text", "echo", value=f"body {CLEAR}\x1b[31mred\rover"),
        _probe("mapping", "echo", value={"status": TITLE}),
        {**_probe("error", "fail", message=f"server said {CLEAR}{TITLE}"), "type": "action"},
    ]}))
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal",
                           str(tmp_path / "journal.json")], env=subprocess_env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == exit_codes.DEVIATED, proc.stdout + proc.stderr
    for stream in (proc.stdout, proc.stderr):
        assert "\x1b" not in stream and "\x07" not in stream and "\r" not in stream
    assert "body \\x1b[2J\\x1b[31mred\\rover" in proc.stdout
    assert "status=\\x1b]0;owned\\x07" in proc.stdout
    assert "RuntimeError: server said \\x1b[2J\\x1b]0;owned\\x07" in proc.stdout  # the line and the summary
    assert proc.stdout.count("server said \\x1b[2J") == 2


def test_recover_shows_a_hostile_undo_escaped(tmp_path, subprocess_env):
    record = ChangeRecord(driver="test", action="inject-marker", targets=[Target(kind="file", name=f"x{TITLE}")],
                          undo={"func": f"testdrivers.remove_marker{CLEAR}", "arguments": {"path": TITLE}})
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps({"mlchaos": {"changes": [record.to_dict()]}}))
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "recover", str(journal)], env=subprocess_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == exit_codes.ROLLBACK_FAILED, proc.stdout + proc.stderr
    assert "\x1b" not in proc.stdout + proc.stderr and "\x07" not in proc.stdout + proc.stderr
    assert "FAILED" in proc.stdout and "x\\x1b]0;owned\\x07" in proc.stdout
