"""The repository's folders, for tests and their helpers (no test module computes its own root)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (what ``python -m mlchaos`` must find on its path)."""
TESTS = ROOT / "tests"
TEST_DRIVERS = TESTS / "drivers"
"""The folder of the ``testdrivers`` module: on sys.path (pyproject ``pythonpath``) and on children's PYTHONPATH."""
SUPPORT = TESTS / "support"
FIXTURES = TESTS / "fixtures"
FUZZ_CORPUS = TESTS / "fuzz_corpus"
EXPERIMENTS = ROOT / "experiments"
DEPLOY = ROOT / "deploy"
DOCS = ROOT / "docs"

SUITES = ("unit", "integration")
"""The two folders of test modules; each gives its tests a marker of the same name (tests/conftest.py)."""


def suite_folder(path: str | Path) -> str | None:
    """'unit' or 'integration' for a path under tests/unit or tests/integration, else None."""
    try:
        relative = Path(path).resolve().relative_to(TESTS)
    except ValueError:
        return None
    return relative.parts[0] if len(relative.parts) > 1 and relative.parts[0] in SUITES else None


DOCKER_SCOPE = "docker"
"""The one xdist scope of every Docker test module (they share the compose stack: one at a time)."""


def is_docker_module(path: str | Path) -> bool:
    """A test module of the Docker group, by its name: it holds ``docker`` or ``compose_stack``."""
    stem = Path(path).stem
    return "docker" in stem or "compose_stack" in stem
