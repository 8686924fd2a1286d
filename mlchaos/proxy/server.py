"""The API's HTTP/1.1 server on asyncio streams: keep-alive, Content-Length bodies, limits and the guard.

Every request is parsed strictly (:mod:`mlchaos.proxy.request`), then passes the
:class:`~mlchaos.proxy.guard.ApiGuard` (Host, Origin, token, content type) before it is routed
(:mod:`mlchaos.proxy.api`). A refused or malformed request closes its connection.

Limits (:class:`ApiLimits`, set from the command line) keep stalled or hostile clients from
exhausting the process:

* ``idle_timeout`` (30 s): a connection that starts no request for that long is closed;
* ``request_timeout`` (10 s): reading one request (head and body) must finish within it (408
  otherwise), and so must writing its answer;
* ``max_connections`` (128): at the cap, a new connection closes the one that has waited
  longest without a request being handled, so stalled clients never lock others out (nor use up
  descriptors); when every connection has a request being handled, the newcomer gets 503;
* ``max_body`` (1 MiB): a larger body gets 413 before it is read.

Handlers are not cancelled by a deadline: they never wait on the network, and cutting a change
half-way is what the core's all-or-nothing updates exist to prevent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from mlchaos.proxy.api import ProxyApi
from mlchaos.proxy.core import ProxyRegistry
from mlchaos.proxy.guard import ApiGuard, require_token
from mlchaos.proxy.request import MAX_HEADERS, MAX_LINE, BadRequest, RequestHead, parse_head

CHALLENGE = ("WWW-Authenticate", 'Bearer realm="mlchaos-proxy"')


@dataclass(frozen=True)
class ApiLimits:
    """How long and how much one client may hold of the API (see the module doc)."""

    max_connections: int = 128
    idle_timeout: float = 30.0
    request_timeout: float = 10.0
    max_body: int = 1 << 20

    def __post_init__(self) -> None:
        for name in ("max_connections", "idle_timeout", "request_timeout", "max_body"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    since: float  # when it was accepted or last started a request: the oldest goes first at the cap
    busy: bool = False  # a request is being handled (routed or answered)


@dataclass
class ApiServer:
    """Serves one :class:`ProxyApi` under one guard and one set of limits."""

    api: ProxyApi
    guard: ApiGuard
    limits: ApiLimits = field(default_factory=ApiLimits)
    connections: list[_Connection] = field(default_factory=list)
    evicted: int = 0  # connections closed to make room for a new one

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve requests on one connection (keep-alive) until the client closes, stalls or is refused."""
        conn = self._admit(writer)
        if conn is None:
            return
        try:
            while await self._one_request(reader, conn):
                pass
        except (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            with contextlib.suppress(ValueError):
                self.connections.remove(conn)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _admit(self, writer: asyncio.StreamWriter) -> _Connection | None:
        """Track a new connection; at the cap, close the longest-waiting idle one (or refuse this one)."""
        loop = asyncio.get_running_loop()
        if len(self.connections) >= self.limits.max_connections:
            idle = [c for c in self.connections if not c.busy]
            if not idle:
                writer.write(_response(503, _error(503, "too many API connections are busy; retry")[1], False))
                writer.close()
                return None
            oldest = min(idle, key=lambda c: c.since)
            self.connections.remove(oldest)
            self.evicted += 1
            oldest.writer.transport.abort()
        conn = _Connection(writer, loop.time())
        self.connections.append(conn)
        return conn

    async def _one_request(self, reader: asyncio.StreamReader, conn: _Connection) -> bool:
        """Read, check, route and answer one request; False when the connection is to be closed."""
        limits, loop = self.limits, asyncio.get_running_loop()
        conn.busy = False
        try:
            async with asyncio.timeout(limits.idle_timeout):
                first = await reader.readline()
        except TimeoutError:
            return False  # idle too long: close without a word, as servers do
        except ValueError:  # a line over the reader's limit
            await self._answer(conn, 431, _error(431, f"a line of the request is over {MAX_LINE} bytes")[1], False)
            return False
        if not first:
            return False
        conn.since = loop.time()
        try:
            async with asyncio.timeout(limits.request_timeout):
                head = parse_head(await _head_lines(reader, first))
                if head.content_length > limits.max_body:
                    raise BadRequest(f"the body is over {limits.max_body} bytes", 413)
                body = await reader.readexactly(head.content_length)
        except TimeoutError:
            await self._answer(conn, 408, _error(408, "the request did not arrive in time")[1], False)
            return False
        except BadRequest as exc:
            await self._answer(conn, exc.status, _error(exc.status, f"bad request: {exc}")[1], False)
            return False
        except ValueError:  # a line over the reader's limit
            await self._answer(conn, 431, _error(431, f"a line of the request is over {MAX_LINE} bytes")[1], False)
            return False
        conn.busy = True
        refusal = self.guard.check(head, body)
        if refusal is not None:
            extra = [CHALLENGE] if refusal.status == 401 else []
            await self._answer(conn, refusal.status, _error(refusal.status, refusal.message)[1], False, extra)
            return False
        status, payload = await self._route(head, body)
        await self._answer(conn, status, payload, head.keep_alive)
        return head.keep_alive

    async def _route(self, head: RequestHead, body: bytes) -> tuple[int, Any]:
        try:
            return await self.api.dispatch(head.method, head.target, body)
        except Exception as exc:  # a bug must not take the API down: answer 500 and say so in the log
            traceback.print_exc(file=sys.stderr)
            return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    async def _answer(self, conn: _Connection, status: int, payload: Any, keep_alive: bool,
                      extra: list[tuple[str, str]] | None = None) -> None:
        conn.writer.write(_response(status, payload, keep_alive, extra))
        async with asyncio.timeout(self.limits.request_timeout):
            await conn.writer.drain()


async def _head_lines(reader: asyncio.StreamReader, first: bytes) -> list[bytes]:
    lines = [first]
    while True:
        line = await reader.readline()
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line)
        if len(lines) > MAX_HEADERS + 1:
            raise BadRequest(f"too many headers (at most {MAX_HEADERS})", 431)


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": message, "status": status}


def _response(status: int, payload: Any, keep_alive: bool, extra: list[tuple[str, str]] | None = None) -> bytes:
    body = b"" if payload is None else (json.dumps(payload) + "\n").encode()
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Length: {len(body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}", "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff"]
    if body:
        head.append("Content-Type: application/json")
    head += [f"{name}: {value}" for name, value in extra or []]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def serve(registry: ProxyRegistry, host: str, port: int, guard: ApiGuard | None = None,
                limits: ApiLimits | None = None) -> asyncio.Server:
    """Start the API on ``host:port`` (0: a free port) and return the server.

    ``guard`` defaults to no token, which only a loopback ``host`` allows (InsecureApi otherwise).
    """
    guard = ApiGuard(host) if guard is None else guard
    require_token(host, guard.token)
    limits = ApiLimits() if limits is None else limits
    server = ApiServer(ProxyApi(registry), guard, limits)
    return await asyncio.start_server(server.handle, host, port, limit=MAX_LINE + 2,
                                      backlog=max(100, 2 * int(limits.max_connections)))
