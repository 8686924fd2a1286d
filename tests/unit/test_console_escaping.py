"""The console boundary: what drivers and the network said is shown with its control characters escaped, on
a terminal too, where the console still paints its own colours (a unit test of the pieces the CLI uses;
tests/integration/test_console_escapes.py attacks the real CLI)."""

from __future__ import annotations

import io

from mlchaos.engine.console import Console
from mlchaos.engine.result import RunResult
from mlchaos.engine.summary import print_summary
from mlchaos.experiment.problems import printable_lines
from mlchaos.gameday.progress import ProgressConsole
from mlchaos.journal.redaction import Redactor

HOSTILE = "answer \x1b[2J\x1b]0;owned\x07 \rover \u202ereversed"
ESCAPED = "answer \\x1b[2J\\x1b]0;owned\\x07 \\rover \\u202ereversed"


def test_printable_lines_keeps_newlines_and_tabs_only():
    assert printable_lines(f"one\t{HOSTILE}\ntwo") == f"one\t{ESCAPED}\ntwo"


def test_on_a_terminal_the_console_paints_its_colours_and_escapes_what_it_was_given():
    out = io.StringIO()
    console = Console(out, tty=True, redactor=Redactor(["s3cret"]))
    console.started("probe", f"name {HOSTILE}")
    console.finished("probe", f"name {HOSTILE}", False, 0.1, f"{HOSTILE} s3cret")
    console.heading(HOSTILE)
    console.warn(HOSTILE)
    console.error(HOSTILE)
    console.write(f"{HOSTILE}\nsecond line")
    text = out.getvalue()
    assert text.count(ESCAPED) == 7 and "second line\n" in text and "s3cret" not in text
    own = text.replace("\r\033[K", "").replace("\033[0m", "")
    for colour in ("\033[31m", "\033[33m", "\033[2m"):
        own = own.replace(colour, "")
    assert "\x1b" not in own and "\x07" not in own and "\r" not in own and "\u202e" not in own


def test_the_game_day_status_line_is_escaped_too():
    console = ProgressConsole(io.StringIO(), tty=True)
    console.begin(1, 2, "title", None)
    console.end()
    console.step = f"probe {HOSTILE}\nnext"
    line = console.status()
    assert ESCAPED in line and "\n" not in line and "\x1b" not in line


def test_the_summary_escapes_failures_and_aborts(capsys):
    result = RunResult(title="t", status="failed", verdict="deviated", exit_code=1, deviated=True,
                       failures=[f"probe 'p': {HOSTILE}"], left_undone=[HOSTILE])
    print_summary(result)
    out = capsys.readouterr().out
    assert out.count(ESCAPED) == 2 and "\x1b" not in out
