"""The test tree itself (see tests/conftest.py for the layout).

* pytest imports test modules by basename, so two test files with one name (say tests/unit/test_x.py and
  tests/integration/test_x.py) stop the collection of the whole suite;
* the ``unit``/``integration`` markers come from the folder, so every test module sits in one of the two
  and none writes those markers by hand;
* the ``testdrivers`` module (a Python provider by name) has one name only, and no test module computes
  the repository root or a child's PYTHONPATH itself (tests/support/paths.py, tests/support/environment.py);
* a unit test needs no component (binary, service): those tests live in tests/integration.
"""

from __future__ import annotations

import re
from collections import Counter

from tests.support.paths import ROOT, SUITES, TEST_DRIVERS, TESTS, is_docker_module, suite_folder


def _test_modules() -> list:
    return sorted(TESTS.rglob("test_*.py"))


def _test_code() -> list:
    """The test modules and the folders' conftests, but this module (whose patterns would match themselves)."""
    conftests = [TESTS / suite / "conftest.py" for suite in SUITES]
    return [path for path in _test_modules() + conftests if path.exists() and path.name != "test_test_layout.py"]


def _relative(path) -> str:
    return str(path.relative_to(ROOT))


def test_every_test_module_has_a_unique_basename():
    names = Counter(path.name for path in _test_modules())
    assert [name for name, count in names.items() if count > 1] == []


def test_every_test_module_sits_under_tests_unit_or_tests_integration():
    """The markers are derived from these two folders: a test module elsewhere would get neither."""
    misplaced = [_relative(path) for path in _test_modules() if path.parent not in [TESTS / s for s in SUITES]]
    assert misplaced == [], "move them into tests/unit or tests/integration"
    assert all(suite_folder(path) in SUITES for path in _test_modules())


def test_no_module_sets_the_folder_markers_by_hand():
    by_hand = re.compile(r"pytest\.mark\.(unit|integration)\b")
    offenders = [_relative(path) for path in _test_code() if by_hand.search(path.read_text(encoding="utf-8"))]
    assert offenders == [], "unit/integration come from the folder (tests/conftest.py): move the test instead"


def test_testdrivers_has_one_name_only():
    """tests/drivers holds the test drivers (testdrivers.py) and the Chaos Toolkit control written for the tests
    (testcontrols.py: a control is a module of its own, its hooks named by Chaos Toolkit)."""
    found = sorted(p.name for p in TEST_DRIVERS.iterdir() if p.name != "__pycache__")
    assert found == ["testcontrols.py", "testdrivers.py"]
    assert not (TESTS / "support" / "testdrivers.py").exists()
    imports_by_path = re.compile(r"^\s*(from|import)\s+tests\.drivers\b", re.MULTILINE)
    python = [path for path in TESTS.rglob("*.py") if path.name != "test_test_layout.py"]
    offenders = [_relative(path) for path in python if imports_by_path.search(path.read_text("utf-8"))]
    assert offenders == [], "import it as `testdrivers` (tests/drivers is on sys.path), never as tests.drivers"


def test_no_test_module_computes_the_root_or_a_pythonpath_itself():
    hand_built = re.compile(r"Path\(__file__\)|sys\.path\.(insert|append)|PYTHONPATH=|\[\"PYTHONPATH\"\]\s*=|"
                            r"\"PYTHONPATH\":")
    offenders = [_relative(path) for path in _test_code() if hand_built.search(path.read_text(encoding="utf-8"))]
    assert offenders == [], "use tests.support.paths and the subprocess_env fixture / tests.support.environment"


def test_unit_tests_need_no_component():
    """require_component skips (or fails in CI) when a binary or service is missing: such tests are integration."""
    needs = re.compile(r"\brequire_(component|monitoring|docker|stack_images)\(")
    unit = [path for path in (TESTS / "unit").glob("test_*.py") if path.name != "test_require_component.py"]
    offenders = [_relative(path) for path in unit if needs.search(path.read_text(encoding="utf-8"))]
    assert offenders == [], "move them to tests/integration"


def test_every_docker_module_is_named_as_one():
    """`make test-integration` runs the Docker modules one after another on one worker (tests/conftest.py), which
    it finds by name: a module that needs the engine without saying so in its name would race the others."""
    marked = re.compile(r"pytest\.mark\.docker\b")
    offenders = [_relative(path) for path in _test_modules()
                 if marked.search(path.read_text(encoding="utf-8")) and not is_docker_module(path)]
    assert offenders == [], "name it test_..._docker_... (or test_compose_stack_...)"
