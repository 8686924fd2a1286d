"""The integration suite's scheduling (tests/conftest.py): the scopes that take minutes start first."""

from __future__ import annotations

from types import SimpleNamespace

from tests.conftest import LONGEST_FIRST, longest_first, scope_of
from tests.support.paths import DOCKER_SCOPE, ROOT


def _items(*nodeids: str) -> list:
    return [SimpleNamespace(nodeid=n) for n in nodeids]


def test_the_longest_scopes_come_first_then_by_count_then_as_collected() -> None:
    items = _items("tests/integration/test_a.py::one", "tests/integration/test_b.py::one",
                   "tests/integration/test_b.py::two", "tests/integration/test_drill_order.py::only",
                   "tests/integration/test_compose_stack.py::up", "tests/integration/test_c.py::one",
                   "tests/integration/test_docker_drills.py::kill")
    ordered = [i.nodeid for i in longest_first(items)]
    assert ordered == ["tests/integration/test_compose_stack.py::up", "tests/integration/test_docker_drills.py::kill",
                       "tests/integration/test_drill_order.py::only",
                       "tests/integration/test_b.py::one", "tests/integration/test_b.py::two",
                       "tests/integration/test_a.py::one", "tests/integration/test_c.py::one"]
    assert scope_of("tests/integration/test_docker_drills.py::kill") == DOCKER_SCOPE


def test_every_named_scope_exists() -> None:
    for scope in LONGEST_FIRST:
        assert scope == DOCKER_SCOPE or (ROOT / scope).is_file(), scope
