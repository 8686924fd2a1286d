"""The command line, run as a real child process (an integration test: each test starts the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlchaos.monitoring.alert_rules import SANDBOX, STAGING, render_rule_tests, render_rules
from tests.support.bad_experiments import valid

pytestmark = pytest.mark.usefixtures("isolated_state")  # each test's own MLCHAOS_STATE_DIR, as in tests/unit


def mlchaos(*args, env, cwd=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "mlchaos", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_help_lists_commands_and_exit_codes(subprocess_env):
    proc = mlchaos("--help", env=subprocess_env)
    assert proc.returncode == 0
    for word in ("run", "validate", "discover", "sandbox", "130", "invalid input"):
        assert word in proc.stdout


def test_help_and_validate_do_not_import_heavy_modules(subprocess_env, write_experiment):
    path = write_experiment(valid())
    heavy = ["docker", "kubernetes", "sklearn", "chaoslib", "requests", "numpy"]
    code = (
        "import sys, runpy\n"
        "sys.argv = ['mlchaos'] + sys.argv[1:]\n"
        "from mlchaos.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
        "print('LOADED', loaded)\n"
    )
    for args in (["--version"], ["validate", str(path)]):
        proc = subprocess.run([sys.executable, "-c", code, *args], env=subprocess_env, capture_output=True,
                              text=True, timeout=60)
        assert "LOADED []" in proc.stdout, (args, proc.stdout, proc.stderr)


def test_validate_reports_all_files_and_exits_two(subprocess_env, write_experiment, tmp_path):
    good = write_experiment(valid(), "good.json")
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nmethod: [\n", encoding="utf-8")
    proc = mlchaos("validate", str(good), str(bad), env=subprocess_env)
    assert proc.returncode == 2
    assert f"ok: {good}" in proc.stdout
    assert f"{bad}:" in proc.stderr and "malformed YAML" in proc.stderr
    assert "nothing was executed" in proc.stderr


def test_run_with_invalid_input_executes_nothing(subprocess_env, write_experiment, tmp_path):
    marker = tmp_path / "ran"
    data = valid()
    data["method"] = [{"type": "action", "name": "w", "provider": {
        "type": "python", "module": "testdrivers", "func": "append_line",
        "arguments": {"path": str(marker), "text": "x", "extra": 1}}}]
    path = write_experiment(data)
    proc = mlchaos("run", str(path), "--journal", str(tmp_path / "j.json"), env=subprocess_env)
    assert proc.returncode == 2
    assert "/method/0/provider/arguments/extra" in proc.stderr
    assert not marker.exists() and not (tmp_path / "j.json").exists()


def test_run_prints_lines_and_a_summary_and_writes_the_journal(subprocess_env, write_experiment, tmp_path):
    journal = tmp_path / "out.json"
    proc = mlchaos("run", str(write_experiment(valid())), "--journal", str(journal), env=subprocess_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   probe  ok" in proc.stdout  # plain text: not a TTY
    assert "\033[" not in proc.stdout
    assert "verdict: HELD (exit 0)" in proc.stdout
    assert json.loads(journal.read_text())["status"] == "completed"


def test_var_and_var_file(subprocess_env, write_experiment, tmp_path):
    data = valid()
    data["configuration"] = {"a": "file", "b": "file"}
    data["method"] = [{"type": "probe", "name": "show", "provider": {
        "type": "python", "module": "testdrivers", "func": "echo", "arguments": {"value": "${a}-${b}-${n}"}}}]
    path = write_experiment(data)
    var_file = tmp_path / "vars.yaml"
    var_file.write_text("configuration:\n  b: varfile\n  n: 1\n", encoding="utf-8")
    journal = tmp_path / "j.json"
    proc = mlchaos("run", str(path), "--var", "a=cli", "--var-file", str(var_file), "--journal", str(journal),
                   env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(journal.read_text())["run"][0]["output"] == "cli-varfile-1"


def test_bad_var_and_missing_var_file_are_invalid_input(subprocess_env, write_experiment, tmp_path):
    path = write_experiment(valid())
    proc = mlchaos("run", str(path), "--var", "novalue", "--var-file", str(tmp_path / "none.yaml"),
                   env=subprocess_env)
    assert proc.returncode == 2
    assert "expected name[:type]=value" in proc.stderr
    assert "none.yaml" in proc.stderr and "cannot read var file" in proc.stderr


def test_typed_var(subprocess_env, write_experiment, tmp_path):
    data = valid()
    data["method"] = [{"type": "probe", "name": "n", "provider": {
        "type": "python", "module": "testdrivers", "func": "typed", "arguments": {"count": "${n}"}}}]
    journal = tmp_path / "j.json"
    proc = mlchaos("run", str(write_experiment(data)), "--var", "n:int=7", "--journal", str(journal),
                   env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(journal.read_text())["run"][0]["output"] == 7


def test_discover_lists_driver_functions_with_summaries(subprocess_env):
    proc = mlchaos("discover", env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert "drivers.process.actions" in proc.stdout
    assert "kill_replicas(" in proc.stdout
    assert "drivers.model.probes" in proc.stdout
    assert "(no docstring)" not in proc.stdout


def test_rules_command_prints_the_rendering(subprocess_env: dict[str, str]) -> None:
    def mlchaos(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mlchaos", "rules", *args], env=subprocess_env,
                              capture_output=True, text=True, timeout=60)

    proc = mlchaos("--profile", "sandbox", "--set", "down_for=2s")
    assert proc.returncode == 0 and proc.stdout == render_rules(SANDBOX.with_overrides(["down_for=2s"]))
    assert mlchaos().stdout == render_rules(STAGING)
    assert mlchaos("--tests").stdout == render_rule_tests(STAGING)
    bad = mlchaos("--set", "dwn_for=2s")
    assert bad.returncode == 2 and "unknown parameter 'dwn_for'" in bad.stderr and bad.stdout == ""
