"""A name imported only under ``if TYPE_CHECKING:`` must never be used at run time.

Imports are made lazy to keep ``mlchaos validate`` fast (the module imports the name for type checking only and
the function that needs it imports it itself). A function that uses such a name without importing it (or
without an enclosing function importing it) passes ruff and fails at run time with NameError: a merge once left
``drivers.model.probes._via`` like that, and every model probe failed. This reads every module of ``mlchaos``
and ``drivers`` and finds such uses (annotations excepted: they are never evaluated).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT as REPO


def _type_checking_only(tree: ast.Module) -> set[str]:
    guarded, bound = set(), set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded |= {_bound(alias) for sub in ast.walk(node) if isinstance(sub, ast.Import | ast.ImportFrom)
                        for alias in sub.names}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {_bound(alias) for alias in node.names}
    return guarded - bound


def _bound(alias: ast.alias) -> str:
    return (alias.asname or alias.name).split(".")[0]


def _annotation_nodes(tree: ast.Module) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        for field in ("annotation", "returns"):
            value = getattr(node, field, None)
            if value is not None:
                found |= {id(sub) for sub in ast.walk(value)}
    return found


def _runtime_uses(path: Path, root: Path = REPO) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = _type_checking_only(tree)
    if not names:
        return []
    annotations = _annotation_nodes(tree)
    found: list[str] = []

    def visit(node: ast.AST, imported: frozenset[str]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            own = {_bound(alias) for sub in ast.walk(node) if isinstance(sub, ast.Import | ast.ImportFrom)
                   for alias in sub.names}
            imported = imported | own
        if (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names
                and node.id not in imported and id(node) not in annotations):
            found.append(f"{path.relative_to(root)}:{node.lineno}: {node.id}")
        for child in ast.iter_child_nodes(node):
            visit(child, imported)

    for top in tree.body:
        if not (isinstance(top, ast.If) and "TYPE_CHECKING" in ast.unparse(top.test)):
            visit(top, frozenset())
    return found


def test_no_name_imported_for_type_checking_only_is_used_at_run_time() -> None:
    modules = [*sorted((REPO / "mlchaos").rglob("*.py")), *sorted((REPO / "drivers").rglob("*.py"))]
    assert len(modules) > 100
    assert [use for path in modules for use in _runtime_uses(path)] == []


def test_the_check_finds_such_a_use(tmp_path: Path) -> None:
    """The check itself: a module like the one the merge produced is caught; a closure's import is not."""
    module = tmp_path / "probe.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import requests as http\n\n"
        "def bad(url: str) -> http.Session:\n    return http.Session()\n\n"
        "def good() -> None:\n    import requests as http\n\n    def inner() -> object:\n"
        "        return http.Session()\n    inner()\n", encoding="utf-8")
    assert _runtime_uses(module, tmp_path) == ["probe.py:6: http"]
