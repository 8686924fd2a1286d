"""``mlchaos validate`` lists every module, program and URL an experiment would load, run or call."""

from __future__ import annotations

import argparse
import shutil

from mlchaos.cli.validate import main as validate
from mlchaos.experiment.inventory import inventory
from tests.support.bad_experiments import valid
from tests.support.paths import ROOT


def _python(module: str, func: str) -> dict:
    return {"type": "python", "module": module, "func": func}


def test_inventory_walks_every_section_and_provider() -> None:
    probe = {"type": "probe", "name": "p", "tolerance": {"type": "probe", "provider": _python("tol.mod", "check")},
             "provider": _python("hyp.mod", "probe")}
    data = {
        "steady-state-hypothesis": {"title": "h", "probes": [probe]},
        "method": [
            {"type": "action", "name": "a", "provider": _python("act.mod", "first")},
            {"type": "action", "name": "b", "provider": _python("act.mod", "second")},
            {"type": "action", "name": "c", "provider": _python("act.mod", "first")},
            {"ref": "p"},
            {"type": "action", "name": "t", "provider": {"type": "process", "path": "true", "arguments": ["x"]}},
            {"type": "action", "name": "n", "provider": {"type": "process", "path": "no-such-program-here"}},
            {"type": "action", "name": "v", "provider": {"type": "process", "path": "${tool}"}},
            {"type": "probe", "name": "h", "provider": {"type": "http", "url": "http://model:8080/health"}},
            {"type": "action", "name": "r", "provider": {"type": "http", "method": "post",
                                                         "url": "https://admin\x1b[2J/reload"}},
        ],
        "rollbacks": [{"type": "action", "name": "undo", "provider": _python("act.mod", "undo")}],
        "extensions": [{"name": "other", "recovery": [{"provider": _python("not.listed", "x")}]},
                       {"name": "mlchaos", "recovery": [{"type": "probe", "provider": _python("rec.mod", "ok")}],
                        "guards": [{"ref": "p"}, {"type": "probe", "provider": _python("guard.mod", "watch")}]}],
    }
    assert inventory(data).lines() == [
        "loads python: hyp.mod (probe)",
        "loads python: tol.mod (check)",
        "loads python: act.mod (first, second, undo)",
        "loads python: rec.mod (ok)",
        "loads python: guard.mod (watch)",
        f"runs process: {shutil.which('true')}",
        "runs process: no-such-program-here (not found)",
        "runs process: ${tool} (resolved at run time)",
        "calls http: GET http://model:8080/health",
        "calls http: POST https://admin\\x1b[2J/reload",
    ]


def test_validate_prints_the_inventory_under_each_ok_line(capsys, write_experiment) -> None:
    data = valid()
    data["method"].append({"type": "action", "name": "p", "provider": {"type": "process", "path": "true"}})
    path = write_experiment(data)
    real = ROOT / "experiments" / "kill-one-replica.yaml"
    args = argparse.Namespace(files=[str(path), str(real)], var=[], var_file=[])
    assert validate(args) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"ok: {path}",
        "  loads python: testdrivers (echo)",
        f"  runs process: {shutil.which('true')}",
        f"ok: {real}",
        "  loads python: drivers.model.probes (healthy_replica_count, prediction_accuracy, all_replicas_healthy)",
        "  loads python: drivers.process.actions (kill_replicas, restart_replicas)",
        "  loads python: drivers.process.probes (replicas_running)",
    ]
