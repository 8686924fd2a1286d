"""Unit-test fixtures: each test's own state directory (so the folder runs in parallel), experiment writers.

Every test here is marked ``unit`` by tests/conftest.py (from the folder). A unit test is fast and
xdist-safe: no fixed port, no shared file, no real service; its child processes (``subprocess_env``,
tests/conftest.py) are short. Anything slower or needing a real binary or service belongs in tests/integration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml


@pytest.fixture(autouse=True)
def isolated_state(isolated_state: Path) -> Path:
    """Every unit test gets its own state directory (tests/conftest.py): registered runs, the emergency stop,
    the sandbox. What makes the folder safe to run in parallel."""
    return isolated_state


@pytest.fixture
def write_experiment(tmp_path):
    """Write an experiment mapping to a .json or .yaml file and return its path."""

    def write(data: dict, name: str = "experiment.json") -> Path:
        path = tmp_path / name
        text = json.dumps(data, indent=2) if name.endswith(".json") else yaml.safe_dump(data, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def run_experiment(write_experiment, tmp_path):
    """Validate, build and run an experiment in process; return (result, journal, console text)."""
    import io

    from mlchaos.engine.console import Console
    from mlchaos.engine.runner import Runner
    from mlchaos.experiment.loader import load_document
    from mlchaos.experiment.models import build_experiment
    from mlchaos.experiment.validation import validate

    def run(data, variables=None, dry_run=False):
        doc = load_document(write_experiment(data))
        assert validate(doc, variables) == []
        experiment = build_experiment(doc)
        out = io.StringIO()
        journal_path = tmp_path / "journal.json"
        result = Runner(experiment, variables, journal_path, Console(out, tty=False), dry_run=dry_run).run()
        return result, json.loads(journal_path.read_text()), out.getvalue()

    return run
