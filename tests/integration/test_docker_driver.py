"""drivers.docker against the real Docker engine: selection, kill/start, pause, hold down, port block,
netem refusal and certificate swap on throw-away containers made from mlchaos/base:bookworm; dry runs,
idempotent undos and the pause's time to live."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from drivers.docker import actions, probes
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.lib import certificates
from mlchaos.safety.changes import ChangeRecord, reset_sink, set_sink
from mlchaos.safety.watchdog import pending
from tests.support.components import require_docker
from tests.support.paths import ROOT
from tests.support.polling import poll, wait_until

pytestmark = pytest.mark.docker  # integration: from the folder (tests/conftest.py)

IMAGE = os.environ.get("MLCHAOS_BASE_IMAGE", "mlchaos/base:bookworm")
# serves HTTP on 8000, counts SIGHUPs in /tmp/hups, has a certificate and key under /certs
SERVER = r"""
import http.server, os, signal
os.makedirs('/certs', exist_ok=True)
open('/certs/cert.pem', 'w').write('ORIGINAL CERT\n')
open('/certs/key.pem', 'w').write('ORIGINAL KEY\n'); os.chmod('/certs/key.pem', 0o600)
signal.signal(signal.SIGHUP, lambda *_: open('/tmp/hups', 'a').write('x'))
http.server.ThreadingHTTPServer(('', 8000), http.server.SimpleHTTPRequestHandler).serve_forever()
"""
RUN = uuid.uuid4().hex[:8]
RUN_LABEL = "mlchaos.test.run"
MODEL = {"mlchaos.target": "model", RUN_LABEL: RUN}


def _spec(name: str, labels: dict[str, str], restart: str = "no") -> dict[str, Any]:
    return {"name": f"mlct-{RUN}-{name}", "labels": labels, "restart_policy": {"Name": restart}}


SPECS = [
    _spec("model-0", MODEL | {"com.docker.compose.project": f"pa{RUN}", "mlchaos.service": "model",
                              "com.docker.compose.service": "model-0"}),
    _spec("model-1", MODEL | {"com.docker.compose.project": f"pa{RUN}"}),
    _spec("model-2", MODEL | {"com.docker.compose.project": f"pb{RUN}", "com.docker.compose.service": "model-2"}),
    _spec("model-3", MODEL | {"com.docker.compose.project": f"pb{RUN}"}),
    _spec("skipped", MODEL | {"mlchaos.skip": "true"}),
    _spec("plain", {RUN_LABEL: RUN}),
    _spec("always", {RUN_LABEL: RUN, "mlchaos.test.role": "always"}, restart="always"),
]


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    require_docker()
    import docker

    cli = docker.from_env(timeout=30)
    if not cli.images.list(name=IMAGE):
        pytest.fail(f"image {IMAGE} is missing: build it offline (see shared/notes/environment.md)")
    created: list[Any] = []

    def make(spec: dict[str, Any]) -> Any:
        container = cli.containers.run(IMAGE, ["python3", "-c", SERVER], detach=True,
                                       ports={"8000/tcp": ("127.0.0.1", None)}, **spec)
        created.append(container)
        return container

    try:
        with ThreadPoolExecutor(len(SPECS)) as pool:
            list(pool.map(make, SPECS))
        yield cli
    finally:
        for container in created:
            container.remove(force=True)


@pytest.fixture
def fleet(engine: Any) -> dict[str, Any]:
    """Every test container running and answering HTTP; {short name: container}."""
    containers = {c.name.split("-", 2)[2]: c for c in engine.containers.list(all=True, filters={"label": RUN_LABEL})}
    actions.start_containers([c.id for c in containers.values()])
    for container in containers.values():
        wait_until(lambda c=container: _answers(_instance(c)), 15, f"{container.name} to answer")
    return containers


def _instance(container: Any) -> str:
    container.reload()
    binding = container.attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]
    return f"127.0.0.1:{binding['HostPort']}"


def _answers(instance: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{instance}/", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def _names(record: dict[str, Any]) -> list[str]:
    return [t["name"].split("-", 2)[2] for t in record["targets"]]


def _file(container: Any, path: str) -> tuple[bytes, int]:
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        return tar.extractfile(member).read(), member.mode & 0o777


def _hups(container: Any) -> int:
    result = container.exec_run(["sh", "-c", "cat /tmp/hups 2>/dev/null || true"])
    return len(result.output.strip())


# -- selection ----------------------------------------------------------------------------------


def test_selection_by_labels_pattern_project_and_modes(fleet: dict[str, Any]) -> None:
    everyone = actions.kill_containers(labels=MODEL, all=True, dry_run=True)
    assert sorted(_names(everyone)) == ["model-0", "model-1", "model-2", "model-3"]  # skipped one left out
    assert everyone["environment"] == "docker:" + (os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    one = actions.kill_containers(labels=MODEL, count=1, dry_run=True)
    assert one["population"] == [f"mlct-{RUN}-model-{i}" for i in range(4)]  # what the one was chosen from
    assert actions.kill_containers(labels=MODEL, project=f"pb{RUN}", dry_run=True)["population"] == [
        f"mlct-{RUN}-model-2", f"mlct-{RUN}-model-3"]
    assert everyone["dry_run"] and all(c.status == "running" for c in fleet.values())
    listed = actions.kill_containers(labels=[f"{RUN_LABEL}={RUN}"], all=True, dry_run=True)
    assert sorted(_names(listed)) == ["always", "model-0", "model-1", "model-2", "model-3", "plain"]
    by_pattern = actions.kill_containers(labels=MODEL, name_pattern=r"model-[12]$", all=True, dry_run=True)
    assert sorted(_names(by_pattern)) == ["model-1", "model-2"]
    only_pattern = actions.kill_containers(name_pattern=f"^mlct-{RUN}-pl", all=True, dry_run=True)
    assert _names(only_pattern) == ["plain"]
    by_project = actions.kill_containers(labels=MODEL, project=f"pb{RUN}", all=True, dry_run=True)
    assert sorted(_names(by_project)) == ["model-2", "model-3"]
    assert len(actions.kill_containers(labels=MODEL, percentage=50, dry_run=True)["targets"]) == 2
    assert len(actions.kill_containers(labels=MODEL, percentage=20, at_least_one=True, dry_run=True)["targets"]) == 1
    with pytest.raises(TargetNotFound, match="rounds down to 0"):
        actions.kill_containers(labels=MODEL, percentage=20, dry_run=True)
    with pytest.raises(DriverError, match="count=5 but only 4"):
        actions.kill_containers(labels=MODEL, count=5, dry_run=True)


def test_seed_replays_the_same_choice_and_is_recorded(fleet: dict[str, Any]) -> None:
    first = actions.kill_containers(labels=MODEL, count=2, seed=1234, dry_run=True)
    again = actions.kill_containers(labels=MODEL, count=2, seed=1234, dry_run=True)
    assert first["targets"] == again["targets"] and first["parameters"]["seed"] == 1234
    picks = {tuple(_names(actions.kill_containers(labels=MODEL, count=2, seed=s, dry_run=True))) for s in range(12)}
    assert len(picks) > 1  # the seed does change the choice
    fresh = actions.kill_containers(labels=MODEL, dry_run=True)
    assert isinstance(fresh["parameters"]["seed"], int)
    replay = actions.kill_containers(labels=MODEL, seed=fresh["parameters"]["seed"], dry_run=True)
    assert replay["targets"] == fresh["targets"]


def test_bad_selectors_are_errors_and_skip_label_is_honoured(fleet: dict[str, Any]) -> None:
    with pytest.raises(DriverError, match="empty selector"):
        actions.kill_containers(all=True)
    with pytest.raises(DriverError, match="not a valid regular expression"):
        actions.kill_containers(name_pattern="model-[", all=True)
    with pytest.raises(TargetNotFound):
        actions.kill_containers(labels={RUN_LABEL: "no-such-run"})
    with pytest.raises(TargetNotFound):  # named exactly, still never targeted
        actions.kill_containers(name_pattern=f"^mlct-{RUN}-skipped$", all=True)
    with pytest.raises(TargetNotFound):
        probes.running_count(name_pattern=f"^mlct-{RUN}-skipped$")
    assert fleet["skipped"].status == "running"


# -- lifecycle faults ---------------------------------------------------------------------------


def test_kill_is_announced_before_acting_and_start_rolls_it_back(fleet: dict[str, Any]) -> None:
    seen: list[tuple[ChangeRecord, list[str]]] = []

    def sink(record: ChangeRecord) -> None:  # the state of the targets at announcement time
        states = [fleet[t.name.split("-", 2)[2]] for t in record.targets]
        seen.append((record, [c.reload() or c.status for c in states]))

    token = set_sink(sink)
    try:
        record = actions.kill_containers(labels=MODEL, count=2, seed=7)
    finally:
        reset_sink(token)
    assert len(seen) == 1 and seen[0][1] == ["running", "running"]
    assert record["undo"] == {"func": "drivers.docker.actions.start_containers",
                              "arguments": {"ids": [t["details"]["id"] for t in record["targets"]]}}
    target = record["targets"][0]["details"]
    assert target["instance"].startswith("127.0.0.1:") and target["ports"]["8000/tcp"] == [target["instance"]]
    assert target["image"] == IMAGE and target["pid"] > 0 and target["labels"]["mlchaos.target"] == "model"
    killed = _names(record)
    assert all(fleet[n].reload() or fleet[n].status == "exited" for n in killed)
    assert not _answers(target["instance"])
    assert probes.running_count(labels=MODEL) == 2 and not probes.containers_running(labels=MODEL)
    result = actions.start_containers(**record["undo"]["arguments"])
    assert set(result["containers"].values()) == {"started"}
    assert probes.running_count(labels=MODEL) == 4 and probes.containers_healthy(labels=MODEL)
    assert actions.start_containers(**record["undo"]["arguments"])["containers"] == {
        i: "already running" for i in record["undo"]["arguments"]["ids"]}  # idempotent
    assert all(_answers(_instance(fleet[n])) or poll(lambda n=n: _answers(_instance(fleet[n])), 10) for n in killed)


def test_pause_makes_the_port_hang_and_unpause_restores_it(fleet: dict[str, Any]) -> None:
    record = actions.pause_containers(labels=MODEL, name_pattern="model-0$")
    instance = record["targets"][0]["details"]["instance"]
    watchdog = record["undo"]["arguments"]["watchdog_pid"]  # the default ttl (600 s)
    assert record["parameters"]["ttl"] == 600
    try:
        started = time.monotonic()
        assert not _answers(instance, timeout=1.0)
        assert time.monotonic() - started >= 0.9  # it hung, it did not refuse
        assert probes.running_count(labels=MODEL) == 3
    finally:
        result = actions.unpause_containers(**record["undo"]["arguments"])
    assert list(result["containers"].values()) == ["unpaused"] and result["already"] == []
    assert poll(lambda: _proc_state(watchdog) == b"zombie", 5), "the rollback stops the watchdog"
    assert _answers(instance)
    for _ in range(2):
        again = actions.unpause_containers(**record["undo"]["arguments"])
        assert list(again["containers"].values()) == ["not paused (running)"]
        assert again["already"] == record["undo"]["arguments"]["ids"]


def test_a_restart_policy_brings_a_killed_container_back_but_hold_down_keeps_it_down(fleet: dict[str, Any]) -> None:
    always = fleet["always"]
    selector = {"labels": {"mlchaos.test.role": "always", RUN_LABEL: RUN}}
    before = probes.restart_count(always.id)
    assert actions.kill_containers(**selector)["parameters"]["via"] == "engine"
    assert probes.running_count(**selector) == 0  # docker kill is a manual stop: the policy does not act
    actions.start_containers([always.id])
    before = probes.restart_count(always.id)
    actions.kill_containers(**selector, via="process")  # a crash: the policy brings it back
    wait_until(lambda: probes.restart_count(always.id) > before and probes.running_count(**selector) == 1, 10,
               "the restart policy to bring it back")
    outcome: dict[str, Any] = {}
    holder = threading.Thread(target=lambda: outcome.update(actions.hold_down(**selector, seconds=3)))
    started = time.monotonic()
    holder.start()
    wait_until(lambda: probes.running_count(**selector) == 0, 5, "the container to go down")
    down_checks = 0
    while time.monotonic() - started < 2.5:
        assert probes.running_count(**selector) == 0, "restarted during the hold"
        down_checks += 1
        time.sleep(0.25)
    holder.join(10)
    assert time.monotonic() - started >= 3 and down_checks >= 5
    assert outcome["undo"]["arguments"]["restart_policies"][always.id]["Name"] == "always"
    watchdog = outcome["undo"]["arguments"]["watchdog_pid"]
    assert poll(lambda: _proc_state(watchdog) == b"zombie", 5)  # stopped by the release
    always.reload()
    assert always.status == "running" and always.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    again = actions.release_hold(**outcome["undo"]["arguments"])  # idempotent
    assert list(again["containers"].values()) == ["already running"]


# -- network faults -----------------------------------------------------------------------------


def test_block_port_stops_the_published_port_and_unblock_restores_it(fleet: dict[str, Any]) -> None:
    record = actions.block_port(labels=MODEL, name_pattern="model-1$", port=8000, ttl=60)
    instance = record["targets"][0]["details"]["instance"]
    watchdog = record["undo"]["arguments"]["watchdog_pid"]
    try:
        assert not _answers(instance, timeout=1.0)
        assert _answers(_instance(fleet["model-2"]))  # only the target
    finally:
        result = actions.unblock_port(**record["undo"]["arguments"])
    assert list(result["containers"].values()) == ["removed"]
    assert _answers(instance)
    assert poll(lambda: not Path(f"/proc/{watchdog}").exists() or b"zombie" in _proc_state(watchdog), 5)
    assert list(actions.unblock_port(**record["undo"]["arguments"])["containers"].values()) == ["no such rule"]


def _proc_state(pid: int) -> bytes:
    try:
        return b"zombie" if b"\nState:\tZ" in Path(f"/proc/{pid}/status").read_bytes() else b"alive"
    except FileNotFoundError:
        return b"zombie"


def test_netem_latency_is_refused_before_any_change_on_a_kernel_without_netem(fleet: dict[str, Any]) -> None:
    from drivers.netem.commands import netem_support

    container = fleet["model-3"]
    pid = container.attrs["State"]["Pid"]
    show = ["nsenter", "-t", str(pid), "-n", "tc", "qdisc", "show", "dev", "eth0"]
    before = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    announced: list[ChangeRecord] = []
    token = set_sink(announced.append)
    available, reason = netem_support()
    try:
        if available:  # a kernel with netem: round trip instead
            record = actions.netem_latency(labels=MODEL, name_pattern="model-3$", delay_ms=100, ttl=60)
            assert "netem" in subprocess.run(show, capture_output=True, text=True, check=True).stdout
            actions.remove_netem(**record["undo"]["arguments"])
        else:
            with pytest.raises(DriverError, match="no netem qdisc") as failure:
                actions.netem_latency(labels=MODEL, name_pattern="model-3$", delay_ms=100)
            assert str(failure.value) == reason and announced == []
    finally:
        reset_sink(token)
    assert subprocess.run(show, capture_output=True, text=True, check=True).stdout == before
    container.reload()
    assert container.status == "running" and container.attrs["State"]["Pid"] == pid


# -- certificate swap ---------------------------------------------------------------------------


def test_certificate_swap_round_trip(fleet: dict[str, Any], tmp_path: Path) -> None:
    from cryptography import x509

    ca = certificates.load_or_create_ca(tmp_path / "ca")
    container = fleet["model-2"]
    hups = _hups(container)
    record = actions.install_certificate(
        labels=MODEL, name_pattern="model-2$", kind="expired", cert_path_in_container="/certs/cert.pem",
        key_path_in_container="/certs/key.pem", ca_dir=str(tmp_path / "ca"), backup_dir=str(tmp_path / "backup"))
    cert, _ = _file(container, "/certs/cert.pem")
    key, key_mode = _file(container, "/certs/key.pem")
    parsed = x509.load_pem_x509_certificate(cert)
    assert parsed.not_valid_after_utc.timestamp() < time.time() and b"PRIVATE KEY" in key and key_mode == 0o600
    # a bad kind comes from a throw-away CA unless the drill opts in (signer: trusted_ca)
    assert record["parameters"]["signer"] == "throwaway" and not ca.signed(parsed)
    assert poll(lambda: _hups(container) == hups + 1, 5)
    backup = tmp_path / "backup" / container.id[:12]
    assert (backup / "cert.pem").read_bytes() == b"ORIGINAL CERT\n"
    assert json.loads((backup / "manifest.json").read_text())["key"]["mode"] == 0o600
    assert record["undo"]["func"] == "drivers.docker.actions.restore_container_certificate"
    result = actions.restore_container_certificate(**record["undo"]["arguments"])
    assert list(result["containers"].values()) == ["restored and signalled"]
    assert _file(container, "/certs/cert.pem") == (b"ORIGINAL CERT\n", 0o644)
    assert _file(container, "/certs/key.pem") == (b"ORIGINAL KEY\n", 0o600)
    assert poll(lambda: _hups(container) == hups + 2, 5)
    actions.restore_container_certificate(**record["undo"]["arguments"])  # idempotent
    assert _file(container, "/certs/cert.pem")[0] == b"ORIGINAL CERT\n"


# -- probes and rollback failures ---------------------------------------------------------------


def test_probes_and_rollbacks_report_every_failure(fleet: dict[str, Any]) -> None:
    assert probes.health_status(fleet["model-0"].id) == "none"
    assert probes.containers_healthy(labels=MODEL) and probes.containers_running(labels=MODEL)
    with pytest.raises(TargetNotFound):
        probes.restart_count("mlct-no-such-container")
    ids = ["0" * 64, fleet["model-0"].id, "f" * 64]
    with pytest.raises(DriverError, match="start failed for 2 of 3") as failure:
        actions.start_containers(ids)
    assert "000000000000" in str(failure.value) and "ffffffffffff" in str(failure.value)


def test_rollbacks_by_selector_for_experiments_that_cannot_know_the_ids(
        fleet: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = actions.kill_containers(labels=MODEL, percentage=50)
    killed = sorted(t["details"]["id"] for t in record["targets"])
    result = actions.start_containers(labels=MODEL)
    assert sorted(result["containers"]) == killed and set(result["containers"].values()) == {"started"}
    assert actions.start_containers(labels=MODEL) == {"containers": {}, "already": []}
    with pytest.raises(DriverError, match="either ids or a selector"):
        actions.start_containers(ids=killed, labels=MODEL)

    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(tmp_path / "state"))
    certificates.load_or_create_ca(tmp_path / "ca")
    container = fleet["model-1"]
    record = actions.install_certificate(
        "/certs/cert.pem", "/certs/key.pem", labels=MODEL, name_pattern="model-1$", kind="wrong_hostname",
        ca_dir=str(tmp_path / "ca"))
    assert record["parameters"]["backup_dir"].startswith(str(tmp_path / "state"))
    assert _file(container, "/certs/cert.pem")[0] != b"ORIGINAL CERT\n"
    result = actions.restore_container_certificate(labels=MODEL)
    assert result["containers"] == {container.id: "restored and signalled"}
    assert _file(container, "/certs/cert.pem")[0] == b"ORIGINAL CERT\n"
    assert actions.restore_container_certificate(labels=MODEL)["containers"] == {}  # nothing pending


EXPERIMENT = """
title: kill one labelled container, the rollback starts it
description: drivers.docker through the runner
configuration: {run: "none"}
steady-state-hypothesis:
  title: at least three of the four model containers run
  probes:
    - type: probe
      name: running
      tolerance: {type: range, range: [3, 4]}
      provider: {type: python, module: drivers.docker.probes, func: running_count,
                 arguments: {labels: ["mlchaos.target=model", "mlchaos.test.run=${run}"]}}
