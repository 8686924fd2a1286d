"""Attacks on the notification receiver over real HTTP: forged deliveries, slow and many clients, floods.

A drill must not pass on a notification Alertmanager did not send, and nothing a client does may
hold the receiver, or grow it, without bound.
"""

from __future__ import annotations

import json
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlchaos.errors import InvalidInput
from mlchaos.monitoring import notifications
from mlchaos.monitoring.notifications import NotificationReceiver, run_token
from tests.support import fixtures_api
from tests.support.polling import wait_until

TOKEN = "a-run-token-of-enough-length-0123456789"


def payload(alertname: str = "ModelServerDown") -> bytes:
    data = fixtures_api.load("webhook_firing.json")
    data["alerts"][0]["labels"] = {**data["alerts"][0]["labels"], "alertname": alertname}
    return json.dumps(data).encode()


def post(receiver: NotificationReceiver, body: bytes, token: str | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return requests.post(receiver.url, data=body, headers=headers, timeout=5)


@pytest.fixture
def guarded() -> Iterator[NotificationReceiver]:
    with NotificationReceiver(token=TOKEN) as running:
        yield running


def test_a_forged_delivery_is_refused_and_recorded_and_never_counts(guarded: NotificationReceiver) -> None:
    """The issue's case: one POST with no credential (and one with a guessed one) from anyone who can reach it."""
    assert post(guarded, payload()).status_code == 401
    assert post(guarded, payload(), token="guessed-but-long-enough-token").status_code == 401
    assert post(guarded, payload(), token=TOKEN + "x").status_code == 401
    assert guarded.notifications() == [] and guarded.wait_for(lambda _: True, timeout=0.2) is None
    assert [r.http_status for r in guarded.rejections()] == [401, 401, 401]
    assert all("credential" in r.reason for r in guarded.rejections())
    assert post(guarded, payload(), token=TOKEN).json() == {"accepted": 1}  # what Alertmanager sends
    assert [n.alertname for n in guarded.notifications()] == ["ModelServerDown"]
    assert guarded.to_journal()["authenticated"] is True


def test_the_run_token_is_fresh_private_and_at_least_32_characters(tmp_path: Path) -> None:
    first, second = run_token(tmp_path / "webhook.token", None), run_token(tmp_path / "webhook.token", None)
    assert first != second and len(first) >= 32
    assert (tmp_path / "webhook.token").read_text().strip() == second
    assert stat.S_IMODE((tmp_path / "webhook.token").stat().st_mode) == 0o600


def test_a_token_from_the_environment_must_be_long_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCHAOS_TEST_WEBHOOK_TOKEN", "short")
    with pytest.raises(InvalidInput, match=r"\$MLCHAOS_TEST_WEBHOOK_TOKEN must hold a token of at least 16"):
        run_token(None, "MLCHAOS_TEST_WEBHOOK_TOKEN")
    monkeypatch.delenv("MLCHAOS_TEST_WEBHOOK_TOKEN")
    with pytest.raises(InvalidInput, match="unset or empty"):
        run_token(None, "MLCHAOS_TEST_WEBHOOK_TOKEN")
    monkeypatch.setenv("MLCHAOS_TEST_WEBHOOK_TOKEN", TOKEN)
    assert run_token(None, "MLCHAOS_TEST_WEBHOOK_TOKEN") == TOKEN


def test_a_client_trickling_bytes_is_cut_at_the_request_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline bounds the whole request, not each read: a byte every 0.2 s does not hold it open."""
    monkeypatch.setattr(notifications, "READ_TIMEOUT", 1.0)
    with NotificationReceiver() as receiver, socket.create_connection((receiver.host, receiver.port)) as sock:
        sock.sendall(b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        cut = False
        for _ in range(100):  # 20 s of trickling if nothing cut it
            try:
                sock.sendall(b"{")
                time.sleep(0.2)
            except OSError:
                cut = True
                break
            sock.settimeout(0.01)
            try:
                if sock.recv(1) == b"":
                    cut = True
                    break
            except TimeoutError:
                pass
        assert cut, "the connection outlived the request deadline"
        wait_until(lambda: receiver.rejections(), what="the cut request to be recorded")
        reason = receiver.rejections()[0].reason
        assert "could not be read" in reason or "ended after" in reason, reason


def test_connections_beyond_the_cap_are_refused_at_once_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifications, "MAX_CONNECTIONS", 3)
    with NotificationReceiver() as receiver:
        stalled = [socket.create_connection((receiver.host, receiver.port)) for _ in range(3)]
        try:
            for sock in stalled:
                sock.sendall(b"POST /alerts HTTP/1.1\r\n")  # and nothing more
            wait_until(lambda: receiver._connections._value == 0, what="three connections being served")
            with socket.create_connection((receiver.host, receiver.port), timeout=5) as extra:
                answer = extra.recv(200)
            assert answer.startswith(b"HTTP/1.1 503")
            assert any("too many connections" in r.reason for r in receiver.rejections())
        finally:
            for sock in stalled:
                sock.close()
        wait_until(lambda: receiver._connections._value == 3, what="the stalled connections to be let go")
        assert post(receiver, payload()).status_code == 200  # the stalled ones gone, service resumes


def test_stored_notifications_are_bounded_and_the_overflow_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's flood: 11 MiB of POSTs became 245,401 notifications; now the receiver keeps a bounded number."""
    monkeypatch.setattr(notifications, "MAX_NOTIFICATIONS", 5)
    with NotificationReceiver() as receiver:
        codes = [post(receiver, payload(f"Alert{i}")).status_code for i in range(8)]
        assert codes == [200] * 5 + [507] * 3
        assert len(receiver.notifications()) == 5
        assert [r.http_status for r in receiver.rejections()] == [507] * 3


def test_stored_bytes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    body = payload()
    monkeypatch.setattr(notifications, "MAX_STORED_BYTES", len(body) * 2)
    with NotificationReceiver() as receiver:
        assert [post(receiver, body).status_code for _ in range(3)] == [200, 200, 507]
        assert "bytes of payloads" in receiver.rejections()[0].reason


def test_rejections_are_counted_but_only_the_latest_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifications, "MAX_REJECTIONS", 3)
    with NotificationReceiver() as receiver:
        for i in range(10):
            assert post(receiver, f"not json {i}".encode()).status_code == 400
        assert receiver.rejected_count() == 10 and len(receiver.rejections()) == 3
        assert "not json 9" not in receiver.rejections()[-1].reason  # the reason names the problem, not the body
        assert receiver.to_journal()["rejected"] == 10


