"""Game-day files: the suite model, every problem with file:line, every experiment validated first."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import yaml

from mlchaos.experiment.problems import ProblemList
from mlchaos.gameday.suite import check_suite, load_gameday, load_suite
from tests.support.builders import py
from tests.support.paths import EXPERIMENTS


def _experiment(path: Path, title: str = "drill", **extra) -> Path:
    data = {"title": title, "description": "a drill", "configuration": {"word": "plain"},
            "method": [py("say", "echo", kind="probe", value="${word}")], **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _gameday(tmp_path: Path, text: str, name: str = "gameday.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ProblemList) as info:
        load_gameday(path)
    return [str(p) for p in info.value.problems]


def test_a_game_day_names_its_experiments_relative_to_itself(tmp_path):
    _experiment(tmp_path / "drills" / "b.json", "b")
    _experiment(tmp_path / "drills" / "a.json", "a")
    _experiment(tmp_path / "single.json", "single")
    (tmp_path / "suite" / "staging.env").parent.mkdir()
    (tmp_path / "suite" / "staging.env").write_text("X=1\n")
    path = _gameday(tmp_path / "suite", """
title: Weekly drills
experiments:
  - ../drills/*.json
  - path: ../single.json
    vars: {word: loud, count: 3}
    var_files: [staging.env]
vars: {word: suite, ratio: 0.5}
cool_down: 2.5
stop_on_failure: false
""")
    gameday = load_gameday(path)
    assert gameday.title == "Weekly drills"
    assert [e.path.name for e in gameday.entries] == ["a.json", "b.json", "single.json"]  # globs sorted
    assert gameday.entries[0].vars == {"word": "suite", "ratio": 0.5}
    assert gameday.entries[2].vars == {"word": "loud", "ratio": 0.5, "count": 3}  # its own win
    assert gameday.entries[2].var_files == (tmp_path / "suite" / "staging.env",)
    assert gameday.cool_down == 2.5 and gameday.stop_on_failure is False
    assert not gameday.schedule.calendar.restricted and gameday.schedule.cron is None


def test_defaults_stop_at_the_first_failure_without_cool_down(tmp_path):
    _experiment(tmp_path / "a.json")
    gameday = load_gameday(_gameday(tmp_path, "title: t\nexperiments: [a.json]\n"))
    assert gameday.stop_on_failure is True and gameday.cool_down == 0


def test_a_glob_never_names_the_game_day_file_itself(tmp_path):
    _experiment(tmp_path / "a.json")
    path = _gameday(tmp_path, json.dumps({"title": "t", "experiments": ["*.json"]}), "suite.json")
    assert [e.path.name for e in load_gameday(path).entries] == ["a.json"]


def test_the_schedule_block_is_read(tmp_path):
    _experiment(tmp_path / "a.json")
    path = _gameday(tmp_path, """
title: t
experiments: [a.json]
schedule:
  cron: "0 10 * * mon-thu"
  timezone: Europe/Berlin
  windows:
    - {days: [mon, tue, wed, thu], start: "09:00", end: "16:00"}
    - {days: fri-sun, start: "22:00", end: "02:00"}
  exclude:
    - "2025-12-24"
    - {from: "2025-12-29", to: "2026-01-02", reason: change freeze}
    - {date: "2026-05-01", reason: holiday}
""")
    schedule = load_gameday(path).schedule
    assert schedule.cron == "0 10 * * mon-thu"
    calendar = schedule.calendar
    assert calendar.timezone.key == "Europe/Berlin"
    assert [w.describe() for w in calendar.windows] == ["mon,tue,wed,thu 09:00-16:00", "fri,sat,sun 22:00-02:00"]
    assert [(e.first, e.last, e.reason) for e in calendar.exclusions] == [
        (date(2025, 12, 24), date(2025, 12, 24), ""), (date(2025, 12, 29), date(2026, 1, 2), "change freeze"),
        (date(2026, 5, 1), date(2026, 5, 1), "holiday")]
    assert schedule.cron_schedule().timezone.key == "Europe/Berlin"


def test_every_problem_is_reported_with_file_and_line(tmp_path):
    _experiment(tmp_path / "a.json")
    path = _gameday(tmp_path, """title: t
experiments:
  - a.json
  - missing.json
  - drills/*.yaml
  - path: a.json
    vars: {word: [1, 2]}
    var_files: [nope.env]
  - {vars: {}}
  - path: a.json
    varz: {}
cool_down: -1
stop_on_failure: maybe
schedul: {}
schedule:
  cron: "61 * * * *"
  timezone: Mars/Olympus
  windows:
    - {days: [mon, funday], start: 9:00, end: "25:00"}
  exclude:
    - "2025-13-01"
    - {from: "2025-12-31", to: "2025-12-01"}
""")
    problems = _problems(path)
    where = str(path)
    expected = [
        f"{where}:14: /schedul: unknown key 'schedul' (did you mean 'schedule'?)",
        f"{where}:4: /experiments/1: file 'missing.json' matches no experiment file",
        f"{where}:5: /experiments/2: glob 'drills/*.yaml' matches no experiment file",
        f"{where}:7: /experiments/3/vars/word: a variable is a string, number or boolean, got list",
        f"{where}:8: /experiments/3/var_files/0: var file 'nope.env' not found",
        f"{where}:9: /experiments/4: an experiment entry needs a 'path'",
        f"{where}:11: /experiments/5/varz: unknown key 'varz' (did you mean 'vars'?)",
        f"{where}:12: /cool_down: must be a number of seconds from 0 to 86400, got -1",
        f"{where}:13: /stop_on_failure: must be true or false, got 'maybe'",
        f"{where}:16: /schedule/cron: invalid cron expression '61 * * * *'",
        f"{where}:17: /schedule/timezone: unknown timezone 'Mars/Olympus'",
        f"{where}:19: /schedule/windows/0/days: unknown weekday 'funday'",
        f"{where}:19: /schedule/windows/0/start: quote times: YAML reads an unquoted 9:00 as the number 540; "
        'write "09:00"',
        f"{where}:19: /schedule/windows/0/end: '25:00' is not a time of day",
        f"{where}:21: /schedule/exclude/0: expected a date as \"YYYY-MM-DD\", got '2025-13-01'",
        f"{where}:22: /schedule/exclude/1: the range ends (2025-12-01) before it starts (2025-12-31)",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), f"{text}\nnot in:\n" + "\n".join(problems)
    assert len(problems) == len(expected)


def test_a_game_day_needs_a_title_and_experiments(tmp_path):
    assert _problems(_gameday(tmp_path, "description: x\n")) == [
        f"{tmp_path / 'gameday.yaml'}:1: /: a game day needs a 'title' (a non-empty string)",
        f"{tmp_path / 'gameday.yaml'}:1: /: a game day needs 'experiments': a list of experiment files or globs",
    ]
    assert _problems(_gameday(tmp_path, "- a\n")) == [
        f"{tmp_path / 'gameday.yaml'}:1: /: a game-day file must be a mapping (object), got a list"]
    assert "must be a non-empty list" in _problems(_gameday(tmp_path, "title: t\nexperiments: []\n"))[0]


def test_a_malformed_file_is_a_problem_with_its_line(tmp_path):
    problems = _problems(_gameday(tmp_path, "title: t\nexperiments: [a.json\n"))
    assert len(problems) == 1 and "malformed YAML" in problems[0] and ":3:" in problems[0]


def test_check_suite_validates_every_experiment_and_reports_all_their_problems(tmp_path):
    _experiment(tmp_path / "good.json")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"title": "bad", "description": "d", "tittle": "x",
                                   "method": [py("go", "typed", count="three")]}), encoding="utf-8")
    worse = tmp_path / "worse.json"
    worse.write_text("{", encoding="utf-8")
    gameday = load_gameday(_gameday(tmp_path, "title: t\nexperiments: [good.json, bad.yaml, worse.json]\n"))
    with pytest.raises(ProblemList) as info:
        check_suite(gameday)
    problems = [str(p) for p in info.value.problems]
    assert any(p.startswith(f"{bad}:") and "unknown key 'tittle'" in p for p in problems)
    assert any(p.startswith(f"{bad}:") and "argument 'count' must be int" in p for p in problems)
    assert any(p.startswith(f"{worse}:1:") and "malformed JSON" in p for p in problems)


def test_vars_reach_each_experiment_typed_and_the_command_line_wins(tmp_path):
    _experiment(tmp_path / "a.json")
    env = tmp_path / "x.env"
    env.write_text("MLCHAOS_GD_TEST=1\n")
    gameday = load_gameday(_gameday(tmp_path, """title: t
experiments:
  - path: a.json
    vars: {word: loud, count: 3, ratio: 0.25, flag: true, big: 12345678901}
    var_files: [x.env]
"""))
    (checked,) = check_suite(gameday)
    assert checked.variables.configuration == {"word": "loud", "count": 3, "ratio": 0.25, "flag": True,
                                               "big": 12345678901}
    assert checked.variables.environment == {"MLCHAOS_GD_TEST": "1"}
    (checked,) = check_suite(gameday, var=["word=cli"])
    assert checked.variables.configuration["word"] == "cli"


def test_an_unresolved_variable_is_found_before_anything_runs(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"title": "t", "description": "d",
                                "method": [py("say", "echo", kind="probe", value="${nowhere}")]}))
    gameday = load_gameday(_gameday(tmp_path, "title: t\nexperiments: [a.json]\n"))
    with pytest.raises(ProblemList, match=r"unresolved variable \$\{nowhere\}"):
        check_suite(gameday)
    (checked,) = check_suite(load_gameday(_gameday(tmp_path, """title: t
experiments: [{path: a.json, vars: {nowhere: here}}]
""")))
    assert checked.variables.configuration == {"nowhere": "here"}


def test_load_suite_reports_the_files_problems_and_its_experiments_at_once(tmp_path):
    _experiment(tmp_path / "good.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"title": "bad", "description": "d", "method": [py("go", "typed", count="three")]}),
                   encoding="utf-8")
    path = _gameday(tmp_path, "title: t\nexperiments: [good.json, bad.json, {path: bad.json, vars: {x: [1]}}]\n"
                              "cool_down: soon\n")
    with pytest.raises(ProblemList) as info:
        load_suite(path)
    problems = [str(p) for p in info.value.problems]
    assert [p.split(": ")[1] for p in problems] == ["/experiments/2/vars/x", "/cool_down",
                                                    "/method/0/provider/arguments/count"]
    gameday, checked = load_suite(_gameday(tmp_path, "title: t\nexperiments: [good.json]\n"))
    assert [c.experiment.title for c in checked] == ["drill"] and gameday.title == "t"


def test_the_bundled_game_days_are_valid():
    root = EXPERIMENTS / "gamedays"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        gameday, checked = load_suite(path)
        assert checked and all(c.entry.path.parent == root.parent for c in checked), path
    weekly = load_gameday(root / "sandbox-weekly.yaml")
    assert weekly.schedule.cron and weekly.schedule.calendar.windows and weekly.schedule.calendar.exclusions
