"""Two runs by ``mlchaos run`` in a row, each with a fresh receiver token from a Kubernetes Secret, notified by a real
Alertmanager.

What is real: ``mlchaos run`` (the CLI, in a child process), its notification receiver, and Alertmanager 0.25
(Debian's binary), which posts the alert the test gave it to the run's receiver with the token of its
webhook's ``credentials_file``. What is NOT real: the Kubernetes API is kmock's EMULATOR
(tests/support/kubernetes_emulator.py, an in-memory API over real HTTP, with the admission policies enforced
by cel-python), not an API server; and a thread plays the Prometheus Operator, the kubelet and the config
reloader: it copies the Secret's token into Alertmanager's credentials file a second after it changes (the
reload a real cluster takes minutes for). The Secret is the one deploy/kubernetes/notification-receiver.yaml
ships (empty).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from mlchaos.engine import exit_codes
from mlchaos.lib.files import atomic_write, free_ports
from tests.support import auth_monitoring as am
from tests.support.admission_policy import Policies
from tests.support.components import require_component
from tests.support.environment import child_env
from tests.support.kubernetes_emulator import SECRETS, EmulatedCluster
from tests.support.kubernetes_tour import manifest

NS, NAME = "ml-serving", "mlchaos-receiver-token"
RELOAD = 3.0  # the runs' reload_seconds: longer than the emulated operator takes
OPERATOR_DELAY = 1.0


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _token(secret: dict[str, Any] | None) -> str | None:
    raw = ((secret or {}).get("data") or {}).get("token")
    return base64.b64decode(raw).decode() if raw else None


@pytest.fixture
def cluster_and_alertmanager(tmp_path: Path) -> Iterator[dict[str, Any]]:
    require_component("Alertmanager", am.binaries_present(),
                      "apt-get install prometheus prometheus-alertmanager (scripts/install-system-packages.sh)")
    (receiver_port,) = free_ports(1)
    credentials = tmp_path / "webhook.token"
    atomic_write(credentials, "placeholder-until-the-operator-writes-one\n", mode=0o600)
    config = {"route": {"receiver": "mlchaos", "group_by": ["alertname"], "group_wait": "1s",
                        "group_interval": "1s", "repeat_interval": "1s"},
              "receivers": [{"name": "mlchaos", "webhook_configs": [{
                  "url": f"http://127.0.0.1:{receiver_port}/alerts", "send_resolved": True,
                  "http_config": {"authorization": {"credentials_file": str(credentials)}}}]}]}
    alertmanager = am.start_alertmanager(tmp_path / "alertmanager", config, None, ready_auth={})
    stop = threading.Event()
    with EmulatedCluster(tmp_path / "k8s", admission=Policies().admission()) as cluster:
        cluster.put(SECRETS, manifest("notification-receiver.yaml", "Secret", NAME))

        def operator() -> None:  # the operator + kubelet + config reloader, in one second
            applied = None
            while not stop.wait(0.1):
                token = _token(cluster.get(SECRETS, NS, NAME))
                if token and token != applied and not stop.wait(OPERATOR_DELAY):
                    atomic_write(credentials, token + "\n", mode=0o600)
                    applied = token

        thread = threading.Thread(target=operator, name="emulated-operator", daemon=True)
        thread.start()
        try:
            requests.post(f"{alertmanager.url}/api/v2/alerts", json=[{"labels": {
                "alertname": "TokenDrill", "severity": "page"}}], timeout=5).raise_for_status()
            yield {"cluster": cluster, "alertmanager": alertmanager.url, "listen": f"127.0.0.1:{receiver_port}"}
        finally:
            stop.set()
            thread.join(5)
            alertmanager.stop()


def _experiment(stack: dict[str, Any]) -> dict[str, Any]:
    cluster: EmulatedCluster = stack["cluster"]
    return {
        "title": "Alertmanager notifies the run's receiver with this run's token",
        "description": "The receiver's token comes from a Kubernetes Secret (emulated), fresh for this run.",
        "configuration": {"kubeconfig": str(cluster.kubeconfig), "kube_context": cluster.context},
        "method": [{"type": "probe", "name": "the-drill-alert-is-notified", "provider": {
            "type": "python", "module": "drivers.alertmanager.probes", "func": "notification_delivered_within",
            "arguments": {"alert": "TokenDrill", "within": 30, "url": stack["alertmanager"]}}}],
        "extensions": [{"name": "mlchaos", "notifications": {"listen": stack["listen"], "token_kubernetes_secret": {
            "namespace": NS, "name": NAME, "reload_seconds": RELOAD}}}],
    }


def _run(experiment: dict[str, Any], folder: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    folder.mkdir()
    path, journal = folder / "experiment.json", folder / "journal.json"
    path.write_text(json.dumps(experiment), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal)],
                          env=child_env(folder / "state"), capture_output=True, text=True, timeout=120)
    return proc, json.loads(journal.read_text())


def test_each_run_listens_with_its_own_token_and_leaves_the_next_runs(cluster_and_alertmanager, tmp_path):
    stack = cluster_and_alertmanager
    cluster: EmulatedCluster = stack["cluster"]
    first, first_journal = _run(_experiment(stack), tmp_path / "first")
    assert first.returncode == exit_codes.OK, first.stdout + first.stderr
    second, second_journal = _run(_experiment(stack), tmp_path / "second")
    assert second.returncode == exit_codes.OK, second.stdout + second.stderr
    assert "taking the run's token from secret ml-serving/mlchaos-receiver-token" in first.stdout

    tokens = []  # every token the Secret held, in order
    for version in cluster.history(SECRETS, NS, NAME):
        token = _token(version)
        if token and token not in tokens:
            tokens.append(token)
    assert len(tokens) == 3  # the first run's (written at its start), the second run's, the third run's
    one, two = first_journal["mlchaos"]["notifications_token"], second_journal["mlchaos"]["notifications_token"]
    assert (one["taken"]["rotated_now"], one["taken"]["why"], one["taken"]["waited_seconds"]) == (True, "no token",
                                                                                                    RELOAD)
    assert two["taken"]["rotated_now"] is False  # written by the first run at its end, for this one
    since = _instant(two["taken"]["taken_at"]) - _instant(one["rotated"]["rotated_at"])
    assert two["taken"]["rotated_at"] == one["rotated"]["rotated_at"]
    assert two["taken"]["waited_seconds"] == pytest.approx(max(RELOAD - since, 0.0), abs=0.01)  # the rest, if any
    assert one["rotated"]["rotated"] is two["rotated"]["rotated"] is True and one["claim"] != two["claim"]
    for journal in (first_journal, second_journal):
        received = journal["mlchaos"]["notifications"]
        assert received["authenticated"] is True
        assert any(n["alertname"] == "TokenDrill" for n in received["notifications"])
    text = first.stdout + first.stderr + second.stdout + second.stderr + json.dumps([first_journal, second_journal])
    assert not [token for token in tokens if token in text]  # no token in the output or a journal
    final = cluster.get(SECRETS, NS, NAME)["metadata"]["annotations"]
    assert "mlchaos.io/token-taken-by" not in final  # the third token waits for the next run