method:
  - type: action
    name: kill-one
    provider: {type: python, module: drivers.docker.actions, func: kill_containers,
               arguments: {labels: ["mlchaos.target=model", "mlchaos.test.run=${run}"], count: 1, seed: 11}}
rollbacks:
  - type: action
    name: start-them
    provider: {type: python, module: drivers.docker.actions, func: start_containers,
               arguments: {labels: ["mlchaos.target=model", "mlchaos.test.run=${run}"]}}
"""


def test_a_run_journals_the_record_and_rolls_back(fleet: dict[str, Any], tmp_path: Path) -> None:
    import sys

    experiment = tmp_path / "docker-kill.yaml"
    experiment.write_text(EXPERIMENT)
    journal = tmp_path / "journal.json"
    done = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal", str(journal),
                           "--var", f"run={RUN}", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    text = journal.read_text()
    assert '"mlchaos_change": 1' in text and '"seed": 11' in text and "drivers.docker.actions.start_containers" in text
    assert probes.running_count(labels=MODEL) == 4


# -- target details, dry runs, idempotent undos, time to live ------------------------------------


def test_targets_carry_every_label_the_project_and_the_service(fleet: dict[str, Any]) -> None:
    record = actions.kill_containers(labels=MODEL, all=True, dry_run=True)
    details = {t["name"].split("-", 2)[2]: t["details"] for t in record["targets"]}
    for name, detail in details.items():
        assert detail["labels"] == fleet[name].labels  # all of them, for blast-radius scopes
    assert details["model-0"]["project"] == f"pa{RUN}" and details["model-2"]["project"] == f"pb{RUN}"
    assert details["model-0"]["service"] == "model"  # mlchaos.service first
    assert details["model-2"]["service"] == "model-2"  # else the compose service
    assert "service" not in details["model-1"]
    plain = actions.kill_containers(name_pattern=f"^mlct-{RUN}-plain$", dry_run=True)["targets"][0]["details"]
    assert "project" not in plain and "service" not in plain


def _snapshot(fleet: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    found = {}
    for name, container in fleet.items():
        container.reload()
        state = container.attrs["State"]
        found[name] = (container.status, state["Pid"], container.attrs["RestartCount"],
                       container.attrs["HostConfig"]["RestartPolicy"]["Name"])
    return found


def test_dry_runs_resolve_the_targets_and_change_nothing(fleet: dict[str, Any], tmp_path: Path) -> None:
    certificates.load_or_create_ca(tmp_path / "ca")
    before = _snapshot(fleet)
    watchdogs = {pid for func in ("unpause_containers", "release_hold", "unblock_port")
                 for pid, _ in pending(f"drivers.docker.actions.{func}")}
    selector = {"labels": MODEL, "name_pattern": "model-[01]$", "all": True, "seed": 5}
    announced: list[ChangeRecord] = []
    token = set_sink(announced.append)
    try:
        records = {
            "kill": actions.kill_containers(**selector, dry_run=True),
            "stop": actions.stop_containers(**selector, dry_run=True),
            "pause": actions.pause_containers(**selector, ttl=2, dry_run=True),
            "restart": actions.restart_containers(**selector, dry_run=True),
            "hold-down": actions.hold_down(30, **selector, dry_run=True),
            "block-port": actions.block_port(8000, **selector, ttl=2, dry_run=True),
            "install-certificate": actions.install_certificate(
                "/certs/cert.pem", "/certs/key.pem", **selector, ca_dir=str(tmp_path / "ca"),
                backup_dir=str(tmp_path / "backup"), dry_run=True),
        }
    finally:
        reset_sink(token)
    assert [(r.action, r.dry_run) for r in announced] == [(a, True) for a in records]
    for action, record in records.items():
        assert record["dry_run"] is True and sorted(_names(record)) == ["model-0", "model-1"], action
        assert [t["details"]["pid"] for t in record["targets"]] == [
            fleet[n].attrs["State"]["Pid"] for n in _names(record)], action  # resolved against the engine
        assert "watchdog_pid" not in record["undo"].get("arguments", {}), action
    time.sleep(2.5)  # past the ttl a watchdog would have had
    assert _snapshot(fleet) == before
    assert {pid for func in ("unpause_containers", "release_hold", "unblock_port")
            for pid, _ in pending(f"drivers.docker.actions.{func}")} <= watchdogs
    assert not (tmp_path / "backup").exists()  # no backup written
    assert _file(fleet["model-0"], "/certs/cert.pem")[0] == b"ORIGINAL CERT\n"
    assert all(_answers(_instance(fleet[n])) for n in ("model-0", "model-1"))
    real = actions.pause_containers(**selector, ttl=None)
    try:
        assert set(real) == set(records["pause"]) and real["targets"] == records["pause"]["targets"]
        assert (real["undo"], real["population"]) == (records["pause"]["undo"], records["pause"]["population"])
    finally:
        actions.unpause_containers(**real["undo"]["arguments"])


def test_a_pause_with_a_ttl_ends_by_itself(fleet: dict[str, Any]) -> None:
    started = time.monotonic()
    record = actions.pause_containers(labels=MODEL, name_pattern="model-3$", ttl=2)
    instance = record["targets"][0]["details"]["instance"]
    watchdog = record["undo"]["arguments"]["watchdog_pid"]
    assert fleet["model-3"].reload() or fleet["model-3"].status == "paused"
    # no rollback: the detached watchdog unpauses it
    assert poll(lambda: _answers(instance, timeout=0.5), 15), "the container did not resume by itself"
    assert time.monotonic() - started >= 1.9
    fleet["model-3"].reload()
    assert fleet["model-3"].status == "running"
    assert poll(lambda: _proc_state(watchdog) == b"zombie", 5)
    assert actions.unpause_containers(**record["undo"]["arguments"])["already"] == [fleet["model-3"].id]


def test_a_rollback_by_selector_stops_the_watchdog_it_was_not_told_about(fleet: dict[str, Any]) -> None:
    record = actions.pause_containers(labels=MODEL, name_pattern="model-[23]$", all=True, ttl=60)
    watchdog = record["undo"]["arguments"]["watchdog_pid"]
    assert sorted(actions.unpause_containers(labels=MODEL)["containers"]) == sorted(record["undo"]["arguments"]["ids"])
    assert poll(lambda: _proc_state(watchdog) == b"zombie", 5)


def test_every_undo_again_after_it_ran_changes_nothing(fleet: dict[str, Any], tmp_path: Path) -> None:
    """What `mlchaos recover` does: replay each record's undo, maybe twice, after the rollback already ran."""
    certificates.load_or_create_ca(tmp_path / "ca")
    one = {"labels": MODEL, "name_pattern": "model-1$"}
    killed = actions.kill_containers(**one)
    stopped = actions.stop_containers(**{**one, "name_pattern": "model-2$"}, timeout=1)
    actions.start_containers(labels=MODEL)  # the experiment's rollback, by selector
    for name in ("model-1", "model-2"):  # running is not started: its script writes the certificates, then serves
        wait_until(lambda c=fleet[name]: _answers(_instance(c)), 15, f"{name} to answer again")
    blocked = actions.block_port(8000, **one, ttl=60)
    actions.unblock_port(**blocked["undo"]["arguments"])
    swapped = actions.install_certificate("/certs/cert.pem", "/certs/key.pem", **one, kind="expired",
                                          ca_dir=str(tmp_path / "ca"), backup_dir=str(tmp_path / "backup"))
    actions.restore_container_certificate(**swapped["undo"]["arguments"])
    assert poll(lambda: _hups(fleet["model-1"]) >= 2, 5)
    before, hups = _snapshot(fleet), _hups(fleet["model-1"])
    cid = fleet["model-1"].id
    for _ in range(2):
        for record in (killed, stopped):
            again = actions.start_containers(**record["undo"]["arguments"])
            assert set(again["containers"].values()) == {"already running"}
            assert again["already"] == record["undo"]["arguments"]["ids"]
        unblocked = actions.unblock_port(**blocked["undo"]["arguments"])
        assert unblocked["containers"] == {cid: "no such rule"} and unblocked["already"] == [cid]
        restored = actions.restore_container_certificate(**swapped["undo"]["arguments"])
        assert restored["containers"] == {cid: "already restored"} and restored["already"] == [cid]
        netem = actions.remove_netem(ids=[cid])  # netem cannot be added on this kernel: the absent case
        assert netem["containers"][cid]["removed"] is False and netem["already"] == [cid]
    assert _snapshot(fleet) == before
    assert _hups(fleet["model-1"]) == hups, "an undo replayed must not signal the container again"
    assert _file(fleet["model-1"], "/certs/cert.pem") == (b"ORIGINAL CERT\n", 0o644)


def test_undos_of_a_container_that_was_removed_meanwhile_succeed(engine: Any, tmp_path: Path) -> None:
    certificates.load_or_create_ca(tmp_path / "ca")
    labels = {"mlchaos.test.gone": RUN}
    container = engine.containers.run(IMAGE, ["python3", "-c", SERVER], detach=True, name=f"mlct-{RUN}-gone",
                                      labels=labels)
    try:
        wait_until(lambda: container.exec_run(["test", "-f", "/certs/key.pem"]).exit_code == 0, 10, "the files")
        swapped = actions.install_certificate("/certs/cert.pem", "/certs/key.pem", labels=labels, kind="expired",
                                              ca_dir=str(tmp_path / "ca"), backup_dir=str(tmp_path / "backup"))
        paused = actions.pause_containers(labels=labels, ttl=None)
    finally:
        container.remove(force=True)
    gone = actions.unpause_containers(**paused["undo"]["arguments"])
    assert gone["containers"] == {container.id: actions.GONE} and gone["already"] == [container.id]
    restored = actions.restore_container_certificate(**swapped["undo"]["arguments"])
    assert restored["containers"] == {container.id: actions.GONE} and restored["already"] == [container.id]
