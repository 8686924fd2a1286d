"""The documented ways to schedule a game day: the systemd unit and timer (their settings; systemd-analyze
checks them in tests/integration/test_gameday_systemd.py) and the cron.d file (its expression and its mlchaos
command line)."""

from __future__ import annotations

import shlex
from pathlib import Path

from mlchaos.cli import build_parser
from mlchaos.gameday.schedule import cron_problem
from tests.support.paths import ROOT

SYSTEMD = ROOT / "deploy" / "systemd"
CRON = ROOT / "deploy" / "cron" / "mlchaos-gameday"


def _settings(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] not in "#;")
    return {key.strip(): value.strip() for key, value in pairs}


def _gameday_args(command: str) -> list[str]:
    words = shlex.split(command)
    start = next(i for i, w in enumerate(words) if w.endswith("/mlchaos") and words[i + 1] == "gameday")
    end = next((i for i, w in enumerate(words) if i > start and w.startswith(">")), len(words))
    return words[start + 1:end]


def test_the_service_runs_mlchaos_gameday_once_and_lets_its_safety_processes_live():
    settings = _settings(SYSTEMD / "mlchaos-gameday.service")
    assert settings["Type"] == "oneshot"
    assert settings["KillMode"] == "process", "the guardian, TTL watchdogs and restarted replicas outlive a stop"
    assert settings["KillSignal"] == "SIGTERM" and int(settings["TimeoutStopSec"]) >= 120
    args = build_parser().parse_args(_gameday_args(settings["ExecStart"]))
    assert args.command == "gameday" and args.schedule is None  # the timer is the scheduler
    assert _settings(SYSTEMD / "mlchaos-gameday.timer")["Unit"] == "mlchaos-gameday.service"


def test_the_cron_file_has_a_valid_expression_and_command():
    (line,) = [line for line in CRON.read_text().splitlines() if line and line[0].isdigit()]
    fields = line.split()
    assert cron_problem(" ".join(fields[:5])) is None
    assert fields[5] == "mlchaos", "a cron.d line names its user"
    args = build_parser().parse_args(_gameday_args(" ".join(fields[6:])))
    assert args.command == "gameday" and args.schedule is None
    assert "%" not in line, "cron turns % into a newline"
