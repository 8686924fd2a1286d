"""Chaos Toolkit's command-line habits under ``mlchaos run`` (the real CLI in a child process): ``--journal-path``,
``--rollback-strategy`` (accepted; mlchaos always rolls back and says so once), ``--var``/``--var-file`` and
``--settings`` (a Chaos Toolkit settings file: checked before anything runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("isolated_state")


def mlchaos(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlchaos", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def experiment(log: Path, fail: bool = False) -> dict[str, Any]:
    def append(name: str, text: str) -> dict[str, Any]:
        return {"type": "action", "name": name, "provider": {
            "type": "python", "module": "testdrivers", "func": "append_line",
            "arguments": {"path": str(log), "text": text}}}

    method = [append("act", "${word}")]
    if fail:
        method.append({"type": "action", "name": "raise", "provider": {
            "type": "python", "module": "testdrivers", "func": "fail"}})
    return {"title": "flags", "description": "chaos run's flags", "configuration": {"word": "method"},
            "method": method, "rollbacks": [append("undo", "rollback")]}


def test_journal_path_is_an_alias_of_journal(tmp_path, write_experiment, subprocess_env):
    log = tmp_path / "log.txt"
    path = write_experiment(experiment(log))
    proc = mlchaos("run", str(path), "--journal-path", "out/j.json", env=subprocess_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    journal = json.loads((tmp_path / "out" / "j.json").read_text())
    assert journal["status"] == "completed" and not (tmp_path / "journal.json").exists()


@pytest.mark.parametrize("strategy", ["never", "default", "deviated", "always"])
def test_rollback_strategy_is_accepted_and_rollbacks_always_run(strategy, tmp_path, write_experiment,
                                                                subprocess_env):
    log = tmp_path / "log.txt"
    path = write_experiment(experiment(log, fail=True))  # chaos' default strategy skips rollbacks of failed runs
    proc = mlchaos("run", str(path), "--rollback-strategy", strategy, env=subprocess_env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert log.read_text().splitlines() == ["method", "rollback"]
    output = proc.stdout + proc.stderr
    assert output.count("mlchaos always rolls back") == 1, output
    assert f"--rollback-strategy {strategy}" in output


def test_rollback_strategy_refuses_what_chaos_refuses(tmp_path, write_experiment, subprocess_env):
    path = write_experiment(experiment(tmp_path / "log.txt"))
    proc = mlchaos("run", str(path), "--rollback-strategy", "sometimes", env=subprocess_env, cwd=tmp_path)
    assert proc.returncode == 2 and "invalid choice: 'sometimes'" in proc.stderr
    assert not (tmp_path / "log.txt").exists()


def test_var_and_var_file_as_chaos(tmp_path, write_experiment, subprocess_env):
    log = tmp_path / "log.txt"
    path = write_experiment(experiment(log))
    (tmp_path / "vars.yaml").write_text("configuration:\n  word: from-file\n")
    assert mlchaos("run", str(path), "--var-file", "vars.yaml", env=subprocess_env, cwd=tmp_path).returncode == 0
    assert mlchaos("run", str(path), "--var", "word=from-flag", env=subprocess_env, cwd=tmp_path).returncode == 0
    assert log.read_text().splitlines() == ["from-file", "rollback", "from-flag", "rollback"]


def test_settings_file_is_checked_before_anything_runs(tmp_path, write_experiment, subprocess_env):
    log = tmp_path / "log.txt"
    path = write_experiment(experiment(log))
    missing = mlchaos("run", str(path), "--settings", "nowhere.yaml", env=subprocess_env, cwd=tmp_path)
    assert missing.returncode == 2 and "nowhere.yaml: no such settings file" in missing.stderr
    (tmp_path / "bad.yaml").write_text("controls: [\n")
    bad = mlchaos("run", str(path), "--settings", "bad.yaml", env=subprocess_env, cwd=tmp_path)
    assert bad.returncode == 2 and "bad.yaml: cannot read the Chaos Toolkit settings" in bad.stderr
    assert "line 2" in bad.stderr
    (tmp_path / "list.yaml").write_text("- a\n")
    listed = mlchaos("run", str(path), "--settings", "list.yaml", env=subprocess_env, cwd=tmp_path)
    assert listed.returncode == 2 and "list.yaml: the Chaos Toolkit settings must be a mapping" in listed.stderr
    assert "nothing was executed" in bad.stderr and not log.exists()
    (tmp_path / "settings.yaml").write_text("runtime:\n  rollbacks:\n    strategy: always\n")
    good = mlchaos("run", str(path), "--settings", "settings.yaml", env=subprocess_env, cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert log.read_text().splitlines() == ["method", "rollback"]
