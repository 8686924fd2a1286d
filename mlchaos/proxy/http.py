"""HTTP/1.1 request framing for the request-level toxics (no I/O in here).

:class:`RequestFramer` splits the bytes a client sends on one connection into complete
requests (request line, headers, a ``Content-Length`` body). What it cannot frame
safely goes on untouched, as raw bytes, for the rest of the connection: a chunked
body, a malformed head or a head over :data:`MAX_HEAD` (the framer then becomes
*opaque*). A request nobody changes is forwarded as the exact bytes the client sent
(:attr:`HttpRequest.raw`).

The buffer cap: a framer holds at most one request's head (:data:`MAX_HEAD`) and body
(``max_body`` bytes, :data:`DEFAULT_MAX_BODY` = 1 MiB unless the toxic says otherwise,
never more than :data:`MAX_BODY` = 16 MiB). A request whose ``Content-Length`` is over
``max_body`` is not buffered at all: its head and body stream on, untouched, as they
arrive (``oversized`` counts them), and framing resumes with the next request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024  # the most a request-level toxic may be told to hold (max_body)
DEFAULT_MAX_BODY = 1024 * 1024  # what it holds unless told otherwise
_REQUEST_LINE = re.compile(r"^([A-Z]+) ([^ \t\n\r\x0b\x0c]+) (HTTP/1\.[01])$")
_WS = " \t\n\r\x0b\x0c"  # what bytes.strip() strips: the head is decoded as latin-1, so str.strip() would strip more
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class HttpRequest:
    """One framed request; ``raw`` is exactly what the client sent."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes = field(repr=False)

    @property
    def path(self) -> str:
        """The request target's path (no query string)."""
        target = self.target
        if target.startswith("/") and not target.startswith("//"):  # origin form, the usual: no urlsplit
            return target.partition("?")[0].partition("#")[0]
        return urlsplit(target).path

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def with_body(self, body: bytes) -> bytes:
        """The request re-serialised with ``body`` (Content-Length fixed, any Expect header dropped)."""
        lines = [f"{self.method} {self.target} {self.version}"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in ("content-length", "expect")]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def response(status: int, body: bytes = b"", close: bool = False, content_type: str = "application/json") -> bytes:
    """A complete HTTP/1.1 response with ``status`` and ``body``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    head = [f"HTTP/1.1 {status} {phrase}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class RequestFramer:
    """Turns one connection's client bytes into :class:`HttpRequest` objects and raw pass-through bytes."""

    def __init__(self, max_body: int = DEFAULT_MAX_BODY) -> None:
        if isinstance(max_body, bool) or not isinstance(max_body, int) or not 0 <= max_body <= MAX_BODY:
            raise ValueError(f"max_body must be a whole number of bytes in [0, {MAX_BODY}], got {max_body!r}")
        self.max_body = max_body
        self._buffer = bytearray()
        self.opaque = False  # True once framing gave up: everything passes through raw
        self.continue_sent = False
        self.oversized = 0  # requests streamed on unframed because their body was over max_body
        self._passing = 0  # bytes of an oversized request still to stream on raw
        self._waiting_head: HttpRequest | None = None  # a head whose body has not fully arrived

    @property
    def buffered(self) -> int:
        """Bytes held right now (at most MAX_HEAD + max_body, plus one chunk being split)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[HttpRequest | bytes]:
        """Add ``data``; return the complete requests and raw chunks, in stream order."""
        self._buffer += data
        out: list[HttpRequest | bytes] = []
        while self._buffer:
            if self.opaque:
                out.append(self.take_pending())
                break
            if self._passing:
                count = min(self._passing, len(self._buffer))
                out.append(bytes(self._buffer[:count]))
                del self._buffer[:count]
                self._passing -= count
                continue
            request = self._next()
            if request is None:
                if self.opaque or self._passing:
                    continue  # gave up framing, or an oversized request: what is buffered goes on raw
                break
            out.append(request)
        return out

    def take_pending(self) -> bytes:
        """Hand over (and forget) the bytes held for an incomplete request."""
        held = bytes(self._buffer)
        self._buffer.clear()
        self._waiting_head = None
        self._passing = 0
        return held

    def wants_continue(self) -> bool:
        """True when the held head asked for ``100 Continue`` and none was sent for it yet."""
        head = self._waiting_head
        return (head is not None and not self.continue_sent
                and (head.header("expect") or "").lower() == "100-continue")

    def _next(self) -> HttpRequest | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                self.opaque = True
            return None
        head = self._parse_head(bytes(self._buffer[:end]))
        if head is None:
            self.opaque = True
            return None
        length = _content_length(head)
        if length is None:
            self.opaque = True
            return None
        if length > self.max_body:  # over the cap: stream it on as it comes instead of holding it
            self.oversized += 1
            self._passing = end + 4 + length
            self._waiting_head = None
            return None
        total = end + 4 + length
        if len(self._buffer) < total:
            if self._waiting_head is None:
                self.continue_sent = False
            self._waiting_head = head
            return None
        raw = bytes(self._buffer[:total])
        del self._buffer[:total]
        self._waiting_head = None
        head.body, head.raw = raw[end + 4:], raw
        return head

    @staticmethod
    def _parse_head(head: bytes) -> HttpRequest | None:
        lines = head.decode("latin-1").split("\r\n")
        match = _REQUEST_LINE.match(lines[0])
        if match is None:
            return None
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip(_WS):
                return None
            headers.append((name, value.strip(_WS)))
        method, target, version = match.groups()
        return HttpRequest(method, target, version, headers, b"", b"")


def _content_length(request: HttpRequest) -> int | None:
    """The body length, 0 without a body; None when it cannot be framed (chunked, bad or duplicate length)."""
    values = set()
    for name, value in request.headers:
        lowered = name.lower()
        if lowered == "content-length":
            values.add(value)
        elif lowered == "transfer-encoding":
            return None
    if not values:
        return 0
    if len(values) != 1 or not (value := values.pop()).isdigit() or not value.isascii():
        return None
    return int(value)
