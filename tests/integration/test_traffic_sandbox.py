"""drivers.model.traffic against real sandbox replicas (no monitoring): a dry run starts nothing, traffic and
feedback flow to every replica through its proxy and are counted per replica, the schedule sends rate x
duration calls and ends by itself, stop_traffic ends exactly that generator (idempotently, never a
reused pid) and ``mlchaos recover``'s undo finds it from the record announced before it started."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.model import actions, traffic
from mlchaos.journal.reader import is_automatic
from mlchaos.safety.changes import ChangeRecord
from mlchaos.safety.undo import undo_record
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Sandbox
from tests.support.polling import wait_until


@pytest.fixture
def started(sandbox: Sandbox) -> Iterator[list[dict]]:
    """The records of the generators a test starts; every one is stopped afterwards."""
    records: list[dict] = []
    yield records
    for record in records:
        traffic.stop_traffic(**record["undo"]["arguments"])


def _answers(record: dict) -> dict:
    return traffic.traffic_stats(record["parameters"]["stats_path"])["answers"]


def test_a_dry_run_resolves_the_replicas_and_starts_nothing(sandbox):
    record = traffic.start_traffic(rate=50, duration=30, dry_run=True)
    replicas = {r.name: r for r in sandbox.recorded()}
    assert record["dry_run"] is True and record["driver"] == "model" and record["action"] == "start_traffic"
    assert record["population"] == sorted(replicas) == [t["name"] for t in record["targets"]]
    for target in record["targets"]:
        replica = replicas[target["name"]]
        assert target["kind"] == "traffic" and target["details"]["instance"] == f"{replica.host}:{replica.port}"
        assert target["details"]["traffic_url"] == replica.proxy_url != replica.url
    arguments = record["undo"]["arguments"]
    assert record["undo"]["func"] == traffic.STOP_FUNC and arguments["pid"] is None
    assert isinstance(record["parameters"]["seed"], int), "the drawn seed is recorded"
    assert traffic.find_generators(arguments["token"]) == []
    assert not Path(arguments["stats_path"]).exists() and not Path(record["parameters"]["log_path"]).exists()
    direct = traffic.start_traffic(via_proxy=False, dry_run=True)
    assert {t["details"]["traffic_url"] for t in direct["targets"]} == {r.url for r in replicas.values()}


def test_traffic_and_feedback_flow_to_every_replica_until_stopped(sandbox, started):
    record = traffic.start_traffic(rate=30, duration=120, seed=1)
    started.append(record)
    arguments = record["undo"]["arguments"]
    pid = arguments["pid"]
    assert record["parameters"]["pid"] == pid and traffic.is_generator(pid, arguments["token"], arguments["start_time"])
    assert os.getsid(pid) == pid, "detached: a session of its own"

    def flowing() -> bool:
        answers = _answers(record)
        return all(by["infer"].get("200", 0) >= 5 and by["feedback"].get("200", 0) >= 5 for by in answers.values())

    wait_until(flowing, timeout=30, what="infer and feedback answered 200 on every replica")
    assert traffic.traffic_answers("5xx", stats_path=arguments["stats_path"]) == 0
    assert traffic.traffic_answers("error", endpoint="feedback", stats_path=arguments["stats_path"]) == 0

    result = traffic.stop_traffic(**arguments)
    assert result["stopped"] == [pid] and result["killed"] == [] and result["already"] == []
    final = result["stats"]
    assert final["finished"] and final["ended"] == "signal" and final["sent"] >= 15
    assert not traffic.is_generator(pid, arguments["token"])
    again = traffic.stop_traffic(**arguments)
    assert again["already"] == [pid] and again["stopped"] == [] and again["stats"] == final


def test_the_schedule_sends_rate_times_duration_calls_then_ends_by_itself(sandbox, started):
    record = traffic.start_traffic(rate=40, duration=2, feedback=False, seed=2)
    started.append(record)
    arguments = record["undo"]["arguments"]
    stats_path = arguments["stats_path"]
    wait_until(lambda: traffic.traffic_stats(stats_path)["finished"], timeout=20, what="the generator's end")
    final = traffic.traffic_stats(stats_path)
    assert final["ended"] == "ttl"
    assert final["sent"] + final["skipped"] == 80, "calls due in [0, 2 s) at 40/s"
    assert sum(by["infer"].get("200", 0) for by in final["answers"].values()) == final["sent"]
    assert all(by["feedback"] == {} for by in final["answers"].values())
    wait_until(lambda: not traffic.is_generator(arguments["pid"], arguments["token"]), timeout=10,
               what="the generator's exit")
    assert traffic.stop_traffic(**arguments)["already"] == [arguments["pid"]]


def test_answers_are_counted_per_replica_so_a_fault_shows_on_the_replica_hit(sandbox, started):
    fault = actions.make_not_ready(count=1, seed=4)
    (hit,) = [t["name"] for t in fault["targets"]]
    try:
        record = traffic.start_traffic(rate=30, duration=120, seed=3)
        started.append(record)
        stats_path = record["undo"]["arguments"]["stats_path"]

        def counted() -> bool:
            answers = _answers(record)
            return answers[hit]["infer"].get("503", 0) >= 3 and all(
                by["infer"].get("200", 0) >= 3 for name, by in answers.items() if name != hit)

        wait_until(counted, timeout=30, what=f"503 answers from {hit}, 200 from the others")
        assert traffic.traffic_answers("5xx", replica=hit, stats_path=stats_path) >= 3
        assert traffic.traffic_answers("200", replica=hit, stats_path=stats_path) == 0
        assert traffic.traffic_answers("any", endpoint="feedback", replica=hit, stats_path=stats_path) == 0
        assert all(traffic.traffic_answers("5xx", replica=name, stats_path=stats_path) == 0
                   for name in _answers(record) if name != hit)
        assert "503" in traffic.traffic_stats(stats_path)["last_error"]["status"]
    finally:
        actions.clear_model_faults()


def test_recover_stops_the_generator_from_the_record_announced_before_its_start(sandbox, started):
    record = traffic.start_traffic(rate=10, duration=120, seed=5)
    started.append(record)
    pid, token = record["parameters"]["pid"], record["parameters"]["token"]
    announced = dict(record, undo={"func": record["undo"]["func"],
                                   "arguments": {**record["undo"]["arguments"], "pid": None, "start_time": None}})
    result = undo_record(ChangeRecord.from_dict(announced), timeout=30)
    assert result.status == "undone", result.error
    assert result.output["stopped"] == [pid] and result.output["stats"]["ended"] == "signal"
    assert not traffic.is_generator(pid, token)


def test_a_pid_that_is_not_that_generator_is_never_signalled(sandbox, started):
    record = traffic.start_traffic(rate=10, duration=120, seed=6)
    started.append(record)
    arguments = record["undo"]["arguments"]
    server = sandbox.recorded()[0]
    other = traffic.stop_traffic(pid=server.pid, token=arguments["token"], stats_path=arguments["stats_path"])
    assert other["already"] == [server.pid] and procs.is_alive(server.pid, server.name)
    reused = traffic.stop_traffic(**{**arguments, "start_time": arguments["start_time"] + 1})
    assert reused["already"] == [arguments["pid"]] and reused["stopped"] == []
    assert traffic.is_generator(arguments["pid"], arguments["token"], arguments["start_time"]), "left running"
    assert traffic.stop_traffic(**arguments)["stopped"] == [arguments["pid"]]


def _experiment(tmp_path: Path) -> Path:
    path = tmp_path / "traffic.json"
    path.write_text(json.dumps({
        "title": "traffic flows while nothing is wrong", "description": "start_traffic in a run",
        "method": [
            {"type": "action", "name": "start-traffic", "pauses": {"after": 2},
             "provider": {"type": "python", "module": "drivers.model.traffic", "func": "start_traffic",
                          "arguments": {"rate": 20, "duration": 60, "seed": 7}}},
            {"type": "probe", "name": "answered-200", "tolerance": {"type": "range", "range": [10, 10000]},
             "provider": {"type": "python", "module": "drivers.model.traffic", "func": "traffic_answers",
                          "arguments": {"status": "200"}}},
            {"type": "probe", "name": "no-5xx", "tolerance": 0,
             "provider": {"type": "python", "module": "drivers.model.traffic", "func": "traffic_answers",
                          "arguments": {"status": "5xx"}}},
        ],
        "extensions": [{"name": "mlchaos", "recovery": [
            {"type": "probe", "name": "still-flowing", "pauses": {"after": 1},
             "tolerance": {"type": "range", "range": [10, 10000]},
             "provider": {"type": "python", "module": "drivers.model.traffic", "func": "traffic_answers",
                          "arguments": {"status": "200"}}}]}]}))
    return path


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "plan"])
def test_a_run_s_probes_read_its_generator_and_the_safety_net_stops_it(sandbox, tmp_path, dry_run):
    from mlchaos.engine.console import Console
    from mlchaos.engine.runner import Runner
    from mlchaos.experiment.loader import load_document
    from mlchaos.experiment.models import build_experiment
    from mlchaos.experiment.validation import validate

    doc = load_document(_experiment(tmp_path))
    assert validate(doc) == []
    journal_path = tmp_path / "journal.json"
    out = io.StringIO()
    Runner(build_experiment(doc), None, journal_path, Console(out, tty=False), dry_run=dry_run).run()
    journal = json.loads(journal_path.read_text())
    (record,) = [c for c in journal["mlchaos"]["changes"] if c["action"] == "start_traffic"]
    assert [r["status"] for r in journal["run"]] == ["succeeded"] * 3, out.getvalue()
    if dry_run:  # planned: the probes say what they would read, nothing was started
        assert record["dry_run"] and journal["run"][2]["output"]["stats_path"] == record["parameters"]["stats_path"]
        assert not Path(record["parameters"]["stats_path"]).exists()
        assert traffic.find_generators(record["parameters"]["token"]) == []
        return
    assert journal["status"] == "completed", out.getvalue()
    assert journal["run"][1]["output"] >= 10 and journal["run"][2]["output"] == 0
    (undo,) = [r for r in journal["rollbacks"] if is_automatic(r)]
    assert undo["status"] == "succeeded" and undo["output"]["stopped"], undo
    (recovered,) = journal["mlchaos"]["recovery"]["probes"]
    assert record["undo_after_recovery"] and recovered["tolerance_met"]
    answered = sum(by["infer"].get("200", 0) for by in undo["output"]["stats"]["answers"].values())
    assert answered > recovered["output"], "the safety net stopped the traffic after the recovery check"
    assert not traffic.find_generators(record["parameters"]["token"])


@pytest.mark.slow  # about 11 s on a 2-core machine
def test_a_hung_replica_costs_only_its_own_workers(sandbox, started):
    hung = sandbox.recorded()[0]
    os.kill(hung.pid, signal.SIGSTOP)
    try:
        record = traffic.start_traffic(rate=30, duration=120, timeout=5, feedback=False, seed=8)
        started.append(record)
        arguments = record["undo"]["arguments"]

        def starved() -> bool:  # every worker of the hung replica waits on it: its next calls are skipped
            return traffic.traffic_stats(arguments["stats_path"])["skipped_per_replica"][hung.name] >= 3

        wait_until(starved, timeout=30, what=f"calls to the hung {hung.name} skipped")
        stats = traffic.traffic_stats(arguments["stats_path"])
        assert stats["answers"][hung.name]["infer"].get("200", 0) == 0
        others = [by["infer"].get("200", 0) for name, by in stats["answers"].items() if name != hung.name]
        assert min(others) >= 30, f"the other replicas kept their share: {stats}"
        assert all(n == 0 for name, n in stats["skipped_per_replica"].items() if name != hung.name)
        result = traffic.stop_traffic(**arguments)
        assert result["stopped"] == [arguments["pid"]], "SIGTERM ends it with workers stuck in calls"
        assert result["stats"]["in_flight"] > 0, "the unanswered calls are reported"
    finally:
        os.kill(hung.pid, signal.SIGCONT)
