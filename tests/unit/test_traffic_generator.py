"""drivers.model.traffic without a sandbox: argument checks, the bodies against the server's own parsers,
the generator's schedule and counts on a hand-moved clock, the stats probes, and the identity check that
keeps a reused pid from ever being signalled (on a fake /proc)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from drivers.model import traffic
from drivers.model.traffic_process import (
    Job,
    Plan,
    Traffic,
    feedback_body,
    infer_body,
    run,
    workers_for,
)
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.lib import procfs
from mlchaos.safety import run_context
from mlchaos.safety.changes import ChangeRecord
from mlchaos.sandbox import routes
from mlchaos.sandbox.model import parse_infer_request

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(("arguments", "named"), [
    ({"service": ""}, "service"),
    ({"rate": 0}, "rate"),
    ({"rate": 501}, "rate"),
    ({"rate": True}, "rate"),
    ({"duration": 0}, "duration"),
    ({"duration": 3601}, "duration"),
    ({"duration": "60"}, "duration"),
    ({"feedback": "yes"}, "feedback"),
    ({"via_proxy": 1}, "via_proxy"),
    ({"feedback_every": 0}, "feedback_every"),
    ({"feedback_every": 1.5}, "feedback_every"),
    ({"rows": "test"}, "rows"),
    ({"batch": 0}, "batch"),
    ({"batch": 101}, "batch"),
    ({"model": "../iris"}, "model"),
    ({"seed": "1"}, "seed"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": 31}, "timeout"),
])
def test_every_argument_is_checked_before_anything_is_read(arguments, named):
    with pytest.raises(DriverError, match=f"^{named} must"):
        traffic.start_traffic(**arguments, dry_run=True)


STACK = ["http://127.0.0.1:18000", "http://127.0.0.1:18001", "http://127.0.0.1:18002"]


@pytest.mark.parametrize(("arguments", "message"), [
    ({"target": "docker"}, "^target must be one of sandbox, url"),
    ({"target": "url"}, "^urls must be a non-empty list"),
    ({"target": "url", "urls": "http://127.0.0.1:18000"}, "^urls must be a non-empty list"),
    ({"target": "url", "urls": ["ftp://127.0.0.1"]}, "^urls: 'ftp://127.0.0.1' is not"),
    ({"target": "url", "urls": [STACK[0], STACK[0] + "/"]}, "^urls: .* is given twice"),
    ({"urls": STACK}, "^urls name servers by URL: give them with target url, not sandbox"),
    ({"names": ["model-0"]}, "^names name the urls: give them with target url, not sandbox"),
    ({"target": "url", "urls": STACK, "names": ["model-0", "model-1"]}, "^names must be a list of 3 replica"),
    ({"target": "url", "urls": STACK, "names": "model-0"}, "^names must be a list of 3 replica"),
    ({"target": "url", "urls": STACK, "names": ["model-0", "", "model-2"]}, "^names must be a list of 3 replica"),
    ({"target": "url", "urls": STACK, "names": ["model-0", "model-0", "model-2"]}, "^names: 'model-0' is given twice"),
    ({"target": "url", "urls": ["http://a.test:80/x", "http://a.test/y"]}, "^names: the urls share host:port"),
    ({"target": "url", "urls": STACK, "via_proxy": False}, "^via_proxy false picks a sandbox replica's own URL"),
    ({"target": "url", "urls": ["http://a.test:80", "http://b.test:80"]}, "^urls: one traffic record names one env"),
])
def test_where_the_traffic_goes_is_checked_before_anything_is_read(arguments, message):
    with pytest.raises(DriverError, match=message):
        traffic.start_traffic(**arguments, dry_run=True)


def test_traffic_to_servers_by_url_names_them_and_their_environment():
    record = traffic.start_traffic(target="url", urls=[u + "/" for u in STACK], names=["model-0", "model-1", "model-2"],
                                   rate=30, seed=3, dry_run=True)
    assert record["dry_run"] and record["undo_after_recovery"] and record["undo"]["func"] == traffic.STOP_FUNC
    assert [(t["kind"], t["name"]) for t in record["targets"]] == [("traffic", f"model-{i}") for i in range(3)]
    assert [t["details"] for t in record["targets"]] == [
        {"url": url, "traffic_url": url, "instance": f"model-{i}:8000"} for i, url in enumerate(STACK)], (
        "the compose stack's published ports: the instance its Prometheus labels the replica with")
    assert record["environment"] == "http://127.0.0.1", "several ports of one host"
    assert record["population"] == ["model-0", "model-1", "model-2"]
    assert record["parameters"]["target"] == "url" and record["parameters"]["urls"] == STACK
    assert record["parameters"]["names"] == ["model-0", "model-1", "model-2"]
    one = traffic.start_traffic(target="url", urls=["http://serving.test:8080"], dry_run=True)
    assert one["environment"] == "http://serving.test:8080", "one server: its origin, as the model actions name it"
    (target,) = one["targets"]
    assert target["name"] == "serving.test:8080", "no names: host:port"
    assert "instance" not in target["details"], "not known how its Prometheus (if any) labels it"


def test_no_sandbox_is_no_target():
    with pytest.raises(TargetNotFound, match="no replicas of service 'model'"):
        traffic.start_traffic(dry_run=True)


def test_the_bodies_are_what_the_server_parses():
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    body = infer_body("abc-1", rows)
    assert body["id"] == "abc-1" and body["inputs"][0]["shape"] == [2, 4]
    unnamed = infer_body(None, rows)  # a client that sends no labels names no call: nothing awaits feedback
    assert "id" not in unnamed and unnamed["inputs"] == body["inputs"]
    assert parse_infer_request(body) == rows
    feedback = feedback_body("abc-1", [0, 2])
    assert feedback["id"] == "abc-1" and feedback["inputs"][0]["datatype"] == "INT64"
    assert routes.parse_feedback(feedback) == [0, 2]


def _plan(**changes) -> Plan:
    values = {"token": TOKEN, "replicas": [["a", "http://a"], ["b", "http://b"], ["c", "http://c"]],
              "rows": [[float(i), 1.0, 2.0, 3.0] for i in range(10)], "labels": [i % 3 for i in range(10)],
              "rate": 10.0, "duration": 1.0, "batch": 1, "feedback": True, "feedback_every": 1, "model": "iris",
              "seed": 7, "timeout": 2.0, "stats_path": "/nonexistent"}
    return Plan(**{**values, **changes})


class Clock:
    """Time moves only when the generator sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def _run(plan: Plan, post, stopped=lambda: False, submit=None):  # noqa: ANN001, ANN202
    clock, writes = Clock(), []
    gen = Traffic(plan, post, wall=lambda: 1.0e9 + clock.now)

    def inline(job: Job) -> bool:
        gen.call(job)
        return True

    final = run(gen, stopped, writes.append, submit or inline, clock=clock, sleep=clock.sleep)
    return gen, final, writes


