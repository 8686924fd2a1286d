"""mlchaos calls python providers as chaostoolkit-lib's ``run_python_activity`` does (run_python), faster.

Each case runs through both and must give the same output, or the same ActivityFailed message.
"""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from chaoslib.provider.python import run_python_activity

from mlchaos.experiment.execution import run_python

CONFIGURATION = {"service": "model", "replicas": 3}
SECRETS = {"vault": {"token": "s3cr3t-value"}, "other": {"key": "k"}}


def spec(func: str, arguments: dict[str, Any] | None = None, **provider: Any) -> dict[str, Any]:
    body = {"type": "python", "module": "testdrivers", "func": func, **provider}
    if arguments is not None:
        body["arguments"] = arguments
    return {"type": "probe", "name": func, "provider": body}


@pytest.mark.parametrize("activity", [
    spec("echo"),
    spec("echo", {"value": {"nested": [1, 2]}}),
    spec("echo", {"value": "${service}"}),  # substituted from the configuration
    spec("with_config"),  # asks for the configuration: gets a copy
    spec("typed", {"count": 2}),
])
def test_outputs_are_chaoslibs(activity: dict[str, Any]) -> None:
    assert run_python(activity, CONFIGURATION, SECRETS) == run_python_activity(activity, CONFIGURATION, SECRETS)


@pytest.mark.parametrize("activity", [
    spec("fail", {"message": "it broke"}),
    spec("typed", {"count": 1, "unknown": 2}),  # a TypeError from the call itself
])
def test_failures_are_chaoslibs_activity_failed(activity: dict[str, Any]) -> None:
    with pytest.raises(ActivityFailed) as ours:
        run_python(activity, CONFIGURATION, SECRETS)
    with pytest.raises(ActivityFailed) as theirs:
        run_python_activity(activity, CONFIGURATION, SECRETS)
    assert str(ours.value) == str(theirs.value)


def test_the_activity_is_not_mutated() -> None:
    activity = spec("echo", {"value": "${service}"})
    run_python(activity, CONFIGURATION, SECRETS)
    assert activity["provider"]["arguments"] == {"value": "${service}"}
