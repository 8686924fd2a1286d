"""`mlchaos run --pushgateway endpoint:NAME`: the run's metrics pushed to a real Pushgateway behind
``--web.config.file`` (TLS and basic auth) through the experiment's declared endpoint."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from mlchaos.lib.files import free_ports
from mlchaos.sandbox.pipeline import pushgateway_binary
from tests.support import auth_monitoring as am
from tests.support.builders import probe
from tests.support.components import require_component

pytestmark = pytest.mark.usefixtures("isolated_state")
USER, PASSWORD = "pusher", "pushgateway-pw-0d6e31"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[dict]:
    binary = pushgateway_binary()
    require_component("Pushgateway", binary is not None,
                      "apt-get install prometheus-pushgateway (scripts/install-system-packages.sh)")
    pki = am.make_pki(tmp_path / "pki")
    web = am.web_config(tmp_path / "web.yml", users={USER: PASSWORD}, pki=pki)
    (port,) = free_ports(1)
    log = tmp_path / "pushgateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(binary), f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={web}"],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    auth = {"verify": str(pki.ca), "auth": (USER, PASSWORD)}
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/-/ready", timeout=2, **auth).ok:
                break
        except requests.RequestException:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    yield {"url": url, "ca": pki.ca, "auth": auth}
    proc.terminate()
    proc.wait(10)


def test_metrics_are_pushed_through_the_declared_endpoint(gateway: dict, tmp_path: Path, subprocess_env: dict,
                                                          write_experiment) -> None:
    experiment = write_experiment({
        "title": "pushed", "description": "d", "method": [probe("steady", "echo", True, value=True)],
        "extensions": [{"name": "mlchaos", "endpoints": {"pushgateway": {
            "url": gateway["url"], "ca_file": str(gateway["ca"]),
            "basic_auth": {"username": USER, "password_env": "MLCHAOS_TEST_PUSH_PASSWORD"}}}}],
    }, "pushed-drill.yaml")
    env = subprocess_env | {"MLCHAOS_TEST_PUSH_PASSWORD": PASSWORD}
    journal = tmp_path / "j.json"

    def run(target: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal", str(journal),
                               "--pushgateway", target], env=env, capture_output=True, text=True, timeout=120)

    refused = run(gateway["url"])  # the URL alone: no CA, no credentials
    assert refused.returncode == 0, "the verdict stands"
    assert "cannot read the Pushgateway's metrics" in refused.stdout + refused.stderr
    pushed = run("endpoint:pushgateway")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert f"  metrics: pushed to {gateway['url']}" in pushed.stdout
    text = requests.get(f"{gateway['url']}/metrics", timeout=5, **gateway["auth"]).text
    runs = {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "mlchaos_experiment_runs_total"}
    assert runs[(("experiment", "pushed-drill"), ("instance", ""), ("job", "mlchaos"), ("verdict", "held"))] == 1
    for output in (refused.stdout, refused.stderr, pushed.stdout, pushed.stderr, journal.read_text()):
        assert PASSWORD not in output
