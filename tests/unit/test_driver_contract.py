"""Every driver action keeps the contract the runner and `mlchaos recover` rely on (no components needed):
fault actions take a keyword-only ``dry_run``; rollbacks are declared undos (``undo_function``) and take none."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from mlchaos.experiment.driver_registry import DriverFunction, driver_functions
from mlchaos.safety.declared_undos import is_declared

# the rollbacks experiments and change records name, as a floor: each must stay declared
KNOWN_ROLLBACKS = {
    "drivers.docker.actions": {"start_containers", "unpause_containers", "release_hold", "unblock_port",
                               "remove_netem", "restore_container_certificate"},
    "drivers.model.actions": {"clear_model_faults", "restore_model_version", "restore_pushed_model"},
    "drivers.netem.actions": {"remove_latency"},
    "drivers.process.actions": {"continue_replicas", "restart_replicas"},
    "drivers.prometheus.actions": {"remove_rule_file"},
    "drivers.proxy.actions": {"remove_toxic", "enable_proxy", "reset"},
    "drivers.telemetry.actions": {"restore_scrapes", "resume_exporter"},
    "drivers.tls.actions": {"restore_certificate"},
}


def _actions() -> list[DriverFunction]:
    return [f for f in driver_functions() if isinstance(f, DriverFunction) and f.kind == "action"]


def _function(entry: DriverFunction):  # noqa: ANN202
    return getattr(importlib.import_module(entry.module), entry.name)


def test_the_known_rollbacks_are_declared_undos():
    declared = {(f.module, f.name) for f in _actions() if is_declared(_function(f))}
    assert {(m, n) for m, ns in KNOWN_ROLLBACKS.items() for n in ns} <= declared


@pytest.mark.parametrize("entry", _actions(), ids=lambda f: f"{f.module}.{f.name}")
def test_faults_take_a_keyword_only_dry_run_and_rollbacks_do_not(entry: DriverFunction):
    parameters = inspect.signature(_function(entry)).parameters
    rollback = is_declared(_function(entry))
    if re.match(r"roll ?back", entry.summary, re.I):
        assert rollback, f"{entry.name} says it rolls back: declare it with undo_function"
    if rollback:
        assert "dry_run" not in parameters, "a rollback is never dry: it must undo"
        return
    dry_run = parameters.get("dry_run")
    assert dry_run is not None, f"fault action {entry.name} takes no dry_run"
    assert dry_run.kind is inspect.Parameter.KEYWORD_ONLY and dry_run.default is False
    assert dry_run.annotation in (bool, "bool")
    assert entry.summary != "(no docstring)" and "dry_run" in entry.signature


@pytest.mark.parametrize(("module", "func"), [("drivers.process.actions", "stop_replicas"),
                                              ("drivers.docker.actions", "pause_containers")])
def test_pauses_have_a_time_to_live_by_default(module: str, func: str):
    ttl = inspect.signature(getattr(importlib.import_module(module), func)).parameters["ttl"]
    assert ttl.default == 600.0 and ttl.annotation in ("float | None",)
