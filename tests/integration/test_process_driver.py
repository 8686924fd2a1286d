"""drivers.process against a real 3-replica sandbox: selection, announce-before-signal, undo."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from polling import poll

from drivers.process import actions, probes
from mlchaos import changes
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture
def announced() -> Iterator[list[tuple[changes.ChangeRecord, dict[int, bool]]]]:
    """Collect announced records, each with whether every target pid was alive at that moment."""
    seen: list[tuple[changes.ChangeRecord, dict[int, bool]]] = []

    def sink(record: changes.ChangeRecord) -> None:
        pids = [t.details["pid"] for t in record.targets]
        seen.append((record, {pid: procs.is_alive(pid) for pid in pids}))

    token = changes.set_sink(sink)
    yield seen
    changes.reset_sink(token)




def test_kill_announces_before_signalling_and_waits_until_gone(
    sandbox: Sandbox, announced: list
) -> None:
    out = actions.kill_replicas(service="model", count=1, seed=7)
    assert changes.is_change_record(out)
    record = changes.ChangeRecord.from_dict(out)
    assert (record.driver, record.action) == ("process", "kill")
    assert record.parameters == {"service": "model", "count": 1, "signal": "SIGKILL", "seed": 7}
    assert record.undo == {
        "func": "drivers.process.actions.restart_replicas", "arguments": {"service": "model"},
    }
    (target,) = record.targets
    assert target.kind == "process" and set(target.details) == {"pid", "port", "service", "url", "instance"}

    (announced_record, alive_then), = announced
    assert announced_record.targets == record.targets
    assert alive_then == {target.details["pid"]: True}
    assert not procs.is_alive(target.details["pid"])  # gone on return, no waiting needed
    assert probes.replicas_running("model") == 2
    assert probes.replica_states("model")[target.name] == "dead"

    again = actions.kill_replicas(service="model", count=1, seed=7)
    assert again["targets"][0]["name"] != target.name  # only live replicas are candidates


def test_seed_is_generated_and_recorded_when_omitted(sandbox: Sandbox) -> None:
    out = actions.kill_replicas(count=2, dry_run=True)
    assert isinstance(out["parameters"]["seed"], int) and out["dry_run"] is True
    assert len(out["targets"]) == 2
    assert probes.replicas_running() == 3  # dry run signals nothing
    repeat = actions.kill_replicas(count=2, seed=out["parameters"]["seed"], dry_run=True)
    assert repeat["targets"] == out["targets"]


@pytest.mark.parametrize("count", [0, -1, 4, True, "1"])
def test_count_out_of_range_is_a_driver_error(sandbox: Sandbox, count: object) -> None:
    with pytest.raises(DriverError, match="count"):
        actions.kill_replicas(count=count)  # type: ignore[arg-type]
    assert probes.replicas_running() == 3


def test_count_above_live_replicas_and_unknown_targets(sandbox: Sandbox) -> None:
    actions.kill_replicas(count=2, seed=1)
    with pytest.raises(DriverError, match="only 1 of 3"):
        actions.kill_replicas(count=2)
    actions.kill_replicas(count=1)
    with pytest.raises(TargetNotFound, match="no live replica"):
        actions.kill_replicas(count=1)
    with pytest.raises(TargetNotFound, match="'ghost'"):
        actions.stop_replicas(service="ghost")
    with pytest.raises(DriverError, match="signal"):
        actions.kill_replicas(signal="SIGSTOP")


def test_stop_continue_and_terminate(sandbox: Sandbox, announced: list) -> None:
    stopped = actions.stop_replicas(count=1, seed=3)
    name = stopped["targets"][0]["name"]
    assert stopped["action"] == "stop" and stopped["parameters"]["signal"] == "SIGSTOP"
    assert probes.replica_states()[name] == "stopped"
    assert probes.replicas_running() == 2
    assert actions.continue_replicas() == {"service": "model", "continued": [name]}
    assert poll(lambda: probes.replica_states()[name] == "ready")

    terminated = actions.terminate_replicas(count=1, seed=3)
    assert terminated["action"] == "terminate"
    assert terminated["parameters"]["signal"] == "SIGTERM"
    assert probes.replica_states()[terminated["targets"][0]["name"]] == "dead"
    assert [r.action for r, _ in announced] == ["stop", "terminate"]
    assert all(all(alive.values()) for _, alive in announced)


def test_restart_replicas_undoes_kill_and_stop_on_the_same_ports(sandbox: Sandbox) -> None:
    before = {r.name: r for r in sandbox.replicas("model")}
    killed = actions.kill_replicas(count=1, seed=5)["targets"][0]["name"]
    paused = actions.stop_replicas(count=1, seed=5)["targets"][0]["name"]
    out = actions.restart_replicas(service="model", timeout=30)
    assert out["restarted"] == [killed] and out["continued"] == [paused]
    assert probes.replica_states() == {name: "ready" for name in before}
    after = {r.name: r for r in sandbox.replicas("model")}
    assert after[killed].port == before[killed].port and after[killed].pid != before[killed].pid
    assert after[paused].pid == before[paused].pid

    nothing = actions.restart_replicas(service="model")
    assert nothing["restarted"] == [] and nothing["continued"] == []
