"""drivers.process against a real 3-replica sandbox: selection, announce-before-signal, undo,
dry runs, idempotent undos and the pause's time to live."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from drivers.process import actions, probes
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.safety import changes
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Sandbox
from tests.support.polling import poll


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
    (target,) = record.targets
    assert record.undo == {  # exactly the replica that was hit
        "func": "drivers.process.actions.restart_replicas",
        "arguments": {"service": "model", "replicas": [target.name]},
    }
    assert record.environment == changes.local_environment()
    assert record.population == ["model-0", "model-1", "model-2"]  # every live replica it chose from
    assert target.kind == "process" and set(target.details) == {"pid", "port", "service", "url", "instance"}

    (announced_record, alive_then), = announced
    assert announced_record.targets == record.targets
    assert alive_then == {target.details["pid"]: True}
    assert not procs.is_alive(target.details["pid"])  # gone on return, no waiting needed
    assert probes.replicas_running("model") == 2
    assert probes.replica_states("model")[target.name] == "dead"

    again = actions.kill_replicas(service="model", count=1, seed=7)
    assert again["targets"][0]["name"] != target.name  # only live replicas are candidates
    assert target.name not in again["population"] and len(again["population"]) == 2


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
    stopped = actions.stop_replicas(count=1, seed=3, ttl=None)
    name = stopped["targets"][0]["name"]
    assert stopped["action"] == "stop" and stopped["parameters"]["signal"] == "SIGSTOP"
    assert probes.replica_states()[name] == "stopped"
    assert probes.replicas_running() == 2
    assert actions.continue_replicas() == {"service": "model", "continued": [name],
                                           "already": sorted({"model-0", "model-1", "model-2"} - {name})}
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
    paused = actions.stop_replicas(count=1, seed=5, ttl=None)["targets"][0]["name"]
    out = actions.restart_replicas(service="model", timeout=30)
    assert out["restarted"] == [killed] and out["continued"] == [paused]
    assert probes.replica_states() == {name: "ready" for name in before}
    after = {r.name: r for r in sandbox.replicas("model")}
    assert after[killed].port == before[killed].port and after[killed].pid != before[killed].pid
    assert after[paused].pid == before[paused].pid

    nothing = actions.restart_replicas(service="model")
    assert nothing["restarted"] == [] and nothing["continued"] == []
    assert nothing["already"] == ["model-0", "model-1", "model-2"]


# -- dry run ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["kill_replicas", "terminate_replicas", "stop_replicas"])
def test_dry_run_resolves_the_targets_and_changes_nothing(sandbox: Sandbox, announced: list, fault: str) -> None:
    before = {r.name: r.pid for r in sandbox.replicas("model")}
    dry = getattr(actions, fault)(count=2, seed=21, dry_run=True)
    assert [r.dry_run for r, _ in announced] == [True]  # announced like a real one, marked as a dry run
    assert dry["dry_run"] is True and len(dry["targets"]) == 2
    assert all(t["details"]["pid"] == before[t["name"]] for t in dry["targets"])  # resolved against the live state
    assert "watchdog_pid" not in dry["undo"]["arguments"]  # no watchdog either
    assert probes.replica_states() == {name: "ready" for name in before}
    assert {r.name: r.pid for r in sandbox.replicas("model")} == before
    real = getattr(actions, fault)(count=2, seed=21, ttl=None) if fault == "stop_replicas" else \
        getattr(actions, fault)(count=2, seed=21)
    try:
        assert sorted(real) == sorted(dry)  # the same record shape
        assert real["targets"] == dry["targets"] and real["undo"] == dry["undo"]
        assert (real["environment"], real["population"]) == (dry["environment"], dry["population"])
    finally:
        actions.restart_replicas()


# -- idempotent undo ----------------------------------------------------------------------------


def test_every_undo_can_run_again_and_changes_nothing(sandbox: Sandbox) -> None:
    killed = actions.kill_replicas(count=1, seed=2)
    first = actions.restart_replicas(**killed["undo"]["arguments"])
    assert first["restarted"] == [killed["targets"][0]["name"]] and first["already"] == []
    pids = {r.name: r.pid for r in sandbox.replicas("model")}
    for _ in range(2):  # `mlchaos recover` may call it again, twice
        again = actions.restart_replicas(**killed["undo"]["arguments"])
        assert (again["restarted"], again["continued"], again["already"]) == ([], [], first["restarted"])
        assert {r.name: r.pid for r in sandbox.replicas("model")} == pids

    stopped = actions.stop_replicas(count=1, seed=2, ttl=None)
    name = stopped["targets"][0]["name"]
    assert stopped["undo"] == {"func": "drivers.process.actions.continue_replicas",
                               "arguments": {"service": "model", "replicas": [name]}}
    assert actions.continue_replicas(**stopped["undo"]["arguments"])["continued"] == [name]
    for _ in range(2):
        assert actions.continue_replicas(**stopped["undo"]["arguments"]) == {
            "service": "model", "continued": [], "already": [name]}
    # the kill's undo after the pause was undone (and the pause's after the kill's) changes nothing either
    assert actions.restart_replicas(**stopped["undo"]["arguments"])["already"] == [name]
    assert probes.replica_states() == {n: "ready" for n in pids}
    assert {r.name: r.pid for r in sandbox.replicas("model")} == pids


def test_an_undo_names_only_its_own_replicas(sandbox: Sandbox) -> None:
    killed = actions.kill_replicas(count=1, seed=4)["targets"][0]["name"]
    other = actions.kill_replicas(count=1, seed=4)
    out = actions.restart_replicas(**other["undo"]["arguments"])
    assert out["restarted"] == [other["targets"][0]["name"]]
    assert probes.replica_states()[killed] == "dead"  # not this undo's business
    with pytest.raises(TargetNotFound, match="model-9"):
        actions.restart_replicas(replicas=["model-9"])


# -- time to live -------------------------------------------------------------------------------


def test_a_pause_with_a_ttl_resumes_by_itself(sandbox: Sandbox) -> None:
    started = time.monotonic()
    record = actions.stop_replicas(count=1, seed=8, ttl=2)
    name = record["targets"][0]["name"]
    watchdog = record["undo"]["arguments"]["watchdog_pid"]
    assert record["parameters"]["ttl"] == 2 and record["parameters"]["watchdog_pid"] == watchdog
    assert probes.replica_states()[name] == "stopped"
    # no rollback: the detached watchdog resumes it
    assert poll(lambda: probes.replica_states()[name] == "ready", timeout=10), "the watchdog did not resume it"
    assert time.monotonic() - started >= 1.9
    assert poll(lambda: procs.proc_state(watchdog) in (None, "Z"), timeout=5), "the watchdog exits when done"
    # the rollback, run afterwards, finds nothing to do
    assert actions.continue_replicas(**record["undo"]["arguments"])["already"] == [name]


def test_the_rollback_stops_the_watchdog_with_or_without_its_pid(sandbox: Sandbox) -> None:
    record = actions.stop_replicas(count=1, seed=9, ttl=60)
    watchdog = record["undo"]["arguments"]["watchdog_pid"]
    assert procs.proc_state(watchdog) not in (None, "Z")
    assert actions.continue_replicas(**record["undo"]["arguments"])["continued"] == [record["targets"][0]["name"]]
    assert poll(lambda: procs.proc_state(watchdog) in (None, "Z"), timeout=5)

    # an experiment's rollback by service (or a journal record announced before the watchdog started)
    # does not know the pid: the watchdog is found by its command line
    two = actions.stop_replicas(count=2, seed=9, ttl=60)
    watchdog = two["undo"]["arguments"]["watchdog_pid"]
    one = actions.continue_replicas(replicas=two["undo"]["arguments"]["replicas"][:1])
    assert len(one["continued"]) == 1
    assert procs.proc_state(watchdog) not in (None, "Z"), "one of its replicas is still paused: it keeps running"
    assert len(actions.restart_replicas()["continued"]) == 1
    assert poll(lambda: procs.proc_state(watchdog) in (None, "Z"), timeout=5)
    with pytest.raises(DriverError, match="ttl"):
        actions.stop_replicas(ttl=0)
