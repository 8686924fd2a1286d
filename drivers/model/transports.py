"""How a call reaches one model-server replica: its own loopback URL, ``docker exec`` inside its container, or a URL.

Each transport answers :class:`Response` (any HTTP status is an answer) or raises one
DriverError line (without the replica's name: :class:`~drivers.model.endpoints.Endpoint` adds
it) when no answer came back, and says whether the replica is still alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from drivers._common.endpoints import http_for
from drivers._common.errors import http_errors
from drivers.docker.client import docker_errors
from drivers.docker.targets import status
from drivers.model import sandbox
from mlchaos.driver_kit import DriverError, TargetNotFound

CONTAINER_PORT = 8000  # where the server listens inside a container (the compose stack's PORT)
ADMIN_PREFIX = "/admin/"
JSON_HEADERS = {"Content-Type": "application/json"}
# runs inside the container: argv = method, url, timeout, body ("" for none); prints the status, then the body
EXEC_SNIPPET = """\
import sys, urllib.error, urllib.request
method, url, timeout, body = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
request = urllib.request.Request(url, data=body.encode() if body else None, method=method,
                                 headers={"Content-Type": "application/json"} if body else {})
try:
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        status, data = answer.status, answer.read()
except urllib.error.HTTPError as error:
    status, data = error.code, error.read()
except Exception as error:
    sys.stderr.write(f"{type(error).__name__}: {error}")
    sys.exit(3)
sys.stdout.buffer.write(b"%d\\n" % status + data)
"""


@dataclass(frozen=True)
class Response:
    """What a replica answered: the HTTP status and the body."""

    status: int
    text: str


class Transport(Protocol):
    """How calls reach one replica. ``request`` raises DriverError (without the replica's name) when no
    answer came back; any HTTP status is an answer."""

    def request(self, method: str, path: str, data: bytes | None, timeout: float) -> Response: ...

    def alive(self) -> bool: ...


def _http(method: str, base: str, path: str, data: bytes | None, timeout: float) -> Response:
    client, capped = http_for(base)  # a declared endpoint's session (credentials, CA, headers) when base is under one
    with http_errors(base, f"{method} {path}", capped(timeout)):
        resp = client.request(method, base + path, data=data, headers=JSON_HEADERS if data is not None else None,
                              timeout=capped(timeout))
    return Response(resp.status_code, resp.text)


@dataclass(frozen=True)
class ProcessTransport:
    """A sandbox replica: its own loopback URL; alive while its process is."""

    url: str
    pid: int
    replica: str

    def request(self, method: str, path: str, data: bytes | None, timeout: float) -> Response:
        return _http(method, self.url, path, data, timeout)

    def alive(self) -> bool:
        return sandbox.is_alive(self.pid, self.replica)


@dataclass(frozen=True)
class UrlTransport:
    """Any server by URL: the public API only (its admin endpoint answers loopback clients only)."""

    url: str

    def request(self, method: str, path: str, data: bytes | None, timeout: float) -> Response:
        if path.startswith(ADMIN_PREFIX):
            raise DriverError(f"the admin endpoint ({ADMIN_PREFIX}...) answers loopback clients only, not a "
                              f"server by URL: use target sandbox or docker (docker exec) for this fault")
        return _http(method, self.url, path, data, timeout)

    def alive(self) -> bool:
        return True  # nothing tells; a server that does not answer fails the call


@dataclass(frozen=True)
class ContainerTransport:
    """A container: each call is ``docker exec`` of a urllib snippet to 127.0.0.1:``port`` inside it."""

    api: Any  # docker.APIClient (its timeout covers a call's timeout plus EXEC_SLACK)
    container_id: str
    port: int = CONTAINER_PORT

    def request(self, method: str, path: str, data: bytes | None, timeout: float) -> Response:
        argv = ["python3", "-c", EXEC_SNIPPET, method, f"http://127.0.0.1:{self.port}{path}", repr(float(timeout)),
                (data or b"").decode()]
        with docker_errors(f"docker exec in {self.container_id[:12]}"):
            exec_id = self.api.exec_create(self.container_id, argv, stdout=True, stderr=True)["Id"]
            out, err = self.api.exec_start(exec_id, demux=True)
            code = self.api.exec_inspect(exec_id).get("ExitCode")
        out, err = out or b"", (err or b"").decode(errors="replace")
        if code in (126, 127):
            raise DriverError(f"no python3 in container {self.container_id[:12]} (exit {code}): {err.strip()[:200]}")
        head, _, body = out.partition(b"\n")
        if code != 0 or not head.strip().isdigit():
            raise DriverError(" ".join(err.split())[:300] or f"docker exec exited {code} with no answer")
        return Response(int(head), body.decode(errors="replace"))

    def alive(self) -> bool:
        return status(self.api, self.container_id) in ("running", "paused")


@dataclass(frozen=True)
class GoneTransport:
    """A replica an undo names that no longer exists (a removed container)."""

    name: str

    def request(self, method: str, path: str, data: bytes | None, timeout: float) -> Response:
        raise TargetNotFound(f"{self.name} no longer exists")

    def alive(self) -> bool:
        return False
