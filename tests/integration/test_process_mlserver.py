"""drivers.process on a real MLServer 1.7.1 run as a plain process (tests/support/mlserver.py), with one inference
worker: the server's process tree is the server, its multiprocessing resource tracker and the worker.

* kill by pid file and by command pattern: the whole tree goes (no orphaned worker), the model's health probe
  (drivers.model, by URL) fails, the undo restarts MLServer by the declared command, healthy again;
* pause with a TTL: requests hang until they time out; the detached watchdog resumes the tree by itself after
  the process that paused it was SIGKILLed;
* both through the real ``mlchaos run`` CLI: the kill undone by the runner's safety net from its exact change
  record, the pause undone by the guardian after the runner is SIGKILLed;
* a unit selected through a fake ``systemctl`` first on PATH (this machine runs no systemd;
  tests/support/fake_systemctl.py) whose ``start`` runs the real MLServer.

Each test prints which MLServer operations answer under the fault and the times measured (``-s`` shows them).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from drivers.model import probes as model_probes
from drivers.process import actions, probes, selectors
from drivers.process.tree import Member, descendants
from mlchaos.engine import exit_codes
from mlchaos.journal.reader import is_automatic
from mlchaos.safety.watchdog import pending
from tests.support import fake_systemctl, mlserver
from tests.support.components import require_component
from tests.support.environment import child_env
from tests.support.polling import wait_until

READY_TIMEOUT = 120.0
INFER = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


@dataclass
class Served:
    """A running MLServer: its folder, URLs, the pattern that selects it, its pid file and restart declaration."""

    server: mlserver.MLServer
    folder: Path
    pattern: str
    pid_file: Path

    @property
    def url(self) -> str:
        return self.server.url

    def restart(self, **more: object) -> dict:
        executable = mlserver.binary()
        assert executable is not None
        return {"command": mlserver.command(executable, self.folder), "cwd": str(self.folder),
                "log": str(self.folder / "restart.log"), "ready_url": f"{self.url}/v2/models/iris/ready",
                "timeout": READY_TIMEOUT, **more}

    def tree(self) -> list[int]:
        roots = selectors.matching(self.pattern)
        return [pid for root in roots for pid in (root.pid, *descendants(root.pid))]


@pytest.fixture
def served(tmp_path: Path, state_dir: Path) -> Iterator[Served]:
    """MLServer with one inference worker, its pid in a pid file; every process of its (re)started trees is
    killed at the end."""
    executable = mlserver.binary()
    require_component("MLServer", executable is not None, mlserver.HOW_TO_GET_IT)
    assert executable is not None
    folder = tmp_path / "mlserver"
    server = mlserver.start(executable, folder, parallel_workers=1)
    pid_file = tmp_path / "mlserver.pid"
    pid_file.write_text(f"{server.process.pid}\n")
    it = Served(server, folder, rf"mlserver start {re.escape(str(folder))}$", pid_file)
    wait_until(lambda: len(it.tree()) >= 3, timeout=60, what="MLServer's worker and resource tracker")
    try:
        yield it
    finally:
        for pid in it.tree():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        for pid in it.tree():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.stop()


def operations(served: Served) -> dict[str, str]:
    """What each MLServer operation answers now: ok, HTTP <status>, refused or timeout (2 s each)."""
    calls = {
        "live": ("GET", f"{served.url}/v2/health/live", None),
        "ready": ("GET", f"{served.url}/v2/health/ready", None),
        "model ready": ("GET", f"{served.url}/v2/models/iris/ready", None),
        "infer": ("POST", f"{served.url}/v2/models/iris/infer", INFER),
        "repository index": ("POST", f"{served.url}/v2/repository/index", {}),
        "metrics": ("GET", f"{served.server.metrics_url}/metrics", None),
    }
    found = {}
    for name, (method, url, body) in calls.items():
        try:
            status = requests.request(method, url, json=body, timeout=2).status_code
            found[name] = "ok" if status == 200 else f"HTTP {status}"
        except requests.Timeout:
            found[name] = "timeout"
        except requests.ConnectionError:
            found[name] = "refused"
    return found


def _healthy(served: Served) -> bool:
    return model_probes.all_replicas_healthy(urls=[served.url])


def _all_gone(members: list[str]) -> bool:
    return not any(Member.parse(m).alive() for m in members)


def _kill_and_restart(served: Served, how: dict, label: str, signal: str = "SIGKILL") -> None:
    assert _healthy(served) and set(operations(served).values()) == {"ok"}
    planned = actions.kill_processes(**how, restart=served.restart(), dry_run=True)
    assert len(planned["targets"][0]["details"]["members"]) >= 3 and _healthy(served)  # a plan changes nothing

    began = time.monotonic()
    record = actions.kill_processes(**how, restart=served.restart(), signal=signal)
    killed_in = time.monotonic() - began
    members = record["undo"]["arguments"]["killed"]
    assert len(members) >= 3 and _all_gone(members)  # the server, its resource tracker and its worker
    assert [Member.parse(m).pid for m in members][0] == served.server.process.pid
    assert not _healthy(served)
    under = operations(served)
    assert set(under.values()) == {"refused"}, under
    assert probes.processes_running(**how) == 0

    out = actions.restart_processes(**record["undo"]["arguments"])
    ready_in = time.monotonic() - began
    (new,) = out["restarted"]
    assert _healthy(served) and model_probes.prediction_accuracy(urls=[served.url]) > 0.9
    assert set(operations(served).values()) == {"ok"}
    assert len(served.tree()) >= 2 and served.tree()[0] == new  # a new tree, with its worker
    assert actions.restart_processes(**record["undo"]["arguments"])["restarted"] == []  # idempotent
    print(f"\n{label}: kill {killed_in:.2f}s (tree of {len(members)}), kill to ready again {ready_in:.1f}s "
          f"(restart {out['seconds']:.1f}s); under the kill: {under}")


def test_kill_by_pid_file_then_the_undo_restarts_it_healthy(served: Served) -> None:
    _kill_and_restart(served, {"pid_file": str(served.pid_file)}, "pid file, SIGKILL")
    assert served.pid_file.read_text().strip() == str(served.tree()[0])


def test_graceful_kill_by_pattern_then_the_undo_restarts_it_healthy(served: Served) -> None:
    _kill_and_restart(served, {"pattern": served.pattern}, "pattern, SIGTERM", "SIGTERM")


def test_a_pause_hangs_requests_and_its_watchdog_resumes_it_after_the_caller_is_killed(served: Served) -> None:
    """The caller (a child Python process standing for the runner) pauses MLServer with a TTL and is SIGKILLed."""
    ttl = 25.0  # long enough for six operations that each wait 2 s
    caller = subprocess.Popen(
        [sys.executable, "-c", "import json, sys, time; from drivers.process import actions; "
         "print(json.dumps(actions.stop_processes(pattern=sys.argv[1], ttl=float(sys.argv[2]))), flush=True); "
         "time.sleep(600)", served.pattern, str(ttl)], env=child_env(), stdout=subprocess.PIPE, text=True)
    assert caller.stdout is not None
    record = json.loads(caller.stdout.readline())
    paused_at = time.monotonic()
    caller.kill()  # the "runner" dies: nothing but the watchdog can resume MLServer now
    caller.wait(timeout=10)
    members = [Member.parse(m) for m in record["undo"]["arguments"]["processes"]]
    assert len(members) >= 3 and all(m.stopped() for m in members)
    under = operations(served)
    assert set(under.values()) == {"timeout"}, under  # the sockets accept, nothing answers
    assert not model_probes.all_replicas_healthy(urls=[served.url], timeout=1)
    assert probes.processes_running(pattern=served.pattern) == 0
    wait_until(lambda: _healthy(served), timeout=60, what="the watchdog to resume MLServer")
    resumed_in = time.monotonic() - paused_at
    assert not any(m.stopped() for m in members) and set(operations(served).values()) == {"ok"}
    assert record["parameters"]["watchdog_pid"] not in [p for p, _ in pending(record["undo"]["func"])]
    print(f"\npause (ttl {ttl:g} s): healthy again {resumed_in:.1f}s after the pause; under the pause: {under}")


def _experiment(tmp_path: Path, method: list, served: Served, **mlchaos: object) -> Path:
    healthy = {"type": "python", "module": "drivers.model.probes", "func": "all_replicas_healthy",
               "arguments": {"urls": [served.url]}}
    data = {
        "title": "MLServer as a plain process", "description": "a process fault on a real MLServer",
        "steady-state-hypothesis": {"title": "MLServer serves", "probes": [
            {"type": "probe", "name": "mlserver-healthy", "tolerance": True, "provider": healthy}]},
        "method": method,
        "rollbacks": [],
        "extensions": [{"name": "mlchaos", "activity_timeout": 60, "rollback_timeout": 180, **mlchaos,
                        "recovery": [{"type": "probe", "name": "mlserver-healthy-again", "tolerance": True,
                                      "provider": {**healthy, "arguments": {"urls": [served.url], "within": 60}}}]}],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(data))
    return path


def _action(name: str, func: str, **arguments: object) -> dict:
    return {"type": "action", "name": name,
            "provider": {"type": "python", "module": "drivers.process.actions", "func": func, "arguments": arguments}}


def test_mlchaos_run_kills_mlserver_and_its_change_record_restarts_it(
        served: Served, tmp_path: Path, subprocess_env: dict) -> None:
    """A lone MLServer killed: the hypothesis deviates after the method (the honest verdict: nothing else serves),
    the safety net restarts it from the exact change record (no rollback is declared), the recovery check holds."""
    method = [
        _action("kill-mlserver", "kill_processes", pattern=served.pattern, restart=served.restart()),
        {"type": "probe", "name": "mlserver-down", "provider": {
            "type": "python", "module": "drivers.model.probes", "func": "all_replicas_healthy",
            "arguments": {"urls": [served.url]}}},
    ]
    journal = tmp_path / "journal.json"
    began = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(_experiment(tmp_path, method, served)),
                          "--journal", str(journal)], env=subprocess_env, capture_output=True, text=True,
                         timeout=400)
    took = time.monotonic() - began
    assert run.returncode == exit_codes.DEVIATED, run.stdout + run.stderr
    assert "mlserver-healthy  (" in run.stdout and "expected true, got false" in run.stdout
    assert "ok   probe  mlserver-healthy-again" in run.stdout
    data = json.loads(journal.read_text())
    (change,) = data["mlchaos"]["changes"]
    assert change["action"] == "kill" and change["undo"]["func"] == "drivers.process.actions.restart_processes"
    assert [entry["output"] for entry in data["run"] if entry["activity"]["name"] == "mlserver-down"] == [False]
    (undo,) = data["rollbacks"]
    assert is_automatic(undo) and undo["status"] == "succeeded" and len(undo["output"]["restarted"]) == 1
    assert _healthy(served)
    print(f"\nmlchaos run (kill, restart from the change record): {took:.1f}s wall")


def test_mlchaos_run_pause_is_undone_by_the_guardian_when_the_runner_is_killed(
        served: Served, tmp_path: Path, subprocess_env: dict) -> None:
    method = [_action("pause-mlserver", "stop_processes", pattern=served.pattern, ttl=300),
              {"type": "action", "name": "hold", "provider": {
                  "type": "python", "module": "testdrivers", "func": "sleep", "arguments": {"seconds": 120}}}]
    journal = tmp_path / "journal.json"
    runner = subprocess.Popen([sys.executable, "-m", "mlchaos", "run",
                               str(_experiment(tmp_path, method, served, heartbeat_timeout=3)),
                               "--journal", str(journal)], env=subprocess_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def paused() -> bool:
        return probes.processes_running(pattern=served.pattern) == 0 and served.tree() != []

    wait_until(paused, timeout=120, what="the runner to pause MLServer")
    assert set(operations(served).values()) == {"timeout"}
    runner.kill()
    runner.wait(timeout=10)
    killed_at = time.monotonic()
    wait_until(lambda: _healthy(served), timeout=60, what="the guardian to resume MLServer")
    resumed_in = time.monotonic() - killed_at
    wait_until(lambda: json.loads(journal.read_text())["mlchaos"].get("recoveries"), what="the recovery")
    (recovery,) = json.loads(journal.read_text())["mlchaos"]["recoveries"]
    assert recovery["ok"] and recovery["by"].startswith("guardian")
    assert [r["status"] for r in recovery["results"]] == ["undone"]
    (paused,) = [e["output"] for e in json.loads(journal.read_text())["run"]
                 if e["activity"]["name"] == "pause-mlserver"]
    watchdog = paused["parameters"]["watchdog_pid"]  # the TTL's watchdog, stopped by the guardian's undo
    wait_until(lambda: watchdog not in [pid for pid, _ in pending(paused["undo"]["func"])], what="its watchdog to stop")
    print(f"\nrunner SIGKILLed mid-pause: MLServer healthy {resumed_in:.1f}s later (guardian, heartbeat timeout 3 s)")


def test_a_unit_is_killed_by_its_main_pid_and_started_again_with_systemctl(
        served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake systemctl (no systemd on this machine) starts the real MLServer as the unit's MainPID."""
    folder = fake_systemctl.install(tmp_path / "systemd")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    executable = mlserver.binary()
    assert executable is not None
    fake_systemctl.declare_unit(folder, "mlserver.service", mlserver.command(executable, served.folder),
                                cwd=str(served.folder))
    served.server.stop()  # the unit runs it from now on
    subprocess.run([str(folder / "systemctl"), "start", "mlserver.service"], check=True, timeout=30)
    wait_until(lambda: _healthy(served), timeout=READY_TIMEOUT, what="the unit's MLServer to be ready")
    main = fake_systemctl.main_pid(folder, "mlserver.service")
    began = time.monotonic()
    record = actions.kill_processes(unit="mlserver.service", restart={
        "ready_url": f"{served.url}/v2/models/iris/ready", "timeout": READY_TIMEOUT})
    members = record["undo"]["arguments"]["killed"]
    assert Member.parse(members[0]).pid == main and len(members) >= 3 and _all_gone(members)
    assert not _healthy(served)
    out = actions.restart_processes(**record["undo"]["arguments"])
    assert out["restarted"] == ["mlserver.service"] and out["main_pid"] != main
    assert _healthy(served)  # the undo waited for ready_url
    assert "start mlserver.service" in fake_systemctl.calls(folder)[1:]
    print(f"\nunit (fake systemctl), SIGKILL: kill to ready again {time.monotonic() - began:.1f}s")
