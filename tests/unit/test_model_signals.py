"""The reference server's ML core without HTTP: PSI, the prediction window, signal bookkeeping,
input validation reasons, fault flags, the loopback check and model versions."""

from __future__ import annotations

import math

import pytest

from mlchaos.sandbox import dataset
from mlchaos.sandbox.faults import BadFaults, Faults, is_loopback
from mlchaos.sandbox.model import (
    DEFAULT_VERSION,
    OLDER_VERSION_AGE_SECONDS,
    InvalidRequest,
    LoadFailed,
    ServedModel,
    UnknownVersion,
    parse_infer_request,
)
from mlchaos.sandbox.routes import parse_feedback
from mlchaos.sandbox.signals import PSI_EPSILON, PredictionWindow, Signals, distribution, psi
from tests.support.sandbox_core import exported

THIRDS = [1 / 3, 1 / 3, 1 / 3]


def test_psi_of_identical_distributions_is_zero_and_grows_with_skew() -> None:
    assert psi(THIRDS, THIRDS) == 0
    mild = psi([0.4, 0.3, 0.3], THIRDS)
    assert 0 < mild < 0.05
    assert psi([0.7, 0.15, 0.15], THIRDS) > 0.2 > mild
    # the hand-computed value for one pair of shares
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) - 0.25 * math.log(2 / 3))


def test_psi_floors_empty_bins_at_epsilon() -> None:
    one_class = psi([1.0, 0.0, 0.0], THIRDS)
    expected = (1 - 1 / 3) * math.log(3) + 2 * (PSI_EPSILON - 1 / 3) * math.log(PSI_EPSILON * 3)
    assert one_class == pytest.approx(expected) and math.isfinite(one_class)
    assert psi([0.5, 0.5, 0.0], THIRDS) == pytest.approx(2.84, abs=0.01)
    with pytest.raises(ValueError, match="bins"):
        psi([1.0], THIRDS)


def test_window_slides_and_scores_only_once_full_enough() -> None:
    window = PredictionWindow(THIRDS, size=6, min_size=3)
    window.add([0, 0])
    assert window.score() == 0 and len(window) == 2  # too few predictions to mean anything
    window.add([0])
    assert window.score() == pytest.approx(psi([1, 0, 0], THIRDS))
    window.add([1, 2, 1, 2, 0, 1])  # the three setosa predictions slide out
    assert len(window) == 6 and window.score() == pytest.approx(psi(distribution([1, 2, 1, 2, 0, 1], 3), THIRDS))
    window.reset([0.5, 0.5, 0.0])
    assert len(window) == 0 and window.reference == [0.5, 0.5, 0.0]
    with pytest.raises(ValueError):
        PredictionWindow(THIRDS, size=2, min_size=3)


def test_signals_export_every_series_from_the_start_and_count() -> None:
    sig = Signals("iris", dataset.CLASS_NAMES, THIRDS, window=PredictionWindow(THIRDS, size=10, min_size=2))
    before = exported(sig)
    for name in ('model_feedback_events_total{model="iris"}', 'model_non_finite_outputs_total{model="iris"}',
                 'model_predictions_awaiting_feedback_total{model="iris"}',
                 'model_invalid_inputs_total{model="iris",reason="out_of_range"}',
                 'model_predictions_total{class_name="virginica",model="iris"}',
                 'model_prediction_drift_psi{model="iris"}'):
        assert before[name] == 0, name  # never-incremented counters are exported as 0
    sig.serving("2", 1000.0, True, THIRDS)
    sig.predicted([0, 0, 0])
    sig.predicted([1, 2], request_id="call-1")  # a client naming its call: its labels are due
    sig.invalid("nan")
    sig.non_finite(2)
    sig.feedback(3, 1234.5)
    now = exported(sig)
    assert now['model_predictions_total{class_name="setosa",model="iris"}'] == 3
    assert now['model_predictions_awaiting_feedback_total{model="iris"}'] == 2  # only the named call's rows
    assert now['model_prediction_drift_psi{model="iris"}'] == pytest.approx(psi([0.6, 0.2, 0.2], THIRDS))
    assert now['model_prediction_drift_window_predictions{model="iris"}'] == 5
    assert now['model_invalid_inputs_total{model="iris",reason="nan"}'] == 1
    assert now['model_non_finite_outputs_total{model="iris"}'] == 2
    assert now['model_feedback_events_total{model="iris"}'] == 3
    assert now['model_feedback_last_timestamp_seconds{model="iris"}'] == 1234.5
    assert now['model_info{model="iris",version="2"}'] == 1 and now['model_ready{model="iris"}'] == 1
    sig.serving("1", 10.0, False, THIRDS)  # a new version: one model_info series, a fresh window
    now = exported(sig)
    assert 'model_info{model="iris",version="2"}' not in now and now['model_info{model="iris",version="1"}'] == 1
    assert now['model_trained_timestamp_seconds{model="iris"}'] == 10 and now['model_ready{model="iris"}'] == 0
    assert now['model_prediction_drift_window_predictions{model="iris"}'] == 0


