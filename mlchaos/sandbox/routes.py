"""The model server's routes beyond plain inference: feedback, the model repository and the admin faults.

``POST /v2/models/{m}/feedback`` takes true labels, OIP-shaped
(``{"inputs":[{"name":"truth","shape":[N],"datatype":"INT64","data":[0,2,...]}]}``).
``GET|POST /v2/repository/index`` lists the versions and which one is ``READY``;
``POST /v2/repository/models/{m}/load`` with an optional ``{"parameters":{"version":"1"}}``
serves that version (default: the current one), as Triton and MLServer do to pin or roll back.
``/admin/faults`` (``GET``; ``POST {"nan_outputs": true, ...}``; ``DELETE`` clears them all) and
``POST /admin/reset`` (clears every fault and serves the current version again) answer
loopback clients only; any other client gets 403. Every handler is one lookup, one core call
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
from mlchaos.sandbox.model import InvalidRequest, LoadFailed, ServedModel, UnknownVersion
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


Handler = Callable[[Core, Request], dict[str, Any]]


def _feedback(core: Core, req: Request) -> dict[str, Any]:
    _same_model(core, req.groups[0])
    labels = parse_feedback(req.body())
    core.signals.feedback(len(labels), time.time())
    return {"model_name": core.model.name, "accepted": len(labels)}


def _index(core: Core, req: Request) -> dict[str, Any]:
    return {"models": core.model.index()}


def _load(core: Core, req: Request) -> dict[str, Any]:
    _same_model(core, req.groups[0])
    body = req.body()
    params = body.get("parameters", {}) if isinstance(body, dict) else None
    version = params.get("version") if isinstance(params, dict) else None
    if body is not None and (not isinstance(params, dict) or not isinstance(version, str | None)):
        raise InvalidRequest("malformed", 'expected {"parameters": {"version": "N"}} or no body')
    try:
        loaded = core.model.load(version)
    finally:
        core.publish()
    return {"name": core.model.name, "version": loaded.version, "state": "READY"}


def _faults(core: Core, req: Request) -> dict[str, Any]:
    faults: Faults = core.model.faults
    if req.method == "POST":
        faults.update(req.body())
    elif req.method == "DELETE":
        faults.clear()
    core.publish()
    return {"faults": asdict(faults.flags)}


def _reset(core: Core, req: Request) -> dict[str, Any]:
    core.model.faults.clear()
    core.model.load()
    core.publish()
    return {"faults": asdict(core.model.faults.flags), "version": core.model.version}


# (path pattern, endpoint label, {method: handler}); admin endpoints are loopback-only
ROUTES: list[tuple[re.Pattern[str], str, dict[str, Handler]]] = [
    (re.compile(r"^/v2/models/([^/]+)/feedback$"), "feedback", {"POST": _feedback}),
    (re.compile(r"^/v2/repository/index$"), "repository", {"GET": _index, "POST": _index}),
    (re.compile(r"^/v2/repository/models/([^/]+)/load$"), "repository", {"POST": _load}),
    (re.compile(r"^/admin/faults$"), "admin", {"GET": _faults, "POST": _faults, "DELETE": _faults}),
    (re.compile(r"^/admin/reset$"), "admin", {"POST": _reset}),
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


def call(handler: Handler, core: Core, request: Request) -> dict[str, Any]:
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


def _same_model(core: Core, name: str) -> None:
    if name != core.model.name:
        raise HttpError(HTTPStatus.NOT_FOUND, f"unknown model {name!r}")
