"""Reference Open Inference Protocol (KServe V2) model server for the sandbox.

Run: ``python -m mlchaos.sandbox.model_server --host 127.0.0.1 --port 0 --model iris``.
It imports scikit-learn, binds, trains the model (live, not yet ready, for a fraction of a second),
then prints exactly one line ``READY <port>`` on stdout. SIGTERM / SIGINT shut it down cleanly (exit 0).

With ``--tls-port P --tls-cert FILE --tls-key FILE`` it also serves the same endpoints
(same model, same metrics) over HTTPS on port P (0: any free port) and prints
``TLS <port>`` on stdout before the ``READY`` line. SIGHUP then reloads the certificate
and key from those files: new handshakes present the new certificate; a reload that
fails keeps the old one and says why on stderr. Without the TLS flags SIGHUP keeps its
default action (the process ends), as before.

Endpoints: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``,
``/v2/models/{m}[/versions/{v}]``, ``/v2/models/{m}[/versions/{v}]/ready``,
``POST /v2/models/{m}[/versions/{v}]/infer``, the model repository extension (``POST /v2/repository/index``,
``.../models/{m}/load`` and ``/unload``) and Prometheus ``GET /metrics``. The KServe V1 protocol is served
too: ``GET /v1/models`` (``{"models": [m]}``), ``GET /v1/models/{m}`` (``{"name": m, "ready": true}``; 503
when not ready) and ``POST /v1/models/{m}:predict`` (``{"instances": [[f1, ...], ...]}`` ->
``{"predictions": [class, ...]}``), counted as the V2 calls are (endpoints ``model_ready`` and ``infer``).
An infer body's OIP ``"id"`` is echoed and its predictions are remembered for feedback naming it. Feedback, the
model repository (version pinning) and the loopback-only fault and bad-push hooks live in
:mod:`mlchaos.sandbox.routes`, the metrics and the drift score in :mod:`mlchaos.sandbox.signals`.
Handlers are thin: look up, one call into :mod:`mlchaos.sandbox.model`, serialise.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mlchaos.sandbox import dataset, routes
from mlchaos.sandbox.model import InvalidRequest, ServedModel, parse_infer_request
from mlchaos.sandbox.routes import HttpError
from mlchaos.sandbox.signals import LATENCY_BUCKETS, Metrics, Signals

__all__ = ["LATENCY_BUCKETS", "HttpError", "Metrics", "ModelServer", "Signals", "TLSModelServer", "serve"]
MAX_BODY_BYTES = 4 * 1024 * 1024
_MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?$")
_V1_MODEL_PATH = re.compile(r"^/v1/models/([^/:]+)(:predict)?$")


class ModelServer(ThreadingHTTPServer):
    """A threading HTTP server holding one model and its metrics."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, host: str, port: int, model: ServedModel, replica: str,
                 signals: Signals | None = None) -> None:
        super().__init__((host, port), Handler)
        self.model = model
        self.replica = replica
        self.signals = signals if signals is not None else Signals(model.name, dataset.CLASS_NAMES, ())
        self.metrics: Metrics = self.signals.metrics

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hung up (timeouts during chaos); report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with port 0)."""
        return int(self.server_address[1])

    def mark_trained(self) -> None:
        """Publish the trained model's info and readiness metrics."""
        self.publish()

    def publish(self) -> None:
        """Publish the served version, its training time and readiness (after a load or a fault change)."""
        m = self.model
        self.signals.serving(m.version, m.trained_at, m.ready, m.class_distribution)


