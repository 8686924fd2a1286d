"""Request-level toxics: act on whole HTTP/1.1 requests, on the upstream (client->server) stream.

``http_transform`` rewrites the features of matching infer requests (train/serve skew, see
:mod:`mlchaos.proxy.transforms`); ``http_drop`` swallows matching requests and answers them
itself (``status``, default 202: the client believes the call was delivered) or closes the
connection (``status`` 0): feedback that silently stops arriving.

A request matches when its method is ``method`` ("" for any), its path fully matches the
regular expression ``path``, and a draw falls under ``probability`` (per request; the entry's
``toxicity`` is per connection). Requests are framed by :class:`mlchaos.proxy.http.RequestFramer`:
a partial request is held until it is complete and handed on unchanged if the toxic is removed
meanwhile (``release``), so nothing is lost; what cannot be framed passes through untouched.
A request no toxic changes goes on byte for byte. ``max_body`` (bytes, default 1 MiB, at most
16 MiB) caps what the toxic holds per connection: a request with a larger body streams on
untouched as it arrives (counted as ``oversized``) instead of being buffered. Answering a request
in the proxy assumes the client waits for each answer before sending the next request on the
connection (no pipelining), as HTTP clients do. Counters (``stats``: requests seen, matched,
changed, skipped, oversized, unframed bytes) appear in the toxic's JSON.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mlchaos.proxy.errors import InvalidToxic
from mlchaos.proxy.http import CONTINUE, DEFAULT_MAX_BODY, MAX_BODY, HttpRequest, RequestFramer, response
from mlchaos.proxy.toxics.base import Stub, Toxic, register
from mlchaos.proxy.transforms import Transform, parse_transforms, transform_body

_MEMO_TARGETS = 256  # request targets whose match a toxic remembers (it forgets them all when full)
_MEMO_TARGET = 512  # the longest target it remembers
INFER_PATH = r"/v2/models/[^/]+(/versions/[^/]+)?/infer"
FEEDBACK_PATH = r"/v2/models/[^/]+(/versions/[^/]+)?/feedback"


@dataclass
class HttpRequestToxic(Toxic):
    """Base of the request-level toxics: matching, framing, counters."""

    streams: ClassVar[tuple[str, ...]] = ("upstream",)
    path: str = ".*"
    method: str = "POST"
    probability: float = 1.0
    max_body: int = DEFAULT_MAX_BODY

    @classmethod
    def from_attributes(cls, attributes: dict[str, Any]) -> Toxic:
        """Build from JSON attributes, checking each one's type; InvalidToxic names the bad one."""
        if not isinstance(attributes, dict):
            raise InvalidToxic(f"attributes must be an object, got {attributes!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(attributes) - set(fields))
        if unknown:
            raise InvalidToxic(f"{cls.type}: unknown attribute(s) {', '.join(unknown)}; known: {', '.join(fields)}")
        for key, value in attributes.items():
            default = getattr(cls, key, None) if fields[key].default is not dataclasses.MISSING else []
            if isinstance(default, str) and not isinstance(value, str):
                raise InvalidToxic(f"{cls.type}: attribute {key} must be a string, got {value!r}")
            if isinstance(default, float | int) and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InvalidToxic(f"{cls.type}: attribute {key} must be a number, got {value!r}")
        toxic = cls(**attributes)
        toxic.check()
        return toxic

    def check(self) -> None:
        """Validate the shared attributes (subclasses extend)."""
        try:
            self._path = re.compile(self.path)
        except re.error as exc:
            raise InvalidToxic(f"{self.type}: path is not a valid regular expression ({exc}): {self.path!r}") from None
        if not 0 <= self.probability <= 1:
            raise InvalidToxic(f"{self.type}: probability must be in [0, 1], got {self.probability!r}")
        if self.method and not re.fullmatch(r"[A-Z]+", self.method):
            raise InvalidToxic(f"{self.type}: method must be an upper-case HTTP method or \"\", got {self.method!r}")
        if not float(self.max_body).is_integer() or not 0 <= self.max_body <= MAX_BODY:
            raise InvalidToxic(f"{self.type}: max_body must be a whole number of bytes in [0, {MAX_BODY}] (what it"
                               f" may hold per connection), got {self.max_body!r}")
        self.max_body = int(self.max_body)
        self.counts: Counter[str] = Counter()
        self._paths: dict[str, bool] = {}  # request target -> does its path match (a bounded memo)

    def stats(self) -> dict[str, int]:
        """Requests seen, matched, changed, skipped (matched but left alone), oversized (streamed on unframed,
        over ``max_body``) and bytes passed unframed."""
        return {k: self.counts.get(k, 0)
                for k in ("seen", "matched", "changed", "skipped", "oversized", "unframed_bytes")}

    def matches(self, request: HttpRequest) -> bool:
        """Method and path match, and the per-request draw falls under ``probability``."""
        if self.method and request.method != self.method:
            return False
        target = request.target
        hit = self._paths.get(target)
        if hit is None:
            hit = self._path.fullmatch(request.path) is not None
            if len(target) <= _MEMO_TARGET:
                if len(self._paths) >= _MEMO_TARGETS:
                    self._paths.clear()
                self._paths[target] = hit
        if not hit:
            return False
        return self.probability >= 1 or random.random() < self.probability

    async def pipe(self, data: bytes, stub: Stub) -> bytes:
        """Frame the chunk into requests; pass on the complete ones (changed or not), hold a partial one."""
        return self.pipe_now(data, stub)

    def pipe_now(self, data: bytes, stub: Stub) -> bytes:
        """:meth:`pipe` without waiting: the proxy may run it in the read's callback."""
        framer: RequestFramer | None = stub.state.get("framer")
        if framer is None:
            framer = stub.state["framer"] = RequestFramer(self.max_body)
        oversized = framer.oversized
        items = framer.feed(data)
        counts = self.counts
        if framer.oversized != oversized:
            counts["oversized"] += framer.oversized - oversized
        out: list[bytes] = []
        for item in items:
            if isinstance(item, bytes):
                counts["unframed_bytes"] += len(item)
                out.append(item)
                continue
            counts["seen"] += 1
            if not self.matches(item):
                out.append(item.raw)
                continue
            counts["matched"] += 1
            changed = self.handle(item, stub)
            if changed is None:
                counts["skipped"] += 1
                out.append(item.raw)
            else:
                counts["changed"] += 1
                out.append(changed)
        if framer.wants_continue():
            framer.continue_sent = True
            stub.reply(CONTINUE)  # the client waits for it before sending the body we need
        return out[0] if len(out) == 1 else b"".join(out)

    def release(self, stub: Stub) -> bytes:
        """The partial request held for this connection (the toxic was removed, or the stream ended)."""
        framer: RequestFramer | None = stub.state.get("framer")
        return framer.take_pending() if framer is not None else b""

    def handle(self, request: HttpRequest, stub: Stub) -> bytes | None:
        """What to forward instead of a matching request (b"" for nothing); None: leave it alone."""
        return None


@dataclass
class HttpTransform(HttpRequestToxic):
    """Rewrite the features of matching infer requests (train/serve skew)."""

    path: str = INFER_PATH
    transforms: list[Any] = field(default_factory=list)
    tensor: str = ""

    def check(self) -> None:
        """Validate the transforms too."""
        super().check()
        self._parsed: tuple[Transform, ...] = parse_transforms(self.transforms)

    def handle(self, request: HttpRequest, stub: Stub) -> bytes | None:
        """The request with its features transformed; None when the body is not a tensor they apply to."""
        body = transform_body(request.body, self._parsed, self.tensor)
        return None if body is None else request.with_body(body)


@dataclass
class HttpDrop(HttpRequestToxic):
    """Swallow matching requests: answer ``status`` from the proxy (0: close the connection)."""

    path: str = FEEDBACK_PATH
    status: int = 202
    body: str = "{}"

    def check(self) -> None:
        """Status is 0 or an HTTP status code."""
        super().check()
        if not (self.status == 0 or (200 <= self.status <= 599 and float(self.status).is_integer())):
            raise InvalidToxic(f"{self.type}: status must be 0 (close the connection) or an HTTP status"
                               f" 200..599, got {self.status!r}")

    def handle(self, request: HttpRequest, stub: Stub) -> bytes | None:
        """Answer (or close) in the proxy; the server never sees the request."""
        if self.status == 0:
            stub.close()
            return b""
        close = (request.header("connection") or "").lower() == "close"
        stub.reply(response(int(self.status), self.body.encode(), close=close))
        if close:
            stub.close()
        return b""


register("http_transform", HttpTransform)
register("http_drop", HttpDrop)
