"""Start, stop, inspect and restart the local sandbox of model-server replicas.

Each replica is a separate ``python -m mlchaos.sandbox.model_server`` process in a
session of its own (a Ctrl-C in the terminal never reaches it). What was started
is recorded in ``<state_dir>/sandbox.json`` (written atomically), replica logs go
to ``<state_dir>/logs/<replica>.log``. A replica keeps its port across restarts,
so its URL is stable for the whole experiment.

Clients reach each replica through the sandbox's fault proxy (one
``python -m mlchaos.proxy`` process, see :mod:`mlchaos.sandbox.proxy_process`): proxy
``model-0`` listens on ``Replica.proxy_port`` (``proxy_url``), stable like the
replica's own port, and forwards to the replica. Prometheus scrapes the replica
directly; the blackbox probes and the model probes go through the proxy, so
latency and connection faults injected there are what clients see.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlchaos.errors import SandboxError, TargetNotFound
from mlchaos.lib.files import file_lock, free_ports, read_json, write_json
from mlchaos.lib.http import http_ok as _http_ok
from mlchaos.lib.state_dir import private_dir, state_dir
from mlchaos.sandbox import procs
from mlchaos.sandbox.procs import SERVER_MODULE

if TYPE_CHECKING:
    from mlchaos.sandbox.monitoring_stack import Monitoring
    from mlchaos.sandbox.pipeline import TrainingPipeline
    from mlchaos.sandbox.proxy_process import ProxyProcess

STATE_FILE = "sandbox.json"
STATE_VERSION = 1
_READY_LINE = re.compile(rb"^READY (\d+)$", re.MULTILINE)
_TLS_LINE = re.compile(rb"^TLS (\d+)$", re.MULTILINE)
METRICS_PROXY_SUFFIX = "-metrics"  # the proxy named "<replica>-metrics" fronts only the scrapes
_PROJECT_ROOT = Path(__file__).resolve().parents[2]

ReplicaState = Literal["ready", "running-not-ready", "stopped", "dead"]


_default_state_dir = state_dir


def is_alive(pid: int) -> bool:
    """True when ``pid`` is a live sandbox model server (stopped counts, zombies do not)."""
    return procs.is_alive(pid)


@dataclass(frozen=True)
class Replica:
    """One model-server replica recorded in the sandbox state."""

    service: str
    name: str
    index: int
    host: str
    port: int
    pid: int
    url: str
    log_path: Path
    started_at: float
    model: str = "iris"
    proxy_port: int = 0  # where the sandbox proxy for this replica listens (0: none yet)
    proxy_url: str = ""  # http://127.0.0.1:proxy_port, or "" when there is no proxy
    tls_port: int = 0  # where the replica serves the same endpoints over HTTPS (0: not yet known)
    metrics_proxy_port: int = 0  # the proxy Prometheus scrapes the replica's /metrics through (0: none yet)

    @property
    def tls_instance(self) -> str:
        """``host:tls_port``: the ``instance`` label of the TLS probes of this replica."""
        return f"{self.host}:{self.tls_port}"

    @property
    def ports(self) -> set[int]:
        """Every port this replica was given (its own, its proxies', TLS), whether listened on yet or not."""
        return {p for p in (self.port, self.proxy_port, self.tls_port, self.metrics_proxy_port) if p}

    @property
    def client_url(self) -> str:
        """The URL clients use: through the sandbox proxy when there is one, else the replica's own."""
        return self.proxy_url or self.url

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable copy."""
        data = asdict(self)
        data["log_path"] = str(self.log_path)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Replica:
        """Build a replica from :meth:`to_dict` output."""
        return cls(**{**data, "log_path": Path(data["log_path"])})


@dataclass(frozen=True)
class ReplicaStatus:
    """A replica and what it is doing now."""

    replica: Replica
    state: ReplicaState


@dataclass
class _Spawned:
    replica: Replica
    proc: subprocess.Popen[bytes]
    log_offset: int


class Sandbox:
    """The set of local model-server replicas recorded in one state directory."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else _default_state_dir()
        self.state_file = self.state_dir / STATE_FILE
        self.log_dir = self.state_dir / "logs"

    # -- public API ---------------------------------------------------------------------

    def up(
        self,
        replicas: int = 3,
        service: str = "model",
        model: str = "iris",
        base_port: int = 0,
        timeout: float = 60,
        monitoring: bool = True,
    ) -> list[Replica]:
        """Start ``replicas`` replicas of ``service`` (idempotent: healthy ones are kept).

        Dead replicas are restarted on their recorded port, paused ones resumed,
        replicas with an index >= ``replicas`` stopped. ``model`` is the served
        model name (always trained on iris). ``base_port`` > 0 gives replica i
        port base_port + i, else ports are ephemeral. With ``monitoring`` the
        Prometheus/Alertmanager/blackbox stack is started (or healed) next and
        scrapes every recorded replica (see :mod:`mlchaos.sandbox.monitoring_stack`).
        Raises SandboxError when a replica fails to start or is not ready within
        ``timeout`` seconds, or when a monitoring binary is missing (before
        anything starts). The fault proxy is started (or healed: restarted when
        dead; its proxies re-enabled and their toxics removed when alive) with one
        proxy per recorded replica.
        """
        if monitoring:
            from mlchaos.sandbox.monitoring_stack import PROMTOOL, install_hint, missing_binaries

            missing = [m for m in missing_binaries() if m[0] != PROMTOOL[0]]
            if missing:
                raise SandboxError(
                    f"monitoring binaries not found ({', '.join(p for p, _ in missing)}): {install_hint(missing)}"
                    " (or start the sandbox without monitoring: `mlchaos sandbox up --no-monitoring`)"
                )
        if replicas < 1:
            raise SandboxError(f"replicas must be >= 1, got {replicas}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", service):
            raise SandboxError(f"invalid service name {service!r}")
        deadline = time.monotonic() + timeout
        with self._locked():
            current = {r.index: r for r in self._load() if r.service == service}
            for extra in [r for i, r in current.items() if i >= replicas]:
                self._stop([extra], timeout=5)
                self._save_replace(extra, None)
            keep: list[Replica] = []
            restart: list[tuple[int, Replica | None]] = []
            for index in range(replicas):
                old = current.get(index)
                if old is not None and old.model == model and self._healthy(old):
                    keep.append(old)
                    continue
                if old is not None:
                    self._stop([old], timeout=5)
                restart.append((index, old))
            # every port is chosen now (the old ones kept), so that every target is known before anything listens
            recorded = self._load()
            fresh = iter(free_ports(4 * len(restart), avoid={p for r in recorded for p in r.ports}))

            def kept_or_fresh(port: int) -> int:
                return port or next(fresh)

            todo = [self._blank(service, index, kept_or_fresh(old.port if old else base_port and base_port + index),
                                model, proxy_port=kept_or_fresh(old.proxy_port if old else 0),
                                tls_port=kept_or_fresh(old.tls_port if old else 0),
                                metrics_proxy_port=kept_or_fresh(old.metrics_proxy_port if old else 0))
                    for index, old in restart]
            if not monitoring:
                return self._start_replicas(service, keep, todo, deadline)
            # the monitoring starts first, the replicas while it does: every port is known, so are its targets
            scraped = [r for r in recorded if r.service != service] + keep + todo
            result: list[Replica] = []

            def start_replicas() -> list[Replica]:
                from mlchaos.sandbox.pipeline import pushgateway_binary

                result.extend(self._start_replicas(service, keep, todo, deadline))
                if pushgateway_binary() is not None:  # the training pipeline is optional: drills that need it say so
                    self.pipeline().up(timeout=max(deadline - time.monotonic(), 1.0),
                                       avoid=self.monitoring().recorded_ports())
                return self._load()

            self.monitoring().up(scraped, timeout=max(deadline - time.monotonic(), 1.0), meanwhile=start_replicas,
                                 avoid={p for r in scraped for p in r.ports})
        return result

    def _start_replicas(self, service: str, keep: list[Replica], todo: list[Replica],
                        deadline: float) -> list[Replica]:
        """Start ``todo``, wait until they and ``keep`` are ready, run the proxy; return the service's records."""
        started = self._start(todo, deadline)
        self._wait_ready(sorted(keep + started, key=lambda r: r.index), deadline)
        recorded = self._ensure_proxy(deadline)
        return sorted((r for r in recorded if r.service == service), key=lambda r: r.index)

    def down(self, timeout: float = 10, service: str | None = None) -> list[Replica]:
        """Stop every replica (of ``service`` when given) and, without ``service``, the monitoring stack."""
        if service is None:
            self.pipeline().down(timeout)
            self.monitoring().down(timeout)
        with self._locked():
            targets = [r for r in self._load() if service is None or r.service == service]
            self._stop(targets, timeout)
            remaining = [r for r in self._load() if r not in targets]
            if remaining:
                self._write(remaining)
            else:
                self.state_file.unlink(missing_ok=True)
                self.proxy().stop(timeout)
        return targets

    def status(self) -> list[ReplicaStatus]:
        """Report every recorded replica as ready, running-not-ready, stopped or dead."""
        return [ReplicaStatus(r, self._state_of(r)) for r in self._load()]

    def monitoring(self) -> Monitoring:
        """The monitoring stack (Prometheus, Alertmanager, blackbox exporter) of this sandbox."""
        from mlchaos.sandbox.monitoring_stack import Monitoring

        return Monitoring(self.state_dir)

    def pipeline(self) -> TrainingPipeline:
        """The training pipeline of this sandbox (a Pushgateway and the pusher of job ``training``)."""
        from mlchaos.sandbox.pipeline import TrainingPipeline

        return TrainingPipeline(self.state_dir)

    def proxy(self) -> ProxyProcess:
        """The fault-proxy process of this sandbox (one proxy per replica)."""
        from mlchaos.sandbox.proxy_process import ProxyProcess

        return ProxyProcess(self.state_dir)

    def proxy_api_url(self) -> str:
        """URL of the running sandbox proxy's API; raise SandboxError when it is not running."""
        url = self.proxy().api_url()
        if url is None:
            raise SandboxError(f"the sandbox proxy is not running (state in {self.state_dir});"
                               " start or heal it with `mlchaos sandbox up`")
        return url

    def recorded(self) -> list[Replica]:
        """Every recorded replica, of every service (no liveness checks)."""
        return self._load()

    def replicas(self, service: str) -> list[Replica]:
        """Return the recorded replicas of ``service``; raise TargetNotFound when none."""
        found = [r for r in self._load() if r.service == service]
        if not found:
            known = sorted({r.service for r in self._load()})
            raise TargetNotFound(
                f"no replicas of service {service!r} recorded in {self.state_file}"
                f" (known services: {', '.join(known) or 'none'}; start with `mlchaos sandbox up`)"
            )
        return found

    def restart(self, replica: Replica, timeout: float = 30) -> Replica:
        """Restart one replica on the same port; wait until it is ready; return the new record."""
        return self.restart_all([replica], timeout)[0]

    def restart_all(self, replicas: list[Replica], timeout: float = 30) -> list[Replica]:
        """Restart several replicas in parallel, each on its own port; wait until all are ready."""
        deadline = time.monotonic() + timeout
        with self._locked():
            recorded = {(r.service, r.name): r for r in self._load()}
            current = [recorded.get((r.service, r.name), r) for r in replicas]
            self._stop(current, timeout=min(5.0, timeout))
            blanks = [self._blank(r.service, r.index, r.port, r.model, r.proxy_port, r.tls_port, r.metrics_proxy_port)
                      for r in current]
            started = self._start(blanks, deadline)
            self._wait_ready(started, deadline)
        return started

    def wait_ready(self, replicas: list[Replica], timeout: float = 30) -> None:
        """Poll until every replica answers /v2/health/ready; raise SandboxError on timeout."""
        self._wait_ready(replicas, time.monotonic() + timeout)

    def is_alive(self, pid: int) -> bool:
        """True when ``pid`` is a live sandbox model server (stopped counts, zombies do not)."""
        return procs.is_alive(pid)

    # -- state file ---------------------------------------------------------------------

    def _load(self) -> list[Replica]:
        data = read_json(self.state_file, "sandbox state")
        if data is None:
            return []
        try:
            return [Replica.from_dict(r) for r in data["replicas"]]
        except (KeyError, TypeError) as exc:
            raise SandboxError(f"corrupt sandbox state {self.state_file}: {exc!r}") from exc

    def _write(self, replicas: list[Replica]) -> None:
        private_dir(self.state_dir)
        ordered = sorted(replicas, key=lambda r: (r.service, r.index))
        write_json(self.state_file, {"version": STATE_VERSION, "replicas": [r.to_dict() for r in ordered]})

    def _save_replace(self, old: Replica, new: Replica | None) -> None:
        kept = [r for r in self._load() if (r.service, r.name) != (old.service, old.name)]
        self._write(kept + ([new] if new is not None else []))

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.state_dir / "sandbox.lock")

    # -- processes ----------------------------------------------------------------------

    def _blank(self, service: str, index: int, port: int, model: str, proxy_port: int = 0,
               tls_port: int = 0, metrics_proxy_port: int = 0) -> Replica:
        name = f"{service}-{index}"
        return Replica(
            service=service, name=name, index=index, host="127.0.0.1", port=port, pid=0,
            url=f"http://127.0.0.1:{port}", log_path=self.log_dir / f"{name}.log",
            started_at=0.0, model=model, proxy_port=proxy_port,
            proxy_url=f"http://127.0.0.1:{proxy_port}" if proxy_port else "", tls_port=tls_port,
            metrics_proxy_port=metrics_proxy_port,
        )

    def _tls_arguments(self, replica: Replica) -> list[str]:
        """Certificates of the sandbox CA for a replica (reused while valid) and the server's TLS flags."""
        from mlchaos.lib.certificates import issue_sandbox_certificates, sandbox_tls_paths

        paths = sandbox_tls_paths(self.state_dir, replica.name)
        files = issue_sandbox_certificates(paths.directory, hosts=[replica.host, "localhost"], ca_dir=paths.ca_dir)
        return ["--tls-port", str(replica.tls_port), "--tls-cert", str(Path(files.cert_path).resolve()),
                "--tls-key", str(Path(files.key_path).resolve())]

    def _ensure_proxy(self, deadline: float) -> list[Replica]:
        """Give every recorded replica a proxy port (kept once chosen), run the proxy; return the records."""
        from mlchaos.sandbox.proxy_process import Route

        replicas = self._load()
        fresh = iter(free_ports(sum(1 for r in replicas if not r.proxy_port)
                                 + sum(1 for r in replicas if not r.metrics_proxy_port)))
        replicas = [r if r.proxy_port else replace(r, proxy_port=(p := next(fresh)), proxy_url=f"http://{r.host}:{p}")
                    for r in replicas]
        replicas = [r if r.metrics_proxy_port else replace(r, metrics_proxy_port=next(fresh)) for r in replicas]
        self._write(replicas)
        routes = [Route(r.name, f"{r.host}:{r.proxy_port}", f"{r.host}:{r.port}") for r in replicas]
        # a second proxy per replica carries only Prometheus' scrapes: telemetry faults act there
        routes += [Route(f"{r.name}{METRICS_PROXY_SUFFIX}", f"{r.host}:{r.metrics_proxy_port}", f"{r.host}:{r.port}")
                   for r in replicas]
        self.proxy().ensure(routes, timeout=max(deadline - time.monotonic(), 1.0))
        return replicas

    def _start(self, blanks: list[Replica], deadline: float) -> list[Replica]:
        """Spawn all replicas at once, record their pids, then wait for each READY line."""
        private_dir(self.log_dir)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        spawned: list[_Spawned] = []
        for blank in blanks:
            argv = [
                sys.executable, "-m", SERVER_MODULE, "--host", blank.host,
                "--port", str(blank.port), "--model", blank.model, "--replica", blank.name,
                *self._tls_arguments(blank),
            ]
            with open(blank.log_path, "ab") as log:
                offset = log.tell()
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                    start_new_session=True,
                )
            procs.track(proc)
            replica = replace(blank, pid=proc.pid, started_at=time.time())
            self._save_replace(replica, replica)  # record the pid before anything can fail
            spawned.append(_Spawned(replica, proc, offset))
        return [self._await_ready_line(s, deadline) for s in spawned]

    def _await_ready_line(self, spawned: _Spawned, deadline: float) -> Replica:
        replica, proc = spawned.replica, spawned.proc
        delay = 0.02
        while True:
            with open(replica.log_path, "rb") as log:
                log.seek(spawned.log_offset)
                output = log.read()
            match = _READY_LINE.search(output)
            if match:
                port = int(match.group(1))
                tls = _TLS_LINE.search(output)  # printed before READY
                ready = replace(replica, port=port, url=f"http://{replica.host}:{port}",
                                tls_port=int(tls.group(1)) if tls else replica.tls_port)
                self._save_replace(replica, ready)
                return ready
            if proc.poll() is not None:
                raise SandboxError(
                    f"replica {replica.name} exited with code {proc.returncode} before it was"
                    f" ready; last log lines:\n{_tail(replica.log_path, spawned.log_offset)}"
                )
            if time.monotonic() >= deadline:
                raise SandboxError(
                    f"replica {replica.name} (pid {replica.pid}) printed no READY line in time;"
                    f" see {replica.log_path}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    def _wait_ready(self, replicas: list[Replica], deadline: float) -> None:
        pending = list(replicas)
        delay = 0.02
        while pending:
            pending = [r for r in pending if not _http_ok(f"{r.url}/v2/health/ready")]
            if not pending:
                return
            dead = [r for r in pending if not procs.is_alive(r.pid)]
            if dead or time.monotonic() >= deadline:
                names = ", ".join(r.name for r in dead or pending)
                why = "died" if dead else "did not become ready in time"
                raise SandboxError(f"replica(s) {names} {why}; see logs in {self.log_dir}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def _healthy(self, replica: Replica) -> bool:
        """Alive and answering; a stopped replica is continued and given a moment."""
        if not procs.is_alive(replica.pid, replica.name):
            return False
        if procs.is_stopped(replica.pid):
            procs.signal_model_server(replica.pid, signal.SIGCONT, replica.name)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if _http_ok(f"{replica.url}/v2/health/live"):
                return True
            time.sleep(0.05)
        return False

    def _state_of(self, replica: Replica) -> ReplicaState:
        if not procs.is_alive(replica.pid, replica.name):
            return "dead"
        if procs.is_stopped(replica.pid):
            return "stopped"
        return "ready" if _http_ok(f"{replica.url}/v2/health/ready") else "running-not-ready"

    def _stop(self, replicas: list[Replica], timeout: float) -> None:
        """SIGCONT + SIGTERM our live replicas, SIGKILL whatever outlives ``timeout``."""
        names: dict[int, str] = {}
        for r in replicas:
            if procs.signal_model_server(r.pid, signal.SIGCONT, r.name):
                procs.signal_model_server(r.pid, signal.SIGTERM, r.name)
                names[r.pid] = r.name
        stubborn = procs.wait_gone(list(names), timeout)
        for pid in stubborn:
            procs.signal_model_server(pid, signal.SIGKILL, names[pid])
        left = procs.wait_gone(stubborn, 5.0)
        if left:
            raise SandboxError(f"could not stop pid(s) {left}")


def _tail(path: Path, offset: int, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
