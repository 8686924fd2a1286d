"""Online accuracy and the bad-model push, in the reference server's core without HTTP: the bounded
prediction log, feedback matching by OIP request id, the matched/correct counters, pushed versions
(idempotent, conflicts, removal, reset) and what the two defects do to accuracy and drift."""

from __future__ import annotations

import threading
import time
from http import HTTPStatus
from typing import Any

import pytest

from mlchaos.sandbox import dataset, routes
from mlchaos.sandbox.model import (
    DEFECTS,
    BadPush,
    ServedModel,
    VersionConflict,
    VersionNotFound,
)
from mlchaos.sandbox.signals import MAX_ID_LENGTH, PredictionLog, Signals, distribution, psi
from tests.support.sandbox_core import THIRDS, Core, call_route, exported


def _truth(labels: list[int], request_id: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": [{"name": "truth", "shape": [len(labels)], "datatype": "INT64",
                                        "data": labels}]}
    if request_id is not None:
        body["id"] = request_id
    return body


# -- the prediction log -------------------------------------------------------------------------


def test_a_remembered_prediction_is_matched_once() -> None:
    log = PredictionLog()
    assert log.remember("a", [0, 1, 2])
    assert log.match("a", [0, 2, 2]) == (3, 2)
    assert log.match("a", [0, 2, 2]) == (0, 0)  # each id is matched at most once
    assert log.match("never", [0]) == (0, 0) and len(log) == 0 and log.rows == 0


def test_a_label_count_mismatch_is_not_matched_and_keeps_the_prediction() -> None:
    log = PredictionLog()
    log.remember("a", [1, 1])
    assert log.match("a", [1]) == (0, 0)
    assert log.match("a", [1, 1, 1]) == (0, 0)
    assert log.match("a", [1, 0]) == (2, 1)  # the corrected feedback still matches


def test_the_log_keeps_the_most_recent_ids_only() -> None:
    log = PredictionLog(max_ids=3)
    for i in range(5):
        log.remember(f"r{i}", [i % 3])
    assert len(log) == 3 and log.rows == 3
    assert log.match("r0", [0]) == (0, 0) and log.match("r1", [1]) == (0, 0)  # the oldest went first
    assert log.match("r4", [1]) == (1, 1)
    log.remember("r2", [0, 0])  # a reused id replaces its entry (and becomes the newest)
    log.remember("r5", [0])
    log.remember("r6", [0])
    assert log.match("r2", [0, 0]) == (2, 2) and log.match("r3", [0]) == (0, 0)


def test_the_log_bounds_the_rows_it_holds_too() -> None:
    log = PredictionLog(max_ids=100, max_rows=10)
    log.remember("big", [0] * 8)
    log.remember("small", [1] * 3)  # 11 rows: the oldest entry goes
    assert log.rows == 3 and log.match("big", [0] * 8) == (0, 0)
    assert not log.remember("huge", [0] * 11)  # larger than the whole log: not kept
    assert not log.remember("x" * (MAX_ID_LENGTH + 1), [0])  # an absurd id: not kept
    assert log.remember("x" * MAX_ID_LENGTH, [0]) and log.rows == 4
    with pytest.raises(ValueError):
        PredictionLog(max_ids=0)


def test_the_log_is_thread_safe_and_stays_bounded() -> None:
    log = PredictionLog(max_ids=500, max_rows=1200)
    matched: list[int] = []

    def work(worker: int) -> None:
        for i in range(2000):
            log.remember(f"{worker}-{i}", [i % 3, (i + 1) % 3])
            if i % 2:
                matched.append(log.match(f"{worker}-{i - 1}", [(i - 1) % 3, i % 3])[0])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log) <= 500 and log.rows <= 1200 and log.rows == 2 * len(log)
    assert set(matched) <= {0, 2} and sum(matched) > 0


# -- signals and the feedback route ----------------------------------------------------------


def test_matched_and_correct_are_exported_from_the_start_and_counted() -> None:
    sig = Signals("iris", dataset.CLASS_NAMES, THIRDS)
    before = exported(sig)
    assert before['model_feedback_matched_total{model="iris"}'] == 0
    assert before['model_feedback_correct_total{model="iris"}'] == 0
    sig.predicted([0, 1, 2], "req-1")
    sig.predicted([0, 0])  # no id: nothing to match later
    assert sig.match(None, [0, 1, 2]) == 0 and sig.match("other", [0]) == 0
    assert sig.match("req-1", [0, 1, 1]) == 3
    now = exported(sig)
    assert now['model_feedback_matched_total{model="iris"}'] == 3
    assert now['model_feedback_correct_total{model="iris"}'] == 2


def test_feedback_matches_by_request_id_and_always_counts_the_labels() -> None:
    core = Core()
    core.signals.predicted([2, 2], "abc")
    url = "/v2/models/iris/feedback"
    assert call_route(core, "POST", url, _truth([2, 0])) == {"model_name": "iris", "accepted": 2, "matched": 0}
    assert call_route(core, "POST", url, _truth([2, 0, 1], "abc"))["matched"] == 0  # wrong label count
    assert call_route(core, "POST", url, _truth([2], "unknown"))["matched"] == 0
    assert call_route(core, "POST", url, _truth([2, 0], "abc")) == {"model_name": "iris", "accepted": 2,
                                                                    "matched": 2, "id": "abc"}
    assert call_route(core, "POST", url, _truth([2, 0], "abc"))["matched"] == 0  # matched once
    now = exported(core.signals)
    assert now['model_feedback_events_total{model="iris"}'] == 10  # every label counts as feedback
    assert now['model_feedback_matched_total{model="iris"}'] == 2
    assert now['model_feedback_correct_total{model="iris"}'] == 1
    for bad in (_truth([0], 7), _truth([0], ["abc"])):
        with pytest.raises(routes.HttpError) as info:
            call_route(core, "POST", url, bad)
        assert info.value.status == HTTPStatus.BAD_REQUEST and "'id' must be a string" in str(info.value)
    assert routes.parse_request_id({"id": "x"}) == "x" and routes.parse_request_id({}) is None


