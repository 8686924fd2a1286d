"""A real HTTP server for a test: a handler class served on a free loopback port from a daemon thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Serve ``handler`` on 127.0.0.1 (a port the kernel picks), each request on a thread of its own, until ``stop``
    or the end of a ``with`` block. ``server`` is the running ``ThreadingHTTPServer``, for handlers that keep
    state on it (``self.server``)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes,
          content_type: str | None = "application/json") -> None:
    """Answer the request ``handler`` serves: ``status`` and ``body`` with its length, and ``content_type`` (None:
    no Content-Type header)."""
    handler.send_response(status)
    if content_type:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