def _body(data: list, shape: list | None = None, datatype: str = "FP32") -> dict:
    return {"inputs": [{"name": "input-0", "shape": shape or [1, 4], "datatype": datatype, "data": data}]}


@pytest.mark.parametrize(("body", "reason"), [
    (_body([float("nan"), 1, 1, 1]), "nan"),
    (_body([-0.5, 1, 1, 1]), "out_of_range"),
    (_body([float("inf"), 1, 1, 1]), "out_of_range"),
    (_body([1000, 1, 1, 1]), "out_of_range"),
    (_body([1, 2, 3], shape=[1, 3]), "wrong_shape"),
    (_body([1, 2, 3]), "wrong_shape"),
    (_body(["a", 1, 1, 1]), "wrong_datatype"),
    (_body([1, 2, 3, 4], datatype="BYTES"), "wrong_datatype"),
    (_body([1, 2, 3, 4], datatype=["FP32"]), "wrong_datatype"),  # type: ignore[arg-type]
    (_body([1.5, 2, 3, 4], datatype="INT32"), "wrong_datatype"),
    ({"inputs": "x"}, "malformed"),
])
def test_invalid_inputs_are_rejected_with_their_reason(body: dict, reason: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_infer_request(body)
    assert caught.value.reason == reason


def test_a_tenfold_unit_skew_is_valid_input() -> None:
    x, _ = dataset.holdout_split()
    scaled = [v * 10 for v in x[0]]
    assert parse_infer_request(_body(scaled)) == [scaled]


def test_feedback_bodies() -> None:
    assert parse_feedback({"inputs": [{"name": "truth", "shape": [2], "datatype": "INT64", "data": [0, 2]}]}) == [0, 2]
    for bad in ({}, {"inputs": [{"data": [3]}]}, {"inputs": [{"data": []}]}, {"inputs": [{"data": [True]}]}):
        with pytest.raises(InvalidRequest):
            parse_feedback(bad)


def test_faults_set_and_clear_idempotently_and_reject_bad_bodies() -> None:
    faults = Faults()
    assert faults.update({"nan_outputs": True}) == faults.update({"nan_outputs": True})
    assert faults.flags.nan_outputs and not faults.flags.not_ready
    faults.update({"not_ready": True, "nan_outputs": False})
    assert (faults.flags.nan_outputs, faults.flags.not_ready) == (False, True)
    for bad in ({"nan_output": True}, {"fail_load": "yes"}, {}, ["nan_outputs"]):
        with pytest.raises(BadFaults):
            faults.update(bad)
    assert faults.flags.not_ready  # a rejected body changed nothing
    assert faults.clear() == faults.clear() == faults.flags and not faults.flags.not_ready


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("192.0.2.2", False), ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("fd00::2", False), ("", False),
    ("localhost", False),  # a name is not an address: refused
])
def test_loopback_check(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_versions_train_deterministically_and_pin() -> None:
    model = ServedModel()
    model.train()
    assert model.version == DEFAULT_VERSION == "2" and model.ready
    current = model.trained_at
    x, _ = dataset.holdout_split()
    predicted_v2 = model.predict(x).classes
    assert model.load("1").version == "1" and model.version == "1"
    assert current - model.trained_at == pytest.approx(OLDER_VERSION_AGE_SECONDS, abs=1)
    assert model.class_distribution == tuple(distribution(dataset.older_training_split()[1], 3))
    assert [e["state"] for e in model.index()] == ["READY", "UNAVAILABLE"]
    with pytest.raises(UnknownVersion):
        model.load("7")
    model.faults.update({"fail_load": True})
    with pytest.raises(LoadFailed):
        model.load()
    assert model.version == "1"  # a failed load keeps the served version
    model.faults.update({"fail_load": False, "nan_outputs": True, "not_ready": True})
    assert not model.ready
    nan = model.predict(x[:3])
    assert nan.classes == [] and nan.non_finite == 3
    model.faults.clear()
    assert model.load().version == "2" and model.predict(x).classes == predicted_v2