# -- the bad-model push -----------------------------------------------------------------------


def _accuracy(model: ServedModel) -> tuple[float, list[int]]:
    x, y = dataset.holdout_split()
    predicted = model.predict(x).classes
    return sum(p == t for p, t in zip(predicted, y, strict=True)) / len(y), predicted


@pytest.mark.parametrize("defect", DEFECTS)
def test_a_pushed_version_is_fresh_unavailable_until_loaded_and_defective(defect: str) -> None:
    model = ServedModel()
    model.train()
    good, _ = _accuracy(model)
    pushed, created = model.push("bad", defect)
    assert created and pushed.defect == defect and time.time() - pushed.trained_at < 60  # a fresh push, not stale
    assert {e["version"]: e["state"] for e in model.index()} == {"1": "UNAVAILABLE", "2": "READY",
                                                                  "bad": "UNAVAILABLE"}
    assert model.version == "2" and _accuracy(model)[0] == good  # pushing is not serving
    model.load("bad")
    accuracy, predicted = _accuracy(model)
    drift = psi(distribution(predicted, 3), model.class_distribution)
    if defect == "label_flipped":  # y -> (y + 1) % 3: nearly always wrong, still class-balanced
        assert accuracy < 0.1 and drift < 0.05
    else:  # random weights: everything in one class, a third right by chance
        assert accuracy <= 0.34 and drift > 2
    assert good > 0.9


def test_pushes_are_idempotent_and_conflicts_refused() -> None:
    model = ServedModel()
    model.train()
    first, created = model.push("bad", "label_flipped")
    again, created_again = model.push("bad", "label_flipped")
    assert created and not created_again and again is first
    with pytest.raises(VersionConflict, match="pushed with defect 'label_flipped'"):
        model.push("bad", "random_weights")
    with pytest.raises(VersionConflict, match="is a release"):
        model.push("1", "label_flipped")
    for version, defect in (("bad", "typo"), ("bad", None), ("", "label_flipped"), ("a/b", "label_flipped"),
                            (3, "label_flipped"), ("x" * 65, "label_flipped")):
        with pytest.raises(BadPush):
            model.push(version, defect)
    assert [t.version for t in model.pushed()] == ["bad"]


def test_removal_refuses_the_served_version_and_releases() -> None:
    model = ServedModel()
    model.train()
    model.push("bad", "random_weights")
    model.load("bad")
    with pytest.raises(VersionConflict, match="being served"):
        model.remove("bad")
    with pytest.raises(VersionConflict, match="is a release"):
        model.remove("1")
    with pytest.raises(VersionNotFound):
        model.remove("nope")
    model.load("2")
    assert model.remove("bad").defect == "random_weights" and model.pushed() == []
    with pytest.raises(VersionNotFound):
        model.remove("bad")


def test_reset_serves_the_current_version_and_removes_every_push() -> None:
    model = ServedModel()
    model.train()
    model.push("bad", "label_flipped")
    model.push("worse", "random_weights")
    model.load("worse")
    model.faults.update({"fail_load": True})
    assert model.reset() == ["bad", "worse"]
    assert model.version == "2" and [e["version"] for e in model.index()] == ["1", "2"]
    assert model.reset() == []  # idempotent


def test_admin_version_routes_map_errors_to_status_codes() -> None:
    core = Core()
    core.model.train()
    body = {"version": "bad", "defect": "label_flipped"}
    answer = call_route(core, "POST", "/admin/versions", body)
    assert answer["created"] is True and answer["state"] == "UNAVAILABLE" and answer["defect"] == "label_flipped"
    assert call_route(core, "POST", "/admin/versions", body)["created"] is False
    assert [v["version"] for v in call_route(core, "GET", "/admin/versions")["versions"]] == ["bad"]
    cases = [
        ("POST", "/admin/versions", {"version": "bad", "defect": "random_weights"}, HTTPStatus.CONFLICT),
        ("POST", "/admin/versions", {"version": "bad", "defect": "nonsense"}, HTTPStatus.BAD_REQUEST),
        ("POST", "/admin/versions", ["bad"], HTTPStatus.BAD_REQUEST),
        ("DELETE", "/admin/versions/2", None, HTTPStatus.CONFLICT),
        ("DELETE", "/admin/versions/missing", None, HTTPStatus.NOT_FOUND),
    ]
    for method, path, request, status in cases:
        with pytest.raises(routes.HttpError) as info:
            call_route(core, method, path, request)
        assert info.value.status == status, (method, path, request)
    call_route(core, "POST", "/v2/repository/models/iris/load", {"parameters": {"version": "bad"}})
    with pytest.raises(routes.HttpError) as served:
        call_route(core, "DELETE", "/admin/versions/bad")
    assert served.value.status == HTTPStatus.CONFLICT
    reset = call_route(core, "POST", "/admin/reset")
    assert reset["version"] == "2" and reset["removed"] == ["bad"]
    with pytest.raises(routes.HttpError) as refused:
        routes.find("POST", "/admin/versions", "192.0.2.7")
    assert refused.value.status == HTTPStatus.FORBIDDEN
