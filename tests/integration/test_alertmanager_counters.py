"""notification_baseline / notification_sent_within against a real Alertmanager 0.25 behind basic auth.

Each test gets its own Alertmanager (its counters are per process and per integration) behind
``--web.config.file`` basic auth, declared as the ``alertmanager`` endpoint, routing to real webhook
receivers on a local HTTP server: receiver ``drill`` answers 200, ``broken`` answers 500, and alerts named
``Slow`` go to ``drill`` after a group_wait of an hour. Alerts are posted to Alertmanager's own API (what
Prometheus does); no Prometheus is needed to exercise the counters.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from drivers.alertmanager import probes
from mlchaos.driver_kit import DriverError
from mlchaos.lib import endpoints
from mlchaos.safety import run_context
from tests.support import auth_monitoring as am
from tests.support.components import require_component

USER, PASSWORD = "drill", "counters-basic-password-0815"


class Webhooks:
    """A local webhook server: POST /ok answers 200, POST /fail 500; every body is kept."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hooks.received.append((self.path, json.loads(body or b"{}")))
                self.send_response(200 if self.path == "/ok" else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def alertnames(self, path: str) -> set[str]:
        return {a["labels"]["alertname"] for p, body in self.received if p == path for a in body.get("alerts", [])}


def _config(hooks: Webhooks) -> dict[str, Any]:
    fast = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
    return {
        "route": {"receiver": "drill", "group_by": ["alertname"], **fast, "routes": [
            {"receiver": "broken", "matchers": ['alertname="Broken"']},
            {"receiver": "drill", "matchers": ['alertname="Slow"'], "group_wait": "1h"},
        ]},
        "receivers": [
            {"name": "drill", "webhook_configs": [{"url": hooks.url("/ok"), "send_resolved": True}]},
            {"name": "broken", "webhook_configs": [{"url": hooks.url("/fail")}]},
        ],
    }


@pytest.fixture
def alertmanager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A fresh Alertmanager behind basic auth, declared as the run's ``alertmanager`` endpoint, in a run context."""
    require_component("Alertmanager", am.binaries_present(),
                      "apt-get install prometheus prometheus-alertmanager (scripts/install-system-packages.sh)")
    hooks = Webhooks()
    web = am.web_config(tmp_path / "web.yml", users={USER: PASSWORD})
    server = am.start_alertmanager(tmp_path / "alertmanager", _config(hooks), web,
                                   ready_auth={"auth": (USER, PASSWORD)})
    monkeypatch.setenv("MLCHAOS_TEST_AM_PASSWORD", PASSWORD)
    table = endpoints.EndpointTable({"alertmanager": endpoints.Endpoint.from_dict("alertmanager", {
        "url": server.url, "basic_auth": {"username": USER, "password_env": "MLCHAOS_TEST_AM_PASSWORD"}})})
    previous = endpoints.activate(table)
    token = run_context.activate(run_context.RunContext())
    try:
        yield {"url": server.url, "hooks": hooks, "log": server.log}
    finally:
        run_context.deactivate(token)
        endpoints.activate(previous)
        table.close()
        server.stop()
        hooks.server.shutdown()


def _fire(url: str, *names: str) -> None:
    """Post alerts to Alertmanager's API, as Prometheus does."""
    alerts = [{"labels": {"alertname": name, "severity": "page"}} for name in names]
    requests.post(f"{url}/api/v2/alerts", json=alerts, auth=(USER, PASSWORD), timeout=5).raise_for_status()


def test_a_notification_sent_through_the_integration_passes(alertmanager):
    baseline = probes.notification_baseline()  # the declared `alertmanager` endpoint, with its basic auth
    assert (baseline["requests"], baseline["requests_failed"], baseline["per_receiver"]) == (0, 0, False)
    _fire(alertmanager["url"], "Good")
    sent = probes.notification_sent_within("Good", receiver="drill", within=30)
    assert sent["routed_to"] == ["drill"]
    assert sent["since_baseline"]["requests"] >= 1
    assert sent["since_baseline"]["requests_failed"] == sent["since_baseline"]["notifications_failed"] == 0
    assert sent["attribution"] == "integration"  # Alertmanager 0.25 has no receiver label on its counters
    assert "Good" in alertmanager["hooks"].alertnames("/ok")  # the far end did get it (what the probe cannot see)


def test_a_failing_receiver_fails_the_probe_naming_the_failed_counters(alertmanager):
    probes.notification_baseline()
    _fire(alertmanager["url"], "Broken")
    with pytest.raises(DriverError) as failure:
        probes.notification_sent_within("Broken", receiver="broken", within=30)
    message = str(failure.value)
    assert f"Alertmanager at {alertmanager['url']}: notifications of integration 'webhook' failed" in message
    assert "requests_failed_total" in message and "0 failed" not in message, message
    assert "Broken" in alertmanager["hooks"].alertnames("/fail")  # it was tried, and refused with 500


def test_an_alert_routed_but_not_sent_times_out_and_another_alert_satisfies_it(alertmanager):
    """The limitation the docs state: the counters are per integration, not per alert."""
    probes.notification_baseline()
    _fire(alertmanager["url"], "Slow")  # routed to drill, held back by a group_wait of an hour
    with pytest.raises(DriverError, match=r"no successful webhook call for Slow within 2s: the alert is routed to "
                                          r"'drill'; since the baseline, integration 'webhook' \(all receivers\): "
                                          r"0 requests"):
        probes.notification_sent_within("Slow", receiver="drill", within=2)
    _fire(alertmanager["url"], "Good")  # another alert, through the same integration
    sent = probes.notification_sent_within("Slow", receiver="drill", within=30)
    assert sent["routed_to"] == ["drill"] and sent["since_baseline"]["requests"] >= 1
    assert "Slow" not in alertmanager["hooks"].alertnames("/ok")  # passed, though Slow was never sent


def test_the_counters_need_the_endpoints_credentials_and_a_baseline(alertmanager):
    declared = endpoints.activate(None)  # no endpoint declared: the URL alone, without credentials
    try:
        with pytest.raises(DriverError, match=r"refused /metrics: HTTP 401 Unauthorized \(credentials missing"):
            probes.notification_baseline(url=alertmanager["url"])
    finally:
        endpoints.activate(declared)
    with pytest.raises(DriverError, match=r"no notification_baseline of integration 'webhook' on Alertmanager"):
        probes.notification_sent_within("Good", receiver="drill", within=1)
    with pytest.raises(DriverError, match=r"exports no notification counters for integration 'pager' "
                                          r"\(its integrations: email, .*webhook"):
        probes.notification_baseline(integration="pager")
    planned = probes.notification_sent_within("Good", receiver="drill", dry_run=True)
    assert planned == {"dry_run": True, "alert": "Good", "receiver": "drill", "integration": "webhook",
                       "alertmanager": alertmanager["url"], "per_receiver": False}
    assert PASSWORD not in alertmanager["log"].read_text()
