"""A webhook receiver for Alertmanager notifications, so a drill can prove the page was sent.

:class:`NotificationReceiver` is a small stdlib HTTP server in a daemon thread. Point an
Alertmanager ``webhook_configs`` entry at its ``url`` (and set ``send_resolved: true`` to
see recoveries too). Every alert in every accepted payload becomes one typed
:class:`Notification`; every refused request becomes a :class:`Rejection`. Nothing a
client sends can crash the receiver or the run that owns it, or grow it without bound.

With a ``token`` only requests carrying ``Authorization: Bearer <token>`` are read (what
Alertmanager sends with ``http_config: {authorization: {credentials_file: ...}}``); any other
is refused (401) and recorded, so a forged POST cannot make a drill pass. Bounds: each
request has a total deadline (not a per-read one), at most ``MAX_CONNECTIONS`` are served at
once, and at most ``MAX_NOTIFICATIONS`` notifications and ``MAX_STORED_BYTES`` of payload are
kept (later payloads are refused, 507); rejections are counted, the latest ``MAX_REJECTIONS``
kept.

The payload format is Alertmanager's webhook version "4"::

    {"version": "4", "groupKey": ..., "status": "firing|resolved", "receiver": ...,
     "alerts": [{"status", "labels": {"alertname", ...}, "annotations", "startsAt",
                 "endsAt", "generatorURL", "fingerprint"}], ...}
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlchaos.errors import InvalidInput
from mlchaos.experiment.settings import ADDRESS
from mlchaos.lib.files import atomic_write
from mlchaos.lib.records import JsonRecord
from mlchaos.monitoring.alert_notification import ALERT_STATUSES, Notification

DEFAULT_MAX_BYTES = 1_048_576
READ_TIMEOUT = 10.0  # seconds a client may take to send a whole request: headers and body
MAX_CONNECTIONS = 32  # served at once; more are refused (503) at once
MAX_NOTIFICATIONS = 10_000  # kept per receiver (a run); later payloads are refused (507)
MAX_STORED_BYTES = 16 * 1_048_576  # of accepted payloads, per receiver
MAX_REJECTIONS = 1_000  # the latest kept; all are counted
MIN_TOKEN_LENGTH = 16


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
    except RecursionError:
        raise PayloadError("JSON nested too deeply") from None
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
        self, host: str = "127.0.0.1", port: int = 0, path: str = "/alerts", max_bytes: int = DEFAULT_MAX_BYTES,
        token: str | None = None,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"a receiver token must have at least {MIN_TOKEN_LENGTH} characters")
        self._host, self._port, self._path, self._max_bytes = host, port, path, max_bytes
        self._expected = f"Bearer {token}".encode() if token is not None else None
        self._cond = threading.Condition()
        self._notifications: list[Notification] = []
        self._stored_bytes = 0
        self._rejections: list[Rejection] = []
        self._rejected = 0
        self._connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
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
    def authenticated(self) -> bool:
        """Whether only requests with the receiver's bearer token are read."""
        return self._expected is not None

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
        """The requests refused so far (the latest ``MAX_REJECTIONS``), oldest first."""
        with self._cond:
            return list(self._rejections)

    def rejected_count(self) -> int:
        """How many requests were refused in all (more than :meth:`rejections` keeps after a flood)."""
        with self._cond:
            return self._rejected

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
                "authenticated": self.authenticated,
                "notifications": [n.to_dict() for n in self._notifications],
                "rejections": [r.to_dict() for r in self._rejections],
                "rejected": self._rejected,
            }

    # -- called by the handler ------------------------------------------------------------

    def _authorized(self, header: str | None) -> bool:
        if self._expected is None:
            return True
        return header is not None and hmac.compare_digest(header.strip().encode(), self._expected)

    def _accept(self, notes: list[Notification], size: int) -> str | None:
        """Keep the notes of one payload of ``size`` bytes; the reason when they would break a bound."""
        with self._cond:
            if len(self._notifications) + len(notes) > MAX_NOTIFICATIONS:
                return f"the receiver already holds {len(self._notifications)} notifications (at most " \
                       f"{MAX_NOTIFICATIONS} per run)"
            if self._stored_bytes + size > MAX_STORED_BYTES:
                return f"the receiver already holds {self._stored_bytes} bytes of payloads (at most " \
                       f"{MAX_STORED_BYTES} per run)"
            self._notifications.extend(notes)
            self._stored_bytes += size
            self._cond.notify_all()
            return None

    def _reject(self, rejection: Rejection) -> None:
        with self._cond:
            self._rejected += 1
            self._rejections.append(rejection)
            del self._rejections[:-MAX_REJECTIONS]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a client that stalls mid-request
    request_queue_size = 128  # a burst of group notifications must not hit a full listen backlog
    receiver: NotificationReceiver

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per connection, at most MAX_CONNECTIONS at once: the next is refused and closed."""
        if not self.receiver._connections.acquire(blocking=False):
            peer = f"{client_address[0]}:{client_address[1]}" if client_address else ""
            reason = f"too many connections (at most {MAX_CONNECTIONS} at once)"
            self.receiver._reject(Rejection(time.time(), reason, int(HTTPStatus.SERVICE_UNAVAILABLE), None, peer,
                                            "", ""))
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.receiver._connections.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT  # per read; the deadline below bounds the whole request
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # a client that trickles a byte at a time must not hold its connection past READ_TIMEOUT in all
        self._deadline = threading.Timer(READ_TIMEOUT, self._cut)
        self._deadline.daemon = True
        self._deadline.start()

    def finish(self) -> None:
        self._deadline.cancel()
        with contextlib.suppress(OSError):
            super().finish()

    def _cut(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def do_POST(self) -> None:
        receiver = self.server.receiver
        now = time.time()
        if not self._on_path():
            return self._refuse(HTTPStatus.NOT_FOUND, f"no receiver at {self._path()}", now, None)
        if not receiver._authorized(self.headers.get("Authorization")):
            reason = "missing or wrong credential (Authorization: Bearer, as Alertmanager's http_config sends it)"
            return self._refuse(HTTPStatus.UNAUTHORIZED, reason, now, None)
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
        full = receiver._accept(notes, size)
        if full is not None:
            return self._refuse(HTTPStatus.INSUFFICIENT_STORAGE, full, now, size, body_read=True)
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
        self.close_connection = True  # one request per connection: the deadline bounds the connection
        self.send_header("Connection", "close")
        self.end_headers()
        with contextlib.suppress(OSError):  # the client went away; the request is recorded already
            self.wfile.write(b"" if self.command == "HEAD" else data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def run_token(token_file: Path | None, token_env: str | None) -> str:
    """The receiver's bearer token for one run: a fresh random one written to ``token_file`` (0600, for the
    Alertmanager that reads it as ``credentials_file``), or the one in the variable ``token_env`` (the token a
    remote Alertmanager was configured with). InvalidInput when neither works."""
    if token_env is not None:
        token = os.environ.get(token_env, "").strip()
        if len(token) < MIN_TOKEN_LENGTH:
            raise InvalidInput(f"notifications: token_env: ${token_env} must hold a token of at least "
                               f"{MIN_TOKEN_LENGTH} characters" + ("" if token else " (it is unset or empty)"))
        return token
    if token_file is None:
        raise InvalidInput("notifications: the receiver needs a credential: token_file or token_env")
    token = secrets.token_urlsafe(32)
    try:
        atomic_write(token_file, token + "\n", mode=0o600)
    except OSError as exc:
        raise InvalidInput(f"notifications: cannot write the run's receiver token to {token_file}: {exc}") from None
    return token


def open_receiver(listen: str, token: str | None = None) -> NotificationReceiver:
    """A started receiver on ``listen`` (``HOST:PORT``; port 0: any free one) that reads only requests with
    ``token`` (when given); InvalidInput when it cannot be started."""
    match = ADDRESS.match(listen)
    if match is None:
        raise InvalidInput(f"notifications: listen: {listen!r} is not HOST:PORT")
    host, port = match["host"].strip("[]"), int(match["port"])
    receiver = NotificationReceiver(host=host, port=port, token=token)
    try:
        receiver.start()
    except OSError as exc:
        raise InvalidInput(f"cannot listen for notifications on {host}:{port}: {exc}") from None
    return receiver
