"""The bundled Docker drills, run by the real CLI against a fresh compose stack.

A stack of their own: after the raw-API tests of test_compose_stack.py (their own receiver
on the sink port, crashes and kills), a drill's firing notification was once not delivered
within 30 s; a fresh Alertmanager per module keeps the drills independent.
"""

from __future__ import annotations

import pytest

from drivers.model import probes as model_probes
from mlchaos.containers import stack
from tests.support.paths import EXPERIMENTS
from tests.support.polling import wait_until

pytestmark = pytest.mark.docker  # integration: from the folder (tests/conftest.py)


DOCKER_DRILLS = ["docker-kill-replica.yaml", "docker-pause-replica.yaml", "docker-telemetry-outage.yaml",
                 "docker-expired-certificate.yaml"]


@pytest.mark.parametrize("drill", DOCKER_DRILLS)
def test_the_docker_drills_plan_cleanly_and_touch_nothing(compose_stack: stack.StackEndpoints, drill: str,
                                                          subprocess_env: dict[str, str]) -> None:
    """`mlchaos plan` resolves each Docker drill's container and runs the probes' dry runs: exit 0, no change."""
    import subprocess
    import sys

    import docker

    env = subprocess_env
    client = docker.from_env()
    before = {c.name: (c.status, c.attrs["State"]["StartedAt"]) for c in client.containers.list(all=True)}
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "plan", str(EXPERIMENTS / drill)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "would hit container" in proc.stdout and "environment: docker:" in proc.stdout
    after = {c.name: (c.status, c.attrs["State"]["StartedAt"]) for c in client.containers.list(all=True)}
    assert after == before


@pytest.mark.parametrize("drill", DOCKER_DRILLS)
def test_the_docker_drills_hold_through_the_cli(compose_stack: stack.StackEndpoints, tmp_path, drill: str,
                                                subprocess_env: dict[str, str]) -> None:
    import json
    import subprocess
    import sys

    journal = tmp_path / "journal.json"
    env = subprocess_env
    experiment = EXPERIMENTS / drill
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal", str(journal)],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(journal.read_text())
    (change,) = data["mlchaos"]["changes"]
    assert change["driver"] == "docker" and len(change["targets"]) == 1
    assert all(b["met"] for b in data["mlchaos"]["budgets"])
    wait_until(lambda: model_probes.all_replicas_healthy(urls=list(compose_stack.model_urls.values())), 20,
               "every replica ready again")
