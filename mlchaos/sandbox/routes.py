"""The model server's routes beyond plain inference: feedback, the model repository and the admin faults.

``POST /v2/models/{m}/feedback`` takes true labels, OIP-shaped
(``{"id":"abc","inputs":[{"name":"truth","shape":[N],"datatype":"INT64","data":[0,2,...]}]}``);
the optional ``id`` names the infer request they are for, whose remembered predictions they
are compared with (``"matched": N``; 0 without an id, for an unknown one or a count mismatch).
The model repository follows the Open Inference Protocol's model repository extension (as Triton and
MLServer serve it): ``POST /v2/repository/index`` with ``{}`` or ``{"ready": true}`` answers a JSON
array of ``{"name", "version", "state", "reason"}`` (``ready``: only the entries ready for inference);
``POST /v2/repository/models/{m}/load`` serves the model again, with an optional
``{"parameters":{"version":"1"}}`` (a parameter of this server, to pin or roll back a version;
default: the current one); ``POST /v2/repository/models/{m}/unload`` stops serving it (every version
``UNAVAILABLE``, the model not ready, infer answers 503) until the next load; unloading a model that
is not loaded answers 404.
``/admin/faults`` (``GET``; ``POST {"nan_outputs": true, ...}``; ``DELETE`` clears them all) and
``POST /admin/versions`` (``{"version": "bad", "defect": "label_flipped"}``: push a defective
version, see :meth:`ServedModel.push`), ``GET /admin/versions`` (the pushed ones),
``DELETE /admin/versions/{v}`` (remove a pushed version) and ``POST /admin/reset`` (clears every
fault, serves the current version again and removes the pushed versions) answer loopback
clients only; any other client gets 403. Every handler is one lookup, one core call
and a JSON answer; :data:`ERRORS` is the one table that maps core errors to status codes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any, Protocol

from mlchaos.sandbox import dataset
from mlchaos.sandbox.faults import BadFaults, Faults, is_loopback
from mlchaos.sandbox.model import (
    BadPush,
    InvalidRequest,
    LoadFailed,
    NotLoaded,
    ServedModel,
    TrainedVersion,
    UnknownVersion,
    VersionConflict,
    VersionNotFound,
)
from mlchaos.sandbox.signals import Signals

MAX_FEEDBACK = 10_000


class HttpError(Exception):
    """An error answered with ``{"error": message}`` and the given status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


ERRORS: dict[type[Exception], HTTPStatus] = {
    InvalidRequest: HTTPStatus.BAD_REQUEST,
    BadFaults: HTTPStatus.BAD_REQUEST,
    UnknownVersion: HTTPStatus.BAD_REQUEST,
    LoadFailed: HTTPStatus.INTERNAL_SERVER_ERROR,
    BadPush: HTTPStatus.BAD_REQUEST,
    VersionConflict: HTTPStatus.CONFLICT,
    VersionNotFound: HTTPStatus.NOT_FOUND,
    NotLoaded: HTTPStatus.NOT_FOUND,
}


class Core(Protocol):
    """What the routes need from the server: the model, its signals and a way to publish a change."""

    model: ServedModel
    signals: Signals

    def publish(self) -> None: ...


@dataclass(frozen=True)
class Request:
    """One request as the routes see it."""

    method: str
    client_host: str
    groups: tuple[str, ...]
    body: Callable[[], Any]  # the parsed JSON body, None when empty; raises InvalidRequest


Handler = Callable[[Core, Request], Any]  # answers a JSON value (an object; the repository index: an array)


def _feedback(core: Core, req: Request) -> dict[str, Any]:
    _same_model(core, req.groups[0])
    body = req.body()
    labels = parse_feedback(body)
    request_id = parse_request_id(body)
    core.signals.feedback(len(labels), time.time())
    matched = core.signals.match(request_id, labels)
    answer: dict[str, Any] = {"model_name": core.model.name, "accepted": len(labels), "matched": matched}
    if request_id is not None:
        answer["id"] = request_id
    return answer


def _index(core: Core, req: Request) -> list[dict[str, str]]:
    body = req.body()
    ready = body.get("ready", False) if isinstance(body, dict) else None
    if body is not None and not isinstance(ready, bool):
        raise InvalidRequest("malformed", 'expected a repository index request: {} or {"ready": true}')
    return core.model.index(ready_only=bool(ready))


def _load(core: Core, req: Request) -> dict[str, Any]:
    _same_model(core, req.groups[0])
    params = _parameters(req.body(), '{"parameters": {"version": "N"}}')
    version = params.get("version")
    if not isinstance(version, str | None):
        raise InvalidRequest("malformed", f"parameters.version must be a version name, got {version!r}")
    try:
        loaded = core.model.load(version)
    except LoadFailed:
        core.signals.load_failed()  # the previous version keeps serving: only this counter tells
        raise
    finally:
        core.publish()
    return {"name": core.model.name, "version": loaded.version, "state": "READY"}


