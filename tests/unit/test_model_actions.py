"""drivers.model.actions without a server: argument validation (before anything is selected or sent),
selection errors, and the invalid bodies the load generator sends (checked by the server's own parser)."""

from __future__ import annotations

import json

import pytest

from drivers.model import actions, invalid_inputs
from mlchaos.errors import DriverError
from mlchaos.sandbox import dataset
from mlchaos.sandbox.model import InvalidRequest, parse_infer_request


@pytest.mark.parametrize(("call", "message"), [
    (lambda: actions.emit_nan_outputs(count=0), "count must be an integer >= 1"),
    (lambda: actions.make_not_ready(count=True), "count must be an integer >= 1"),
    (lambda: actions.make_not_ready(seed="7"), "seed must be an integer or null"),
    (lambda: actions.emit_nan_outputs(timeout=0), r"timeout must be a number of seconds in \(0, 60\]"),
    (lambda: actions.pin_model_version(version=1), "version must be a non-empty string"),
    (lambda: actions.pin_model_version(version=""), "version must be a non-empty string"),
    (lambda: actions.send_invalid_inputs(kind="garbage"), "kind must be one of nan, out_of_range, wrong_shape"),
    (lambda: actions.send_invalid_inputs(requests=0), r"requests must be an integer in \[1, 10000\]"),
    (lambda: actions.send_invalid_inputs(requests=10_001), r"requests must be an integer in \[1, 10000\]"),
    (lambda: actions.send_invalid_inputs(rate=0), "rate must be a number of requests per second"),
    (lambda: actions.send_invalid_inputs(rate=10_000), "rate must be a number of requests per second"),
    (lambda: actions.send_invalid_inputs(invalid_fraction=0), r"invalid_fraction must be in \(0, 1\]"),
    (lambda: actions.send_invalid_inputs(invalid_fraction=1.5), r"invalid_fraction must be in \(0, 1\]"),
    (lambda: actions.send_invalid_inputs(max_seconds=-1), "max_seconds must be a positive number"),
    (lambda: actions.restore_model_version(versions={"model-0": 1}), "versions must map replica names"),
    (lambda: actions.clear_model_faults(replicas="model-0"), "replicas must be a list of replica names"),
    (lambda: actions.push_bad_model(defect="typo"), "defect must be one of label_flipped, random_weights"),
    (lambda: actions.push_bad_model(version=""), "version must be 1-64 letters"),
    (lambda: actions.push_bad_model(version="a/b"), "version must be 1-64 letters"),
    (lambda: actions.push_bad_model(timeout=-1), "timeout must be a number"),
    (lambda: actions.restore_pushed_model(versions={"model-0": 2}), "versions must map replica names"),
    (lambda: actions.restore_pushed_model(remove_version=""), "remove_version must be a version name"),
    (lambda: actions.restore_pushed_model(versions={"model-0": "bad"}), "is also a version to restore"),
])
def test_bad_arguments_are_refused_with_one_line(state_dir, call, message):
    with pytest.raises(DriverError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fault", [actions.emit_nan_outputs, actions.make_not_ready, actions.pin_model_version,
                                   actions.send_invalid_inputs, actions.push_bad_model])
def test_a_fault_on_an_empty_sandbox_is_an_error_even_in_a_dry_run(state_dir, fault):
    with pytest.raises(DriverError):
        fault(dry_run=True)


@pytest.mark.parametrize("kind", actions.INVALID_KINDS)
def test_every_invalid_body_is_refused_by_the_server_for_its_own_reason(kind):
    body = json.loads(json.dumps(invalid_inputs.invalid_body(kind)))  # through JSON, as the server reads it
    with pytest.raises(InvalidRequest) as info:
        parse_infer_request(body)
    assert info.value.reason == kind


def test_the_valid_rows_are_real_holdout_rows_the_server_accepts():
    rows, _ = dataset.holdout_split()
    assert parse_infer_request(json.loads(json.dumps(invalid_inputs.row_body(rows[0])))) == [list(rows[0])]
