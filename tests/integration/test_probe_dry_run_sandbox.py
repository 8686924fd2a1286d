"""Dry runs of the waiting probes against the real sandbox: replicas, Prometheus, Alertmanager, a receiver.

As in a plan: the kill action runs with ``dry_run=True`` (nothing is killed), then every
probe that would wait for the fault's consequence checks its endpoints and returns at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.alertmanager import probes as am
from drivers.process import actions
from drivers.process import probes as process
from drivers.prometheus import probes as prom
from mlchaos.errors import DriverError
from mlchaos.monitoring.notifications import NotificationReceiver
from mlchaos.safety import run_context
from mlchaos.safety.changes import ChangeRecord
from mlchaos.safety.run_context import RunContext
from mlchaos.sandbox import monitoring_stack
from mlchaos.sandbox.manager import Sandbox
from mlchaos.sandbox.monitoring_stack import MonitoringEndpoints
from tests.support.components import require_monitoring

DEADLINE = 30  # seconds each probe would wait outside a dry run
QUICK = DEADLINE / 3  # a dry run against live local endpoints takes milliseconds; waiting would take DEADLINE


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, MonitoringEndpoints]]:
    """Three replicas with the monitoring stack, in a state dir of their own (exported in the env)."""
    require_monitoring()
    path: Path = tmp_path_factory.mktemp("dry-run-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCHAOS_STATE_DIR", str(path))
        sandbox = Sandbox(path)
        try:
            sandbox.up(replicas=3, timeout=60)
            yield sandbox, monitoring_stack.endpoints(path)
        finally:
            sandbox.down()


@pytest.fixture
def plan(stack: tuple[Sandbox, MonitoringEndpoints]) -> Iterator[RunContext]:
    """A run as `mlchaos plan` makes it: the receiver at the sandbox's sink, the kill announced as a dry run."""
    _, ep = stack
    with NotificationReceiver(host=ep.sink_host, port=ep.sink_port) as receiver:
        context = RunContext(receiver=receiver)
        token = run_context.activate(context)
        try:
            record = actions.kill_replicas(service="model", count=1, dry_run=True)
            context.changes.append(ChangeRecord.from_dict(record))
            yield context
        finally:
            run_context.deactivate(token)


def test_waiting_probes_check_and_return_at_once(stack: tuple[Sandbox, MonitoringEndpoints], plan: RunContext) -> None:
    _, ep = stack
    timings = {}
    results = {}
    for probe in (prom.alert_fires_within, prom.alert_resolves_within,
                  am.notification_delivered_within, am.resolved_notification_delivered_within):
        started = time.monotonic()
        results[probe.__name__] = probe("ModelServerDown", within=DEADLINE, match_fault_targets=True, dry_run=True)
        timings[probe.__name__] = time.monotonic() - started
    print("dry-run timings: " + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in timings.items()))
    assert all(seconds < QUICK for seconds in timings.values()), timings

    for name in ("alert_fires_within", "alert_resolves_within"):
        assert results[name] == {
            "dry_run": True, "alert": "ModelServerDown", "labels": {}, "match_fault_targets": True,
            "prometheus": ep.prometheus_url.rstrip("/"), "rule_found": True, "rule_health": "ok",
            "state_now": "inactive",
        }
    for name, status in (("notification_delivered_within", "firing"),
                         ("resolved_notification_delivered_within", "resolved")):
        result = results[name]
        assert result["status"] == status and result["receiver"] == plan.receiver.url
        assert result["alertmanager"] == ep.alertmanager_url.rstrip("/")
        assert result["alertmanager_version"]
    assert process.replicas_running("model") == 3  # the plan killed nothing


def test_a_typo_in_the_alert_name_is_caught(stack: tuple[Sandbox, MonitoringEndpoints], plan: RunContext) -> None:
    _, ep = stack
    with pytest.raises(DriverError) as caught:
        prom.alert_fires_within("ModelServerDwon", within=DEADLINE, dry_run=True)
    assert str(caught.value) == (
        f"alerting rule 'ModelServerDwon' is not loaded in Prometheus at {ep.prometheus_url.rstrip('/')} "
        "(did you mean 'ModelServerDown'?)"
    )


def test_a_receiver_the_sandbox_does_not_notify_needs_a_url(stack: tuple[Sandbox, MonitoringEndpoints]) -> None:
    _, ep = stack
    with NotificationReceiver() as elsewhere:
        token = run_context.activate(RunContext(receiver=elsewhere))
        try:
            with pytest.raises(DriverError, match=r"is not the sandbox Alertmanager's sink .*: give url"):
                am.notification_delivered_within("ModelServerDown", within=DEADLINE, dry_run=True)
            checked = am.notification_delivered_within("ModelServerDown", url=ep.alertmanager_url, dry_run=True)
            assert checked["alertmanager"] == ep.alertmanager_url.rstrip("/")
        finally:
            run_context.deactivate(token)
