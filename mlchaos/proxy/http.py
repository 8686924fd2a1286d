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


@dataclass(slots=True)
class HttpRequest:
    """One framed request; ``raw`` is exactly what the client sent."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes = field(repr=False)
    # where its one Content-Length line is in ``raw`` ([CRLF before it, its end)), when that header is spelled
    # so, given once, and no Expect header is there: :meth:`with_body` then rewrites the length alone
    length_line: tuple[int, int] | None = field(default=None, repr=False)

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
        """The request with ``body`` instead of its own and its Content-Length set to match.

        With one ``Content-Length`` line and no ``Expect`` header (:attr:`length_line`), the head goes
        on as it came but for that line's value; otherwise it is re-serialised (one header a line,
        the length last, any Expect header dropped).
        """
        if self.length_line is not None:
            at, end = self.length_line
            raw = self.raw
            return b"".join((raw[:at], b"\r\nContent-Length: %d" % len(body), raw[end:len(raw) - len(self.body)], body))
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
        self._needed = 0  # bytes the held request has in all (head and body), once its head is known
        self._memo: _HeadMemo | None = None  # the last head parsed, for a next one that differs in its length only

    @property
    def buffered(self) -> int:
        """Bytes held right now (at most MAX_HEAD + max_body, plus one chunk being split)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[HttpRequest | bytes]:
        """Add ``data``; return the complete requests and raw chunks, in stream order.

        The chunk is split where it lies: only what is left of an incomplete request is copied into
        the buffer, and a request whose body is still arriving is not looked at again until it is whole.
        """
        if type(data) is not bytes:
            data = bytes(data)  # what it hands on is bytes, whatever came in
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._needed:
                return []  # the held request is still incomplete
            data = bytes(self._buffer)
            self._buffer.clear()
        out: list[HttpRequest | bytes] = []
        pos, size = 0, len(data)
        while pos < size:
            if self.opaque:
                out.append(data[pos:] if pos else data)
                pos = size
                break
            if self._passing:
                count = min(self._passing, size - pos)
                out.append(data[pos:pos + count])
                pos += count
                self._passing -= count
                continue
            end = data.find(b"\r\n\r\n", pos)
            if end < 0:
                if size - pos > MAX_HEAD:
                    self.opaque = True
                    continue
                break
            parsed = self._parse(data[pos:end])
            if parsed is None:
                self.opaque = True
                continue
            head, length = parsed
            if length > self.max_body:  # over the cap: stream it on as it comes instead of holding it
                self.oversized += 1
                self._passing = end + 4 - pos + length
                self._waiting_head = None
                continue
            total = end + 4 + length
            if size < total:
                if self._waiting_head is None:
                    self.continue_sent = False
                self._waiting_head = head
                self._needed = total - pos
                break
            raw = data if pos == 0 and total == size else data[pos:total]
            head.body, head.raw = raw[end + 4 - pos:], raw
            self._waiting_head = None
            self._needed = 0
            out.append(head)
            pos = total
        if pos < size:
            self._buffer += memoryview(data)[pos:]
        return out

    def take_pending(self) -> bytes:
        """Hand over (and forget) the bytes held for an incomplete request."""
        held = bytes(self._buffer)
        self._buffer.clear()
        self._waiting_head = None
        self._needed = 0
        self._passing = 0
        return held

    def wants_continue(self) -> bool:
        """True when the held head asked for ``100 Continue`` and none was sent for it yet."""
        head = self._waiting_head
        return (head is not None and not self.continue_sent
                and (head.header("expect") or "").lower() == "100-continue")

    def _parse(self, head: bytes) -> tuple[HttpRequest, int] | None:
        """:func:`parse_head`, but a head that differs from the last one parsed only in its Content-Length
        value (a keep-alive client sending the same kind of request again) reuses that parse."""
        memo = self._memo
        if memo is not None and head.startswith(memo.prefix) and head.endswith(memo.suffix):
            at, end = len(memo.prefix), len(head) - len(memo.suffix)
            if (at + 17 <= end and head.startswith(b"\r\nContent-Length:", at)
                    and head.find(b"\r\n", at + 2, end) < 0):  # that line, and only it, between the two
                digits = head[at + 17:end].strip()  # bytes.strip() strips what _WS names; isdigit(): ASCII only
                if not digits.isdigit():
                    return None
                headers = memo.headers.copy()
                headers[memo.index] = ("Content-Length", digits.decode("latin-1"))
                return HttpRequest(memo.method, memo.target, memo.version, headers, b"", b"", (at, end)), int(digits)
        parsed = parse_head(head)
        if parsed is not None:
            memo = self._memo = _HeadMemo.of(head, parsed[0])
            if memo is not None:
                parsed[0].length_line = (len(memo.prefix), len(head) - len(memo.suffix))
        return parsed


@dataclass(frozen=True, slots=True)
class _HeadMemo:
    """A parsed head around its one ``Content-Length`` line: what comes before it, after it, and the parse."""

    prefix: bytes
    suffix: bytes
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    index: int  # of the Content-Length header in ``headers``

    @staticmethod
    def of(head: bytes, request: HttpRequest) -> _HeadMemo | None:
        """The memo of ``head``; None unless it has one Content-Length header, spelled so, and no Expect."""
        index = -1
        for i, (name, _) in enumerate(request.headers):
            if len(name) in (6, 14):
                lowered = name.lower()
                if lowered == "expect" or (lowered == "content-length" and (index >= 0 or name != "Content-Length")):
                    return None
                if lowered == "content-length":
                    index = i
        if index < 0:
            return None
        at = head.find(b"\r\nContent-Length:")
        end = head.find(b"\r\n", at + 2)
        end = len(head) if end < 0 else end
        return _HeadMemo(head[:at], head[end:], request.method, request.target, request.version, request.headers,
                         index)


def parse_head(head: bytes) -> tuple[HttpRequest, int] | None:
    """The request (no body yet) and its body's length from a head without its final blank line; None when it
    cannot be framed (a malformed head, a chunked body, a bad or a duplicate length)."""
    lines = head.decode("latin-1").split("\r\n")
    match = _REQUEST_LINE.match(lines[0])
    if match is None:
        return None
    headers: list[tuple[str, str]] = []
    length = ""
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip(_WS):
            return None
        value = value.strip(_WS)
        headers.append((name, value))
        if len(name) == 14 or len(name) == 17:
            lowered = name.lower()
            if lowered == "content-length":
                if length and value != length:
                    return None  # two different lengths
                length = value or "-"  # an empty one is bad too
            elif lowered == "transfer-encoding":
                return None
    if not length:
        return HttpRequest(*match.groups(), headers, b"", b""), 0
    if not length.isdigit() or not length.isascii():
        return None
    return HttpRequest(*match.groups(), headers, b"", b""), int(length)
