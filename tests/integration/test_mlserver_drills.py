"""Drills against a real MLServer 1.7 (Seldon), the model server people run, not ours.

One MLServer (tests/support/mlserver.py: a scikit-learn iris model this module trains) sits behind a real
fault proxy process (``python -m mlchaos.proxy``, API token required), and a real Prometheus scrapes
MLServer's own metrics port with an alert rule written for MLServer's metric names
(``model_infer_request_failure_total``), notifying a real Alertmanager. Through nothing but the Open
Inference Protocol, the proxy's Toxiproxy API and the monitoring APIs:

* the traffic generator sends real infer calls to MLServer through the proxy;
* proxy toxics in front of MLServer: latency, train/serve skew (features rewritten on the way, accuracy
  falls) and a request drop (MLServer has no feedback endpoint, the Open Inference Protocol defines none:
  the drop is shown on the infer path, answered by the proxy itself);
* an alert drill by the real ``mlchaos run``: the model is unloaded through MLServer's repository API
  while traffic flows, the rule fires, Alertmanager notifies the run's authenticated receiver, the
  safety net loads the model back and the alert resolves.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from drivers.model import probes as model_probes
from drivers.model import traffic
from drivers.proxy import actions as proxy_actions
from mlchaos.lib.files import free_ports
from mlchaos.sandbox.monitoring_stack import alertmanager_config
from tests.support import auth_monitoring, mlserver
from tests.support.components import require_component
from tests.support.environment import child_env
from tests.support.polling import wait_until
from tests.support.proxy_process import start_proxy

RULE = "MLServerInferFailing"
RULES = {"groups": [{"name": "mlserver", "interval": "1s", "rules": [{
    "alert": RULE,
    # MLServer's own metric: counted for every infer call that fails, an unloaded model's 404s included
    "expr": "sum by (model) (rate(model_infer_request_failure_total[5s])) > 0",
    "for": "2s",
    "labels": {"severity": "page"},
    "annotations": {"summary": "MLServer answers infer calls for {{ $labels.model }} with errors"},
}]}]}


@dataclass(frozen=True)
class Stack:
    """MLServer, the fault proxy in front of it, Prometheus and Alertmanager."""

    mlserver: str
    metrics: str
    proxied: str
    proxy_api: str
    prometheus: str
    alertmanager: str
    token_file: Path
    receiver_port: int
    proxy_token: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    executable = mlserver.binary()
    require_component("MLServer", executable is not None, mlserver.HOW_TO_GET_IT)
    require_component("Prometheus and Alertmanager", auth_monitoring.binaries_present(),
                      "apt-get install prometheus prometheus-alertmanager")
    assert executable is not None
    folder = tmp_path_factory.mktemp("mlserver-drills")
    server = mlserver.start(executable, folder / "mlserver")
    started: list = [server]
    try:
        token = secrets.token_hex(16)
        proxy = start_proxy(folder / "proxy", [{"name": "mlserver", "listen": "127.0.0.1:0",
                                                "upstream": server.url.removeprefix("http://")}],
                            token=token, token_via="file")
        started.append(proxy)
        token_file = folder / "am-token"  # each run writes its own receiver token here (0600)
        token_file.write_text("not yet\n")
        (receiver_port,) = free_ports(1)  # where the drill's receiver listens, and Alertmanager posts
        am = auth_monitoring.start_alertmanager(
            folder / "alertmanager", alertmanager_config(f"http://127.0.0.1:{receiver_port}/alerts", token_file),
            None, ready_auth={})
        started.append(am)
        (folder / "rules.yml").write_text(yaml.safe_dump(RULES))
        metrics = server.metrics_url.removeprefix("http://")
        prometheus = auth_monitoring.start_prometheus(folder / "prometheus", {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(folder / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am.url.removeprefix("http://")]}]}]},
            "scrape_configs": [{"job_name": "mlserver", "static_configs": [{"targets": [metrics]}]}],
        }, None, ready_auth={})
        started.append(prometheus)
        yield Stack(server.url, server.metrics_url, f"http://{proxy.listen('mlserver')}", proxy.api, prometheus.url,
                    am.url, token_file, receiver_port, token)
    finally:
        for component in reversed(started):
            component.stop()


@pytest.fixture
def proxy_token(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    """The proxy API's token, where the proxy driver reads it (``MLCHAOS_PROXY_TOKEN``)."""
    monkeypatch.setenv("MLCHAOS_PROXY_TOKEN", stack.proxy_token)
    return stack.proxy_token


