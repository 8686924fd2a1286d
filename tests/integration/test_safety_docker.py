"""Safety against real containers: bounds, scopes and the Docker environment allow-list refuse a run
before any container is touched; the guardian unpauses a container when the runner is SIGKILLed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlchaos.engine import exit_codes
from tests.support.components import require_docker
from tests.support.environment import child_env
from tests.support.polling import wait_until

pytestmark = pytest.mark.docker  # integration: from the folder (tests/conftest.py)

IMAGE = os.environ.get("MLCHAOS_BASE_IMAGE", "mlchaos/base:bookworm")
RUN = uuid.uuid4().hex[:8]
LABELS = {"mlchaos.target": "model", "mlchaos.test.run": RUN}
PROJECT = f"safety{RUN}"


@pytest.fixture(scope="module")
def containers() -> Iterator[list[Any]]:
    require_docker()
    import docker

    cli = docker.from_env(timeout=30)
    if not cli.images.list(name=IMAGE):
        pytest.fail(f"image {IMAGE} is missing: run `make docker-images`")
    created = []
    try:
        for index in range(3):
            created.append(cli.containers.run(
                IMAGE, ["sleep", "infinity"], detach=True, name=f"mlcs-{RUN}-{index}",
                labels=LABELS | {"com.docker.compose.project": PROJECT}))
        yield created
    finally:
        for container in created:
            container.remove(force=True)


@pytest.fixture
def states(containers) -> Any:
    def read() -> dict[str, str]:
        for container in containers:
            container.reload()
        return {c.name: c.status for c in containers}

    for container in containers:  # heal what a test left
        container.reload()
        if container.status == "paused":
            container.unpause()
        elif container.status != "running":
            container.start()
    wait_until(lambda: set(read().values()) == {"running"}, what="every container running")
    return read


def _env(tmp_path: Path) -> dict[str, str]:
    env = child_env(tmp_path / "state")
    env.pop("MLCHAOS_ALLOWED_ENVIRONMENTS", None)
    return env


def _action(label: str, func: str, **arguments) -> dict:
    return {"type": "action", "name": label,
            "provider": {"type": "python", "module": "drivers.docker.actions", "func": func, "arguments": arguments}}


def _experiment(tmp_path: Path, method: list, rollbacks: list, **settings) -> Path:
    data = {"title": "docker safety", "description": "d", "method": method, "rollbacks": rollbacks}
    if settings:
        data["extensions"] = [{"name": "mlchaos", **settings}]
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _run(tmp_path: Path, experiment: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal",
                           str(tmp_path / "journal.json")], env=env or _env(tmp_path), capture_output=True,
                          text=True, timeout=180)


KILL_TWO = _action("kill-two", "kill_containers", labels=LABELS, count=2)
START = _action("start-them", "start_containers", labels=LABELS)


@pytest.mark.parametrize(("settings", "host_allow", "reason"), [
    ({"blast_radius": {"max_fraction": 0.34}}, None, "2 of 3 container(s) (67%), more than max_fraction 0.34"),
    ({"blast_radius": {"max_targets": 1}}, None, "2 target(s) in this run, more than max_targets 1"),
    ({"blast_radius": {"scopes": [{"project": "production"}]}}, None, "outside every allowed scope"),
    ({"allowed_environments": ["docker:tcp://staging-docker:2376"]}, None,
     "environment 'docker:unix:///var/run/docker.sock' is not allowed by the experiment's allowed_environments"),
    ({}, "local:*", "is not allowed by MLCHAOS_ALLOWED_ENVIRONMENTS"),
])
def test_a_run_over_its_bounds_touches_no_container(tmp_path, states, settings, host_allow, reason):
    env = _env(tmp_path)
    if host_allow:
        env["MLCHAOS_ALLOWED_ENVIRONMENTS"] = host_allow
    result = _run(tmp_path, _experiment(tmp_path, [KILL_TWO], [START], **settings), env)
    assert result.returncode == exit_codes.REFUSED, result.stdout + result.stderr
    assert reason in result.stdout + result.stderr
    assert set(states().values()) == {"running"}


def test_a_run_within_its_scopes_goes_ahead(tmp_path, states):
    kill_one = _action("kill-one", "kill_containers", labels=LABELS, count=1)
    experiment = _experiment(tmp_path, [kill_one], [START], allowed_environments=["docker:unix://*"],
                             blast_radius={"max_targets": 1, "max_fraction": 0.34,
                                           "scopes": [{"kind": "container", "project": PROJECT,
                                                       "labels": {"mlchaos.target": "model"}}]})
    result = _run(tmp_path, experiment)
    assert result.returncode == exit_codes.OK, result.stdout + result.stderr
    assert set(states().values()) == {"running"}


def test_sigkill_mid_pause_the_guardian_unpauses_the_container(tmp_path, states):
    pause = _action("pause-one", "pause_containers", labels=LABELS, count=1, ttl=None)
    hold = {"type": "probe", "name": "hold", "pauses": {"after": 120},
            "provider": {"type": "python", "module": "drivers.docker.probes", "func": "running_count",
                         "arguments": {"labels": LABELS}}}
    experiment = _experiment(tmp_path, [pause, hold], [], heartbeat_timeout=3)
    proc = subprocess.Popen([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal",
                             str(tmp_path / "journal.json")], env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: "paused" in states().values(), timeout=60, what="a paused container")
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    killed = time.monotonic()
    wait_until(lambda: set(states().values()) == {"running"}, timeout=20, what="the guardian to unpause it")
    print(f"docker pause undone {time.monotonic() - killed:.2f}s after the runner's SIGKILL")


PAUSE_ONE = _action("pause-one", "pause_containers", labels=LABELS, count=1, ttl=None)
UNPAUSE = _action("unpause", "unpause_containers", labels=LABELS)


def _hold(seconds: float = 120) -> dict:
    return {"type": "probe", "name": "hold", "pauses": {"after": seconds},
            "provider": {"type": "python", "module": "drivers.docker.probes", "func": "running_count",
                         "arguments": {"labels": LABELS}}}


def test_a_guard_on_real_containers_aborts_and_rolls_back(tmp_path, states):
    guard = {"type": "probe", "name": "three-running", "tolerance": 3,
             "provider": {"type": "python", "module": "drivers.docker.probes", "func": "running_count",
                          "arguments": {"labels": LABELS}}}
    experiment = _experiment(tmp_path, [PAUSE_ONE, _hold(60)], [UNPAUSE], guards=[guard], guard_interval=0.5)
    started = time.monotonic()
    result = _run(tmp_path, experiment)
    assert result.returncode == exit_codes.ABORTED, result.stdout + result.stderr
    assert time.monotonic() - started < 40 and "guard 'three-running' tripped" in result.stdout
    assert set(states().values()) == {"running"}
    (guard_state,) = json.loads((tmp_path / "journal.json").read_text())["mlchaos"]["guards"]
    assert guard_state["last_value"] == 2


def test_recover_unpauses_what_a_dead_run_left_and_is_idempotent(tmp_path, states):
    journal = tmp_path / "journal.json"
    proc = subprocess.Popen([sys.executable, "-m", "mlchaos", "run",
                             str(_experiment(tmp_path, [PAUSE_ONE, _hold()], [UNPAUSE])),
                             "--journal", str(journal)], env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: "paused" in states().values(), timeout=60, what="a paused container")
        wait_until(lambda: json.loads(journal.read_text())["mlchaos"].get("guardian_pid"), what="the guardian")
        os.kill(json.loads(journal.read_text())["mlchaos"]["guardian_pid"], 9)  # runner and guardian die
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert "paused" in states().values()
    for _ in range(2):
        result = subprocess.run([sys.executable, "-m", "mlchaos", "recover", str(journal)], env=_env(tmp_path),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == exit_codes.OK, result.stdout + result.stderr
        assert "undone  pause" in result.stdout
        assert set(states().values()) == {"running"}


def test_mlchaos_stop_aborts_a_docker_run_mid_fault(tmp_path, states):
    proc = subprocess.Popen([sys.executable, "-m", "mlchaos", "run",
                             str(_experiment(tmp_path, [PAUSE_ONE, _hold()], [UNPAUSE])),
                             "--journal", str(tmp_path / "journal.json")], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: "paused" in states().values(), timeout=60, what="a paused container")
        stop = subprocess.run([sys.executable, "-m", "mlchaos", "stop", "--wait", "60"], env=_env(tmp_path),
                              capture_output=True, text=True, timeout=90)
        assert stop.returncode == exit_codes.OK, stop.stdout + stop.stderr
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == exit_codes.ABORTED, out + err
        assert set(states().values()) == {"running"}
    finally:
        if proc.poll() is None:
            proc.kill()
