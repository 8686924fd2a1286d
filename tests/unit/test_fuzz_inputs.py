"""Fuzzing validation with generated and mutated experiments, and replaying the corpus of hostile inputs.

Every input must give either a clear error (file, place, problem) or a valid experiment: never
another exception, never a hang, and never an executed action. The subprocess version of
these checks (``mlchaos run``) is tests/integration/test_fuzz_run.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings

from mlchaos.cli.run import main as run_command
from mlchaos.engine import exit_codes
from mlchaos.experiment.inventory import inventory
from mlchaos.experiment.loader import MAX_FILE_BYTES
from mlchaos.experiment.pipeline import load_checked
from mlchaos.experiment.problems import ProblemList
from tests.support.fuzz_inputs import (
    EXAMPLES,
    EXPECTED,
    MARKER_ENV,
    RUNNABLE_SEEDS,
    VALIDATION_SEEDS,
    corpus_files,
    hostile_files,
    time_limit,
)

FAST = settings(
    max_examples=EXAMPLES or 40, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "executed"
    monkeypatch.setenv(MARKER_ENV, str(path))
    monkeypatch.delenv("MLCHAOS_FUZZ_SURELY_UNSET", raising=False)
    return path


def check_loading(path: Path) -> str | None:
    """Validate ``path`` in process: a ProblemList naming the file, or a plain-data experiment; first error."""
    with time_limit(10):
        try:
            experiment, _ = load_checked(str(path), [], [])
        except ProblemList as exc:
            assert exc.problems
            for problem in exc.problems:
                assert problem.file == str(path) and problem.message, problem
                assert str(problem).isprintable(), str(problem)
            return exc.problems[0].message
    json.dumps(experiment.raw, allow_nan=False)  # a journal can always hold it
    inventory(experiment.raw).lines()
    return None


def _write(tmp_path: Path, case: tuple[str, bytes]) -> Path:
    suffix, raw = case
    path = tmp_path / f"case{suffix}"
    path.write_bytes(raw)
    return path


@FAST
@given(case=hostile_files(VALIDATION_SEEDS))
def test_validation_survives_mutated_experiments(tmp_path: Path, marker: Path, case: tuple[str, bytes]) -> None:
    first = check_loading(_write(tmp_path, case))
    event("valid" if first is None else "invalid")
    assert not marker.exists(), "validation executed an action"


@FAST
@given(case=hostile_files(RUNNABLE_SEEDS))
def test_run_command_survives_mutated_experiments(tmp_path: Path, marker: Path, case: tuple[str, bytes]) -> None:
    """In process, ``mlchaos run``: exit 2 with nothing executed, or a real run."""
    path = _write(tmp_path, case)
    marker.unlink(missing_ok=True)
    code = _run_in_process(path, tmp_path)
    event(f"exit {code}")
    if code == exit_codes.INVALID:
        assert not marker.exists(), "an invalid input executed an action"
    else:
        assert code in (exit_codes.OK, exit_codes.DEVIATED), code


def _run_in_process(path: Path, tmp_path: Path) -> int:
    args = argparse.Namespace(file=str(path), var=[], var_file=[], journal=str(tmp_path / "run.json"),
                              dry_run=False, quiet=True)
    out, err = io.StringIO(), io.StringIO()
    with time_limit(20), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_command(args)
    if code == exit_codes.INVALID:
        assert "nothing was executed" in err.getvalue()
    return code


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_case(tmp_path_factory: pytest.TempPathFactory, marker: Path, name: str) -> None:
    """Each corpus file gives its expected first error (or is valid), through validate and run."""
    directory = tmp_path_factory.getbasetemp() / "fuzz-corpus"
    directory.mkdir(exist_ok=True)
    (path,) = [p for p in corpus_files(directory) if p.name == name]
    expected = EXPECTED[name]
    first = check_loading(path)
    if expected is None:
        assert first is None
    else:
        assert first is not None and expected in first, first
    code = _run_in_process(path, marker.parent)
    assert code == (exit_codes.OK if expected is None else exit_codes.INVALID)
    assert marker.exists() == (expected is None)


def test_every_corpus_file_has_an_expectation(tmp_path: Path) -> None:
    names = {p.name for p in corpus_files(tmp_path)}
    assert names == set(EXPECTED)


def test_size_limit_names_the_file_and_its_size(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (MAX_FILE_BYTES + 1))
    with pytest.raises(ProblemList) as caught:
        load_checked(str(path), [], [])
    limit = "(the limit is 5242880 bytes, 5 MiB)"
    assert str(caught.value) == f"{path}: /: file too large: {MAX_FILE_BYTES + 1} bytes {limit}"
