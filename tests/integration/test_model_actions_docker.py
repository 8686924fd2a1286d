"""drivers.model.actions against the real compose stack (target docker): the NaN drill through the real CLI
fires ModelNonFiniteOutputs for the container hit, a pinned version is recorded and restored on a container,
and `mlchaos recover` undoes a docker model fault from its journal alone (twice: idempotent)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from drivers.model import actions
from drivers.model import probes as model_probes
from mlchaos.containers import stack
from mlchaos.engine import exit_codes
from mlchaos.errors import DriverError
from tests.support.environment import child_env
from tests.support.paths import ROOT
from tests.support.polling import wait_until
from tests.support.settling import wait_until_settled

pytestmark = pytest.mark.docker  # integration: from the folder (tests/conftest.py)
DOCKER = {"target": "docker", "project": stack.PROJECT}


def _env() -> dict[str, str]:
    return child_env()


def _served(found: stack.StackEndpoints) -> dict[str, str]:
    out = {}
    for replica, url in found.direct_urls.items():
        index = requests.post(url + "/v2/repository/index", json={}, timeout=5).json()
        out[f"{replica}:8000"] = next(m["version"] for m in index if m["state"] == "READY")
    return out


def _faults(found: stack.StackEndpoints) -> dict[str, bool]:
    """Whether each replica answers NaN (its admin endpoint is loopback-only: ask the public API)."""
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    return {f"{replica}:8000": "NaN" in requests.post(url + "/v2/models/iris/infer", json=body, timeout=5).text
            for replica, url in found.direct_urls.items()}


def test_the_docker_nan_drill_fires_for_the_container_hit_through_the_cli(compose_stack, tmp_path):
    journal = tmp_path / "journal.json"
    drill = ROOT / "experiments" / "docker-nan-outputs.yaml"
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(drill), "--journal", str(journal)],
                          env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    data = json.loads(journal.read_text())
    (change,) = data["mlchaos"]["changes"]
    (hit,) = change["targets"]
    assert change["driver"] == "model" and hit["kind"] == "container" and change["environment"].startswith("docker:")
    undo = change["undo"]["arguments"]
    assert undo["target"] == "docker" and undo["replicas"] == [hit["name"]]
    fired = next(e["output"] for e in data["run"]
                 if e["activity"]["name"] == "non-finite-alert-fires-for-that-container")
    assert fired["state"] == "firing" and fired["labels"]["instance"] == hit["details"]["instance"]
    assert all(b["met"] for b in data["mlchaos"]["budgets"])
    assert not any(_faults(compose_stack).values()), "the rollback cleared the fault"


def test_pin_a_version_on_a_container_and_restore_it(compose_stack):
    record = actions.pin_model_version(version="1", count=1, seed=4, **DOCKER)
    (hit,) = record["targets"]
    undo = record["undo"]["arguments"]
    assert record["undo"]["func"] == actions.RESTORE_FUNC and record["parameters"]["target"] == "docker"
    assert undo == {"service": "model", "replicas": [hit["name"]], "versions": {hit["name"]: "2"}, "model": "iris",
                    "target": "docker", "labels": {"mlchaos.target": "model"}, "name_pattern": None,
                    "project": stack.PROJECT}
    served = _served(compose_stack)
    assert served.pop(hit["details"]["instance"]) == "1" and set(served.values()) == {"2"}
    assert actions.restore_model_version(**undo)["restored"] == [hit["name"]]
    assert actions.restore_model_version(**undo)["already"] == [hit["name"]]
    assert set(_served(compose_stack).values()) == {"2"}
    again = actions.pin_model_version(version="1", count=1, seed=4, dry_run=True, **DOCKER)
    assert again["targets"][0]["name"] == hit["name"] and set(_served(compose_stack).values()) == {"2"}


def test_push_a_bad_model_to_a_container_and_roll_it_back(compose_stack):
    record = actions.push_bad_model(defect="label_flipped", version="bad", count=1, seed=5, **DOCKER)
    (hit,) = record["targets"]
    instance, undo = hit["details"]["instance"], record["undo"]["arguments"]
    assert undo["target"] == "docker" and undo["remove_version"] == "bad" and undo["versions"] == {hit["name"]: "2"}
    assert _served(compose_stack)[instance] == "bad"
    assert model_probes.prediction_accuracy(urls=[hit["details"]["url"]], only_healthy=False) < 0.1
    assert actions.restore_pushed_model(**undo) == {"service": "model", "restored": [hit["name"]],
                                                    "removed": [hit["name"]], "already": [], "gone": []}
    assert actions.restore_pushed_model(**undo)["already"] == [hit["name"]]
    assert set(_served(compose_stack).values()) == {"2"}


def test_invalid_inputs_reach_a_container_at_its_published_port(compose_stack):
    record = actions.send_invalid_inputs(kind="wrong_shape", requests=20, rate=50, count=1, seed=2, **DOCKER)
    assert record["parameters"]["answers"] == {"invalid": {"400": 10}, "valid": {"200": 10}}
    assert record["undo"] == {} and record["targets"][0]["kind"] == "container"


def test_recover_undoes_docker_model_faults_from_the_journal_alone(compose_stack, tmp_path):
    nan = actions.emit_nan_outputs(count=1, seed=1, **DOCKER)
    pin = actions.pin_model_version(version="1", count=1, seed=2, **DOCKER)
    nan_hit, pin_hit = nan["targets"][0]["details"]["instance"], pin["targets"][0]["details"]["instance"]
    assert _faults(compose_stack)[nan_hit] and _served(compose_stack)[pin_hit] == "1"
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps({"mlchaos": {"changes": [nan, pin]}}))
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "mlchaos", "recover", str(journal)], env=_env(),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
        assert "undone  nan_outputs" in proc.stdout and "undone  pin_model_version" in proc.stdout
        assert not any(_faults(compose_stack).values()) and set(_served(compose_stack).values()) == {"2"}
    wait_until(lambda: model_probes.all_replicas_healthy(urls=list(compose_stack.model_urls.values())), 20,
               "every replica ready")


def test_the_public_api_actions_work_on_servers_by_url(compose_stack):
    urls = list(compose_stack.direct_urls.values())
    record = actions.pin_model_version(version="1", count=1, seed=3, target="url", urls=urls)
    (hit,) = record["targets"]
    assert hit["kind"] == "url" and record["environment"] == "http://" + hit["details"]["instance"]
    assert record["undo"]["arguments"]["urls"] == urls and record["population"] == urls
    assert requests.get(hit["name"] + "/v2/models/iris", timeout=5).json()["versions"] == ["1"]
    assert sorted(_served(compose_stack).values()) == ["1", "2", "2"]
    assert actions.restore_model_version(**record["undo"]["arguments"])["restored"] == [hit["name"]]
    assert set(_served(compose_stack).values()) == {"2"}
    burst = actions.send_invalid_inputs(kind="nan", requests=10, rate=50, target="url", urls=urls[:1], seed=1)
    assert burst["parameters"]["answers"]["invalid"] == {"400": 5}
    with pytest.raises(DriverError, match="needs the admin endpoint"):
        actions.emit_nan_outputs(target="url", urls=urls)


def test_the_docker_nan_drill_plans_cleanly_and_touches_nothing(compose_stack):
    # the plan checks the steady state (no alert firing): the tests before sent invalid inputs and NaN answers
    wait_until_settled(compose_stack.prometheus_url)
    drill = ROOT / "experiments" / "docker-nan-outputs.yaml"
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "plan", str(drill)], env=_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    assert "would hit container" in proc.stdout and "environment: docker:" in proc.stdout
    assert "target='docker'" in proc.stdout, "the undo carries the target"
    assert not any(_faults(compose_stack).values())