def test_the_schedule_sends_rate_times_duration_calls_round_robin_then_ends_by_its_ttl():
    posted = []

    def post(url, body, timeout):  # noqa: ANN001, ANN202
        posted.append(url)
        return "200", None

    _, final, writes = _run(_plan(rate=10.0, duration=1.0), post)
    assert writes[0]["sent"] == 0 and not writes[0]["finished"], "the first stats come before the first call"
    assert final == writes[-1] and final["finished"] and final["ended"] == "ttl"
    assert final["sent"] == 10 and final["skipped"] == 0 and final["in_flight"] == 0
    assert final["skipped_per_replica"] == {"a": 0, "b": 0, "c": 0}
    assert {name: by["infer"] for name, by in final["answers"].items()} == {"a": {"200": 4}, "b": {"200": 3},
                                                                           "c": {"200": 3}}
    infers = [u for u in posted if u.endswith("/infer")]
    assert infers[:4] == ["http://a/v2/models/iris/infer", "http://b/v2/models/iris/infer",
                          "http://c/v2/models/iris/infer", "http://a/v2/models/iris/infer"]
    assert len(posted) == 20, "feedback after every infer answered 200"
    assert json.loads(json.dumps(final)) == final, "the stats are plain JSON"


def test_feedback_goes_after_every_nth_200_of_each_replica_with_the_infer_id_and_true_labels():
    calls = []

    def post(url, body, timeout):  # noqa: ANN001, ANN202
        calls.append((url, body))
        return "200", None

    plan = _plan(rate=18.0, duration=1.0, feedback_every=3, batch=2)  # 6 infer calls per replica
    _, final, _ = _run(plan, post)
    feedbacks = [(i, body) for i, (url, body) in enumerate(calls) if url.endswith("/feedback")]
    assert len(feedbacks) == 6
    assert {name: by["feedback"] for name, by in final["answers"].items()} == dict.fromkeys("abc", {"200": 2}), (
        "counted per replica: with feedback_every 3 and 3 replicas, not all of it to one replica")
    for index, body in feedbacks:
        infer = calls[index - 1][1]
        assert body["id"] == infer["id"] and body["id"].startswith(TOKEN[:12])
        rows = infer["inputs"][0]["data"]
        truth = [plan.labels[plan.rows.index(rows[i:i + 4])] for i in (0, 4)]
        assert body["inputs"][0]["data"] == truth
    ids = [body["id"] for url, body in calls if url.endswith("/infer")]
    assert len(set(ids)) == len(ids) == 18