def _ok_calls(stats: dict) -> tuple[int, int]:
    """(infer calls sent, infer calls answered 200) in a traffic generator's stats."""
    infer = stats["answers"]["mlserver"].get("infer", {})
    return sum(infer.values()), infer.get("200", 0)


def test_traffic_generator_sends_real_infer_calls_to_mlserver_through_the_proxy(stack, state_dir):
    record = traffic.start_traffic(target="url", urls=[stack.proxied], names=["mlserver"], rate=20,
                                         duration=60, feedback=False, seed=3)
    stats_path = record["parameters"]["stats_path"]
    try:
        wait_until(lambda: _ok_calls(traffic.traffic_stats(stats_path))[0] >= 20, timeout=60,
                   what="20 infer calls answered")
    finally:
        stopped = traffic.stop_traffic(**record["undo"]["arguments"])
    sent, ok = _ok_calls(stopped["stats"] or traffic.traffic_stats(stats_path))
    assert sent >= 20 and ok == sent, stopped  # every call answered 200 by MLServer


def test_a_latency_toxic_in_front_of_mlserver(stack, proxy_token):
    urls = [stack.proxied]
    baseline = model_probes.latency_percentile(percentile=50, requests=10, urls=urls)
    record = proxy_actions.add_toxic("mlserver", "latency", {"latency": 300}, url=stack.proxy_api)
    try:
        slowed = model_probes.latency_percentile(percentile=50, requests=10, urls=urls)
    finally:
        proxy_actions.remove_toxic(**record["undo"]["arguments"])
    assert 300 <= slowed < baseline + 600, (baseline, slowed)  # every request through the toxic waits 300 ms
    assert model_probes.latency_percentile(percentile=50, requests=10, urls=urls) < 300


def test_a_train_serve_skew_toxic_makes_mlserver_predict_badly(stack, proxy_token):
    urls = [stack.proxied]
    assert model_probes.prediction_accuracy(urls=urls) > 0.9
    record = proxy_actions.skew_requests("mlserver", [{"op": "scale", "feature": 2, "factor": 10},
                                                      {"op": "scale", "feature": 3, "factor": 10}],
                                         url=stack.proxy_api)
    try:
        skewed = model_probes.prediction_accuracy(urls=urls)
        direct = model_probes.prediction_accuracy(urls=[stack.mlserver])
    finally:
        proxy_actions.remove_toxic(**record["undo"]["arguments"])
    assert skewed < 0.7 and direct > 0.9, (skewed, direct)  # only the skewed path predicts badly
    assert model_probes.prediction_accuracy(urls=urls) > 0.9


def test_a_drop_toxic_answers_for_mlserver_which_never_sees_the_calls(stack, proxy_token):
    urls = [stack.proxied]
    before = _failures_and_successes(stack)
    record = proxy_actions.drop_requests("mlserver", path=r"/v2/models/iris/infer", status=503,
                                         url=stack.proxy_api)
    try:
        assert model_probes.error_rate(requests=10, urls=urls) == 1.0
    finally:
        proxy_actions.remove_toxic(**record["undo"]["arguments"])
    assert _failures_and_successes(stack) == before  # MLServer counted none of the dropped calls
    assert model_probes.error_rate(requests=10, urls=urls) == 0.0


def _failures_and_successes(stack: Stack) -> dict[str, float]:
    """MLServer's own infer counters, read from its metrics port."""
    text = requests.get(f"{stack.metrics}/metrics", timeout=5).text
    return {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(("model_infer_request_failure_total", "model_infer_request_success_total"))}


