"""A full alert drill through an authenticated Prometheus and Alertmanager, by the real CLI.

The sandbox serves three iris replicas; a second, real Prometheus (TLS + basic auth, bcrypt hash) scrapes
them with the sandbox's own alert rules and sends its alerts over mTLS to a real Alertmanager (TLS, a client
certificate required), which notifies the run's receiver with the run's token. The experiment is the bundled
kill drill with two endpoints declared once (``prometheus`` and ``alertmanager``, the default names, so no
probe names them) and two attacks on the redaction: a probe whose query holds the password, and a process
probe that prints it. The password appears nowhere in the journal, the console or the report.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlchaos.engine import exit_codes
from mlchaos.lib import endpoints
from mlchaos.lib.files import free_ports
from mlchaos.monitoring.alert_rules import SANDBOX
from mlchaos.sandbox.manager import Sandbox
from mlchaos.sandbox.monitoring_stack import Monitoring, alertmanager_config
from tests.support import auth_monitoring as am
from tests.support.environment import child_env
from tests.support.paths import ROOT
from tests.support.settling import wait_until_quiet

USER, PASSWORD = "drill-operator", "pw-7c1d2e9f0a-never-shown"
PASSWORD_ENV = "MLCHAOS_DRILL_PROMETHEUS_PASSWORD"


@pytest.fixture(scope="module")
def authenticated(monitored: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not am.binaries_present():  # require_monitoring (the monitored fixture) already failed or skipped
        pytest.fail("Prometheus and Alertmanager binaries missing")
    tmp = tmp_path_factory.mktemp("auth-drill")
    pki = am.make_pki(tmp / "pki")
    mtls = {"verify": str(pki.ca), "cert": (str(pki.client_cert), str(pki.client_key))}
    (receiver_port,) = free_ports(1)
    token_file = tmp / "receiver.token"  # the run writes its fresh token here; Alertmanager reads it per request
    token_file.write_text("placeholder-until-the-run-starts\n")
    token_file.chmod(0o600)
    alertmanager = am.start_alertmanager(
        tmp / "alertmanager", alertmanager_config(f"http://127.0.0.1:{receiver_port}/alerts", token_file),
        am.web_config(tmp / "am-web.yml", pki=pki, client_certs=True), ready_auth=mtls)
    stack = Monitoring(monitored.state_dir)
    blackbox = stack.endpoints().blackbox_url.split("://")[1]
    config = stack.prometheus_config(SANDBOX, blackbox=blackbox, alertmanager=alertmanager.url.split("://")[1])
    config["alerting"]["alertmanagers"][0] |= {"scheme": "https", "tls_config": {
        "ca_file": str(pki.ca), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}}
    try:
        prometheus = am.start_prometheus(
            tmp / "prometheus", config, am.web_config(tmp / "prom-web.yml", users={USER: PASSWORD}, pki=pki),
            ready_auth={"verify": str(pki.ca), "auth": (USER, PASSWORD)})
    except Exception:
        alertmanager.stop()
        raise
    table = endpoints.EndpointTable({"prometheus": endpoints.Endpoint.from_dict("prometheus", {
        "url": prometheus.url, "ca_file": str(pki.ca),
        "basic_auth": {"username": USER, "password_env": PASSWORD_ENV}})})
    os.environ[PASSWORD_ENV] = PASSWORD
    previous = endpoints.activate(table)
    try:
        wait_until_quiet(prometheus.url, timeout=60)  # scraping the replicas, start-up alerts resolved
    finally:
        endpoints.activate(previous)
        table.close()
        del os.environ[PASSWORD_ENV]
    yield {"pki": pki, "prometheus": prometheus.url, "alertmanager": alertmanager.url, "receiver_port": receiver_port,
           "token_file": token_file, "tmp": tmp}
    prometheus.stop()
    alertmanager.stop()


def _experiment(auth: dict[str, Any], folder: Path) -> Path:
    data = yaml.safe_load((ROOT / "experiments" / "kill-one-replica-alerts.yaml").read_text())
    pki = auth["pki"]
    ext = next(e for e in data["extensions"] if e["name"] == "mlchaos")
    ext["notifications"] = {"listen": f"127.0.0.1:{auth['receiver_port']}", "token_file": str(auth["token_file"])}
    ext["endpoints"] = {
        "prometheus": {"url": auth["prometheus"], "ca_file": str(pki.ca), "timeout": 10,
                       "basic_auth": {"username": USER, "password_env": PASSWORD_ENV}},
        "alertmanager": {"url": auth["alertmanager"], "ca_file": str(pki.ca),
                         "client_cert_file": str(pki.client_cert), "client_key_file": str(pki.client_key)},
    }
    data["steady-state-hypothesis"]["probes"] += [
        {"type": "probe", "name": "attack-query-holds-the-password", "tolerance": 0, "provider": {
            "type": "python", "module": "drivers.prometheus.probes", "func": "query_value",
            "arguments": {"query": f'count(up{{job="{PASSWORD}"}}) or vector(0)', "endpoint": "prometheus"}}},
        {"type": "probe", "name": "attack-probe-prints-the-password", "tolerance": 0, "provider": {
            "type": "process", "path": "printenv", "arguments": [PASSWORD_ENV]}},
    ]
    path = folder / "authenticated-kill-drill.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.slow  # about 30 s on a 2-core machine
def test_the_kill_drill_runs_through_authenticated_monitoring_and_never_shows_the_password(
        monitored: Sandbox, authenticated: dict[str, Any], tmp_path: Path) -> None:
    monitored.up(replicas=3, timeout=90)
    experiment = _experiment(authenticated, tmp_path)
    journal_path, report_dir = tmp_path / "journal.json", tmp_path / "report"
    env = child_env(monitored.state_dir) | {PASSWORD_ENV: PASSWORD}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal", str(journal_path)],
                          env=env, capture_output=True, text=True, timeout=240)
    wall = time.monotonic() - started
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    journal = json.loads(journal_path.read_text())
    report = subprocess.run([sys.executable, "-m", "mlchaos", "report", str(journal_path), "--out", str(report_dir)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stdout + report.stderr

    kinds = {m["kind"]: m["seconds"] for m in journal["mlchaos"]["measurements"]}
    assert set(kinds) == {"time_to_detect", "time_to_notify", "time_to_recover", "time_to_notify_resolved"}
    print(f"authenticated kill drill: {wall:.1f}s wall; " + ", ".join(f"{k} {v:.2f}s" for k, v in kinds.items()))
    assert all(b["met"] for b in journal["mlchaos"]["budgets"])
    # it went through the authenticated pair: the delivered alert is confirmed by that Alertmanager's API
    delivered = next(r["output"] for r in journal["run"] if r["activity"]["name"] == "on-call-is-notified")
    assert delivered["confirmed_by"] == authenticated["alertmanager"]
    assert journal["mlchaos"]["notifications"]["authenticated"] is True
    fired = next(r["output"] for r in journal["run"]
                 if r["activity"]["name"] == "server-down-alert-fires-for-the-killed-replica")
    assert fired["measurement"]["method"] == "prometheus timestamps"  # the exact time, read through the endpoint

    # the attacks: the probe's query and the process's output carried the password; it is shown nowhere
    before = journal["steady_states"]["before"]["probes"]
    printed = next(p for p in before if p["activity"]["name"] == "attack-probe-prints-the-password")
    assert printed["output"]["stdout"].strip() == "***"
    texts = {"journal": journal_path.read_text(), "stdout": proc.stdout, "stderr": proc.stderr,
             "report stdout": report.stdout + report.stderr,
             **{f"report {p.name}": p.read_text() for p in report_dir.iterdir()}}
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()  # what the Authorization header carries
    assert {name for name, text in texts.items() if PASSWORD in text or basic in text} == set()
    assert "***" in texts["journal"] and 'up{job=\\"***\\"}' in texts["journal"]
