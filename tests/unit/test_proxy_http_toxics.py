"""Request-level toxics (http_transform, http_drop) on a real proxy in front of a real HTTP server.

The proxy registry runs its asyncio loop in a thread; clients are `requests` sessions (keep-alive)
or raw sockets where the test needs to control how the bytes are split.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests

from mlchaos.proxy import InvalidToxic, ProxyRegistry
from mlchaos.proxy.__main__ import loop_factory
from mlchaos.proxy.http import RequestFramer
from mlchaos.proxy.transforms import parse_transforms, transform_body
from tests.support.http_server import LoopbackServer, reply

INFER = "/v2/models/iris/infer"
FEEDBACK = "/v2/models/iris/feedback"


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = _read_chunked(self.rfile)
        type(self).seen.append((self.command, self.path, body))
        out = json.dumps({"echo": len(body)}).encode()
        reply(self, 200, out)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


def _read_chunked(rfile: Any) -> bytes:
    body = b""
    while (size := int(rfile.readline().strip(), 16)) > 0:
        body += rfile.read(size)
        rfile.readline()
    rfile.readline()
    return body


class _Harness:
    def __init__(self, loop: str = "asyncio") -> None:
        _Recorder.seen = []
        self.server = LoopbackServer(_Recorder)
        self.loop = (loop_factory(loop) or asyncio.new_event_loop)()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.registry = ProxyRegistry()
        proxy = self.call(self.registry.create("api", "127.0.0.1:0", f"127.0.0.1:{self.server.port}"))
        self.listen = proxy.listen
        self.url = f"http://{self.listen}"

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def sync(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        async def inner() -> Any:
            return func(*args, **kwargs)

        return self.call(inner())

    def add(self, type: str, attributes: dict[str, Any], stream: str = "upstream") -> Any:
        return self.sync(self.registry.add_toxic, "api", type, attributes, stream, 1.0, "t")

    def remove(self) -> None:
        self.sync(self.registry.remove_toxic, "api", "t")

    def stats(self) -> dict[str, int]:
        return self.sync(lambda: self.registry.get_toxic("api", "t").to_dict()["stats"])

    def close(self) -> None:
        self.call(self.registry.close())
        self.call(_finish_tasks())  # connections cancelled by close() end before the loop stops, not at GC
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.server.stop()


async def _finish_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(params=["asyncio", "uvloop"])
def harness(request: pytest.FixtureRequest) -> Iterator[_Harness]:
    """The proxy on asyncio's loop and on uvloop (the proxy process runs on uvloop when installed)."""
    h = _Harness(request.param)
    try:
        yield h
    finally:
        h.close()


def _infer(rows: list[list[float]]) -> dict[str, Any]:
    return {"id": "r1", "inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64",
                                    "data": [v for r in rows for v in r]}]}


def test_transform_scales_a_feature_on_every_infer_request_of_a_keep_alive_connection(harness):
    harness.add("http_transform", {"transforms": [{"op": "scale", "feature": 2, "factor": 10}]})
    with requests.Session() as s:
        for _ in range(3):
            assert s.post(harness.url + INFER, json=_infer([[5.1, 3.5, 1.4, 0.2]]), timeout=5).status_code == 200
        assert s.get(harness.url + "/v2/health/ready", timeout=5).json() == {"echo": 0}
    bodies = [json.loads(b) for m, p, b in _Recorder.seen if p == INFER]
    assert [b["inputs"][0]["data"] for b in bodies] == [[5.1, 3.5, 14.0, 0.2]] * 3
    assert bodies[0]["id"] == "r1"  # everything but the features is kept
    assert harness.stats() == {"seen": 4, "matched": 3, "changed": 3, "skipped": 0, "oversized": 0,
                               "unframed_bytes": 0}


def test_requests_that_do_not_match_pass_byte_for_byte(harness):
    harness.add("http_transform", {"transforms": [{"op": "zero", "feature": 0}]})
    raw_body = b'{"inputs": [{"name": "truth", "shape": [1], "datatype": "INT64", "data": [2]}],   "x": 1}'
    requests.post(harness.url + FEEDBACK, data=raw_body, timeout=5)
    requests.post(harness.url + INFER, data=b"not json", timeout=5)  # matches, but is no tensor: skipped
    assert [b for _, _, b in _Recorder.seen] == [raw_body, b"not json"]
    assert harness.stats()["skipped"] == 1


def test_drop_answers_feedback_in_the_proxy_and_the_server_never_sees_it(harness):
    harness.add("http_drop", {})
    with requests.Session() as s:
        dropped = s.post(harness.url + FEEDBACK, json={"inputs": []}, timeout=5)
        served = s.post(harness.url + INFER, json=_infer([[1.0, 2.0, 3.0, 4.0]]), timeout=5)
    assert (dropped.status_code, dropped.json()) == (202, {})
    assert served.json() == {"echo": len(json.dumps(_infer([[1.0, 2.0, 3.0, 4.0]])))}
    assert [p for _, p, _ in _Recorder.seen] == [INFER]
    harness.remove()
    assert requests.post(harness.url + FEEDBACK, json={"inputs": []}, timeout=5).status_code == 200
    assert [p for _, p, _ in _Recorder.seen] == [INFER, FEEDBACK]


