"""The reference server's model repository extension, as the Open Inference Protocol specifies it.

``POST /v2/repository/index`` (``{}`` or ``{"ready": true}``) answers a JSON array of
``{"name", "version", "state", "reason"}``; ``POST .../models/{m}/unload`` stops serving and
``.../load`` serves again. Route level, without a server (the same routes over real HTTP, and
MLServer's, are tests/integration/test_model_servers.py's).
"""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from mlchaos.sandbox import routes
from mlchaos.sandbox.model import ServedModel
from tests.support.sandbox_core import Core, call_route


def _status(core: Core, method: str, path: str, body: Any = None) -> HTTPStatus:
    with pytest.raises(routes.HttpError) as info:
        call_route(core, method, path, body)
    return info.value.status


@pytest.fixture(scope="module")
def trained() -> ServedModel:
    model = ServedModel()
    model.train()  # once: training every version takes seconds on a busy host
    return model


@pytest.fixture()
def core(trained: ServedModel) -> Iterator[Core]:
    trained.reset()
    yield Core(model=trained)
    trained.reset()


def test_the_index_is_a_json_array_of_name_version_state_reason(core: Core) -> None:
    assert call_route(core, "POST", "/v2/repository/index", {}) == [
        {"name": "iris", "version": "1", "state": "UNAVAILABLE", "reason": ""},
        {"name": "iris", "version": "2", "state": "READY", "reason": ""},
    ]
    assert call_route(core, "POST", "/v2/repository/index") == call_route(core, "POST", "/v2/repository/index", {})
    ready = call_route(core, "POST", "/v2/repository/index", {"ready": True})
    assert [(e["version"], e["state"]) for e in ready] == [("2", "READY")]
    assert len(call_route(core, "POST", "/v2/repository/index", {"ready": False})) == 2


@pytest.mark.parametrize("body", [{"ready": "yes"}, ["ready"], {"ready": 1}])
def test_a_malformed_index_request_is_400(core: Core, body: Any) -> None:
    assert _status(core, "POST", "/v2/repository/index", body) == HTTPStatus.BAD_REQUEST


def test_the_index_is_a_post_as_the_extension_has_it(core: Core) -> None:
    assert _status(core, "GET", "/v2/repository/index") == HTTPStatus.METHOD_NOT_ALLOWED


def test_unload_stops_serving_and_load_serves_the_same_version_again(core: Core) -> None:
    call_route(core, "POST", "/v2/repository/models/iris/load", {"parameters": {"version": "1"}})
    before = call_route(core, "POST", "/v2/repository/index", {})
    answer = call_route(core, "POST", "/v2/repository/models/iris/unload")
    assert answer == {"name": "iris", "version": "1", "state": "UNAVAILABLE"}
    assert core.model.ready is False and core.model.loaded is False
    index = call_route(core, "POST", "/v2/repository/index", {})
    assert {e["version"]: (e["state"], e["reason"]) for e in index} == {
        "1": ("UNAVAILABLE", "unloaded"), "2": ("UNAVAILABLE", "")}
    assert call_route(core, "POST", "/v2/repository/index", {"ready": True}) == []
    assert _status(core, "POST", "/v2/repository/models/iris/unload") == HTTPStatus.NOT_FOUND  # not loaded
    call_route(core, "POST", "/v2/repository/models/iris/load", {"parameters": {"version": "1"}})
    assert call_route(core, "POST", "/v2/repository/index", {}) == before
    assert core.model.ready is True


def test_a_plain_load_after_an_unload_serves_the_current_version(core: Core) -> None:
    call_route(core, "POST", "/v2/repository/models/iris/unload", {"parameters": {}})
    assert call_route(core, "POST", "/v2/repository/models/iris/load", {})["version"] == "2"
    assert core.model.ready is True


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", "/v2/repository/models/other/unload", None, HTTPStatus.NOT_FOUND),
    ("POST", "/v2/repository/models/other/load", None, HTTPStatus.NOT_FOUND),
    ("POST", "/v2/repository/models/iris/unload", {"parameters": "all"}, HTTPStatus.BAD_REQUEST),
    ("POST", "/v2/repository/models/iris/load", {"parameters": {"version": 2}}, HTTPStatus.BAD_REQUEST),
    ("POST", "/v2/repository/models/iris/load", {"parameters": {"version": "9"}}, HTTPStatus.BAD_REQUEST),
    ("GET", "/v2/repository/models/iris/unload", None, HTTPStatus.METHOD_NOT_ALLOWED),
])
def test_bad_load_and_unload_requests_are_refused(core: Core, method: str, path: str, body: Any,
                                                  status: HTTPStatus) -> None:
    assert _status(core, method, path, body) == status
    assert core.model.ready is True and core.model.version == "2"


def test_a_pushed_version_that_was_last_served_cannot_be_removed_while_unloaded(core: Core) -> None:
    call_route(core, "POST", "/admin/versions", {"version": "bad", "defect": "label_flipped"})
    call_route(core, "POST", "/v2/repository/models/iris/load", {"parameters": {"version": "bad"}})
    call_route(core, "POST", "/v2/repository/models/iris/unload")
    assert _status(core, "DELETE", "/admin/versions/bad") == HTTPStatus.CONFLICT
    assert call_route(core, "POST", "/admin/reset")["removed"] == ["bad"]
    assert core.model.ready is True and core.model.version == "2"
