"""The rooms of the code and what may import what (docs/architecture.md), enforced on the source.

Every import counts: at module level, inside functions and under ``TYPE_CHECKING``. The rules:

* no import cycle between modules of ``mlchaos/`` and ``drivers/``;
* a room of ``mlchaos`` imports only the rooms the table in docs/architecture.md allows
  (so the engine never imports the sandbox, game days never import the CLI, ...);
* a driver imports from ``mlchaos`` only ``mlchaos.driver_kit``; a driver's adapter module
  (``drivers/<name>/sandbox.py``) may also import the reference systems (sandbox, containers, proxy);
* nothing in ``mlchaos`` imports ``drivers`` (drivers are found by name, at run time);
* what the images ship stays self-contained: the model server imports only ``mlchaos.sandbox``,
  the fault proxy only ``mlchaos.proxy``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PACKAGES = ("mlchaos", "drivers")
ARCHITECTURE = ROOT / "docs" / "architecture.md"
REFERENCE_SYSTEMS = ("sandbox", "containers", "proxy")
ADAPTER = "sandbox"  # drivers/<name>/sandbox.py: a driver's adapter to the reference systems
IMAGES = {"mlchaos.sandbox.model_server": "mlchaos.sandbox", "mlchaos.proxy.__main__": "mlchaos.proxy"}


@cache
def modules() -> dict[str, Path]:
    """Every module of mlchaos/ and drivers/ by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported name, line) for every import in the module, relative ones resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def _resolve(imported: str) -> str | None:
    """The module of ours an imported name lives in (the longest known prefix), None for third-party names."""
    known = modules()
    while imported and imported not in known:
        imported = imported.rpartition(".")[0]
    return imported or None


@cache
def graph() -> dict[str, dict[str, int]]:
    """module -> {module of ours it imports: the first line that does}."""
    edges: dict[str, dict[str, int]] = {}
    for name, path in modules().items():
        targets: dict[str, int] = {}
        for imported, line in _imported(name, path):
            target = _resolve(imported)
            if target is not None and target != name:
                targets.setdefault(target, line)
        edges[name] = targets
    return edges


def room(module: str) -> str:
    """``mlchaos.engine.runner`` -> ``engine``; a top-level module of mlchaos is its own room."""
    parts = module.split(".")
    return parts[1] if parts[0] == "mlchaos" and len(parts) > 1 else parts[0]


def allowed_imports() -> dict[str, set[str]]:
    """The table of docs/architecture.md: room -> the rooms it may import."""
    rows = re.findall(r"^\|\s*`(\w+)`\s*\|[^|]*\|\s*([^|]*)\|\s*$", ARCHITECTURE.read_text(encoding="utf-8"), re.M)
    assert rows, f"{ARCHITECTURE}: no 'may import' table found"
    return {name: set(re.findall(r"`(\w+)`", imports)) for name, imports in rows}


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def closure(start: str) -> set[str]:
    """Every module ``start`` imports, directly or not."""
    seen, todo = set(), [start]
    while todo:
        for target in graph()[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_there_is_no_import_cycle():
    assert cycles() == []


def test_each_room_imports_only_what_the_architecture_allows():
    allowed = allowed_imports()
    broken = []
    for module, targets in graph().items():
        if not module.startswith("mlchaos"):
            continue
        here = room(module)
        assert here in allowed, f"{module}: room {here!r} is not in the table of {ARCHITECTURE.name}"
        for target, line in targets.items():
            there = room(target)
            if target.startswith("drivers"):
                broken.append(f"{modules()[module]}:{line}: {module} imports {target} (drivers are found by name)")
            elif there != here and there not in allowed[here]:
                broken.append(f"{modules()[module]}:{line}: {module} ({here}) imports {target} ({there})")
    assert broken == []


def test_the_table_names_every_room_and_only_rooms():
    rooms = {room(m) for m in modules() if m.startswith("mlchaos")}
    allowed = allowed_imports()
    assert set(allowed) == rooms
    assert all(targets <= rooms for targets in allowed.values())


def test_the_rooms_form_a_layered_order():
    """The allowed imports themselves have no cycle: every room sits above the rooms it imports."""
    allowed = allowed_imports()
    placed: list[str] = []
    while len(placed) < len(allowed):
        ready = [r for r in allowed if r not in placed and allowed[r] - {r} <= set(placed)]
        assert ready, f"a cycle among {sorted(set(allowed) - set(placed))}"
        placed.extend(sorted(ready))


def test_drivers_reach_mlchaos_only_through_the_kit():
    broken = []
    for module, targets in graph().items():
        if not module.startswith("drivers"):
            continue
        adapter = module.rpartition(".")[2] == ADAPTER
        for target, line in targets.items():
            if not target.startswith("mlchaos") or target == "mlchaos.driver_kit":
                continue
            if adapter and room(target) in REFERENCE_SYSTEMS:
                continue
            broken.append(f"{modules()[module]}:{line}: {module} imports {target}")
    assert broken == []


@pytest.mark.parametrize(("entry", "package"), sorted(IMAGES.items()))
def test_what_an_image_ships_imports_nothing_else_of_ours(entry, package):
    outside = {m for m in closure(entry) if m != "mlchaos" and not (m == package or m.startswith(f"{package}."))}
    assert outside == set(), f"{entry} needs {sorted(outside)}, which its image does not ship"


def test_test_code_does_not_ship():
    assert not [m for m in modules() if "emulator" in m or m.rpartition(".")[2].startswith("test_")]
