"""The served model and its request validation, without HTTP."""

from __future__ import annotations

import math

import pytest

from mlchaos.sandbox import dataset
from mlchaos.sandbox.model import InvalidRequest, ServedModel, parse_infer_request


def _body(data: object, shape: object = (1, 4), datatype: str = "FP32") -> dict:
    shape = list(shape) if isinstance(shape, tuple) else shape
    return {"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": data}]}


def test_split_is_deterministic_stratified_and_disjoint() -> None:
    x_train, y_train = dataset.training_split()
    x_test, y_test = dataset.holdout_split()
    assert (len(x_train), len(x_test)) == (105, 45)
    assert dataset.holdout_split() == (x_test, y_test)
    assert sorted(set(y_test)) == [0, 1, 2] and y_test.count(0) == 15
    assert all(len(row) == 4 and all(isinstance(v, float) for v in row) for row in x_test)
    assert len(dataset.CLASS_NAMES) == 3


def test_trained_model_is_accurate_on_holdout() -> None:
    model = ServedModel()
    assert not model.ready
    model.train()
    x, y = dataset.holdout_split()
    prediction = model.predict(x)
    accuracy = sum(p == t for p, t in zip(prediction.classes, y, strict=True)) / len(y)
    assert accuracy > 0.9
    assert set(prediction.class_names) <= set(dataset.CLASS_NAMES)
    assert model.metadata()["inputs"][0] == {"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}


@pytest.mark.parametrize(
    "data",
    [[5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3], [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]],
    ids=["flat", "nested"],
)
def test_flat_and_nested_data_give_the_same_rows(data: list) -> None:
    rows = parse_infer_request(_body(data, shape=[2, 4]))
    assert rows == [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "malformed"),
        ({"inputs": []}, "malformed"),
        ({"inputs": [1]}, "malformed"),
        (_body([1, 2, 3, 4], datatype="BYTES"), "wrong_datatype"),
        (_body([1, 2, 3, 4], shape=[1, 3]), "wrong_shape"),
        (_body([1, 2, 3, 4], shape=[4]), "wrong_shape"),
        (_body([1, 2, 3, 4], shape=[0, 4]), "wrong_shape"),
        (_body([1, 2, 3], shape=[1, 4]), "wrong_shape"),
        (_body("1,2,3,4"), "malformed"),
        (_body(["a", 2, 3, 4]), "wrong_datatype"),
        (_body([True, 2, 3, 4]), "wrong_datatype"),
        (_body([None, 2, 3, 4]), "wrong_datatype"),
        (_body([math.nan, 2, 3, 4]), "nan"),
        (_body([math.inf, 2, 3, 4]), "out_of_range"),
    ],
)
def test_bad_requests_are_rejected_with_a_reason(body: object, reason: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_infer_request(body)
    assert info.value.reason == reason
    assert str(info.value)
