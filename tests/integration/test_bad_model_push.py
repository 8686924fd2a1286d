"""Online accuracy and the bad-model push against real sandbox replicas: request ids echoed and matched
by feedback, the matched/correct counters, the loopback admin versions endpoint, push_bad_model with its
dry run and its idempotent undo, and the accuracy and drift of each defect as a client sees them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from drivers.model import actions, probes
from mlchaos.errors import DriverError
from mlchaos.sandbox import dataset
from mlchaos.sandbox.manager import Replica, Sandbox

T = 5.0


def metric(url: str, name: str) -> float:
    """The one series of `name` (labelled by model only) a replica exports."""
    text = requests.get(f"{url}/metrics", timeout=T).text
    match = re.search(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M)
    assert match, f"{name} not exported"
    return float(match.group(1))


def served(sandbox: Sandbox) -> dict[str, str]:
    out = {}
    for r in sandbox.replicas("model"):
        index = requests.post(r.url + "/v2/repository/index", json={}, timeout=T).json()
        out[r.name] = next(m["version"] for m in index if m["state"] == "READY")
    return out


def versions(r: Replica) -> list[str]:
    return [m["version"] for m in requests.post(r.url + "/v2/repository/index", json={}, timeout=T).json()]


def infer(url: str, rows: list[list[float]], request_id: str | None = None) -> requests.Response:
    body: dict = {"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}
    if request_id is not None:
        body["id"] = request_id
    return requests.post(f"{url}/v2/models/iris/infer", json=body, timeout=T)


def feedback(url: str, labels: list[int], request_id: str | None = None) -> dict:
    body: dict = {"inputs": [{"name": "truth", "shape": [len(labels)], "datatype": "INT64", "data": labels}]}
    if request_id is not None:
        body["id"] = request_id
    resp = requests.post(f"{url}/v2/models/iris/feedback", json=body, timeout=T)
    assert resp.status_code == 200, resp.text
    return resp.json()


def online_accuracy(url: str, tag: str) -> tuple[float, float]:
    """Send every holdout row with its own id, then its true label naming that id: (matched, correct) added."""
    rows, labels = dataset.holdout_split()
    before = metric(url, "model_feedback_matched_total"), metric(url, "model_feedback_correct_total")
    for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
        answer = infer(url, [row], f"{tag}-{i}")
        assert answer.status_code == 200 and answer.json()["id"] == f"{tag}-{i}"
        assert feedback(url, [label], f"{tag}-{i}")["matched"] == 1
    return (metric(url, "model_feedback_matched_total") - before[0],
            metric(url, "model_feedback_correct_total") - before[1])


@pytest.fixture
def clean(sandbox: Sandbox) -> Iterator[Sandbox]:
    yield sandbox
    for r in sandbox.replicas("model"):  # leave no pushed version nor fault behind
        assert requests.post(r.url + "/admin/reset", timeout=T).status_code == 200


def test_feedback_naming_an_infer_id_is_matched_once(clean: Sandbox) -> None:
    url = clean.replicas("model")[0].url
    rows, labels = dataset.holdout_split()
    matched, correct = metric(url, "model_feedback_matched_total"), metric(url, "model_feedback_correct_total")
    events = metric(url, "model_feedback_events_total")
    answer = infer(url, rows[:5], "batch-1").json()
    assert answer["id"] == "batch-1" and len(answer["outputs"][0]["data"]) == 5
    assert feedback(url, labels[:4], "batch-1")["matched"] == 0  # 4 labels for 5 rows: not matched
    assert feedback(url, labels[:5], "nobody")["matched"] == 0
    assert feedback(url, labels[:5]) == {"model_name": "iris", "accepted": 5, "matched": 0}
    assert feedback(url, labels[:5], "batch-1") == {"model_name": "iris", "accepted": 5, "matched": 5,
                                                     "id": "batch-1"}
    assert feedback(url, labels[:5], "batch-1")["matched"] == 0  # each id matched once
    assert metric(url, "model_feedback_events_total") - events == 24  # every label is still feedback
    assert metric(url, "model_feedback_matched_total") - matched == 5
    assert metric(url, "model_feedback_correct_total") - correct == sum(
        p == t for p, t in zip(answer["outputs"][0]["data"], labels[:5], strict=True))
    bad = requests.post(f"{url}/v2/models/iris/feedback", timeout=T,
                        json={"id": 5, "inputs": [{"name": "truth", "shape": [1], "datatype": "INT64", "data": [0]}]})
    assert bad.status_code == 400 and "'id' must be a string" in bad.json()["error"]


def test_the_admin_versions_endpoint(clean: Sandbox) -> None:
    r = clean.replicas("model")[0]
    push = {"version": "bad", "defect": "label_flipped"}
    first = requests.post(r.url + "/admin/versions", json=push, timeout=T)
    assert first.status_code == 200 and first.json()["created"] is True and first.json()["state"] == "UNAVAILABLE"
    assert requests.post(r.url + "/admin/versions", json=push, timeout=T).json()["created"] is False
    other = requests.post(r.url + "/admin/versions", json={**push, "defect": "random_weights"}, timeout=T)
    assert other.status_code == 409
    assert versions(r) == ["1", "2", "bad"] and served(clean)[r.name] == "2"
    load = requests.post(f"{r.url}/v2/repository/models/iris/load", json={"parameters": {"version": "bad"}},
                         timeout=T)
    assert load.status_code == 200 and metric(r.url, "model_info") == 1
    assert infer(r.url, [[5.1, 3.5, 1.4, 0.2]]).json()["model_version"] == "bad"
    assert requests.delete(r.url + "/admin/versions/bad", timeout=T).status_code == 409  # being served
    assert requests.delete(r.url + "/admin/versions/1", timeout=T).status_code == 409  # a release
    assert requests.delete(r.url + "/admin/versions/nope", timeout=T).status_code == 404
    reset = requests.post(r.url + "/admin/reset", timeout=T).json()
    assert reset["version"] == "2" and reset["removed"] == ["bad"] and versions(r) == ["1", "2"]


def test_a_dry_run_selects_and_records_but_pushes_nothing(clean: Sandbox) -> None:
    record = actions.push_bad_model(count=2, seed=11, dry_run=True)
    hit = [t["name"] for t in record["targets"]]
    assert record["dry_run"] is True and record["action"] == "push_bad_model" and len(hit) == 2
    assert record["parameters"]["previous"] == dict.fromkeys(hit, "2")
    assert record["undo"] == {"func": actions.RESTORE_PUSHED_FUNC, "arguments": {
        "service": "model", "replicas": hit, "versions": dict.fromkeys(hit, "2"), "model": "iris",
        "remove_version": "bad"}}
    assert all(versions(r) == ["1", "2"] for r in clean.replicas("model"))


def test_label_flipped_push_drops_accuracy_not_drift_and_rolls_back(clean: Sandbox) -> None:
    record = actions.push_bad_model(defect="label_flipped", count=1, seed=3)
    (hit,) = record["undo"]["arguments"]["replicas"]
    others = [r.name for r in clean.replicas("model") if r.name != hit]
    replica = next(r for r in clean.replicas("model") if r.name == hit)
    assert served(clean)[hit] == "bad"
    assert probes.served_versions() == {r.name: "bad" if r.name == hit else "2" for r in clean.replicas("model")}
    assert probes.served_version_count("2") == len(others)
    assert probes.prediction_accuracy(replicas=[hit]) < 0.1  # per replica: the bad one
    assert probes.prediction_accuracy(replicas=others) > 0.9
    assert probes.prediction_accuracy() < 0.1  # the lowest over all replicas is the bad one
    matched, correct = online_accuracy(replica.url, "flip")
    assert matched == 45 and correct / matched < 0.1  # what ModelAccuracyLow sees
    for _ in range(2):  # 90 real rows: balanced predictions, the drift score stays low
        infer(replica.url, dataset.holdout_split()[0])
    assert metric(replica.url, "model_prediction_drift_psi") < 0.1
    with pytest.raises(DriverError, match="already serves version 'bad'"):
        actions.push_bad_model(count=3)
    undo = actions.restore_pushed_model(**record["undo"]["arguments"])
    assert undo == {"service": "model", "restored": [hit], "removed": [hit], "already": [], "gone": []}
    assert actions.restore_pushed_model(**record["undo"]["arguments"])["already"] == [hit]
    assert set(served(clean).values()) == {"2"} and versions(replica) == ["1", "2"]
    assert probes.served_version_count("2") == len(others) + 1
    assert probes.prediction_accuracy() > 0.9
    matched, correct = online_accuracy(replica.url, "after")
    assert correct / matched > 0.9


def test_random_weights_push_drops_accuracy_and_drifts(clean: Sandbox) -> None:
    record = actions.push_bad_model(defect="random_weights", version="rw", count=1, seed=4)
    (hit,) = record["undo"]["arguments"]["replicas"]
    replica = next(r for r in clean.replicas("model") if r.name == hit)
    assert probes.prediction_accuracy(replicas=[hit]) < 0.4
    matched, correct = online_accuracy(replica.url, "rw")
    assert matched == 45 and correct / matched < 0.4
    assert metric(replica.url, "model_prediction_drift_psi") > 2  # its predictions pile up on one class
    with pytest.raises(DriverError, match="pushed with defect 'random_weights'"):
        actions.push_bad_model(defect="label_flipped", version="rw", count=3, dry_run=True)
    # a rollback with no record of the previous versions serves each replica's current version
    undo = actions.restore_pushed_model(remove_version="rw")
    assert undo["restored"] == [hit] and undo["removed"] == [hit] and len(undo["already"]) == 2
    assert set(served(clean).values()) == {"2"} and probes.prediction_accuracy() > 0.9


def test_a_rollout_onto_a_broken_repository_fails_there_counts_it_and_keeps_serving(clean: Sandbox) -> None:
    names = [r.name for r in clean.replicas("model")]
    broken = clean.replicas("model")[-1]
    planned = actions.fail_model_loads(replicas=[broken.name], dry_run=True)
    assert planned["undo"]["arguments"]["replicas"] == [broken.name] and planned["population"] == names
    assert metric(broken.url, "model_load_failures_total") == 0  # exported from start-up
    fault = actions.fail_model_loads(replicas=[broken.name])
    rollout = actions.roll_out_model()
    assert rollout["loaded"] == names[:-1] and list(rollout["failed"]) == [broken.name]
    assert "500" in rollout["failed"][broken.name]
    assert metric(broken.url, "model_load_failures_total") == 1
    assert probes.served_version_count("2") == len(names)  # the previous version keeps serving everywhere
    assert probes.prediction_accuracy(replicas=[broken.name]) > 0.9
    assert actions.clear_model_faults(**fault["undo"]["arguments"])["cleared"] == [broken.name]
    undo = actions.restore_model_version(**rollout["undo"]["arguments"])
    assert undo["already"] == names  # nothing changed: every replica was serving "2" before and after
    assert actions.roll_out_model()["failed"] == {}