def test_drop_with_status_zero_closes_the_connection(harness):
    harness.add("http_drop", {"status": 0})
    with pytest.raises(requests.ConnectionError):
        requests.post(harness.url + FEEDBACK, json={"inputs": []}, timeout=5)
    assert _Recorder.seen == []


def test_probability_drops_about_that_share_of_requests(harness):
    harness.add("http_drop", {"probability": 0.5})
    with requests.Session() as s:
        codes = [s.post(harness.url + FEEDBACK, json={}, timeout=5).status_code for _ in range(100)]
    assert 25 <= codes.count(202) <= 75 and codes.count(202) + codes.count(200) == 100  # 5 sd either side
    assert len(_Recorder.seen) == codes.count(200)


def _raw_connection(harness: _Harness) -> socket.socket:
    host, port = harness.listen.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def _wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_partial_request_held_when_the_toxic_is_removed_goes_on_unchanged(harness):
    harness.add("http_transform", {"transforms": [{"op": "scale", "feature": 0, "factor": 2}]})
    body = json.dumps(_infer([[1.0, 2.0, 3.0, 4.0]])).encode()
    request = f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    with _raw_connection(harness) as sock:
        sock.sendall(request[:-10])
        time.sleep(0.2)
        assert _Recorder.seen == []  # held: the body is not complete
        harness.remove()
        sock.sendall(request[-10:])
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    assert _Recorder.seen == [("POST", INFER, body)]


def test_expect_100_continue_is_answered_by_the_proxy_and_the_body_transformed(harness):
    harness.add("http_transform", {"transforms": [{"op": "swap", "features": [0, 3]}]})
    body = json.dumps(_infer([[1.0, 2.0, 3.0, 4.0]])).encode()
    head = f"POST {INFER} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n"
    with _raw_connection(harness) as sock:
        sock.sendall(head.encode())
        assert sock.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    assert json.loads(_Recorder.seen[0][2])["inputs"][0]["data"] == [4.0, 2.0, 3.0, 1.0]


def test_a_chunked_request_passes_through_untouched(harness):
    harness.add("http_transform", {"transforms": [{"op": "zero", "feature": 0}]})
    body = json.dumps(_infer([[1.0, 2.0, 3.0, 4.0]])).encode()
    requests.post(harness.url + INFER, data=iter([body]), timeout=5)  # a generator body is sent chunked
    assert _Recorder.seen == [("POST", INFER, body)]
    assert harness.stats()["unframed_bytes"] > len(body)


def test_request_toxics_act_on_the_upstream_stream_only(harness):
    with pytest.raises(InvalidToxic, match="upstream stream only"):
        harness.add("http_drop", {}, stream="downstream")


@pytest.mark.parametrize("attributes, message", [
    ({"transforms": []}, "non-empty list"),
    ({"transforms": [{"op": "scale", "feature": 1}]}, r"transforms\[0\]: op scale takes .*missing factor"),
    ({"transforms": [{"op": "swap", "features": [1, 1]}]}, "two different column indexes"),
    ({"transforms": [{"op": "datatype", "datatype": "FP8"}]}, "datatype must be one of"),
    ({"transforms": [{"op": "scale", "feature": -1, "factor": 2}]}, "column index"),
    ({"transforms": [{"op": "zero", "feature": 0}], "path": "("}, "not a valid regular expression"),
    ({"transforms": [{"op": "zero", "feature": 0}], "probability": 2}, r"probability must be in \[0, 1\]"),
    ({"transforms": [{"op": "zero", "feature": 0}], "path": 3}, "path must be a string"),
    ({"transforms": [{"op": "zero", "feature": 0}], "colour": 1}, "unknown attribute"),
])
def test_bad_transform_attributes_are_refused_with_the_reason(harness, attributes, message):
    with pytest.raises(InvalidToxic, match=message):
        harness.add("http_transform", attributes)


def test_bad_drop_status_is_refused(harness):
    with pytest.raises(InvalidToxic, match="status must be 0"):
        harness.add("http_drop", {"status": 99})


@pytest.mark.parametrize("spec, rows, expected, datatype", [
    ([{"op": "scale", "feature": 1, "factor": 0.1}], [[1.0, 20.0]], [1.0, 2.0], "FP64"),
    ([{"op": "offset", "feature": 0, "delta": -1}], [[1.0, 2.0]], [0.0, 2.0], "FP64"),
    ([{"op": "zero", "feature": 1}, {"op": "swap", "features": [0, 1]}], [[1.0, 2.0]], [0.0, 1.0], "FP64"),
    ([{"op": "datatype", "datatype": "INT64"}], [[1.9, 2.2], [3.5, 4.0]], [1, 2, 3, 4], "INT64"),
    ([{"op": "datatype", "datatype": "BYTES"}], [[1.5, 2.0]], ["1.5", "2.0"], "BYTES"),
])
def test_transform_body_applies_operations_in_order(spec, rows, expected, datatype):
    body = json.dumps({"inputs": [{"name": "x", "shape": [len(rows), 2], "datatype": "FP64", "data": rows}]})
    out = json.loads(transform_body(body.encode(), parse_transforms(spec)))
    assert out["inputs"][0]["data"] == expected and out["inputs"][0]["datatype"] == datatype


