"""Unit-test helpers: the test-only drivers in tests/support are importable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "tests" / "support"  # on sys.path: see tests/conftest.py


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
def subprocess_env() -> dict[str, str]:
    """Environment for a child `mlchaos` process that can import the test drivers."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env
