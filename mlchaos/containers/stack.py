"""The compose stack (docker-compose.yml) from Python: up, down, and where it answers.

``stack_up()`` runs ``docker compose up -d`` (Compose v2 when the plugin is there, else
``docker-compose`` 1.29) for the project ``mlchaos`` and waits until every replica answers
through the fault proxy, Prometheus scrapes and probes them all and has evaluated the
ML-serving rules once; ``stack_down()`` removes it (with its volumes); ``endpoints()``
says where each part answers on 127.0.0.1. ``sink_listen_address()`` is the address that
``mlchaos run`` must listen on (``notifications: {listen: ADDRESS}``) for the stack's
Alertmanager, which posts to ``http://host.docker.internal:19095/alerts`` (host-gateway:
the docker0 bridge's address), to reach it.

The fault proxy's API listens on the compose network, so it requires a token
(``MLCHAOS_PROXY_TOKEN`` in docker-compose.yml). :func:`proxy_token` is that token: the
variable (or ``MLCHAOS_PROXY_TOKEN_FILE``) when set, else one made once and kept in the state
directory (mode 0600). Every compose command gets it; this process' environment is left alone, so
a caller whose drivers (or the commands it starts) steer the stack's proxy sets ``MLCHAOS_PROXY_TOKEN``
to :func:`proxy_token` itself (the tests' ``compose_stack`` fixture does, for its module only).

``python -m mlchaos.containers.stack up|down|status|sink|token`` does the same from a shell
(``token`` prints ``export MLCHAOS_PROXY_TOKEN=...`` for a shell that runs ``docker compose`` itself).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlchaos.containers import configs
from mlchaos.errors import SandboxError
from mlchaos.lib.files import atomic_write
from mlchaos.lib.http import http_json as _http_json
from mlchaos.lib.http import http_ok as _http_ok
from mlchaos.lib.proxy_token import TOKEN_ENV
from mlchaos.lib.proxy_token import proxy_token as _configured_token
from mlchaos.lib.state_dir import state_dir
from mlchaos.monitoring.alert_rules import SANDBOX
from mlchaos.sandbox.monitoring_stack import wait_for_settled_rules

PROJECT = os.environ.get("MLCHAOS_COMPOSE_PROJECT", "mlchaos")
COMPOSE_FILE = Path(os.environ.get("MLCHAOS_COMPOSE_FILE",
                                   Path(__file__).resolve().parents[2] / "docker-compose.yml"))
HOST = "127.0.0.1"
DIRECT_BASE_PORT = 18100  # replica i published directly (bypassing the proxy) on 18100 + i
DEFAULT_PORTS = {  # env var -> default host port, as in docker-compose.yml
    "MLCHAOS_PROMETHEUS_PORT": 19090,
    "MLCHAOS_ALERTMANAGER_PORT": 19093,
    "MLCHAOS_BLACKBOX_PORT": 19115,
    "MLCHAOS_PROXY_API_PORT": 18474,
}
DEFAULT_BRIDGE_GATEWAY = "172.17.0.1"  # what host-gateway means on a default Docker engine
TOKEN_FILE = "compose-proxy-token"  # in the state directory, when MLCHAOS_PROXY_TOKEN is not set


@dataclass(frozen=True)
class StackEndpoints:
    """Where the compose stack answers on the host (all on 127.0.0.1)."""

    prometheus_url: str
    alertmanager_url: str
    blackbox_url: str
    proxy_api_url: str
    model_urls: dict[str, str]  # replica -> its URL through the fault proxy (what clients use)
    direct_urls: dict[str, str]  # replica -> its own published port (bypassing the proxy)
    sink_host: str  # where the notification receiver must listen (the docker0 address)
    sink_port: int

    @property
    def sink_listen(self) -> str:
        """``HOST:PORT`` for ``notifications: {listen: ...}``."""
        return f"{self.sink_host}:{self.sink_port}"


def _port(var: str) -> int:
    return int(os.environ.get(var) or DEFAULT_PORTS[var])


def compose_command() -> list[str]:
    """``docker compose`` (v2 plugin) when it works, else ``docker-compose`` (1.29); with file and project."""
    base: list[str] | None = None
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 timeout=30).returncode == 0:
        base = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        base = ["docker-compose"]
    if base is None:
        raise SandboxError("neither `docker compose` nor `docker-compose` is installed: apt-get install docker-compose")
    return [*base, "-f", str(COMPOSE_FILE), "-p", PROJECT]


def sink_listen_address() -> tuple[str, int]:
    """(host, port) the notification receiver must listen on so the stack's Alertmanager reaches it.

    host.docker.internal resolves (``host-gateway``) to the engine's default bridge address
    (docker0): the receiver listens there, reachable from the host and the containers only.
    """
    host = DEFAULT_BRIDGE_GATEWAY
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "docker0"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    if match:
        host = match.group(1)
    return host, configs.SINK_PORT


def endpoints() -> StackEndpoints:
    """Where the stack answers (the ports of docker-compose.yml, with the same env overrides)."""
    sink_host, sink_port = sink_listen_address()
    return StackEndpoints(
        prometheus_url=f"http://{HOST}:{_port('MLCHAOS_PROMETHEUS_PORT')}",
        alertmanager_url=f"http://{HOST}:{_port('MLCHAOS_ALERTMANAGER_PORT')}",
        blackbox_url=f"http://{HOST}:{_port('MLCHAOS_BLACKBOX_PORT')}",
        proxy_api_url=f"http://{HOST}:{_port('MLCHAOS_PROXY_API_PORT')}",
        model_urls={name: f"http://{HOST}:{configs.proxy_port(i)}" for i, name in enumerate(configs.REPLICAS)},
        direct_urls={name: f"http://{HOST}:{DIRECT_BASE_PORT + i}" for i, name in enumerate(configs.REPLICAS)},
        sink_host=sink_host, sink_port=sink_port,
    )


def proxy_token() -> str:
    """The fault proxy's API token for the stack: the configured one, else one kept in the state directory."""
    configured = _configured_token(error=SandboxError)
    if configured:
        return configured
    path = state_dir() / TOKEN_FILE
    try:
        kept = path.read_text(encoding="ascii").strip() if path.is_file() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise SandboxError(f"cannot read the compose stack's proxy token {path}: {exc}") from None
    if not kept:
        kept = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, kept + "\n", mode=0o600)
    return kept


