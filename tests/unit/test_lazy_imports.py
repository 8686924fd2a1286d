"""What ``mlchaos validate`` imports, and the names that are imported on first use instead of at module level.

Validating an experiment imports its driver modules (as ``chaos validate`` does) and the validation itself, nothing
else: the drivers' kit (:mod:`mlchaos.driver_kit`) and the sandbox adapters hand out their names on first use, the
command line builds only the parser of the command it runs. These tests check behaviour, not time: every lazy name
is the very object of the module it comes from, and the modules a plain validation needs no longer are not imported
(benchmarks/startup_and_overhead.py measures what that is worth).
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys

import pytest

import mlchaos.driver_kit as kit
from tests.support.paths import ROOT

# imported by the run or by other drivers, never needed to validate experiments/kill-one-replica.yaml
NOT_IMPORTED_BY_VALIDATE = [
    "mlchaos.engine.strategies", "mlchaos.engine.runner", "mlchaos.experiment.execution", "mlchaos.cli.run",
    "mlchaos.monitoring.alert_rules", "mlchaos.monitoring.alert_notification", "mlchaos.lib.certificates",
    "mlchaos.sandbox.manager", "mlchaos.sandbox.model", "mlchaos.journal.writer",
    "chaoslib", "requests", "logging", "ssl", "difflib", "secrets", "socket",
]


def test_every_driver_kit_name_is_its_modules_own() -> None:
    for name in kit.__all__:
        module, attribute = kit._WHERE[name]
        expected = importlib.import_module(module)
        if attribute is not None:
            expected = getattr(expected, attribute)
        assert getattr(kit, name) is expected, name
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        kit.no_such_name  # noqa: B018


def test_the_driver_kit_table_its_all_and_its_type_checking_imports_name_the_same() -> None:
    """The architecture test reads the kit's imports (under TYPE_CHECKING): they are what it hands out."""
    tree = ast.parse((ROOT / "mlchaos" / "driver_kit.py").read_text(encoding="utf-8"))
    guarded = next(node for node in tree.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))
    names: dict[str, object] = {}
    exec(compile(ast.Module(body=guarded.body, type_ignores=[]), "driver_kit imports", "exec"), names)  # noqa: S102
    names.pop("__builtins__")
    assert sorted(names) == sorted(kit._WHERE) == sorted(kit.__all__)
    assert all(getattr(kit, name) is value for name, value in names.items())


def test_the_sandbox_adapters_hand_out_their_names_on_first_use() -> None:
    from drivers.model import sandbox as model_sandbox
    from drivers.process import sandbox as process_sandbox
    from mlchaos.sandbox import manager, model

    assert process_sandbox.Replica is manager.Replica is model_sandbox.Replica
    assert model_sandbox.DEFECTS is model.DEFECTS and model_sandbox.VERSION_NAME is model.VERSION_NAME
    for adapter in (process_sandbox, model_sandbox):
        with pytest.raises(AttributeError):
            adapter.no_such_name  # noqa: B018


def test_validate_imports_what_validating_needs_only(subprocess_env) -> None:
    """``mlchaos validate`` of a repository experiment: valid, its three driver modules imported and checked,
    nothing of the run, the other commands, the alert rules, the sandbox's manager, chaoslib or HTTP."""
    code = (
        "import io, json, sys, contextlib\n"
        "from mlchaos.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    rc = main(['validate', 'experiments/kill-one-replica.yaml'])\n"
        f"print(json.dumps([rc, out.getvalue(), [m for m in {NOT_IMPORTED_BY_VALIDATE!r} if m in sys.modules],\n"
        "                  [m for m in ('drivers.model.probes', 'drivers.process.actions', 'drivers.process.probes')\n"
        "                   if m in sys.modules]]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    rc, out, loaded, drivers = json.loads(proc.stdout.splitlines()[-1])
    assert rc == 0 and out.startswith("ok: experiments/kill-one-replica.yaml"), out
    assert loaded == []
    assert drivers == ["drivers.model.probes", "drivers.process.actions", "drivers.process.probes"]
