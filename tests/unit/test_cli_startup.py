"""How the command line starts: only the parser of the command given is built (every command's for --help and
for an unknown command), and the cyclic garbage collector is paused while a command loads and put back as it was.
Behaviour only; what it saves is measured by benchmarks/startup_and_overhead.py."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from mlchaos.cli import COMMANDS, _command_in, build_parser, main
from mlchaos.cli.gc_pause import gc_paused
from tests.support.bad_experiments import valid


@pytest.mark.parametrize(("argv", "command"), [
    (["validate", "x.yaml"], "validate"), (["--version", "run", "x.yaml", "--quiet"], "run"),
    (["-h"], None), (["--help", "gameday"], "gameday"), (["nosuch", "x"], None), ([], None),
])
def test_the_command_is_the_first_argument_that_is_not_an_option(argv, command):
    assert _command_in(argv) == command


@pytest.mark.parametrize("argv", [
    ["validate", "a.yaml", "b.json", "--var", "x=1"],
    ["run", "x.yaml", "--journal", "j.json", "--quiet", "--hypothesis-strategy", "continuously",
     "--hypothesis-frequency", "2", "--fail-fast", "--rollback-strategy", "always"],
    ["plan", "x.yaml"], ["report", "j.json"], ["discover"],
])
def test_the_one_command_parser_parses_as_the_whole_one(argv):
    whole, alone = vars(build_parser().parse_args(argv)), vars(build_parser(argv[0]).parse_args(argv))
    assert whole == alone


def test_help_still_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_back_as_it_was_after_a_command(write_experiment, capsys, enabled):
    path = write_experiment(valid())
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        assert main(["validate", str(path)]) == 0
        assert gc.isenabled() is enabled
        with pytest.raises(SystemExit):
            main(["validate", "--no-such-option"])
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert f"ok: {path}" in capsys.readouterr().out


def test_the_collector_is_paused_inside_and_back_after_an_error():
    assert gc.isenabled()
    with pytest.raises(ValueError), gc_paused():
        assert not gc.isenabled()
        raise ValueError("boom")
    assert gc.isenabled()


def test_only_the_validate_process_leaves_its_objects_to_the_exit(write_experiment, subprocess_env, capsys):
    """`mlchaos validate` as a process freezes what it loaded (the exit need not sweep it); called with arguments,
    as tests and game days call it, it leaves the caller's collector alone."""
    path = write_experiment(valid())
    frozen = gc.get_freeze_count()
    assert main(["validate", str(path)]) == 0
    assert gc.get_freeze_count() == frozen
    code = ("import gc, sys\nfrom mlchaos.cli import main\nsys.argv = ['mlchaos', 'validate', sys.argv[1]]\n"
            "rc = main()\nprint(rc, gc.get_freeze_count() > 0)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], env=subprocess_env, capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.splitlines()[-1] == "0 True", proc.stdout + proc.stderr
    capsys.readouterr()