def test_traffic_without_feedback_names_no_call():
    """Its predictions are not awaiting labels: ModelFeedbackAbsent counts only those of named calls."""
    calls = []

    def post(url, body, timeout):  # noqa: ANN001, ANN202
        calls.append((url, body))
        return "200", None

    _run(_plan(rate=6.0, duration=1.0, feedback=False), post)
    assert calls and all(url.endswith("/infer") and "id" not in body for url, body in calls)


def test_failures_are_counted_by_status_or_exception_and_never_stop_the_traffic():
    class ReadTimeout(Exception):
        pass

    def post(url, body, timeout):  # noqa: ANN001, ANN202
        if url.startswith("http://b"):
            return "503", "503: model not ready"
        if url.startswith("http://c"):
            raise ReadTimeout("read timed out")
        return "200", None

    _, final, _ = _run(_plan(rate=30.0, duration=1.0), post)
    assert final["sent"] == 30
    assert final["answers"]["a"] == {"infer": {"200": 10}, "feedback": {"200": 10}}
    assert final["answers"]["b"] == {"infer": {"503": 10}, "feedback": {}}, "no feedback for an infer not answered 200"
    assert final["answers"]["c"] == {"infer": {"ReadTimeout": 10}, "feedback": {}}
    assert final["last_error"]["replica"] in ("b", "c") and final["last_error"]["endpoint"] == "infer"


def test_a_stop_ends_the_traffic_early_and_calls_no_worker_could_take_are_skipped():
    refused = []

    def busy(job: Job) -> bool:  # every worker busy: the call is refused
        refused.append(job)
        return False

    _, final, _ = _run(_plan(rate=10.0, duration=60.0), lambda *a: ("200", None),
                       stopped=lambda: len(refused) >= 5, submit=busy)
    assert final["ended"] == "signal" and final["finished"]
    assert final["sent"] == 0 and final["skipped"] == 5
    assert final["skipped_per_replica"] == {"a": 2, "b": 2, "c": 1}


def test_the_seed_repeats_the_rows_and_the_labels_are_the_rows_own():
    plan = _plan(batch=3)
    first, second = Traffic(plan, lambda *a: ("200", None)), Traffic(plan, lambda *a: ("200", None))
    jobs = [first.job(i) for i in range(20)]
    assert jobs == [second.job(i) for i in range(20)]
    assert {j.replica for j in jobs} == {"a", "b", "c"}
    for job in jobs:
        assert [plan.labels[plan.rows.index(r)] for r in job.rows] == job.labels
    assert [j.rows for j in jobs] != [Traffic(_plan(batch=3, seed=8), first.post).job(i).rows for i in range(20)]


def test_workers_are_bounded():
    assert workers_for(0.1, 0.1) == 2
    assert workers_for(10, 2) == 21
    assert workers_for(500, 30) == 32


# -- the stats probes --------------------------------------------------------------------


def _stats_file(tmp_path: Path) -> str:
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"sent": 9, "answers": {
        "model-0": {"infer": {"200": 5, "503": 1}, "feedback": {"200": 5}},
        "model-1": {"infer": {"200": 1, "ConnectionError": 2}, "feedback": {"500": 1}}}}))
    return str(path)


@pytest.mark.parametrize(("status", "endpoint", "replica", "count"), [
    ("5xx", "infer", None, 1), ("200", "infer", None, 6), ("2xx", "infer", "model-1", 1), ("error", "infer", None, 2),
    ("any", "infer", None, 9), ("5xx", "feedback", None, 1), ("503", "infer", "model-1", 0),
])
def test_answers_are_counted_by_status_endpoint_and_replica(tmp_path, status, endpoint, replica, count):
    assert traffic.traffic_answers(status, endpoint, replica, _stats_file(tmp_path)) == count


