"""A webhook receiver for Alertmanager notifications, so a drill can prove the page was sent.

:class:`NotificationReceiver` is a small stdlib HTTP server in a daemon thread. Point an
Alertmanager ``webhook_configs`` entry at its ``url`` (and set ``send_resolved: true`` to
see recoveries too). Every alert in every accepted payload becomes one typed
:class:`Notification`; every refused request becomes a :class:`Rejection`. Nothing a
client sends can crash the receiver or the run that owns it.

The payload format is Alertmanager's webhook version "4"::

    {"version": "4", "groupKey": ..., "status": "firing|resolved", "receiver": ...,
     "alerts": [{"status", "labels": {"alertname", ...}, "annotations", "startsAt",
                 "endsAt", "generatorURL", "fingerprint"}], ...}
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlchaos.errors import InvalidInput
from mlchaos.experiment.settings import ADDRESS
from mlchaos.lib.records import JsonRecord

ALERT_STATUSES = ("firing", "resolved")
DEFAULT_MAX_BYTES = 1_048_576
READ_TIMEOUT = 10.0  # seconds a client may take to send its body


@dataclass(frozen=True)
class Notification(JsonRecord):
    """One alert of one webhook payload, as Alertmanager delivered it."""

    received_at: float  # epoch seconds
    status: str  # "firing" | "resolved"
    alertname: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: str = ""
    ends_at: str = ""
    fingerprint: str = ""
    receiver: str = ""
    group_key: str = ""


    def describe(self) -> str:
        """``Name{label="value", ...} status`` (alertname left out of the labels)."""
        return f"{label_text(self.alertname, self.labels)} {self.status}"


@dataclass(frozen=True)
class Rejection(JsonRecord):
    """A request the receiver refused (malformed, oversized, wrong path or method)."""

    received_at: float  # epoch seconds
    reason: str
    http_status: int
    size: int | None  # declared Content-Length in bytes, None when absent or unparsable
    peer: str
    method: str = "POST"
    path: str = ""



class PayloadError(ValueError):
    """A webhook body that is not a valid Alertmanager payload."""


def parse_payload(body: bytes, received_at: float) -> list[Notification]:
    """The notifications of one webhook body; raises PayloadError naming what is wrong."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(payload).__name__}")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("payload has no 'alerts' list")
    receiver, group_key = _text(payload.get("receiver")), _text(payload.get("groupKey"))
    notes = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise PayloadError(f"alerts[{i}] must be an object")
        status, labels = alert.get("status"), alert.get("labels")
        if status not in ALERT_STATUSES:
            raise PayloadError(f"alerts[{i}].status must be 'firing' or 'resolved', got {status!r}")
        if not isinstance(labels, dict) or not isinstance(labels.get("alertname"), str):
            raise PayloadError(f"alerts[{i}].labels.alertname is missing")
        annotations = alert.get("annotations")
        notes.append(
            Notification(
                received_at=received_at,
                status=status,
                alertname=labels["alertname"],
                labels={str(k): _text(v) for k, v in labels.items()},
                annotations={str(k): _text(v) for k, v in annotations.items()}
                if isinstance(annotations, dict)
                else {},
                starts_at=_text(alert.get("startsAt")),
                ends_at=_text(alert.get("endsAt")),
                fingerprint=_text(alert.get("fingerprint")),
                receiver=receiver,
                group_key=group_key,
            )
        )
    return notes


