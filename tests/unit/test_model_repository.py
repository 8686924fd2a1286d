"""The reference server's model repository extension, as the Open Inference Protocol specifies it.

``POST /v2/repository/index`` (``{}`` or ``{"ready": true}``) answers a JSON array of
``{"name", "version", "state", "reason"}``; ``POST .../models/{m}/unload`` stops serving and
``.../load`` serves again. Route level, without a server (the same routes over real HTTP, and
MLServer's, are tests/integration/test_model_servers.py's).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import pytest

from mlchaos.sandbox import dataset, routes
from mlchaos.sandbox.model import ServedModel
from mlchaos.sandbox.signals import Signals

THIRDS = (1 / 3, 1 / 3, 1 / 3)


@dataclass
class _Core:
    """What the routes need, without a server."""

    model: ServedModel = field(default_factory=ServedModel)
    signals: Signals = field(default_factory=lambda: Signals("iris", dataset.CLASS_NAMES, THIRDS))
    published: int = 0

    def publish(self) -> None:
        self.published += 1


def _call(core: _Core, method: str, path: str, body: Any = None) -> Any:
    found = routes.find(method, path, "127.0.0.1")
    assert found is not None, path
    _, handler, groups = found
    return routes.call(handler, core, routes.Request(method, "127.0.0.1", groups, lambda: body))


def _status(core: _Core, method: str, path: str, body: Any = None) -> HTTPStatus:
    with pytest.raises(routes.HttpError) as info:
        _call(core, method, path, body)
    return info.value.status


@pytest.fixture(scope="module")
def trained() -> ServedModel:
    model = ServedModel()
    model.train()  # once: training every version takes seconds on a busy host
    return model


@pytest.fixture()
def core(trained: ServedModel) -> Iterator[_Core]:
    trained.reset()
    yield _Core(model=trained)
    trained.reset()


def test_the_index_is_a_json_array_of_name_version_state_reason(core: _Core) -> None:
    assert _call(core, "POST", "/v2/repository/index", {}) == [
        {"name": "iris", "version": "1", "state": "UNAVAILABLE", "reason": ""},
        {"name": "iris", "version": "2", "state": "READY", "reason": ""},
    ]
    assert _call(core, "POST", "/v2/repository/index") == _call(core, "POST", "/v2/repository/index", {})
    ready = _call(core, "POST", "/v2/repository/index", {"ready": True})
    assert [(e["version"], e["state"]) for e in ready] == [("2", "READY")]
    assert len(_call(core, "POST", "/v2/repository/index", {"ready": False})) == 2


@pytest.mark.parametrize("body", [{"ready": "yes"}, ["ready"], {"ready": 1}])
def test_a_malformed_index_request_is_400(core: _Core, body: Any) -> None:
    assert _status(core, "POST", "/v2/repository/index", body) == HTTPStatus.BAD_REQUEST


def test_the_index_is_a_post_as_the_extension_has_it(core: _Core) -> None:
    assert _status(core, "GET", "/v2/repository/index") == HTTPStatus.METHOD_NOT_ALLOWED


def test_unload_stops_serving_and_load_serves_the_same_version_again(core: _Core) -> None:
    _call(core, "POST", "/v2/repository/models/iris/load", {"parameters": {"version": "1"}})
    before = _call(core, "POST", "/v2/repository/index", {})
    answer = _call(core, "POST", "/v2/repository/models/iris/unload")
    assert answer == {"name": "iris", "version": "1", "state": "UNAVAILABLE"}
    assert core.model.ready is False and core.model.loaded is False
    index = _call(core, "POST", "/v2/repository/index", {})
    assert {e["version"]: (e["state"], e["reason"]) for e in index} == {
        "1": ("UNAVAILABLE", "unloaded"), "2": ("UNAVAILABLE", "")}
    assert _call(core, "POST", "/v2/repository/index", {"ready": True}) == []
    assert _status(core, "POST", "/v2/repository/models/iris/unload") == HTTPStatus.NOT_FOUND  # not loaded
    _call(core, "POST", "/v2/repository/models/iris/load", {"parameters": {"version": "1"}})
    assert _call(core, "POST", "/v2/repository/index", {}) == before
    assert core.model.ready is True


def test_a_plain_load_after_an_unload_serves_the_current_version(core: _Core) -> None:
    _call(core, "POST", "/v2/repository/models/iris/unload", {"parameters": {}})
    assert _call(core, "POST", "/v2/repository/models/iris/load", {})["version"] == "2"
    assert core.model.ready is True


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", "/v2/repository/models/other/unload", None, HTTPStatus.NOT_FOUND),
    ("POST", "/v2/repository/models/other/load", None, HTTPStatus.NOT_FOUND),
    ("POST", "/v2/repository/models/iris/unload", {"parameters": "all"}, HTTPStatus.BAD_REQUEST),
    ("POST", "/v2/repository/models/iris/load", {"parameters": {"version": 2}}, HTTPStatus.BAD_REQUEST),
    ("POST", "/v2/repository/models/iris/load", {"parameters": {"version": "9"}}, HTTPStatus.BAD_REQUEST),
    ("GET", "/v2/repository/models/iris/unload", None, HTTPStatus.METHOD_NOT_ALLOWED),
])
def test_bad_load_and_unload_requests_are_refused(core: _Core, method: str, path: str, body: Any,
                                                  status: HTTPStatus) -> None:
    assert _status(core, method, path, body) == status
    assert core.model.ready is True and core.model.version == "2"


def test_a_pushed_version_that_was_last_served_cannot_be_removed_while_unloaded(core: _Core) -> None:
    _call(core, "POST", "/admin/versions", {"version": "bad", "defect": "label_flipped"})
    _call(core, "POST", "/v2/repository/models/iris/load", {"parameters": {"version": "bad"}})
    _call(core, "POST", "/v2/repository/models/iris/unload")
    assert _status(core, "DELETE", "/admin/versions/bad") == HTTPStatus.CONFLICT
    assert _call(core, "POST", "/admin/reset")["removed"] == ["bad"]
    assert core.model.ready is True and core.model.version == "2"
