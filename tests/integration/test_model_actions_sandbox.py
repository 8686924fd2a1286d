"""drivers.model.actions against real sandbox replicas: seeded selection, dry runs that change nothing,
the faults themselves and their idempotent undos (``already`` on the second call)."""

from __future__ import annotations

import pytest
import requests

from drivers.model import actions, probes
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.sandbox.manager import Sandbox


def _faults(sandbox: Sandbox) -> dict[str, dict[str, bool]]:
    return {r.name: requests.get(r.url + "/admin/faults", timeout=5).json()["faults"] for r in sandbox.recorded()}


def _served(sandbox: Sandbox) -> dict[str, str]:
    out = {}
    for r in sandbox.recorded():
        index = requests.post(r.url + "/v2/repository/index", json={}, timeout=5).json()
        out[r.name] = next(m["version"] for m in index if m["state"] == "READY")
    return out


@pytest.fixture
def clean(sandbox: Sandbox):  # noqa: ANN201
    yield sandbox
    actions.clear_model_faults()
    actions.restore_model_version()


def test_a_dry_run_selects_and_records_but_changes_nothing(clean):
    before = _faults(clean)
    record = actions.emit_nan_outputs(count=2, seed=5, dry_run=True)
    assert record["dry_run"] is True and record["driver"] == "model" and record["action"] == "nan_outputs"
    assert record["population"] == ["model-0", "model-1", "model-2"]
    assert record["environment"].startswith("local:")
    again = actions.emit_nan_outputs(count=2, seed=5, dry_run=True)
    assert [t["name"] for t in again["targets"]] == [t["name"] for t in record["targets"]], "seeded pick repeats"
    assert all(t["details"]["instance"] for t in record["targets"])
    assert _faults(clean) == before
    assert actions.pin_model_version(dry_run=True)["parameters"]["previous"] and _served(clean) == dict.fromkeys(
        ["model-0", "model-1", "model-2"], "2")


def test_nan_outputs_and_its_idempotent_undo(clean):
    record = actions.emit_nan_outputs(count=1, seed=3)
    (hit,) = [t["name"] for t in record["targets"]]
    assert record["undo"] == {"func": actions.CLEAR_FUNC, "arguments": {"service": "model", "replicas": [hit]}}
    assert _faults(clean)[hit]["nan_outputs"] is True
    assert probes.prediction_accuracy(only_healthy=False) == 0.0  # NaN scores as wrong, not as a crash
    assert actions.clear_model_faults(**record["undo"]["arguments"])["cleared"] == [hit]
    assert actions.clear_model_faults(**record["undo"]["arguments"]) == {
        "service": "model", "cleared": [], "already": [hit], "gone": []}
    assert probes.prediction_accuracy(only_healthy=False) > 0.9


def test_not_ready_and_its_undo(clean):
    actions.make_not_ready(count=2, seed=1)
    assert probes.healthy_replica_count() == 1
    assert len(actions.clear_model_faults()["cleared"]) == 2
    assert probes.healthy_replica_count() == 3


def test_pin_records_the_previous_version_and_restore_is_idempotent(clean):
    record = actions.pin_model_version(version="1", count=1, seed=2)
    (hit,) = record["undo"]["arguments"]["replicas"]
    assert record["parameters"]["previous"] == {hit: "2"}
    assert _served(clean)[hit] == "1"
    assert actions.restore_model_version(**record["undo"]["arguments"])["restored"] == [hit]
    assert actions.restore_model_version(**record["undo"]["arguments"])["already"] == [hit]
    assert set(_served(clean).values()) == {"2"}
    with pytest.raises(DriverError, match="has no version '9'"):
        actions.pin_model_version(version="9")


def test_invalid_inputs_are_answered_400_and_counted_by_status(clean):
    record = actions.send_invalid_inputs(kind="out_of_range", requests=12, rate=200, invalid_fraction=0.25, seed=4)
    assert record["undo"] == {} and record["parameters"]["answers"] == {"invalid": {"400": 3}, "valid": {"200": 9}}


def test_selection_errors(clean):
    with pytest.raises(DriverError, match="only 3 live replica"):
        actions.make_not_ready(count=4)
    with pytest.raises(TargetNotFound):
        actions.clear_model_faults(replicas=["model-9"])
