"""The routes of the HTTP API over :class:`~mlchaos.proxy.core.ProxyRegistry`: Toxiproxy's REST API, JSON bodies.

Handlers are thin: look up, make one core call, serialise. Core errors become
responses through :data:`ERROR_STATUS`, the one table of status codes. The HTTP
server around it (connections, limits, who may call) is :mod:`mlchaos.proxy.server`.

Routes: GET /version; GET/POST /proxies; GET/POST(PATCH)/DELETE /proxies/{proxy};
GET/POST /proxies/{proxy}/toxics; GET/POST(PATCH)/DELETE /proxies/{proxy}/toxics/{toxic};
POST /reset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from mlchaos.proxy.core import ProxyRegistry
from mlchaos.proxy.errors import (
    AlreadyExists,
    Forbidden,
    InvalidProxy,
    InvalidToxic,
    ProxyNotFound,
    ResetIncomplete,
    ToxicNotFound,
)
from mlchaos.proxy.request import BadRequest

VERSION = "2.9.0-mlchaos"  # the Toxiproxy API version this one follows

ERROR_STATUS: dict[type[Exception], int] = {
    ProxyNotFound: 404,
    ToxicNotFound: 404,
    AlreadyExists: 409,
    ResetIncomplete: 409,
    InvalidProxy: 400,
    InvalidToxic: 400,
    BadRequest: 400,
    Forbidden: 403,
}

Response = tuple[int, Any]
Handler = Callable[..., Awaitable[Response]]


class ProxyApi:
    """Serves the API for one registry."""

    def __init__(self, registry: ProxyRegistry) -> None:
        self.registry = registry
        p, t = r"/proxies/(?P<proxy>[^/]+)", r"/toxics/(?P<toxic>[^/]+)"
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/version"), self.version),
            ("POST", re.compile(r"/reset"), self.reset),
            ("GET", re.compile(r"/proxies"), self.list_proxies),
            ("POST", re.compile(r"/proxies"), self.create_proxy),
            ("GET", re.compile(p), self.get_proxy),
            ("POST", re.compile(p), self.update_proxy),
            ("PATCH", re.compile(p), self.update_proxy),
            ("DELETE", re.compile(p), self.delete_proxy),
            ("GET", re.compile(p + r"/toxics"), self.list_toxics),
            ("POST", re.compile(p + r"/toxics"), self.add_toxic),
            ("GET", re.compile(p + t), self.get_toxic),
            ("POST", re.compile(p + t), self.update_toxic),
            ("PATCH", re.compile(p + t), self.update_toxic),
            ("DELETE", re.compile(p + t), self.remove_toxic),
        ]

    # -- handlers ------------------------------------------------------------------------

    async def version(self, body: Any) -> Response:
        """GET /version."""
        return 200, {"version": VERSION}

    async def reset(self, body: Any) -> Response:
        """POST /reset: every toxic removed, every proxy enabled (409 naming any that could not be)."""
        await self.registry.reset()
        return 204, None

    async def list_proxies(self, body: Any) -> Response:
        """GET /proxies: {name: proxy}."""
        return 200, {name: proxy.to_dict() for name, proxy in self.registry.proxies.items()}

    async def create_proxy(self, body: Any) -> Response:
        """POST /proxies {name, listen, upstream, enabled}."""
        data = _object(body, ("name", "listen", "upstream", "enabled"))
        proxy = await self.registry.create(data.get("name"), data.get("listen", "127.0.0.1:0"),
                                           data.get("upstream"), data.get("enabled", True))
        return 201, proxy.to_dict()

    async def get_proxy(self, body: Any, proxy: str) -> Response:
        """GET /proxies/{proxy}."""
        return 200, self.registry.get(proxy).to_dict()

    async def update_proxy(self, body: Any, proxy: str) -> Response:
        """POST /proxies/{proxy} {enabled, listen, upstream} (each optional)."""
        data = _object(body, ("name", "listen", "upstream", "enabled"))
        updated = await self.registry.update(proxy, data.get("enabled"), data.get("listen"), data.get("upstream"))
        return 200, updated.to_dict()

    async def delete_proxy(self, body: Any, proxy: str) -> Response:
        """DELETE /proxies/{proxy}."""
        await self.registry.delete(proxy)
        return 204, None

    async def list_toxics(self, body: Any, proxy: str) -> Response:
        """GET /proxies/{proxy}/toxics."""
        return 200, [t.to_dict() for t in self.registry.get(proxy).toxics]

    async def add_toxic(self, body: Any, proxy: str) -> Response:
        """POST /proxies/{proxy}/toxics {name, type, stream, toxicity, attributes, ttl}."""
        data = _object(body, ("name", "type", "stream", "toxicity", "attributes", "ttl"))
        entry = self.registry.add_toxic(proxy, data.get("type"), data.get("attributes"),
                                        data.get("stream", "downstream"), data.get("toxicity", 1.0),
                                        data.get("name"), data.get("ttl"))
        return 200, entry.to_dict()

    async def get_toxic(self, body: Any, proxy: str, toxic: str) -> Response:
        """GET /proxies/{proxy}/toxics/{toxic}."""
        return 200, self.registry.get_toxic(proxy, toxic).to_dict()

    async def update_toxic(self, body: Any, proxy: str, toxic: str) -> Response:
        """POST /proxies/{proxy}/toxics/{toxic} {attributes, toxicity, ttl}."""
        data = _object(body, ("name", "type", "stream", "toxicity", "attributes", "ttl"))
        entry = self.registry.update_toxic(proxy, toxic, data.get("attributes"), data.get("toxicity"),
                                           data.get("ttl"))
        return 200, entry.to_dict()

    async def remove_toxic(self, body: Any, proxy: str, toxic: str) -> Response:
        """DELETE /proxies/{proxy}/toxics/{toxic}."""
        self.registry.remove_toxic(proxy, toxic)
        return 204, None

    # -- dispatch and HTTP ---------------------------------------------------------------

    async def dispatch(self, method: str, target: str, raw: bytes) -> Response:
        """Route one request; map core errors to status codes through ERROR_STATUS."""
        path = urlsplit(target).path.rstrip("/") or "/"
        allowed = []
        for verb, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if verb != method:
                allowed.append(verb)
                continue
            try:
                body = _json(raw)
                args = {k: unquote(v) for k, v in match.groupdict().items()}
                return await handler(body, **args)
            except ResetIncomplete as exc:
                return ERROR_STATUS[ResetIncomplete], {**_error(409, str(exc))[1], "failed": exc.failed}
            except tuple(ERROR_STATUS) as exc:
                return _error(ERROR_STATUS[type(exc)], str(exc))
        if allowed:
            return _error(405, f"{method} not allowed on {path} (allowed: {', '.join(allowed)})")
        return _error(404, f"no route {path}")


def _object(body: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return body


def _error(status: int, message: str) -> Response:
    return status, {"error": message, "status": status}


def _json(raw: bytes) -> Any:
    """The body as JSON ({} when empty); BadRequest for anything else (bad UTF-8, NaN, nesting too deep...)."""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