def test_deeply_nested_json_is_a_recorded_rejection_not_a_crash() -> None:
    with NotificationReceiver(max_bytes=1_048_576) as receiver:
        deep = b"[" * 200_000 + b"]" * 200_000
        response = post(receiver, deep)
        assert response.status_code == 400
        assert receiver.rejections()[-1].reason == "JSON nested too deeply"
        assert post(receiver, payload()).status_code == 200  # and it keeps serving


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children,
                                                                                         max_size=4), max_leaves=30)


def _alertish() -> st.SearchStrategy[dict]:
    """Payloads near Alertmanager's shape: most fields right, some wrong or missing."""
    alert = st.fixed_dictionaries({"status": st.sampled_from(["firing", "resolved", "pending", 1, None]),
                                   "labels": st.one_of(st.dictionaries(st.sampled_from(["alertname", "instance"]),
                                                                       st.text(max_size=10)), _json)},
                                  optional={"startsAt": _json, "fingerprint": _json, "annotations": _json})
    return st.fixed_dictionaries({"alerts": st.one_of(st.lists(alert, max_size=3), _json)},
                                 optional={"receiver": _json, "groupKey": _json, "version": _json})


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=300), _json.map(lambda v: json.dumps(v).encode()),
                      _alertish().map(lambda v: json.dumps(v).encode())),
       credential=st.sampled_from([None, "wrong-token-but-long-enough", TOKEN]))
def test_fuzzed_deliveries_never_crash_it_and_only_authenticated_valid_ones_count(body: bytes,
                                                                                  credential: str | None) -> None:
    """Bounded fuzzing over real HTTP: every request gets an answer, the receiver keeps serving, and a
    notification is kept only for a well-formed payload carrying the token."""
    with NotificationReceiver(token=TOKEN) as receiver:
        answer = post(receiver, body, token=credential)
        assert answer.status_code in (200, 400, 401)
        kept = receiver.notifications()
        if credential != TOKEN:
            assert answer.status_code == 401 and kept == []
        elif answer.status_code == 200:
            assert len(kept) == answer.json()["accepted"] and all(n.status in ("firing", "resolved") for n in kept)
        else:
            assert kept == [] and receiver.rejected_count() == 1
        assert post(receiver, payload(), token=TOKEN).status_code == 200  # still serving