def _compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [*compose_command(), *args]
    env = {**os.environ, TOKEN_ENV: proxy_token()}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=COMPOSE_FILE.parent, env=env)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"{' '.join(cmd)} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise SandboxError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}")
    return proc


def stack_up(timeout: float = 120, build: bool = False) -> StackEndpoints:
    """``compose up -d`` (images as built by scripts/docker-images.sh); wait until it all works.

    Ready means: every replica answers ready through its fault proxy, Prometheus is ready and
    has every replica up in the ``model``, ``model-live`` and ``model-ready`` jobs, and it
    evaluated the ML-serving rules on samples all taken after that (so no start-up artefact,
    such as a replica that was not ready yet, is pending or firing).
    Raises SandboxError saying what is missing when ``timeout`` runs out.
    """
    deadline = time.monotonic() + timeout
    configs.issue_certificates()  # before `up`: the replicas serve HTTPS when their certificates are there
    if not configs.TOKEN_FILE.exists():  # Alertmanager's credentials_file; each run writes its own
        atomic_write(configs.TOKEN_FILE, secrets.token_urlsafe(32) + "\n", mode=0o600)
    _compose("up", "-d", *(["--build"] if build else ["--no-build"]), timeout=max(timeout, 60))
    found = endpoints()
    wait_ready(found, deadline)
    return found


def wait_ready(found: StackEndpoints, deadline: float) -> None:
    """Wait (until ``deadline``, monotonic) for the replicas, Prometheus' targets and one rule evaluation."""
    def until(what: str, check: Any) -> None:
        while not check():
            if time.monotonic() >= deadline:
                raise SandboxError(f"the compose stack is not ready: {what() if callable(what) else what}")
            time.sleep(0.2)

    for name, url in found.model_urls.items():
        until(f"{name} does not answer ready through the fault proxy at {url}",
              lambda url=url: _http_ok(f"{url}/v2/health/ready"))
    until(f"Prometheus not ready at {found.prometheus_url}", lambda: _http_ok(f"{found.prometheus_url}/-/ready"))
    until(f"Alertmanager not ready at {found.alertmanager_url}",
          lambda: _http_ok(f"{found.alertmanager_url}/-/ready"))
    jobs = (SANDBOX.model_job, SANDBOX.blackbox_job, SANDBOX.readiness_job)
    wanted = {(job, f"{name}:{configs.MODEL_PORT}") for job in jobs for name in configs.REPLICAS}
    missing: list[str] = []

    def all_up() -> bool:
        missing[:] = sorted(f"{job}/{inst}" for job, inst in wanted - targets_up(found.prometheus_url))
        return not missing

    until(lambda: f"Prometheus does not have every target up (missing: {', '.join(missing)});"
                  f" see {found.prometheus_url}/targets", all_up)
    wait_for_settled_rules(found.prometheus_url, time.time(), deadline, SANDBOX)  # no start-up artefact left


def stack_down(volumes: bool = True, timeout: float = 120) -> None:
    """``compose down`` (``-v``: and its volumes): nothing of the stack is left."""
    _compose("down", *(["-v"] if volumes else []), "--remove-orphans", "-t", "5", timeout=timeout)


def targets_up(prometheus_url: str) -> set[tuple[str, str]]:
    """(job, instance) of every active target that is up."""
    data = _http_json(f"{prometheus_url}/api/v1/targets?state=active", timeout=2.0) or {}
    return {(t["labels"].get("job"), t["labels"].get("instance"))
            for t in data.get("data", {}).get("activeTargets", []) if t.get("health") == "up"}


def main(argv: list[str] | None = None) -> int:
    """``python -m mlchaos.containers.stack up [TIMEOUT] | down | status | sink | token``."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "status"
    try:
        if command == "up":
            found = stack_up(float(args[1]) if len(args) > 1 else 120)
            print(json.dumps(asdict(found), indent=2))
        elif command == "down":
            stack_down()
        elif command == "status":
            print(json.dumps(asdict(endpoints()), indent=2))
            print(_compose("ps").stdout)
        elif command == "sink":
            host, port = sink_listen_address()
            print(f"{host}:{port}")
        elif command == "token":
            print(f"export {TOKEN_ENV}={proxy_token()}")
        else:
            print("usage: python -m mlchaos.containers.stack up [TIMEOUT] | down | status | sink | token",
                  file=sys.stderr)
            return 2
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
