"""The train/serve-skew and feedback-loss drills against the compose stack, run by the real CLI: client
traffic by URL to the stack's proxy ports (drivers.model.traffic target url, names model-0..2), a
request-level toxic on the proxy model-1 through the stack's proxy API, and the alert must fire for
model-1 only (by the stack's replica label), be notified and resolve after the rollback.

A stack of their own, fresh: a replica that has had feedback and then serves predictions without it
is, by design, ModelFeedbackAbsent, so the skew drill (no feedback) runs first, on a stack that has
had no feedback yet (it is restarted if it had).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from drivers.model import traffic
from mlchaos.containers import stack
from mlchaos.engine import exit_codes
from mlchaos.lib.proxy_token import proxy_api_headers
from tests.support.environment import child_env
from tests.support.paths import ROOT

pytestmark = pytest.mark.docker  # integration: from the folder (tests/conftest.py)
# drill -> (the alert it must fire for model-1, the endpoint whose answers must show no 5xx). Order matters.
DRILLS = {"docker-train-serve-skew.yaml": ("ModelPredictionDrift", "infer"),
          "docker-feedback-loss.yaml": ("ModelFeedbackAbsent", "feedback")}


def _env() -> dict[str, str]:
    return child_env()


def _had_feedback(found: stack.StackEndpoints) -> bool:
    answer = requests.get(found.prometheus_url + "/api/v1/query",
                          params={"query": 'max(model_feedback_events_total{job="model"}) > 0'}, timeout=5)
    answer.raise_for_status()
    return bool(answer.json()["data"]["result"])


def _toxics(found: stack.StackEndpoints) -> dict[str, list[str]]:
    proxies = requests.get(found.proxy_api_url + "/proxies", headers=proxy_api_headers(), timeout=5).json()
    return {name: [t["name"] for t in p.get("toxics") or []] for name, p in proxies.items()}


@pytest.mark.parametrize("drill", list(DRILLS))
def test_the_docker_ml_drills_plan_cleanly_and_touch_nothing(compose_stack, drill):
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "plan", str(ROOT / "experiments" / drill)],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    assert "would send traffic to model-1 (instance model-1:8000, url http://127.0.0.1:18001)" in proc.stdout
    assert "environment: http://127.0.0.1\n" in proc.stdout and "would hit proxy model-1" in proc.stdout
    assert not any(_toxics(compose_stack).values())


@pytest.mark.parametrize("drill", list(DRILLS))
def test_the_docker_ml_drills_fire_for_model_1_only_and_recover(compose_stack, tmp_path, drill):
    alert, endpoint = DRILLS[drill]
    if drill == "docker-train-serve-skew.yaml" and _had_feedback(compose_stack):
        stack.stack_down()  # run out of order after the feedback drill: start over
        stack.stack_up(timeout=90)
    journal = tmp_path / "journal.json"
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(ROOT / "experiments" / drill),
                           "--journal", str(journal)], env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    data = json.loads(journal.read_text())
    load, fault = data["mlchaos"]["changes"]
    assert load["action"] == "start_traffic" and load["environment"] == "http://127.0.0.1"
    assert {t["name"]: t["details"]["instance"] for t in load["targets"]} == {
        f"model-{i}": f"model-{i}:8000" for i in range(3)}
    assert fault["action"] == "add-toxic" and [t["name"] for t in fault["targets"]] == ["model-1"]
    assert fault["environment"] == compose_stack.proxy_api_url
    outputs = {e["activity"]["name"]: e["output"] for e in data["run"]}
    fired = next(o for name, o in outputs.items() if name.endswith("-alert-fires-for-that-replica"))
    assert fired["state"] == "firing" and fired["labels"]["alertname"] == alert
    assert fired["labels"]["replica"] == "model-1" and fired["labels"]["instance"] == "model-1:8000"
    assert outputs["no-other-alert-fired"] == 0
    budgets = {b["kind"]: b for b in data["mlchaos"]["budgets"]}
    assert {"time_to_detect", "time_to_notify", "time_to_recover"} <= set(budgets)
    assert all(b["met"] for b in budgets.values()), budgets
    stats = traffic.traffic_stats(load["parameters"]["stats_path"])
    assert stats["finished"] and stats["replicas"] == ["model-0", "model-1", "model-2"]
    assert all(by["infer"].get("200", 0) > 0 for by in stats["answers"].values())
    assert traffic.traffic_answers("5xx", endpoint, stats_path=load["parameters"]["stats_path"]) == 0
    assert traffic.find_generators(load["parameters"]["token"]) == [], "the traffic stopped after the recovery"
    assert not any(_toxics(compose_stack).values()), "the rollback removed the toxic"
