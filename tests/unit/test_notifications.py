"""NotificationReceiver over real HTTP, fed with bodies recorded from Alertmanager 0.25."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from mlchaos.monitoring.notifications import Notification, NotificationReceiver
from tests.support import fixtures_api


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    with NotificationReceiver(max_bytes=4096) as running:
        yield running


def post(receiver: NotificationReceiver, data: bytes, path: str | None = None) -> requests.Response:
    url = receiver.url if path is None else f"http://{receiver.host}:{receiver.port}{path}"
    return requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=5)


def raw_request(receiver: NotificationReceiver, head: bytes, body: bytes = b"", close_write: bool = False) -> bytes:
    """Send bytes as they are (for requests no HTTP client would send) and read the whole answer."""
    with socket.create_connection((receiver.host, receiver.port), timeout=5) as sock:
        sock.sendall(head + body)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def payload(alertname: str = "TestAlert", status: str = "firing", **labels: str) -> bytes:
    data = fixtures_api.load("webhook_firing.json")
    data["status"] = status
    data["alerts"][0]["status"] = status
    data["alerts"][0]["labels"] = {**data["alerts"][0]["labels"], "alertname": alertname, **labels}
    return json.dumps(data).encode()


def test_recorded_firing_payload(receiver: NotificationReceiver) -> None:
    started = time.time()
    resp = post(receiver, fixtures_api.body("webhook_firing.json"))
    assert resp.status_code == 200 and resp.json() == {"accepted": 1}
    [note] = receiver.notifications()
    recorded = fixtures_api.load("webhook_firing.json")
    assert note.status == "firing" and note.alertname == "TestAlert"
    assert note.labels == recorded["alerts"][0]["labels"]
    assert note.annotations == {"summary": f"flip is 1 on {fixtures_api.recorded_instance()}"}
    assert note.starts_at == recorded["alerts"][0]["startsAt"] and note.ends_at == "0001-01-01T00:00:00Z"
    assert note.fingerprint == recorded["alerts"][0]["fingerprint"]
    assert note.receiver == "mlchaos" and note.group_key == recorded["groupKey"]
    assert started <= note.received_at <= time.time()
    assert receiver.rejections() == []
    journal = json.loads(json.dumps(receiver.to_journal()))
    assert journal["url"] == receiver.url and journal["notifications"][0]["alertname"] == "TestAlert"


def test_recorded_resolved_payload_and_filters(receiver: NotificationReceiver) -> None:
    post(receiver, fixtures_api.body("webhook_firing.json"))
    assert post(receiver, fixtures_api.body("webhook_resolved.json")).status_code == 200
    post(receiver, payload("OtherAlert"))
    resolved = receiver.notifications(status="resolved")
    assert [n.status for n in resolved] == ["resolved"]
    assert resolved[0].ends_at == fixtures_api.load("webhook_resolved.json")["alerts"][0]["endsAt"]
    assert [n.status for n in receiver.notifications(alertname="TestAlert")] == ["firing", "resolved"]
    assert [n.alertname for n in receiver.notifications(status="firing")] == ["TestAlert", "OtherAlert"]


def test_one_notification_per_alert_of_a_group(receiver: NotificationReceiver) -> None:
    data = fixtures_api.load("webhook_firing.json")
    second = json.loads(json.dumps(data["alerts"][0]))
    second["labels"]["instance"] = "127.0.0.1:1"
    data["alerts"].append(second)
    assert post(receiver, json.dumps(data).encode()).json() == {"accepted": 2}
    assert sorted(n.labels["instance"] for n in receiver.notifications()) == sorted(
        ["127.0.0.1:1", fixtures_api.recorded_instance()]
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"alerts": [', "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"version": "4", "status": "firing"}', "no 'alerts' list"),
        (b'{"alerts": {"status": "firing"}}', "no 'alerts' list"),
        (b'{"alerts": ["x"]}', "alerts[0] must be an object"),
        (b'{"alerts": [{"status": "firing", "labels": {}}]}', "alerts[0].labels.alertname is missing"),
        (b'{"alerts": [{"status": "firing"}]}', "alerts[0].labels.alertname is missing"),
        (b'{"alerts": [{"status": "maybe", "labels": {"alertname": "A"}}]}', "must be 'firing' or 'resolved'"),
    ],
)
def test_malformed_payloads_are_rejected_and_recorded(receiver: NotificationReceiver, data: bytes, reason: str) -> None:
    resp = post(receiver, data)
    assert resp.status_code == 400 and reason in resp.json()["error"]
    [rejection] = receiver.rejections()
    assert reason in rejection.reason and rejection.http_status == 400 and rejection.size == len(data)
    assert rejection.peer.startswith("127.0.0.1:") and rejection.path == "/alerts"
    assert receiver.notifications() == []
    assert post(receiver, fixtures_api.body("webhook_firing.json")).status_code == 200  # still serving


def test_a_bad_alert_rejects_the_whole_payload(receiver: NotificationReceiver) -> None:
    data = fixtures_api.load("webhook_firing.json")
    data["alerts"].append({"status": "firing", "labels": {}})
    assert post(receiver, json.dumps(data).encode()).status_code == 400
    assert receiver.notifications() == []


def test_oversized_payload_gets_413_without_its_body_being_read(receiver: NotificationReceiver) -> None:
    head = b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4097\r\n\r\n"
    answer = raw_request(receiver, head)  # the body is never sent: only an answer that skips it can arrive
    assert answer.startswith(b"HTTP/1.1 413 ")
    [rejection] = receiver.rejections()
    assert rejection.http_status == 413 and rejection.size == 4097 and "exceeds the limit of 4096" in rejection.reason
    at_limit = payload(padding="x" * (4096 - len(payload(padding=""))))
    assert len(at_limit) == 4096 and post(receiver, at_limit).status_code == 200


def test_missing_or_invalid_content_length(receiver: NotificationReceiver) -> None:
    assert raw_request(receiver, b"POST /alerts HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 411 ")
    answer = raw_request(receiver, b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert [r.http_status for r in receiver.rejections()] == [411, 400]


def test_truncated_body_is_recorded(receiver: NotificationReceiver) -> None:
    head = b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    assert raw_request(receiver, head, b'{"alerts": [', close_write=True) == b""
    [rejection] = receiver.rejections()
    assert rejection.reason == "body ended after 12 of 100 bytes" and rejection.size == 100


def test_wrong_path_and_methods(receiver: NotificationReceiver) -> None:
    assert post(receiver, fixtures_api.body("webhook_firing.json"), path="/alert").status_code == 404
    got = requests.get(receiver.url, timeout=5)
    assert got.status_code == 405 and got.headers["Allow"] == "POST"
    assert requests.put(receiver.url, data=b"{}", timeout=5).status_code == 405
    assert requests.get(f"http://{receiver.host}:{receiver.port}/", timeout=5).status_code == 404
    assert [(r.method, r.path, r.http_status) for r in receiver.rejections()] == [
        ("POST", "/alert", 404),
        ("GET", "/alerts", 405),
        ("PUT", "/alerts", 405),
        ("GET", "/", 404),
    ]
    assert receiver.notifications() == []


def test_concurrent_posts(receiver: NotificationReceiver) -> None:
    codes: list[int] = []

    def send(i: int) -> None:
        codes.append(post(receiver, payload(f"Alert{i}")).status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 24
    assert sorted(n.alertname for n in receiver.notifications()) == sorted(f"Alert{i}" for i in range(24))


def test_wait_for_a_notification_that_already_arrived(receiver: NotificationReceiver) -> None:
    post(receiver, payload("First"))
    post(receiver, payload("Second"))
    started = time.monotonic()
    found = receiver.wait_for(lambda n: n.status == "firing", timeout=5)
    assert isinstance(found, Notification) and found.alertname == "First"  # the FIRST match
    assert time.monotonic() - started < 1


def test_wait_for_a_notification_that_arrives_later(receiver: NotificationReceiver) -> None:
    post(receiver, payload("Noise"))
    timer = threading.Timer(0.2, post, args=(receiver, payload("Late", status="resolved")))
    timer.start()
    try:
        found = receiver.wait_for(lambda n: n.alertname == "Late", timeout=10)
    finally:
        timer.join()
    assert found is not None and found.status == "resolved"


def test_wait_for_times_out_with_none(receiver: NotificationReceiver) -> None:
    post(receiver, payload("Noise"))
    started = time.monotonic()
    assert receiver.wait_for(lambda n: n.alertname == "Never", timeout=0.2) is None
    assert 0.2 <= time.monotonic() - started < 2


def test_lifecycle() -> None:
    receiver = NotificationReceiver(path="/hook")
    assert receiver.port == 0
    receiver.start()
    port = receiver.port
    assert port > 0 and receiver.url == f"http://127.0.0.1:{port}/hook"
    assert receiver.start() is receiver and receiver.port == port  # already running: no-op
    started = time.monotonic()
    receiver.stop()
    receiver.stop()
    assert time.monotonic() - started < 1
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{port}/hook", data=b"{}", timeout=2)


def test_invalid_construction() -> None:
    with pytest.raises(ValueError, match="path"):
        NotificationReceiver(path="alerts")
    with pytest.raises(ValueError, match="max_bytes"):
        NotificationReceiver(max_bytes=0)