class NotificationReceiver:
    """An Alertmanager webhook receiver on ``host:port`` (port 0: any free port), POST ``path`` only."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, path: str = "/alerts", max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self._host, self._port, self._path, self._max_bytes = host, port, path, max_bytes
        self._cond = threading.Condition()
        self._notifications: list[Notification] = []
        self._rejections: list[Rejection] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> NotificationReceiver:
        """Bind and serve in a daemon thread (a no-op when already running)."""
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="mlchaos-notifications", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port (idempotent; recorded notifications are kept)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=2)

    def __enter__(self) -> NotificationReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """The address the receiver binds."""
        return self._host

    @property
    def port(self) -> int:
        """The port it listens on (the actual one once started)."""
        return self._server.server_address[1] if self._server is not None else self._port

    @property
    def path(self) -> str:
        """The only path that accepts payloads."""
        return self._path

    @property
    def url(self) -> str:
        """The URL to put in Alertmanager's ``webhook_configs``."""
        return f"http://{self._host}:{self.port}{self._path}"

    # -- recorded data --------------------------------------------------------------------

    def notifications(self, alertname: str | None = None, status: str | None = None) -> list[Notification]:
        """The notifications received so far, oldest first, optionally filtered."""
        with self._cond:
            return [
                n
                for n in self._notifications
                if (alertname is None or n.alertname == alertname) and (status is None or n.status == status)
            ]

    def rejections(self) -> list[Rejection]:
        """The requests refused so far, oldest first."""
        with self._cond:
            return list(self._rejections)

    def wait_for(self, predicate: Callable[[Notification], bool], timeout: float) -> Notification | None:
        """The first notification (already received or arriving within ``timeout`` seconds) matching ``predicate``."""
        deadline = time.monotonic() + max(timeout, 0.0)
        checked = 0
        with self._cond:
            while True:
                for note in self._notifications[checked:]:
                    if predicate(note):
                        return note
                checked = len(self._notifications)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def to_journal(self) -> dict[str, Any]:
        """Everything received, JSON-serialisable: url, notifications and rejections."""
        with self._cond:
            return {
                "url": self.url,
                "notifications": [n.to_dict() for n in self._notifications],
                "rejections": [r.to_dict() for r in self._rejections],
            }

    # -- called by the handler ------------------------------------------------------------

    def _accept(self, notes: list[Notification]) -> None:
        with self._cond:
            self._notifications.extend(notes)
            self._cond.notify_all()

    def _reject(self, rejection: Rejection) -> None:
        with self._cond:
            self._rejections.append(rejection)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a client that stalls mid-request
    request_queue_size = 128  # a burst of group notifications must not hit a full listen backlog
    receiver: NotificationReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        receiver = self.server.receiver
        now = time.time()
        if not self._on_path():
            return self._refuse(HTTPStatus.NOT_FOUND, f"no receiver at {self._path()}", now, None)
        raw = self.headers.get("Content-Length")
        if raw is None:
            return self._refuse(HTTPStatus.LENGTH_REQUIRED, "no Content-Length", now, None)
        try:
            size = int(raw)
            if size < 0:
                raise ValueError
        except ValueError:
            return self._refuse(HTTPStatus.BAD_REQUEST, f"invalid Content-Length {raw!r}", now, None)
        if size > receiver._max_bytes:
            reason = f"payload of {size} bytes exceeds the limit of {receiver._max_bytes}"
            return self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, reason, now, size)
        try:
            body = self.rfile.read(size)
        except OSError as exc:  # includes a client that stalls past READ_TIMEOUT
            self.close_connection = True
            receiver._reject(self._rejection(f"body could not be read: {exc}", 0, now, size))
            return None
        if len(body) < size:
            self.close_connection = True
            reason = f"body ended after {len(body)} of {size} bytes"
            receiver._reject(self._rejection(reason, 0, now, size))
            return None
        try:
            notes = parse_payload(body, now)
        except PayloadError as exc:
            return self._refuse(HTTPStatus.BAD_REQUEST, str(exc), now, size, body_read=True)
        receiver._accept(notes)
        self._respond(HTTPStatus.OK, {"accepted": len(notes)})
        return None

    def _other_method(self) -> None:
        if self._on_path():
            self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} not allowed", time.time(), None)
        else:
            self._refuse(HTTPStatus.NOT_FOUND, f"no receiver at {self._path()}", time.time(), None)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _other_method

    # -- helpers --------------------------------------------------------------------------

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _on_path(self) -> bool:
        return self._path() == self.server.receiver._path

    def _rejection(self, reason: str, status: int, now: float, size: int | None) -> Rejection:
        peer = f"{self.client_address[0]}:{self.client_address[1]}" if self.client_address else ""
        return Rejection(now, reason, status, size, peer, self.command, self._path())

    def _refuse(self, status: HTTPStatus, reason: str, now: float, size: int | None, body_read: bool = False) -> None:
        self.server.receiver._reject(self._rejection(reason, int(status), now, size))
        if not body_read:
            self.close_connection = True  # an unread body must not be taken for the next request
        extra = {"Allow": "POST"} if status == HTTPStatus.METHOD_NOT_ALLOWED else {}
        self._respond(status, {"error": reason}, extra)

    def _respond(self, status: HTTPStatus, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        with contextlib.suppress(OSError):  # the client went away; the request is recorded already
            self.wfile.write(b"" if self.command == "HEAD" else data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def label_text(name: str, labels: dict[str, str]) -> str:
    """``Name{label="value", ...}``: the labels sorted, alertname left out; the bare name without other labels."""
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "alertname")
    return f"{name}{{{rest}}}" if rest else name


def open_receiver(listen: str) -> NotificationReceiver:
    """A started receiver on ``listen`` (``HOST:PORT``; port 0: any free one); InvalidInput when it cannot be."""
    match = ADDRESS.match(listen)
    if match is None:
        raise InvalidInput(f"notifications: listen: {listen!r} is not HOST:PORT")
    host, port = match["host"].strip("[]"), int(match["port"])
    receiver = NotificationReceiver(host=host, port=port)
    try:
        receiver.start()
    except OSError as exc:
        raise InvalidInput(f"cannot listen for notifications on {host}:{port}: {exc}") from None
    return receiver
