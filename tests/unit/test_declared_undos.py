"""Recovery calls only the undo functions drivers declare (mlchaos.safety.declared_undos).

A journal is data that names code. These tests attack that: undo paths naming the standard library, a
driver's own fault, a private function, a module that does something on import; and they check that every
undo path a bundled driver can write into a change record is declared, so recovery never refuses a real one.
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
from pathlib import Path

import pytest

from mlchaos.safety.changes import ChangeRecord, Target
from mlchaos.safety.declared_undos import UndoRefused, is_declared, resolve
from mlchaos.safety.undo import recover, undo_record
from tests.support.paths import ROOT

DRIVERS = ROOT / "drivers"


@pytest.mark.parametrize(("path", "why"), [
    ("os.mkdir", "standard library"),
    ("shutil.rmtree", "standard library"),
    ("builtins.exec", "standard library"),
    ("antigravity.geohash", "standard library"),  # importing it would open a web browser
    ("drivers.process.actions.kill_replicas", "not declared as an undo"),  # a real fault of a real driver
    ("drivers.tls.actions.install_certificate", "not declared as an undo"),
    ("drivers.tls.actions.UNDO_FUNC", "not declared as an undo"),  # not even a function
    ("drivers.tls.actions._copy_atomic", "private"),
    ("drivers.process.actions.no_such_function", "has no function 'no_such_function'"),
    ("drivers.no_such_driver.actions.undo", "cannot be imported"),
    ("remove_marker", "not a function path"),
    ("testdrivers..remove_marker", "not a function path"),
    ("testdrivers.remove_marker(1)", "not a function path"),
    (["testdrivers", "remove_marker"], "named by a string"),
])
def test_anything_but_a_declared_undo_is_refused(path, why):
    with pytest.raises(UndoRefused, match=why):
        resolve(path)


def test_a_standard_library_module_is_refused_without_being_imported():
    sys.modules.pop("antigravity", None)
    with pytest.raises(UndoRefused):
        resolve("antigravity.geohash")
    assert "antigravity" not in sys.modules


def test_declared_undos_resolve_to_the_function_itself():
    from drivers.docker import actions as docker
    from drivers.docker import lifecycle
    from drivers.tls import actions as tls

    assert resolve("drivers.tls.actions.restore_certificate") is tls.restore_certificate
    # a facade re-exports the family module's function: the journal's path and the function's own both resolve
    assert resolve("drivers.docker.actions.start_containers") is docker.start_containers
    assert resolve("drivers.docker.lifecycle.start_containers") is lifecycle.start_containers
    assert resolve("testdrivers.remove_marker") is importlib.import_module("testdrivers").remove_marker


def test_a_refused_undo_runs_nothing_and_says_what_to_do(tmp_path: Path):
    made = tmp_path / "made-by-the-journal"
    record = ChangeRecord(driver="evil", action="plant", targets=[Target(kind="file", name=str(made))],
                          undo={"func": "os.mkdir", "arguments": {"path": str(made)}})
    result = undo_record(record)
    assert result.status == "failed" and not result.ok
    assert not made.exists()
    assert "refused: os.mkdir is in Python's standard library" in result.error
    assert "nothing was run" in result.error and "undo it by hand" in result.error and str(made) in result.error


def test_undo_arguments_that_are_not_a_mapping_are_refused(tmp_path: Path):
    record = ChangeRecord(driver="test", action="x", targets=[],
                          undo={"func": "testdrivers.remove_marker", "arguments": [str(tmp_path)]})
    result = undo_record(record)
    assert result.status == "failed" and "arguments are not a mapping" in result.error


def test_recovery_refuses_the_bad_record_and_still_undoes_the_good_one(tmp_path: Path):
    marker, planted = tmp_path / "marker", tmp_path / "planted"
    marker.write_text("fault\n")
    good = ChangeRecord(driver="test", action="inject-marker", targets=[Target(kind="file", name=str(marker))],
                        undo={"func": "testdrivers.remove_marker", "arguments": {"path": str(marker)}})
    bad = ChangeRecord(driver="test", action="inject-marker", targets=[Target(kind="file", name=str(planted))],
                       undo={"func": "testdrivers.append_line", "arguments": {"path": str(planted), "text": "x"}})
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps({"mlchaos": {"changes": [good.to_dict(), bad.to_dict()]}}))
    report = recover(journal, by="test")
    assert [r.status for r in report.results] == ["failed", "undone"]  # newest first
    assert "testdrivers.append_line is not declared as an undo" in report.results[0].error
    assert not planted.exists() and not marker.exists() and not report.ok


# -- every undo a bundled driver writes is declared ---------------------------------------------------------

ROLLBACK_CALLS = {"undo": 0, "path": 0, "stop_watchdogs": 0, "start_watchdog": 2}  # name -> index of the func


def _rollbacks_module(tree: ast.Module) -> str | None:
    """The module a driver file's ``Rollbacks("drivers.x.y")`` names, if it defines one."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Rollbacks"
                and node.args and isinstance(node.args[0], ast.Constant)):
            return node.args[0].value
    return None


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def written_undo_paths() -> dict[str, str]:
    """Every undo path the drivers' source can write (path -> where): literal ``drivers.x.y.f`` strings and the
    names handed to a Rollbacks helper (``ROLLBACKS.undo("f")``, a driver's ``undo("f", ...)``...), joined to
    the module of the Rollbacks the file uses (its own, or the one of a driver module it imports from)."""
    trees = {_module_name(p): ast.parse(p.read_text()) for p in sorted(DRIVERS.rglob("*.py"))}
    own = {name: _rollbacks_module(tree) for name, tree in trees.items()}
    found: dict[str, str] = {}
    for name, tree in trees.items():
        imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and node.module in own and own[node.module]]
        base = own[name] or (own[imported[0]] if imported else None)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.count(".") == 3 \
                    and node.value.startswith("drivers.") and node.value.split(".")[-1].islower() \
                    and node.value.split(".")[2] in {"actions", "traffic"}:
                found[node.value] = f"{name}:{node.lineno}"
            if not isinstance(node, ast.Call):
                continue
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            index = ROLLBACK_CALLS.get(called or "")
            if index is None or len(node.args) <= index:
                continue
            arg = node.args[index]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.isidentifier():
                assert base, f"{name}:{node.lineno}: a rollback name without a Rollbacks module"
                found[f"{base}.{arg.value}"] = f"{name}:{node.lineno}"
    return found


WRITTEN = written_undo_paths()


def test_the_scan_finds_the_undos_of_every_driver_family():
    families = {path.split(".")[1] for path in WRITTEN}
    assert families >= {"docker", "gpu", "kubernetes", "model", "netem", "pipeline", "process", "prometheus",
                        "proxy", "telemetry", "tls"}
    assert {"drivers.kubernetes.actions.restore_secret", "drivers.docker.actions.release_hold",
            "drivers.model.traffic.stop_traffic", "drivers.proxy.actions.remove_toxic"} <= set(WRITTEN)
    assert len(WRITTEN) >= 25


@pytest.mark.parametrize("path", sorted(WRITTEN), ids=str)
def test_every_undo_a_driver_writes_is_declared(path):
    assert is_declared(resolve(path)), WRITTEN[path]
