"""A real ``mlchaos run`` started as a child process by a test that signals it or watches its journal."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def start_run(tmp_path: Path, env: dict[str, str], data: dict[str, Any],
              stderr: Path | None = None) -> tuple[subprocess.Popen[str], Path]:
    """Start ``mlchaos run`` on the experiment ``data`` (written to ``tmp_path/experiment.json``); the process
    and its journal's path (``tmp_path/journal.json``). Its stdout goes to a pipe, its stderr too, or to the
    file ``stderr`` for a test that watches it."""
    path, journal = tmp_path / "experiment.json", tmp_path / "journal.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with open(stderr, "w") if stderr else contextlib.nullcontext(subprocess.PIPE) as err:
        proc = subprocess.Popen([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal)],
                                env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    return proc, journal


def journal_so_far(path: Path) -> dict[str, Any]:
    """The journal as the run has written it so far (or a game day's suite.json, written the same way); ``{}``
    before it is there (or when it cannot be read)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