def test_the_answer_probe_checks_its_arguments(tmp_path):
    path = _stats_file(tmp_path)
    with pytest.raises(DriverError, match="^status must"):
        traffic.traffic_answers("5x", stats_path=path)
    with pytest.raises(DriverError, match="^endpoint must"):
        traffic.traffic_answers(endpoint="health", stats_path=path)
    with pytest.raises(TargetNotFound, match="not to replica 'model-7'"):
        traffic.traffic_answers(replica="model-7", stats_path=path)
    with pytest.raises(DriverError, match="no traffic stats"):
        traffic.traffic_stats(str(tmp_path / "missing.json"))


def test_without_a_path_the_stats_are_those_of_the_run_s_latest_generator(tmp_path):
    with pytest.raises(DriverError, match="give stats_path"):
        traffic.traffic_stats()
    path = _stats_file(tmp_path)
    records = [ChangeRecord("model", "start_traffic", [], parameters={"stats_path": path}),
               ChangeRecord("model", "start_traffic", [], parameters={"stats_path": "/planned"}, dry_run=True),
               ChangeRecord("model", "nan_outputs", [])]
    token = run_context.activate(run_context.RunContext(changes=records))
    try:
        assert traffic.traffic_stats()["sent"] == 9, "a planned generator is not the one that runs"
        assert traffic.traffic_answers("200", replica="model-1") == 1
        planned = traffic.traffic_answers("5xx", dry_run=True)
        assert planned == {"dry_run": True, "stats_path": "/planned", "status": "5xx", "endpoint": "infer",
                           "replica": None}, "a plan reads nothing: it names the planned generator's stats"
    finally:
        run_context.deactivate(token)


# -- identity: a reused pid is never signalled ---------------------------------------------


def _fake_process(proc: Path, pid: int, argv: list[str], start: int, state: str = "S") -> None:
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    rest = [state] + ["0"] * 18 + [str(start)] + ["0"] * 10
    (proc / str(pid) / "stat").write_text(f"{pid} (python3 (x) y) {' '.join(rest)}\n")


GENERATOR = ["/usr/bin/python3", "-m", "drivers.model.traffic_process", "--token", TOKEN, "--config", "/x.json"]


@pytest.fixture
def fake_proc(tmp_path, monkeypatch) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    monkeypatch.setattr(procfs, "PROC", proc)
    return proc


def test_only_a_live_generator_with_the_token_and_start_time_is_ours(fake_proc):
    _fake_process(fake_proc, 10, GENERATOR, 555)
    _fake_process(fake_proc, 11, GENERATOR[:4] + ["f" * 32] + GENERATOR[5:], 555)
    _fake_process(fake_proc, 12, ["/usr/bin/python3", "-m", "mlchaos.sandbox.model_server", TOKEN], 555)
    _fake_process(fake_proc, 13, GENERATOR, 555, state="Z")
    assert procfs.start_time(10) == 555
    assert traffic.is_generator(10, TOKEN) and traffic.is_generator(10, TOKEN, 555)
    assert not traffic.is_generator(10, TOKEN, 556), "same pid, other start time: a reused pid"
    assert not traffic.is_generator(11, TOKEN), "another generator"
    assert not traffic.is_generator(12, TOKEN), "not a generator"
    assert not traffic.is_generator(13, TOKEN), "a zombie has ended"
    assert not traffic.is_generator(14, TOKEN), "gone"
    assert traffic.find_generators(TOKEN) == [10], "found by its token alone (a record journaled before the start)"


def test_stop_never_signals_a_reused_pid_and_says_already(fake_proc, monkeypatch, tmp_path):
    _fake_process(fake_proc, 10, ["/usr/bin/python3", "-m", "some.other.program"], 999)
    _fake_process(fake_proc, 11, GENERATOR, 1000)  # the generator's command line, another start time
    signalled = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: signalled.append((pid, sig)))
    stats = tmp_path / "final.json"
    stats.write_text(json.dumps({"finished": True, "ended": "ttl"}))
    for pid, start in ((10, 500), (11, 500)):
        result = traffic.stop_traffic(pid=pid, token=TOKEN, start_time=start, stats_path=str(stats))
        assert result["already"] == [pid] and result["stopped"] == [] and result["killed"] == []
        assert result["stats"] == {"finished": True, "ended": "ttl"}
    assert signalled == []


def test_stop_checks_its_arguments():
    with pytest.raises(DriverError, match="^token must"):
        traffic.stop_traffic(pid=10)
    with pytest.raises(DriverError, match="^pid must"):
        traffic.stop_traffic(pid=-1, token=TOKEN)
    with pytest.raises(DriverError, match="^start_time must"):
        traffic.stop_traffic(pid=10, token=TOKEN, start_time="5")