@pytest.mark.parametrize("body", [
    b"[]", b"{}", b'{"inputs": [{"shape": [1], "data": [1]}]}',
    b'{"inputs": [{"shape": [1, 2], "data": [1]}]}', b'{"inputs": [{"shape": [1, 2], "data": ["a", 1]}]}',
    b'{"inputs": [{"name": "other", "shape": [1, 2], "data": [1, 2]}]}',
])
def test_transform_body_leaves_what_it_cannot_apply_to(body):
    transforms = parse_transforms([{"op": "scale", "feature": 0, "factor": 2}])
    assert transform_body(body, transforms, tensor="x" if b"other" in body else "") is None


def test_framer_splits_pipelined_requests_and_holds_a_partial_one():
    framer = RequestFramer()
    one = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    two = b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    got = framer.feed(one + two + two[:20])
    assert [(r.method, r.path, r.body) for r in got] == [("GET", "/a", b""), ("POST", "/b", b"abc")]
    assert framer.feed(two[20:])[0].raw == two
    assert framer.feed(b"POST /c HTTP/1.1\r\nContent-Length: 5\r\n\r\nab") == []
    assert framer.take_pending().endswith(b"ab") and not framer.opaque


@pytest.mark.parametrize("data", [
    b"NOT HTTP\r\n\r\n", b"POST /a HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
])
def test_framer_gives_up_on_what_it_cannot_frame_and_passes_it_raw(data):
    framer = RequestFramer()
    assert framer.feed(data) == [data] and framer.opaque
    assert framer.feed(b"more") == [b"more"]


def test_a_request_over_the_buffer_cap_streams_on_instead_of_being_held():
    framer = RequestFramer()  # the default cap: 1 MiB
    body = bytes(range(256)) * (20 * 4096)  # 20 MiB, what used to be held whole (up to 16 MiB) per connection
    big = f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    small = b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    stream = big + small
    out: list[bytes | object] = []
    peak = 0
    for i in range(0, len(stream), 65536):  # the chunks a link reads
        out += framer.feed(stream[i:i + 65536])
        peak = max(peak, framer.buffered)
    assert peak <= 65536, "never more than the chunk being split"
    raw = [item for item in out if isinstance(item, bytes)]
    assert b"".join(raw) == big, "byte for byte, in order"
    assert [(r.method, r.body) for r in out if not isinstance(r, bytes)] == [("POST", b"abc")], "framing resumes"
    assert framer.oversized == 1 and not framer.opaque


def test_a_request_just_under_the_cap_is_held_and_framed():
    framer = RequestFramer(max_body=1000)
    request = b"POST /a HTTP/1.1\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000
    assert framer.feed(request[:500]) == [] and framer.buffered == 500
    (framed,) = framer.feed(request[500:])
    assert framed.body == b"x" * 1000 and framer.oversized == 0
    assert framer.feed(b"POST /a HTTP/1.1\r\nContent-Length: 1001\r\n\r\n") != []  # over: the head goes on at once
    assert framer.oversized == 1 and framer.buffered == 0


def test_a_request_level_toxic_fed_more_than_its_cap_passes_it_untouched(harness):
    harness.add("http_transform", {"transforms": [{"op": "scale", "feature": 0, "factor": 2}], "max_body": 65536})
    big = _infer([[1.0] * 4] * 5000)  # about 100 KB of JSON: over the 64 KiB cap
    small = _infer([[1.0, 2.0, 3.0, 4.0]])
    with requests.Session() as s:
        assert s.post(harness.url + INFER, json=big, timeout=10).status_code == 200
        assert s.post(harness.url + INFER, json=small, timeout=10).status_code == 200
    (_, _, first), (_, _, second) = _Recorder.seen
    assert json.loads(first) == big, "streamed on unchanged, not held"
    assert json.loads(second)["inputs"][0]["data"] == [2.0, 2.0, 3.0, 4.0], "the next request is transformed"
    assert harness.stats() | {"unframed_bytes": 0} == {"seen": 1, "matched": 1, "changed": 1, "skipped": 0,
                                                       "oversized": 1, "unframed_bytes": 0}


@pytest.mark.parametrize("max_body", [16 * 1024 * 1024 + 1, -1, 1.5])
def test_the_buffer_cap_has_a_ceiling(harness, max_body):
    with pytest.raises(InvalidToxic, match="max_body must be a whole number of bytes"):
        harness.add("http_drop", {"max_body": max_body})