class TLSModelServer(ModelServer):
    """The same endpoints over HTTPS, sharing the plain server's model and metrics.

    The certificate is held in an :class:`ssl.SSLContext` that :meth:`reload` swaps as a
    whole, so a handshake uses either the old or the new certificate, never a mix.
    Handshakes happen in the handler threads, so a slow or hostile client never blocks
    the accept loop.
    """

    HANDSHAKE_TIMEOUT = 5.0

    def __init__(self, host: str, port: int, model: ServedModel, replica: str, signals: Signals,
                 cert_file: str, key_file: str) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.context = _server_context(cert_file, key_file)  # fails before binding: bad files, no server
        super().__init__(host, port, model, replica, signals)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a TCP connection and wrap it; the handshake runs in the handler thread."""
        sock, address = self.socket.accept()
        sock.settimeout(self.HANDSHAKE_TIMEOUT)
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Complete the TLS handshake, then serve the connection like the plain server."""
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return  # a client that refuses our certificate (expired, untrusted...) is the point of a drill
        request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore TLS failures and clients that hung up; report anything else."""
        if isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def reload(self) -> bool:
        """Load the certificate and key files again; keep the old ones (and log why) when that fails."""
        try:
            context = _server_context(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            print(f"[{self.replica}] TLS reload failed, still serving the previous certificate:"
                  f" {self.cert_file} / {self.key_file}: {exc}", file=sys.stderr, flush=True)
            return False
        self.context = context
        print(f"[{self.replica}] TLS certificate reloaded from {self.cert_file}", file=sys.stderr, flush=True)
        return True


def _server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class Handler(BaseHTTPRequestHandler):
    """Routes OIP requests to the model; every answer is JSON except /metrics."""

    server: ModelServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive + small writes would add ~40 ms (delayed ACK)
    wbufsize = -1  # headers and body leave in one write, flushed after each request
    _endpoint: str = "other"

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Stay quiet: one line per request would flood the replica logs."""

    def _dispatch(self, method: str) -> None:
        model = self.server.model
        self._endpoint, label_model = "other", model.name
        try:
            path = self.path.split("?", 1)[0]
            if path == "/metrics" and method == "GET":
                self.server.metrics.requests.labels(model.name, "metrics", "200").inc()
                body = generate_latest(self.server.metrics.registry)
                self._send(HTTPStatus.OK, body, CONTENT_TYPE_LATEST)
                return
            payload = self._route(method, path)
            status = HTTPStatus.OK
        except InvalidRequest as exc:  # a bad body outside /infer (counted by reason only there)
            status, payload = HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        except HttpError as exc:
            status, payload = exc.status, {"error": str(exc)}
            if status == HTTPStatus.NOT_FOUND and self._endpoint != "other":
                label_model = "_unknown"  # keep label cardinality bounded
        except Exception as exc:  # a bug in the server, never bad input
            print(f"[{self.server.replica}] internal error: {exc!r}", file=sys.stderr, flush=True)
            status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"}
        self.server.metrics.requests.labels(label_model, self._endpoint, str(status.value)).inc()
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _route(self, method: str, path: str) -> Any:
        model = self.server.model
        if path == "/v2/health/live" and method == "GET":
            self._endpoint = "live"
            return {"live": True}
        if path == "/v2/health/ready" and method == "GET":
            self._endpoint = "ready"
            if not model.ready:
                raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "model not ready")
            return {"ready": True}
        if path == "/v2" and method == "GET":
            self._endpoint = "server_metadata"
            return {"name": "mlchaos-sandbox", "version": "1", "extensions": ["model_repository"]}
        if path.startswith("/v1/"):
            return self._route_v1(method, path)
        found = routes.find(method, path, self.client_address[0])
        if found is not None:
            self._endpoint, handler, groups = found
            request = routes.Request(method, self.client_address[0], groups, self._read_optional_json)
            return routes.call(handler, self.server, request)
        match = _MODEL_PATH.match(path)
        if match is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no route for {method} {path}")
        name, version, suffix = match.groups()
        endpoint = {None: "metadata", "/ready": "model_ready", "/infer": "infer"}[suffix]
        self._endpoint = endpoint
        wanted = "POST" if suffix == "/infer" else "GET"
        if method != wanted:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{endpoint} needs {wanted}")
        if name != model.name or version not in (None, model.version):
            what = name if version is None else f"{name} version {version}"
            raise HttpError(HTTPStatus.NOT_FOUND, f"unknown model {what!r}")
        if suffix is None:
            return model.metadata()
        if suffix == "/ready":
            if not model.ready:
                raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "model not ready")
            return {"name": model.name, "ready": True}
        return self._infer()

    def _route_v1(self, method: str, path: str) -> dict[str, Any]:
        """The KServe V1 protocol: the model list, the model's readiness and ``:predict``."""
        model = self.server.model
        if path == "/v1/models":
            self._endpoint = "metadata"
            if method != "GET":
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "the model list needs GET")
            return {"models": [model.name]}
        match = _V1_MODEL_PATH.match(path)
        if match is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no route for {method} {path}")
        name, predict = match.groups()
        self._endpoint = "infer" if predict else "model_ready"
        wanted = "POST" if predict else "GET"
        if method != wanted:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{self._endpoint} needs {wanted}")
        if name != model.name:
            raise HttpError(HTTPStatus.NOT_FOUND, f"unknown model {name!r}")
        if not predict:
            if not model.ready:
                raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "model not ready")
            return {"name": model.name, "ready": True}
        rows, _ = self._parse(lambda body: parse_infer_request(_v1_as_v2(body)))
        data, _, _ = self._predict(rows, None)
        return {"predictions": data}

    def _infer(self) -> dict[str, Any]:
        rows, body = self._parse(parse_infer_request)
        # OIP request id: echoed, and the predictions remembered under it for feedback (a non-string is ignored)
        request_id = body["id"] if isinstance(body.get("id"), str) else None
        data, datatype, version = self._predict(rows, request_id)
        output = {"name": "predict", "shape": [len(rows)], "datatype": datatype, "data": data}
        answer: dict[str, Any] = {"model_name": self.server.model.name, "model_version": version, "outputs": [output]}
        if request_id is not None:
            answer["id"] = request_id
        return answer

    def _parse(self, parse: Callable[[Any], list[list[float]]]) -> tuple[list[list[float]], Any]:
        """The request body and its validated rows; a bad one is counted by reason and answered 400."""
        try:
            body = self._read_json()
            return parse(body), body
        except InvalidRequest as exc:
            self.server.signals.invalid(exc.reason)
            raise HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from None

    def _predict(self, rows: list[list[float]], request_id: str | None) -> tuple[list[Any], str, str]:
        """Predict ``rows`` (503 when the model is not ready): the data, its datatype and the version that answered."""
        model, signals = self.server.model, self.server.signals
        if not model.ready:
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "model not ready")
        started = time.perf_counter()
        prediction = model.predict(rows)
        signals.metrics.latency.labels(model.name).observe(time.perf_counter() - started)
        version = prediction.version or model.version
        if prediction.non_finite:  # what an unguarded server sends: NaN literals, counted
            signals.non_finite(prediction.non_finite)
            return prediction.values, "FP64", version
        signals.predicted(prediction.classes, request_id)
        return prediction.classes, "INT64", version

    def _read_json(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise InvalidRequest("malformed", "Content-Length header required") from None
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            raise InvalidRequest("too_large", f"body must be at most {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise InvalidRequest("malformed_json", f"malformed JSON: {exc}") from None

    def _read_optional_json(self) -> Any:
        if self.headers.get("Content-Length", "") in ("", "0"):
            return None
        return self._read_json()

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _v1_as_v2(body: Any) -> dict[str, Any]:
    """A KServe V1 predict body (``{"instances": [[f1, ...], ...]}``) as the V2 infer body it stands for."""
    instances = body.get("instances") if isinstance(body, dict) else None
    if not isinstance(instances, list) or not instances or not isinstance(instances[0], list):
        raise InvalidRequest("malformed", "'instances' must be a non-empty list of feature rows")
    return {"inputs": [{"name": "input-0", "shape": [len(instances), len(instances[0])], "datatype": "FP64",
                        "data": instances}]}


@dataclass(frozen=True)
class TLSOptions:
    """Where to serve HTTPS and with which certificate and key files."""

    port: int
    cert_file: str
    key_file: str


def serve(host: str, port: int, model_name: str, replica: str, tls: TLSOptions | None = None) -> int:
    """Train, bind, announce ``[TLS <port>]`` and ``READY <port>``, serve until SIGTERM/SIGINT; return exit code.

    Nothing listens before the model is trained: a (re)started replica is down, then live and ready, never
    live but not ready for as long as it trains."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    model = ServedModel(name=model_name)
    model.train()
    server = ModelServer(host, port, model, replica)
    server.mark_trained()
    servers: list[ModelServer] = [server]
    running: list[ModelServer] = []  # shutdown() of a server that never served would wait forever
    tls_server: TLSModelServer | None = None
    try:
        if tls is not None:
            try:
                tls_server = TLSModelServer(host, tls.port, model, replica, server.signals,
                                            tls.cert_file, tls.key_file)
            except (ssl.SSLError, OSError) as exc:
                print(f"[{replica}] cannot serve TLS on {host}:{tls.port} with {tls.cert_file} /"
                      f" {tls.key_file}: {exc}", file=sys.stderr, flush=True)
                return 1
            servers.append(tls_server)
            reload_tls = tls_server.reload
            signal.signal(signal.SIGHUP, lambda *_: reload_tls())
        for srv in servers:
            threading.Thread(target=srv.serve_forever, args=(0.1,), name="http", daemon=True).start()
            running.append(srv)
        print(f"[{replica}] serving model {model_name!r} v{model.version} on {host}:{server.port}",
              file=sys.stderr, flush=True)
        if tls_server is not None:
            print(f"[{replica}] serving TLS on {host}:{tls_server.port}", file=sys.stderr, flush=True)
            print(f"TLS {tls_server.port}", flush=True)
        print(f"READY {server.port}", flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        for srv in running:
            srv.shutdown()
        for srv in servers:
            srv.server_close()
    print(f"[{replica}] stopped", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", default="iris")
    parser.add_argument("--replica", default="model-0")
    parser.add_argument("--tls-port", type=int, default=None, help="also serve HTTPS on this port (0: any)")
    parser.add_argument("--tls-cert", default=None, help="PEM certificate (chain) presented on --tls-port")
    parser.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")
    args = parser.parse_args(argv)
    tls_args = (args.tls_port, args.tls_cert, args.tls_key)
    if any(a is not None for a in tls_args) and not all(a is not None for a in tls_args):
        parser.error("--tls-port, --tls-cert and --tls-key go together")
    tls = TLSOptions(args.tls_port, args.tls_cert, args.tls_key) if args.tls_port is not None else None
    return serve(args.host, args.port, args.model, args.replica, tls)


if __name__ == "__main__":
    raise SystemExit(main())
