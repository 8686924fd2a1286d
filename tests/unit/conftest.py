"""Unit-test fixtures: each test's own state directory (so the folder runs in parallel).

Every test here is marked ``unit`` by tests/conftest.py (from the folder). A unit test is fast and
xdist-safe: no fixed port, no shared file, no real service; its child processes (``subprocess_env``,
tests/conftest.py) are short. Anything slower or needing a real binary or service belongs in tests/integration.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_state(isolated_state: Path) -> Path:
    """Every unit test gets its own state directory (tests/conftest.py): registered runs, the emergency stop,
    the sandbox. What makes the folder safe to run in parallel."""
    return isolated_state
