"""Validation reports every problem at once, each located by pointer and line."""

from __future__ import annotations

import json

import pytest

from mlchaos.experiment.loader import load_document
from mlchaos.experiment.validation import validate
from mlchaos.experiment.variables import Variables
from tests.support.bad_experiments import CATALOGUE, valid
from tests.support.paths import EXPERIMENTS


def _problems(write_experiment, data, variables=None, name="experiment.json"):
    return validate(load_document(write_experiment(data, name)), variables)


def test_the_valid_base_experiment_has_no_problem(write_experiment):
    assert _problems(write_experiment, valid()) == []


@pytest.mark.parametrize("bad", CATALOGUE, ids=[b.name for b in CATALOGUE])
def test_each_bad_experiment_is_reported_where_it_is(write_experiment, bad):
    problems = _problems(write_experiment, bad.data)
    matching = [p for p in problems if p.pointer == bad.pointer and bad.message in p.message]
    assert matching, f"expected {bad.pointer}: {bad.message!r}, got {[str(p) for p in problems]}"
    assert matching[0].line is not None
    assert matching[0].file.endswith("experiment.json")


def test_all_problems_are_reported_at_once(write_experiment):
    data = valid()
    data["title"] = ""
    data["method"][0]["provider"]["func"] = "ecko"
    data["rollbacks"][0]["timeout"] = "soon"
    data["steady-state-hypothesis"]["probes"][0]["tolerance"] = {"type": "range", "range": [2, 1]}
    pointers = {p.pointer for p in _problems(write_experiment, data)}
    assert {"/title", "/method/0/provider/func", "/rollbacks/0/timeout",
            "/steady-state-hypothesis/probes/0/tolerance/range"} <= pointers


def test_yaml_problems_carry_the_line_of_the_key(write_experiment):
    data = valid()
    data["method"][0]["provider"]["func"] = "ecko"
    path = write_experiment(data, "e.yaml")
    (problem,) = validate(load_document(path))
    lines = path.read_text().splitlines()
    assert "ecko" in lines[problem.line - 1]


def test_command_line_vars_resolve_variables_and_env_config(write_experiment, monkeypatch):
    data = valid()
    data["configuration"] = {"url": {"type": "env", "key": "MLCHAOS_TEST_UNSET_X"}}
    data["method"][0]["provider"]["arguments"] = {"value": "${answer}"}
    assert len(_problems(write_experiment, data)) == 2
    variables = Variables(configuration={"answer": 42, "url": "http://127.0.0.1"})
    assert _problems(write_experiment, data, variables) == []


def test_secrets_resolve_variables(write_experiment):
    data = valid()
    data["secrets"] = {"auth": {"token": "s3cr3t"}}
    data["method"][0]["provider"]["arguments"] = {"value": "${token}"}
    assert _problems(write_experiment, data) == []


def test_escaped_dollar_is_not_a_variable(write_experiment):
    data = valid()
    data["method"][0]["provider"]["arguments"] = {"value": "$${literal}"}
    assert _problems(write_experiment, data) == []


def test_module_that_fails_on_import_is_named(write_experiment, tmp_path, monkeypatch):
    (tmp_path / "brokendriver.py").write_text("import not_installed_anywhere\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = valid()
    data["method"][0]["provider"]["module"] = "brokendriver"
    (problem,) = _problems(write_experiment, data)
    assert problem.message == "module brokendriver imports 'not_installed_anywhere', which is not installed"


def test_validation_does_not_execute_anything(write_experiment, tmp_path):
    marker = tmp_path / "ran"
    data = valid()
    data["method"][0]["provider"] = {"type": "python", "module": "testdrivers", "func": "append_line",
                                     "arguments": {"path": str(marker), "text": "x"}}
    assert _problems(write_experiment, data) == []
    assert not marker.exists()


def test_bundled_experiments_are_valid():

    root = EXPERIMENTS
    files = sorted(root.glob("*.yaml")) + sorted(root.glob("*.json"))
    assert files, "no bundled experiment found"
    for path in files:
        assert validate(load_document(path)) == [], path
        json.dumps(load_document(path).data)  # plain data, serialisable


def test_a_bare_dollar_word_is_not_reported(write_experiment):
    data = valid()
    data["method"][0]["provider"]["arguments"] = {"value": "summary: {{ $labels.instance }} is down"}
    assert _problems(write_experiment, data) == []


def test_experiments_that_need_monitoring_name_the_missing_packages(monkeypatch):
    """Through the pipeline the command line runs: `listen: sandbox` is checked by the sandbox's listen target."""

    from mlchaos.cli.listen_targets import LISTEN_TARGETS
    from mlchaos.experiment.pipeline import load_checked
    from mlchaos.experiment.problems import ProblemList
    from mlchaos.sandbox import monitoring_stack

    for name, (_, package) in list(monitoring_stack.BINARIES.items()):
        monkeypatch.setitem(monitoring_stack.BINARIES, name, (f"/nonexistent/{name}", package))
    monkeypatch.setattr(monitoring_stack, "PROMTOOL", ("/nonexistent/promtool", "prometheus"))
    monkeypatch.setattr(monitoring_stack.shutil, "which", lambda _name: None)
    root = EXPERIMENTS
    with pytest.raises(ProblemList) as raised:
        load_checked(str(root / "kill-one-replica-alerts.yaml"), [], [], LISTEN_TARGETS)
    problems = raised.value.problems
    assert problems, "an experiment needing monitoring must not validate without it"
    expected = "apt-get install prometheus prometheus-alertmanager prometheus-blackbox-exporter"
    assert all(expected in p.message for p in problems)
    pointers = {p.pointer for p in problems}
    assert "/extensions/0/notifications" in pointers
    assert "/steady-state-hypothesis/probes/0/provider" in pointers
    # an experiment without monitoring is unaffected
    assert load_checked(str(root / "kill-one-replica.yaml"), [], [], LISTEN_TARGETS)[0].title


@pytest.mark.parametrize(("notifications", "expected"), [
    ({"listen": "foo"}, "notifications: listen: foo: no such listen target here (known: sandbox)"),
    ({"listen": "Foo Bar"}, "listen must be a named listen target such as 'sandbox', or HOST:PORT, got 'Foo Bar'"),
    ({"listen": "sandbox", "extra": 1}, "must be a mapping with 'listen'"),
])
def test_a_wrong_notifications_setting_is_one_problem_and_no_listen_target_is_asked(write_experiment, notifications,
                                                                                   expected):
    """The setting's own check owns it: the named target's preflight runs only on a setting that passed."""
    from mlchaos.experiment.pipeline import load_checked
    from mlchaos.experiment.problems import ProblemList

    class Target:
        asked = 0

        def preflight(self) -> list[str]:
            Target.asked += 1
            return ["is not running"]

        def address(self) -> str:
            raise AssertionError("not resolved at validation")

    data = valid()
    data["extensions"] = [{"name": "mlchaos", "notifications": notifications}]
    with pytest.raises(ProblemList) as raised:
        load_checked(str(write_experiment(data)), [], [], {"sandbox": Target()})
    (problem,) = raised.value.problems
    assert expected in problem.message and problem.pointer.startswith("/extensions/0/notifications")
    assert Target.asked == 0
