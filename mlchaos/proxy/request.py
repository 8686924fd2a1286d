"""Parsing one API request's head, strictly (no I/O here, so it can be fuzzed alone).

Anything ambiguous is refused rather than guessed: a request line that is not exactly
``METHOD /path HTTP/1.x``, a header without a name or with spaces before its colon, a folded
header line, control characters, two different values of a header that must be single
(``Host``, ``Content-Length``, ``Content-Type``, ``Origin``, ``Authorization``...), a length
that is not plain digits, or any ``Transfer-Encoding`` (the API takes ``Content-Length`` bodies
only: two ways to find the end of a body are how requests get smuggled).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_LINE = 8192
MAX_HEADERS = 100
_METHOD = re.compile(r"[A-Z]{1,16}")
_TARGET = re.compile(r"/[!-~]*")  # origin-form: a path (and query), visible ASCII only
_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE = re.compile(r"[\t -~\x80-\xff]*")  # no control characters but tab
SINGLE = frozenset({"host", "content-length", "content-type", "origin", "authorization", "transfer-encoding",
                    "sec-fetch-site", "connection"})


class BadRequest(Exception):
    """A request the API refuses before looking at it; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RequestHead:
    """A parsed request line and headers (names lower-cased)."""

    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The target's path, without the query string."""
        return urlsplit(self.target).path

    @property
    def content_length(self) -> int:
        """The body's length (0 without a Content-Length header)."""
        return int(self.headers.get("content-length", "0"))

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 without ``Connection: close``."""
        return self.version == "HTTP/1.1" and self.headers.get("connection", "").lower() != "close"


def parse_head(lines: list[bytes]) -> RequestHead:
    """The head from its lines (request line first, each with or without its CRLF); BadRequest otherwise."""
    if not lines:
        raise BadRequest("empty request")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(f"too many headers (at most {MAX_HEADERS})", 431)
    texts = []
    for line in lines:
        if len(line) > MAX_LINE:
            raise BadRequest(f"a line of the request is over {MAX_LINE} bytes", 431)
        texts.append(line.removesuffix(b"\n").removesuffix(b"\r").decode("latin-1"))
    parts = texts[0].split(" ")
    if len(parts) != 3:
        raise BadRequest(f"the request line must be METHOD /path HTTP/1.1, got {texts[0][:100]!r}")
    method, target, version = parts
    if not _METHOD.fullmatch(method):
        raise BadRequest(f"bad method {method[:20]!r}")
    if not _TARGET.fullmatch(target):
        raise BadRequest(f"the request target must be a path starting with /, got {target[:100]!r}")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(f"unsupported HTTP version {version[:20]!r}", 505)
    headers: dict[str, str] = {}
    for text in texts[1:]:
        name, colon, value = text.partition(":")
        if not colon or not _NAME.fullmatch(name):
            raise BadRequest(f"malformed header line {text[:100]!r}")
        value = value.strip(" \t")
        if not _VALUE.fullmatch(value):
            raise BadRequest(f"control characters in header {name}")
        key = name.lower()
        if key in headers and key in SINGLE and headers[key] != value:
            raise BadRequest(f"header {name} given twice with different values")
        headers[key] = value
    if "transfer-encoding" in headers:
        raise BadRequest("Transfer-Encoding is not supported: send the body with a Content-Length", 501)
    length = headers.get("content-length", "0")
    if not (length.isascii() and length.isdigit() and len(length) <= 18):
        raise BadRequest(f"Content-Length must be a number of bytes, got {length[:40]!r}")
    return RequestHead(method, target, version, headers)
