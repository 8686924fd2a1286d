"""Recorded Prometheus 2.42 / Alertmanager 0.25 / VictoriaMetrics + vmalert 1.79.5 API bodies, and a real HTTP
server that replays them.

The ``*.json`` files next to this module are response bodies saved byte for byte from a
real stack (see MANIFEST.json for the request, HTTP status and versions of each).
:class:`ReplayServer` serves them on 127.0.0.1 so the probes are tested over real
HTTP with real bodies, without mocking ``requests``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.support.http_server import LoopbackServer, reply

HERE = Path(__file__).resolve().parent
MANIFEST: dict[str, Any] = json.loads((HERE / "MANIFEST.json").read_text())


def body(name: str) -> bytes:
    """The recorded body of one fixture file."""
    return (HERE / name).read_bytes()


def load(name: str) -> Any:
    """The recorded body of one fixture file, parsed."""
    return json.loads(body(name))


def status(name: str) -> int:
    """The HTTP status the fixture was recorded with (200 for webhook bodies)."""
    return MANIFEST["files"][name]["http_status"] or 200


def recorded_instance() -> str:
    """The ``instance`` label of the target that was flipped during the recording."""
    return MANIFEST["stack"]["targets"][0]


class ReplayServer:
    """Serve recorded responses by path; a path given several responses serves them in turn, the last forever."""

    def __init__(self) -> None:
        self._routes: dict[str, list[tuple[int, bytes]]] = {}
        self._lock = threading.Lock()
        self.requests: list[str] = []  # path and query of every request, in order
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with replay._lock:
                    replay.requests.append(self.path)
                    queue = replay._routes.get(path)
                    code, data = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else (404, b"not found")
                reply(self, code, data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return self._server.url

    def serve(self, path: str, *fixtures: str) -> None:
        """Answer ``path`` with these recorded fixtures, one per request, repeating the last."""
        self.serve_raw(path, *[(status(name), body(name)) for name in fixtures])

    def serve_raw(self, path: str, *responses: tuple[int, bytes]) -> None:
        """Answer ``path`` with (status, body) pairs: for answers no real server gives on demand."""
        with self._lock:
            self._routes[path] = list(responses)

    def stop(self) -> None:
        self._server.stop()
