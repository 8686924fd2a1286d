"""The kill drill and the Prometheus probes against VictoriaMetrics: victoria-metrics (query backend, scraping
the sandbox's replicas), vmalert (ruler, the sandbox's rules) and a real Alertmanager, behind vmauth.

Everything is real (tests/support/victoriametrics.py starts Debian's binaries): the drill runs through the
``mlchaos run`` CLI, kills a sandbox replica, waits for vmalert to fire ModelServerDown, for Alertmanager to
notify the run's receiver, and for both to resolve after the rollback: once by plain URL (victoria-metrics,
which proxies vmalert's API), and through vmauth with the experiment's declared ``prometheus`` endpoint: once
with a bearer token, once with basic auth (vmauth's ``username``/``password`` user). Without a credential the
gateway refuses (HTTP 401): the probes say so, and the drill stops at its steady state before any fault.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from drivers.prometheus import probes, timing
from mlchaos.driver_kit import DriverError
from mlchaos.engine import exit_codes
from mlchaos.lib import endpoints
from mlchaos.sandbox.manager import Sandbox
from tests.support import victoriametrics
from tests.support.environment import child_env
from tests.support.settling import wait_until_quiet


@pytest.fixture(scope="module")
def victoria(monitored: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[victoriametrics.VictoriaStack]:
    """The VictoriaMetrics stack over the module's monitored sandbox, quiet before the first test."""
    victoriametrics.require()
    stack = victoriametrics.start(tmp_path_factory.mktemp("victoria"), monitored.state_dir)
    try:
        wait_until_quiet(stack.victoria_url)
        yield stack
    finally:
        stack.stop()


def _run(sandbox: Sandbox, experiment: dict[str, Any], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str],
                                                                                 dict[str, Any], float]:
    path, journal = tmp_path / "drill.json", tmp_path / "journal.json"
    path.write_text(json.dumps(experiment), encoding="utf-8")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal)],
                          env=child_env(sandbox.state_dir), capture_output=True, text=True, timeout=180)
    return proc, json.loads(journal.read_text()), time.monotonic() - started


def test_the_probes_read_vmalert_and_victoria_metrics(monitored, victoria):
    url = victoria.victoria_url
    assert probes.query_value('sum(up{job="model"})', url=url) == 3.0
    assert probes.rule_is_healthy("ModelServerDown", url=url) is True
    with pytest.raises(DriverError, match="did you mean 'ModelServerDown'"):
        probes.rule_is_healthy("ModelServerDwn", url=url)
    # what the exact timing reads, from vmalert's rules API (numbers of seconds) and VictoriaMetrics' config
    rule = timing.rule_timing(lambda path, params: probes._get(url, path, params, 5.0), "ModelServerDown",
                              {"job": "model"})
    assert rule == timing.RuleTiming(for_seconds=3.0, keep_firing_for=0.0, evaluation_interval=1.0,
                                     scrape_interval=1.0)
    planned = probes.alert_fires_within("ModelServerDown", url=url, dry_run=True)
    assert (planned["rule_found"], planned["rule_health"], planned["state_now"]) == (True, "ok", "inactive")


def test_the_gateway_routes_by_path_and_refuses_without_credentials(victoria):
    headers = victoriametrics.gateway_headers(victoria)
    password = victoria.password_file.read_text().strip()
    rules = requests.get(f"{victoria.gateway_url}/api/v1/rules", headers=headers, timeout=5).json()
    assert [g["name"] for g in rules["data"]["groups"]] == ["ml-serving"]  # vmalert's
    query = requests.get(f"{victoria.gateway_url}/api/v1/query", params={"query": "vector(1)"},
                         auth=(victoriametrics.BASIC_USER, password), timeout=5).json()
    assert query["data"]["result"][0]["value"][1] == "1"  # victoria-metrics'
    assert requests.get(f"{victoria.gateway_url}/api/v1/rules", timeout=5).status_code == 401
    assert requests.get(f"{victoria.gateway_url}/api/v1/write", headers=headers, timeout=5).status_code == 400


