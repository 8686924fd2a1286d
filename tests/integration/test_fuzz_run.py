"""``mlchaos validate`` and ``mlchaos run`` as real child processes on hostile and mutated inputs.

Each case must end, within CASE_SECONDS, with exit 2 and clear errors (file, place, problem;
"nothing was executed"; the marker file absent), or with a real run: never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.support.fuzz_inputs import (
    EXAMPLES,
    EXPECTED,
    RUNNABLE_SEEDS,
    check_invalid_output,
    child_env,
    corpus_files,
    hostile_files,
    mlchaos,
)


def _check_case(path: Path, tmp: Path, expected: str | None | type = ...) -> int:
    """Validate then run ``path`` in child processes; return the run's exit code."""
    marker = tmp / "executed"
    marker.unlink(missing_ok=True)
    env = child_env(tmp, marker)
    checked = mlchaos("validate", str(path), env=env)
    ran = mlchaos("run", str(path), "--journal", str(tmp / "run-journal.json"), env=env)
    for proc in (checked, ran):
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert checked.returncode in (0, 2), checked.stderr
    if checked.returncode == 2:
        errors = check_invalid_output(checked.stderr, path)
        if isinstance(expected, str):
            assert expected in errors[0], errors
        assert ran.returncode == 2, (ran.stdout, ran.stderr)
    else:
        assert expected in (None, ...), checked.stdout
        assert f"ok: {path}" in checked.stdout
    if ran.returncode == 2:
        check_invalid_output(ran.stderr, path)
        assert not marker.exists(), "an invalid input executed an action"
    else:
        assert ran.returncode in (0, 1), (ran.returncode, ran.stdout, ran.stderr)
        assert "verdict:" in ran.stdout
    return ran.returncode


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_through_the_command_line(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, name: str) -> None:
    directory = tmp_path_factory.getbasetemp() / "fuzz-corpus"
    directory.mkdir(exist_ok=True)
    (path,) = [p for p in corpus_files(directory) if p.name == name]
    code = _check_case(path, tmp_path, EXPECTED[name])
    assert code == (0 if EXPECTED[name] is None else 2)


@settings(max_examples=EXAMPLES or 25, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(case=hostile_files(RUNNABLE_SEEDS))
def test_mutated_experiments_through_the_command_line(tmp_path: Path, case: tuple[str, bytes]) -> None:
    suffix, raw = case
    path = tmp_path / f"case{suffix}"
    path.write_bytes(raw)
    _check_case(path, tmp_path)