def _drill(stack: Stack) -> dict:
    where = {"target": "url", "urls": [stack.mlserver]}
    prom, am = {"url": stack.prometheus}, {"url": stack.alertmanager}
    return {
        "title": "An unloaded model on MLServer is detected and notified",
        "description": "Unload the iris model through MLServer's repository API while traffic flows: the rule "
                       "on MLServer's own failure counter fires and Alertmanager notifies the run.",
        "tags": ["mlserver", "alerts"],
        # checked before and after the method, the fault still in place after it (as Chaos Toolkit does)
        "steady-state-hypothesis": {"title": "The rule is loaded and nothing unrelated fires", "probes": [
            {"type": "probe", "name": "rule-loaded", "tolerance": True, "provider": {
                "type": "python", "module": "drivers.prometheus.probes", "func": "rule_is_healthy",
                "arguments": {"rule": RULE, **prom}}},
            {"type": "probe", "name": "nothing-unrelated-fires", "tolerance": 0, "provider": {
                "type": "python", "module": "drivers.prometheus.probes", "func": "unexpected_alert_count",
                "arguments": {"allowed": [RULE], **prom}}},
        ]},
        "method": [
            {"type": "probe", "name": "mlserver-ready-before", "tolerance": True, "provider": {
                "type": "python", "module": "drivers.model.probes", "func": "all_replicas_healthy",
                "arguments": {"urls": [stack.mlserver]}}},
            {"type": "probe", "name": "nothing-fires-before", "tolerance": 0, "provider": {
                "type": "python", "module": "drivers.prometheus.probes", "func": "unexpected_alert_count",
                "arguments": {"allowed": [], **prom}}},
            {"type": "action", "name": "client-traffic", "provider": {
                "type": "python", "module": "drivers.model.traffic", "func": "start_traffic",
                "arguments": {**where, "names": ["mlserver"], "rate": 10, "duration": 120, "feedback": False}}},
            {"type": "action", "name": "unload-the-model", "provider": {
                "type": "python", "module": "drivers.model.actions", "func": "unload_model", "arguments": where}},
            {"type": "probe", "name": "failures-alert-fires", "provider": {
                "type": "python", "module": "drivers.prometheus.probes", "func": "alert_fires_within",
                "arguments": {"alert": RULE, "within": 40, **prom}}},
            {"type": "probe", "name": "on-call-notified", "provider": {
                "type": "python", "module": "drivers.alertmanager.probes", "func": "notification_delivered_within",
                "arguments": {"alert": RULE, "within": 40, **am}}},
        ],
        "extensions": [{"name": "mlchaos", "activity_timeout": 60, "rollback_timeout": 60,
                        "notifications": {"listen": f"127.0.0.1:{stack.receiver_port}",
                                          "token_file": str(stack.token_file)},
                        "recovery": [
                            {"type": "probe", "name": "model-ready-again", "tolerance": True, "provider": {
                                "type": "python", "module": "drivers.model.probes", "func": "all_replicas_healthy",
                                "arguments": {"urls": [stack.mlserver]}}},
                            {"type": "probe", "name": "alert-resolves",
                             "tolerance": {"type": "jsonpath", "path": "$.alert", "expect": RULE}, "provider": {
                                 "type": "python", "module": "drivers.prometheus.probes",
                                 "func": "alert_resolves_within", "arguments": {"alert": RULE, "within": 60, **prom}}},
                        ]}],
    }


def test_an_alert_drill_on_mlserver_by_the_real_cli(stack, tmp_path, isolated_state):
    experiment, journal_path = tmp_path / "mlserver-drill.json", tmp_path / "journal.json"
    experiment.write_text(json.dumps(_drill(stack)))
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal", str(journal_path)],
                         env=child_env(isolated_state), capture_output=True, text=True, timeout=400)
    wall = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "completed"
    notified = next(r for r in journal["run"] if r["activity"]["name"] == "on-call-notified")
    assert notified["output"]["confirmed_by"]  # the Alertmanager the drill queried holds the same alert
    measured = {m["kind"]: m["seconds"] for m in journal["mlchaos"].get("measurements", [])}
    print(f"\nMLServer unload drill: wall {wall:.1f} s, measurements {measured}")
    assert requests.post(f"{stack.mlserver}/v2/repository/index", json={}, timeout=5).json()[0]["state"] == "READY"