def _report(what: str, seconds: float, journal: dict[str, Any]) -> None:
    """Print the drill's wall time and its measured times (pytest -s shows them; docs/drivers/monitoring.md)."""
    measured = {m["kind"]: m["seconds"] for m in journal["mlchaos"]["measurements"]}
    times = ", ".join(f"{kind.removeprefix('time_to_').replace('_', ' ')} {measured[kind]:.2f}s"
                      for kind in ("time_to_detect", "time_to_notify", "time_to_recover", "time_to_notify_resolved")
                      if kind in measured)
    print(f"kill drill {what}: {seconds:.1f}s wall; {times}")


def _check_drill(journal: dict[str, Any]) -> None:
    """What a passing drill against vmalert must show: exact times, both notifications, only the killed replica."""
    measurements = {m["kind"]: m for m in journal["mlchaos"]["measurements"]}
    assert set(measurements) == {"time_to_detect", "time_to_notify", "time_to_recover", "time_to_notify_resolved"}
    detect, recover = measurements["time_to_detect"], measurements["time_to_recover"]
    assert detect["method"] == "prometheus timestamps", detect  # vmalert's activeAt + the rule's for
    assert detect["floor"] == 5.0  # scrape 1s (victoria-metrics' config) + evaluation 1s + for 3s (vmalert)
    assert 0 < detect["seconds"] <= detect["polled"]
    # the ALERTS series vmalert wrote back; the note says why when it was not used
    assert recover["method"] == "prometheus timestamps", recover.get("note")
    assert 0 < recover["seconds"] <= recover["polled"]
    # Read before vmalert had written the end back, the pending series' marker (when the alert began firing)
    # passed for it, 1-4.5 s early. The evaluation that found it gone lies at most a poll (0.5 s), an evaluation
    # and the load's delays before a probe that saw the alert active saw it go (no resolution: activeAt seen),
    # and Alertmanager notifies the resolution within its group_interval (1 s) after it.
    if "resolution" not in recover:
        assert recover["polled"] - recover["seconds"] < 2.5, recover
    resolved_notification = measurements["time_to_notify_resolved"]["seconds"]
    assert -0.1 < resolved_notification - recover["seconds"] < 2.5, (recover, resolved_notification)
    assert recover.get("resolution") in (None, 1.0)  # 1.0: the probe never saw activeAt (see timing.py)
    assert measurements["time_to_notify"]["seconds"] >= detect["seconds"]
    (change,) = journal["mlchaos"]["changes"]
    killed = change["targets"][0]["details"]["instance"]
    statuses = {(n["alertname"], n["status"], n["labels"].get("instance"))
                for n in journal["mlchaos"]["notifications"]["notifications"]}
    assert {("ModelServerDown", "firing", killed), ("ModelServerDown", "resolved", killed)} <= statuses
    # ModelServerDown for the killed replica alone. On a loaded host other alerts may honestly come and go
    # (the restarted replica live before it is ready: ModelNotReady; slow probes: ModelEndpointLatencyHigh);
    # the sandbox's Prometheus sees them too (benchmarks/alert_backends.py), and no-alert-left-firing held
    assert {instance for name, _, instance in statuses if name == "ModelServerDown"} == {killed}, statuses
    assert journal["mlchaos"]["notifications"]["authenticated"] is True
    assert all(b["met"] for b in journal["mlchaos"]["budgets"])


@pytest.mark.slow  # about 30 s on a 2-core machine
def test_the_kill_drill_passes_through_vmalert_and_alertmanager(monitored, victoria, tmp_path):
    monitored.up(replicas=3, timeout=90)  # heal whatever an earlier test left
    wait_until_quiet(victoria.victoria_url)
    proc, journal, seconds = _run(monitored, victoriametrics.drill(victoria, victoria.victoria_url), tmp_path)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    _report("against VictoriaMetrics + vmalert by URL", seconds, journal)
    _check_drill(journal)