def _unload(core: Core, req: Request) -> dict[str, Any]:
    _same_model(core, req.groups[0])
    _parameters(req.body(), '{"parameters": {}}')  # no parameter of the extension's applies to one model
    try:
        version = core.model.unload()
    finally:
        core.publish()
    return {"name": core.model.name, "version": version, "state": "UNAVAILABLE"}


def _parameters(body: Any, expected: str) -> dict[str, Any]:
    """The ``parameters`` object of a load or unload request (``{}`` without a body or without parameters)."""
    params = body.get("parameters", {}) if isinstance(body, dict) else None
    if body is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidRequest("malformed", f"expected {expected}, {{}} or no body")
    return params


def _faults(core: Core, req: Request) -> dict[str, Any]:
    faults: Faults = core.model.faults
    if req.method == "POST":
        faults.update(req.body())
    elif req.method == "DELETE":
        faults.clear()
    core.publish()
    return {"faults": asdict(faults.flags)}


def _reset(core: Core, req: Request) -> dict[str, Any]:
    try:
        removed = core.model.reset()
    finally:
        core.publish()
    return {"faults": asdict(core.model.faults.flags), "version": core.model.version, "removed": removed}


def _push(core: Core, req: Request) -> dict[str, Any]:
    body = req.body()
    if not isinstance(body, dict):
        raise BadPush('expected {"version": "bad", "defect": "label_flipped"}')
    pushed, created = core.model.push(body.get("version"), body.get("defect"))
    return {**_pushed(core, pushed), "created": created}


def _pushed_versions(core: Core, req: Request) -> dict[str, Any]:
    return {"versions": [_pushed(core, t) for t in core.model.pushed()]}


def _remove(core: Core, req: Request) -> dict[str, Any]:
    removed = core.model.remove(req.groups[0])
    return {"name": core.model.name, "version": removed.version, "removed": True}


def _pushed(core: Core, t: TrainedVersion) -> dict[str, Any]:
    state = "READY" if core.model.version == t.version else "UNAVAILABLE"  # as in the repository index
    return {"name": core.model.name, "version": t.version, "defect": t.defect, "trained_at": t.trained_at,
            "state": state}


# (path pattern, endpoint label, {method: handler}); admin endpoints are loopback-only
ROUTES: list[tuple[re.Pattern[str], str, dict[str, Handler]]] = [
    (re.compile(r"^/v2/models/([^/]+)/feedback$"), "feedback", {"POST": _feedback}),
    (re.compile(r"^/v2/repository/index$"), "repository", {"POST": _index}),
    (re.compile(r"^/v2/repository/models/([^/]+)/load$"), "repository", {"POST": _load}),
    (re.compile(r"^/v2/repository/models/([^/]+)/unload$"), "repository", {"POST": _unload}),
    (re.compile(r"^/admin/faults$"), "admin", {"GET": _faults, "POST": _faults, "DELETE": _faults}),
    (re.compile(r"^/admin/reset$"), "admin", {"POST": _reset}),
    (re.compile(r"^/admin/versions$"), "admin", {"GET": _pushed_versions, "POST": _push}),
    (re.compile(r"^/admin/versions/([^/]+)$"), "admin", {"DELETE": _remove}),
]


def find(method: str, path: str, client_host: str) -> tuple[str, Handler | None, tuple[str, ...]] | None:
    """The endpoint label, handler and path groups for a request; None when no route here matches it.

    Raises HttpError 403 for a non-loopback client of ``/admin/...``, 405 for a wrong method.
    """
    if path.startswith("/admin/") and not is_loopback(client_host):
        raise HttpError(HTTPStatus.FORBIDDEN, "the admin endpoint answers loopback clients only")
    for pattern, endpoint, methods in ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        handler = methods.get(method)
        if handler is None:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{endpoint} needs {' or '.join(methods)}")
        return endpoint, handler, match.groups()
    return None


def call(handler: Handler, core: Core, request: Request) -> Any:
    """Run a handler, turning core errors into HttpError through :data:`ERRORS`."""
    try:
        return handler(core, request)
    except tuple(ERRORS) as exc:
        raise HttpError(ERRORS[type(exc)], str(exc)) from None


def parse_feedback(body: Any) -> list[int]:
    """Validate a feedback body and return its true class labels; raise InvalidRequest otherwise."""
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidRequest("malformed", "'inputs' must be a list with exactly one tensor of true labels")
    data = inputs[0].get("data")
    n_classes = len(dataset.CLASS_NAMES)
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_FEEDBACK:
        raise InvalidRequest("malformed", f"'data' must hold 1 to {MAX_FEEDBACK} class labels")
    for label in data:
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < n_classes:
            raise InvalidRequest("malformed", f"true labels are class indices 0..{n_classes - 1}, got {label!r}")
    return list(data)


def parse_request_id(body: Any) -> str | None:
    """The OIP request ``id`` of a parsed body: None when absent; raise InvalidRequest when not a string."""
    request_id = body.get("id") if isinstance(body, dict) else None
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("malformed", f"'id' must be a string (an OIP request id), got {request_id!r}")
    return request_id


def _same_model(core: Core, name: str) -> None:
    if name != core.model.name:
        raise HttpError(HTTPStatus.NOT_FOUND, f"unknown model {name!r}")
