"""drivers.model.actions' target arguments without a server or engine: bad ones are refused before anything
is selected, the admin faults (and their undos) are refused by URL, and every action and undo takes the same
target arguments (so a recorded undo can carry them)."""

from __future__ import annotations

import inspect

import pytest

from drivers.model import actions
from mlchaos.errors import DriverError

URLS = ["http://127.0.0.1:18100", "http://127.0.0.1:18101"]
TARGET_ARGS = ["target", "labels", "name_pattern", "project", "urls", "endpoint"]
FUNCS = [actions.emit_nan_outputs, actions.make_not_ready, actions.clear_model_faults, actions.pin_model_version,
         actions.restore_model_version, actions.push_bad_model, actions.restore_pushed_model,
         actions.send_invalid_inputs, actions.fail_model_loads, actions.roll_out_model]


@pytest.mark.parametrize("func", FUNCS, ids=lambda f: f.__name__)
def test_every_action_and_undo_takes_the_target_arguments_after_its_own(func):
    parameters = inspect.signature(func).parameters
    assert parameters["target"].default == "sandbox"
    assert all(parameters[name].default is None for name in TARGET_ARGS[1:])
    positional = [n for n, p in parameters.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional[-len(TARGET_ARGS):] == TARGET_ARGS, "appended: positional calls keep working"


@pytest.mark.parametrize(("call", "message"), [
    (lambda: actions.emit_nan_outputs(target="docker", labels={}), "an empty selector would target every container"),
    (lambda: actions.make_not_ready(target="kubernetes"), "target must be one of sandbox, docker, url"),
    (lambda: actions.push_bad_model(replicas=[], dry_run=True), "replicas must name at least one replica"),
    (lambda: actions.fail_model_loads(target="url", urls=URLS, dry_run=True), "fail_load needs the admin endpoint"),
    (lambda: actions.roll_out_model(version="", dry_run=True), "version must be a version string"),
    (lambda: actions.push_bad_model(replicas="model-2", dry_run=True), "replicas must be a list of replica names"),
    (lambda: actions.pin_model_version(project="mlchaos"), "project select containers: give them with target docker"),
    (lambda: actions.send_invalid_inputs(urls=URLS), "urls name servers by URL: give them with target url"),
    (lambda: actions.restore_model_version(target="url"), "urls must be a non-empty list"),
    (lambda: actions.emit_nan_outputs(target="url", urls=URLS, dry_run=True),
     "nan_outputs needs the admin endpoint, which answers loopback clients only: use target sandbox or docker"),
    (lambda: actions.make_not_ready(target="url", urls=URLS), "not_ready needs the admin endpoint"),
    (lambda: actions.clear_model_faults(target="url", urls=URLS), "clear_model_faults needs the admin endpoint"),
    (lambda: actions.push_bad_model(target="url", urls=URLS, dry_run=True), "push_bad_model needs the admin endpoint"),
    (lambda: actions.restore_pushed_model(target="url", urls=URLS), "restore_pushed_model needs the admin endpoint"),
    (lambda: actions.clear_model_faults(target="url", urls=URLS, replicas=["http://x:1"]), "needs the admin"),
    (lambda: actions.restore_model_version(target="url", urls=URLS, replicas=["http://127.0.0.1:1"]),
     r"no replica\(s\) \['http://127.0.0.1:1'\] among the urls"),
])
def test_bad_target_arguments_are_refused_in_one_line_before_anything_is_selected(state_dir, call, message):
    with pytest.raises(DriverError, match=message) as info:
        call()
    assert "\n" not in str(info.value)
