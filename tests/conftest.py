"""The root of the test suite: markers derived from the folders; fixtures shared by both folders (the environment
of child processes, a state directory, experiment files written and run in process).

Layout (tests/unit/test_test_layout.py checks it):

* tests/unit         fast, in-process or short child processes; no real service, no real binary besides Python.
                     Every test gets its own MLCHAOS_STATE_DIR (tests/unit/conftest.py), so the folder runs in
                     parallel (``make test-unit``: pytest-xdist).
* tests/integration  real processes, sockets, services and binaries (sandbox replicas, Prometheus, promtool,
                     the CLI in child processes over seconds of real time); fixtures in tests/integration/conftest.py.
                     Run one test at a time (they share loopback services and the machine's CPU).
* tests/support      helpers, imported by their full name (``from tests.support.polling import wait_until``).
* tests/drivers      the ``testdrivers`` module (Python provider ``module: testdrivers``), on sys.path and on
                     children's PYTHONPATH; never imported as ``tests.drivers.testdrivers``.

Markers. Nobody writes ``integration`` or ``unit`` by hand: :func:`pytest_collection_modifyitems` gives every
test under tests/integration the ``integration`` marker and every test under tests/unit the ``unit`` marker,
so a marker cannot drift from the folder (``-m integration`` and ``tests/integration`` select the same tests).
Two markers stay explicit because they are not a property of the folder:

* ``docker``  a module that needs a Docker engine (and the stack's images) says so with
              ``pytestmark = pytest.mark.docker``; ``-m "not docker"`` runs everything else.
* ``slow``    a test that takes over about 10 s on a 2-core machine (measured with ``--durations=0``) says so
              with ``@pytest.mark.slow``; ``-m "not slow"`` is a quicker integration pass. All of them are
              integration tests: the unit folder has no slow test.

A test that needs a component (a binary, a service) calls ``tests.support.components.require_component``:
skipped on a developer machine, a failure in CI (MLCHAOS_REQUIRE_COMPONENTS=1).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.support.environment import child_env
from tests.support.paths import DOCKER_SCOPE, is_docker_module, suite_folder

FOLDER_MARKERS = {"unit": pytest.mark.unit, "integration": pytest.mark.integration}


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (make test-unit): two workers per core, 2 to 8. Many unit tests wait (on loopback sockets,
    timers, short child processes) rather than compute: on 2 cores the folder took about 28 s with 2 workers
    (cores idle while tests wait) and about 23 s with 4 (then both cores are busy)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(2, min(8, 2 * cores))


def pytest_configure(config: pytest.Config) -> None:
    """Each test process (each xdist worker too) keeps its mlchaos state in a directory of its own, never in the
    person's (~/.local/state/mlchaos) nor in another worker's; fixtures give tests their own below that.
    Under --dist loadscope the scopes are scheduled in collection order (see LONGEST_FIRST), not by count."""
    if getattr(config.option, "dist", None) == "loadscope":
        config.option.loadscopereorder = False
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None or "MLCHAOS_STATE_DIR" not in os.environ:
        os.environ["MLCHAOS_STATE_DIR"] = tempfile.mkdtemp(prefix=f"mlchaos-state-{worker or 'main'}-")


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadscope`` (make test-integration): one module at a time per worker, so a module's sandbox
    starts once; and the Docker modules together, as one unit: they share the compose stack and the engine.
    A Docker module says so in its name (``docker`` or ``compose_stack``; tests/unit/test_test_layout.py checks
    that every module marked ``docker`` does)."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesWithDockerTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return ModulesWithDockerTogether(config, log)


# The integration scopes that take minutes, longest first (each measured on the 2-core machine: one run of the
# Docker modules about 5 min, the shuffled drill order about 5 min, the ML drills about 4 min, the differential
# runs against `chaos` about 3 min, the VictoriaMetrics drills about 2.5 min). With --dist loadscope they start
# first, so no worker runs one of them alone at the end (xdist's own order is by test count: a single
# five-minute test would start last).
LONGEST_FIRST = (DOCKER_SCOPE, "tests/integration/test_drill_order.py", "tests/integration/test_ml_drills.py",
                 "tests/integration/test_chaostoolkit_differential.py",
                 "tests/integration/test_victoriametrics_drill.py", "tests/integration/test_process_mlserver.py",
                 "tests/integration/test_alert_experiments.py", "tests/integration/test_gameday_sandbox.py")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test after its folder: tests/unit -> unit, tests/integration -> integration; under
    --dist loadscope, order the scopes: LONGEST_FIRST, then the others by test count (xdist's own rule)."""
    for item in items:
        folder = suite_folder(item.path)
        if folder is not None:
            item.add_marker(FOLDER_MARKERS[folder])
    if getattr(config.option, "dist", None) == "loadscope":
        items[:] = longest_first(items)


def scope_of(nodeid: str) -> str:
    """The loadscope unit a test belongs to: its module, or the one scope of all Docker modules."""
    module = nodeid.split("::", 1)[0]
    return DOCKER_SCOPE if is_docker_module(module) else module


def longest_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` with their scopes in LONGEST_FIRST order, then by test count, then as collected (stable)."""
    scopes = [scope_of(item.nodeid) for item in items]
    count: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, scope in enumerate(scopes):
        count[scope] = count.get(scope, 0) + 1
        first.setdefault(scope, index)

    def key(index: int) -> tuple[int, int, int, int]:
        scope = scopes[index]
        rank = LONGEST_FIRST.index(scope) if scope in LONGEST_FIRST else len(LONGEST_FIRST)
        return rank, -count[scope], first[scope], index

    return [items[i] for i in sorted(range(len(items)), key=key)]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh state directory (tmp_path / "state"), exported as MLCHAOS_STATE_DIR for this test."""
    path = tmp_path / "state"
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(path))
    return path


@pytest.fixture
def isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own state directory (registered runs, the emergency stop, the sandbox), outside tmp_path,
    exported as MLCHAOS_STATE_DIR. Autouse in tests/unit; an integration module asks for it by name."""
    path = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(path))
    return path


@pytest.fixture
def subprocess_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a child process (``python -m mlchaos``, a server) that imports this checkout and the
    test drivers: PYTHONPATH = tests/drivers, the repository, then the current one; PYTHONUNBUFFERED=1.

    MLCHAOS_STATE_DIR is the one this test exported (in tests/unit every test has its own; in an integration
    module, the module sandbox's), else a fresh directory: a child never uses the developer's own state.
    Another one: ``child_env(state_dir)`` from tests.support.environment (module-scoped code calls it directly).
    A fresh dict per test: change it freely.
    """
    return child_env(os.environ.get("MLCHAOS_STATE_DIR") or tmp_path_factory.mktemp("child-state"))


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
