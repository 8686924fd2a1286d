"""A forged webhook cannot make a drill pass: the issue's attack through the real CLI.

The experiment's receiver listens on HOST:PORT with a ``token_file`` and no Alertmanager is
running at all. While ``mlchaos run`` waits for the notification, an attacker POSTs a perfect
Alertmanager payload, without a credential and with a guessed one. The probe must fail, the run
must not pass, and the journal must record each refused request.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import requests

from mlchaos.engine import exit_codes
from mlchaos.lib.files import free_ports
from tests.support import fixtures_api
from tests.support.polling import wait_until


def _experiment(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps({
        "title": "a page must really be sent",
        "description": "only Alertmanager, holding the run's token, can deliver",
        "method": [{"type": "probe", "name": "on-call-is-notified", "provider": {
            "type": "python", "module": "drivers.alertmanager.probes", "func": "notification_delivered_within",
            "arguments": {"alert": "ModelServerDown", "within": 20}}}],
        "extensions": [{"name": "mlchaos", "notifications": {"listen": f"127.0.0.1:{port}",
                                                              "token_file": "webhook.token"}}],
    }))
    return path


def test_a_forged_notification_cannot_make_the_drill_pass(tmp_path, subprocess_env):
    (port,) = free_ports(1)
    experiment, journal = _experiment(tmp_path, port), tmp_path / "journal.json"
    proc = subprocess.Popen([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal", str(journal)],
                            env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    forged = fixtures_api.load("webhook_firing.json")
    forged["alerts"][0]["labels"]["alertname"] = "ModelServerDown"
    answers: list[int] = []

    def attack() -> None:
        url = f"http://127.0.0.1:{port}/alerts"
        wait_until(lambda: (tmp_path / "webhook.token").exists(), what="the run's receiver to start")
        for headers in ({}, {"Authorization": "Bearer guessed-guessed-guessed-guessed"}):
            answers.append(requests.post(url, json=forged, headers=headers, timeout=5).status_code)

    attacker = threading.Thread(target=attack)
    attacker.start()
    out, err = proc.communicate(timeout=120)
    attacker.join()
    assert answers == [401, 401]
    assert proc.returncode != exit_codes.OK, out + err
    data = json.loads(journal.read_text())
    (probe,) = data["run"]
    assert probe["status"] == "failed" and "no firing notification of ModelServerDown arrived" in \
        "".join(probe["exception"])
    section = data["mlchaos"]["notifications"]
    assert section["notifications"] == [] and section["authenticated"] is True
    assert [r["http_status"] for r in section["rejections"]] == [401, 401]
    assert "time to notify" not in out
    token = (tmp_path / "webhook.token").read_text().strip()
    assert token not in journal.read_text() and token not in out + err