@pytest.mark.slow  # about 30 s on a 2-core machine
@pytest.mark.parametrize(("auth", "secret"), [("bearer", "token_file"), ("basic", "password_file")],
                         ids=["bearer-token", "basic-auth"])
def test_the_kill_drill_passes_through_vmauth_with_the_endpoints_credentials(monitored, victoria, tmp_path, auth,
                                                                              secret):
    monitored.up(replicas=3, timeout=90)
    wait_until_quiet(victoria.victoria_url)
    # endpoints: prometheus = vmauth + bearer_token_file, or + username and password_file
    experiment = victoriametrics.drill(victoria, auth=auth)
    proc, journal, seconds = _run(monitored, experiment, tmp_path)
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    label = "bearer token" if auth == "bearer" else "basic auth"
    _report(f"through vmauth ({label}) + VictoriaMetrics + vmalert", seconds, journal)
    _check_drill(journal)
    credential = getattr(victoria, secret).read_text().strip()
    assert credential not in proc.stdout + proc.stderr + json.dumps(journal)
    fired = next(r["output"] for r in journal["run"]
                 if r["activity"]["name"] == "server-down-alert-fires-for-the-killed-replica")
    assert fired["labels"]["alertgroup"] == "ml-serving"  # vmalert's alert, read through the gateway


def test_the_drill_without_credentials_is_refused_with_401_before_any_fault(monitored, victoria, tmp_path):
    experiment = victoriametrics.drill(victoria, auth="none")  # prometheus = vmauth, no credential declared
    before = [replica.pid for replica in monitored.replicas("model")]
    proc, journal, _ = _run(monitored, experiment, tmp_path)
    assert proc.returncode == exit_codes.DEVIATED, proc.stdout + proc.stderr
    refusal = f"Prometheus at {victoria.gateway_url} refused /api/v1/rules: HTTP 401 Unauthorized"
    assert refusal in proc.stdout, proc.stdout
    assert journal["mlchaos"]["changes"] == [] and journal["run"] == []  # steady state not met: no fault
    assert [replica.pid for replica in monitored.replicas("model")] == before  # no replica was killed


def test_without_the_token_the_gateway_refuses_and_the_probes_say_so(victoria, tmp_path):
    with pytest.raises(DriverError, match=r"refused /api/v1/rules: HTTP 401 Unauthorized \(credentials missing"):
        probes.rule_is_healthy("ModelServerDown", url=victoria.gateway_url)
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token\n")
    wrong.chmod(0o600)
    password_file = str(victoria.password_file)
    tables = {
        "wrong token": {"url": victoria.gateway_url, "bearer_token_file": str(wrong)},
        "right token": {"url": victoria.gateway_url, "bearer_token_file": str(victoria.token_file)},
        "basic auth": {"url": victoria.gateway_url,
                       "basic_auth": {"username": victoriametrics.BASIC_USER, "password_file": password_file}},
    }
    answers = {}
    for name, spec in tables.items():
        table = endpoints.EndpointTable({"prometheus": endpoints.Endpoint.from_dict("prometheus", spec)})
        previous = endpoints.activate(table)
        try:
            answers[name] = probes.rule_is_healthy("ModelServerDown")  # the declared `prometheus` endpoint
        except DriverError as error:
            answers[name] = str(error)
        finally:
            endpoints.activate(previous)
            table.close()
    # vmauth 1.79 answers an unknown token with HTTP 400 and echoes it: the probe masks it
    assert "refused /api/v1/rules: HTTP 400" in answers["wrong token"], answers
    assert 'cannot find the provided auth token "Bearer ***"' in answers["wrong token"], answers
    assert "not-the-token" not in answers["wrong token"]
    assert (answers["right token"], answers["basic auth"]) == (True, True)
