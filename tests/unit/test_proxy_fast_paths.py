"""The proxy's fast paths give what the plain paths give.

* a bound pass-through link (its source's reads go straight to the sink transport) sees every change
  of the chain from the next read on, on asyncio's loop and on uvloop: real sockets, an HTTP upstream;
* the request framer's reuse of the last head's parse (a head that differs only in its Content-Length)
  frames every request as the full parse does, and ``with_body`` rewrites the length alone;
* ``transform_body``'s in-place rewrite of the tensor's data gives the same JSON as a plain reference
  (parse, apply row by row, serialise), on generated bodies meant to mislead it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlchaos.proxy import ProxyRegistry
from mlchaos.proxy.__main__ import loop_factory
from mlchaos.proxy.http import HttpRequest, RequestFramer, parse_head
from mlchaos.proxy.transforms import parse_transforms, transform_body

FEEDBACK = "/v2/models/iris/feedback"


async def _upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A keep-alive HTTP server answering every request 200 with the path it was asked for."""
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            path = head.split(b" ", 2)[1]
            await reader.readexactly(_length(head))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, bytes]:
    writer.write(f"POST {FEEDBACK} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head.split(b" ")[1]), await reader.readexactly(_length(head))


def _length(head: bytes) -> int:
    return next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")), 0)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_bound_link_sees_a_toxic_from_the_next_read_on_and_is_bound_again_once_it_is_gone(loop):
    async def main() -> list[Any]:
        server = await asyncio.start_server(_upstream, "127.0.0.1", 0)
        registry = ProxyRegistry()
        proxy = await registry.create("p", "127.0.0.1:0", f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
        host, port = proxy.listen.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        seen: list[Any] = []
        try:
            seen.append(await _ask(reader, writer))
            upstream_link = next(iter(proxy.connections)).links[0]
            seen.append(upstream_link.bound)
            registry.add_toxic("p", "http_drop", {"status": 202, "body": "dropped"}, "upstream", 1.0, "drop")
            seen.append(upstream_link.bound)  # unbound by the change itself, before any read
            seen.append(await _ask(reader, writer))  # the very next request meets the toxic
            registry.remove_toxic("p", "drop")
            seen.append(await _ask(reader, writer))
            seen.append(upstream_link.bound)
            registry.add_toxic("p", "latency", {"latency": 1}, "downstream", 1.0, "lag")  # the other direction
            seen.append(await _ask(reader, writer))
            seen.append(upstream_link.bound)
            await registry.reset()
            seen.append(await _ask(reader, writer))
        finally:
            writer.close()
            await registry.close()
            server.close()
        return seen

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        seen = runner.run(asyncio.wait_for(main(), 30))
    upstream = (200, FEEDBACK.encode())
    assert seen == [upstream, True, False, (202, b"dropped"), upstream, True, upstream, True, upstream]


_NAMES = st.sampled_from(["Host", "Content-Length", "content-length", "Expect", "X-A", "Transfer-Encoding",
                          " Host", "Host "])
_VALUES = st.sampled_from(["x", "", " 3", "12", "5 ", "1\n2", "100-continue", "a:b", "\u00b2"])


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    """A stream of requests, most of them one head again with other bodies (and lengths)."""
    line = draw(st.sampled_from(["POST /v2/models/m/infer HTTP/1.1", "GET / HTTP/1.0", "bad"]))
    extra = draw(st.lists(st.tuples(_NAMES, _VALUES, st.sampled_from([": ", ":", ":\t"])), max_size=3))
    before, after = extra[:1], extra[1:]
    out = b""
    for body in draw(st.lists(st.binary(max_size=12), min_size=1, max_size=6)):
        length = draw(st.sampled_from([str(len(body)), f" {len(body)}", f"{len(body)}x", str(len(body))]))
        lines = [line, *(f"{n}{s}{v}" for n, v, s in before), f"Content-Length: {length}",
                 *(f"{n}{s}{v}" for n, v, s in after)]
        out += ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(_requests(), st.lists(st.integers(1, 50), min_size=1, max_size=8))
def test_the_framer_frames_every_request_as_the_full_parse_does(stream: bytes, cuts: list[int]):
    framer, framed, pos, i = RequestFramer(), [], 0, 0
    while pos < len(stream):
        framed += framer.feed(stream[pos:pos + cuts[i % len(cuts)]])
        pos, i = pos + cuts[i % len(cuts)], i + 1
    rest = stream
    for item in framed:
        if isinstance(item, bytes):
            assert framer.opaque and rest.startswith(item)  # given up: what is left goes on raw
            rest = rest[len(item):]
            continue
        head_end = rest.index(b"\r\n\r\n")
        expected, length = parse_head(rest[:head_end])
        assert (item.method, item.target, item.version, item.headers) == (
            expected.method, expected.target, expected.version, expected.headers)
        assert item.raw == rest[:head_end + 4 + length] and item.body == item.raw[head_end + 4:]
        rest = rest[len(item.raw):]
        changed = item.with_body(b"new body")
        again = RequestFramer().feed(changed)
        assert len(again) == 1 and isinstance(again[0], HttpRequest) and again[0].body == b"new body"
        assert _fields(again[0]) == _fields(item)
    assert rest == bytes(framer.take_pending()) or framer.opaque


def _fields(request: HttpRequest) -> tuple[Any, ...]:
    kept = sorted((k.lower(), v) for k, v in request.headers if k.lower() not in ("content-length", "expect"))
    return request.method, request.target, request.version, kept


def _reference(body: bytes, spec: list[dict[str, Any]], tensor: str) -> Any:
    """What transform_body must give (as JSON), done the plain way; None where it must give None."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    found = next((t for t in inputs or [] if isinstance(t, dict) and (not tensor or t.get("name") == tensor)), None)
    if not isinstance(inputs, list) or found is None:
        return None
    shape, data = found.get("shape"), found.get("data")
    if not (isinstance(shape, list) and len(shape) == 2 and all(type(d) is int and d >= 0 for d in shape)
            and isinstance(data, list)):
        return None
    flat: list[Any] = []
    stack = [data]
    while stack:  # depth-first, in order
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    rows, cols = shape
    if len(flat) != rows * cols:
        return None
    table = [flat[r * cols:(r + 1) * cols] for r in range(rows)]
    casts = {"INT64": lambda v: int(_number(v)), "FP32": lambda v: float(_number(v)), "BYTES": str, "BOOL": bool}
    try:
        for op in spec:
            columns = [op[k] for k in ("feature",) if k in op] + op.get("features", [])
            if any(c >= cols for c in columns):
                return None
            for row in table:
                if op["op"] == "scale":
                    row[op["feature"]] = _number(row[op["feature"]]) * float(op["factor"])
                elif op["op"] == "offset":
                    row[op["feature"]] = _number(row[op["feature"]]) + float(op["delta"])
                elif op["op"] == "zero":
                    row[op["feature"]] = 0.0
                elif op["op"] == "swap":
                    i, j = op["features"]
                    row[i], row[j] = row[j], row[i]
                else:
                    row[:] = [casts[op["datatype"]](v) for v in row]
            if op["op"] == "datatype":
                found["datatype"] = op["datatype"]
    except (TypeError, ValueError, OverflowError):
        return None
    found["data"] = [v for row in table for v in row]
    return doc


def _number(value: Any) -> int | float:
    if type(value) not in (int, float):
        raise TypeError(f"not a number: {value!r}")
    return value


_OPS = st.one_of(
    st.builds(lambda f, x: {"op": "scale", "feature": f, "factor": x}, st.integers(0, 3), st.floats(-1e300, 1e300)),
    st.builds(lambda f, x: {"op": "offset", "feature": f, "delta": x}, st.integers(0, 3), st.floats(-10, 10)),
    st.builds(lambda f: {"op": "zero", "feature": f}, st.integers(0, 3)),
    st.builds(lambda a, b: {"op": "swap", "features": [a, b]}, st.integers(0, 1), st.integers(2, 3)),
    st.builds(lambda d: {"op": "datatype", "datatype": d}, st.sampled_from(["INT64", "FP32", "BYTES", "BOOL"])))
_VALUE = st.one_of(st.integers(-10**20, 10**20), st.floats(), st.booleans(), st.none(), st.text(max_size=2))


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """Infer bodies: flat or nested data, numbers or not, other tensors, other "data" keys, escapes, spacing."""
    rows, cols = draw(st.integers(0, 3)), draw(st.integers(0, 4))
    numbers = st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 1000))
    values = [draw(numbers if draw(st.booleans()) else _VALUE) for _ in range(rows * cols)]
    data: list[Any] = [values[r * cols:(r + 1) * cols] for r in range(rows)] if draw(st.booleans()) else values
    if draw(st.booleans()) and data:
        data = data[:-1]  # does not fill the shape
    name = draw(st.sampled_from(["x", "input-0", 'say "data": [1]', "\u00e9", "[data]"]))
    inputs: list[Any] = [{"name": name, "shape": [rows, cols], "datatype": "FP32", "data": data}]
    if draw(st.booleans()):
        inputs.insert(draw(st.integers(0, 1)), {"name": "other", "shape": [rows, cols], "data": list(data)})
    doc: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        doc["parameters"] = draw(st.sampled_from([{"data": [1, 2]}, {"data": 3}, {"note": "]["}, {}]))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " : ")]))
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()), separators=separators)
    return (" " * draw(st.integers(0, 1)) + text).encode()


def _same(got: bytes | None, expected: Any) -> bool:
    if got is None or expected is None:
        return got is None and expected is None
    return _canonical(json.loads(got)) == _canonical(expected)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str).replace("NaN", "nan")


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(_bodies(), st.lists(_OPS, min_size=1, max_size=3), st.sampled_from(["", "x", "other"]))
def test_transform_body_gives_what_the_plain_rewrite_gives(body: bytes, spec: list[dict[str, Any]], tensor: str):
    assert _same(transform_body(body, parse_transforms(spec), tensor), _reference(body, spec, tensor))


@pytest.mark.parametrize("body, spec, expected", [
    (b'{"inputs":[{"shape":[1,3],"data":[1.50, 2e1 ,3]}],"id":"a"}', [{"op": "scale", "feature": 1, "factor": 2}],
     b'{"inputs":[{"shape":[1,3],"data":[1.50, 40.0 ,3]}],"id":"a"}'),  # the rest goes on as it came
    (b'{"inputs":[{"shape":[2,2],"data":[[1,2],[3,4]]}]}', [{"op": "swap", "features": [0, 1]}],
     b'{"inputs":[{"shape":[2,2],"data":[2,1,4,3]}]}'),  # nested data goes on flat, as from the full rewrite
    (b'{"inputs":[{"shape":[1,2],"d\\u0061ta":[1,2]}],"p":{"data":[1,2]}}', [{"op": "zero", "feature": 0}],
     b'{"inputs": [{"shape": [1, 2], "data": [0.0, 2]}], "p": {"data": [1, 2]}}'),  # an escape: the full rewrite
    (b'{"inputs":[{"shape":[1,1],"data":[1e308]}]}', [{"op": "scale", "feature": 0, "factor": 10}],
     b'{"inputs":[{"shape":[1,1],"data":[Infinity]}]}'),
])
def test_transform_body_rewrites_the_data_alone_where_it_can(body: bytes, spec: list[dict[str, Any]],
                                                             expected: bytes):
    assert transform_body(body, parse_transforms(spec)) == expected
