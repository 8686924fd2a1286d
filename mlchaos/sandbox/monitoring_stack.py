"""The sandbox's monitoring stack: Prometheus, Alertmanager and the blackbox exporter.

Three local processes on 127.0.0.1, each with its own generated config and data
directory under ``<state_dir>/monitoring/`` and its log in ``<state_dir>/logs/``:

* Prometheus (1 s scrape and evaluation) scrapes every replica directly (job ``model``),
  probes each replica's ``/v2/health/live`` and ``/v2/health/ready`` through the
  blackbox exporter (jobs ``model-live``, ``model-ready``) *through the sandbox's fault
  proxy* when the replica has one (so injected latency and connection faults are what
  the probes see), with ``instance`` relabelled to the replica's own host:port, so
  scrape and probe series join on ``instance``,
  probes TLS endpoints listed in ``targets/tls.json`` (jobs ``model-tls``,
  ``model-tls-insecure``), evaluates the SANDBOX rendering of the ML-serving rules
  plus every ``rules.d/*.yml`` (rules injected by drivers), and sends alerts to
* Alertmanager, which routes everything to one webhook receiver ``mlchaos`` at
  ``http://SINK_HOST:SINK_PORT/alerts``. Nothing listens there except while
  ``mlchaos run`` serves its notification receiver on that address.

Prometheus also scrapes the training pipeline's Pushgateway (job ``pushgateway``, with
``honor_labels: true``) listed in ``targets/pushgateway.json``, which
:mod:`mlchaos.sandbox.pipeline` writes (an empty list while it does not run).

What runs is recorded in ``<state_dir>/monitoring.json`` (written atomically);
ports (and the sink address) are kept across restarts of the stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from mlchaos.errors import DriverError, SandboxError
from mlchaos.lib.files import atomic_write, file_lock, free_ports, read_json, write_json
from mlchaos.lib.http import http_json as _http_json
from mlchaos.lib.http import http_ok as _http_ok
from mlchaos.lib.programs import find_program
from mlchaos.lib.state_dir import private_dir
from mlchaos.lib.state_dir import state_dir as default_state_dir
from mlchaos.lib.waiting import wait_for
from mlchaos.monitoring.alert_rules import GROUP_NAME, SANDBOX, RuleParameters, parse_duration, render_rules
from mlchaos.sandbox import procs

STATE_FILE = "monitoring.json"
STATE_VERSION = 1
HOST = "127.0.0.1"
TOKEN_FILE = "webhook.token"
RULES_FILE = "ml-serving-rules.yml"
MONITORING_PACKAGES = ("prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter")
# component -> (binary path, Debian package); a binary not at its path is also looked up on PATH
BINARIES: dict[str, tuple[str, str]] = {
    "prometheus": ("/usr/bin/prometheus", "prometheus"),
    "alertmanager": ("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager"),
    "blackbox": ("/usr/bin/prometheus-blackbox-exporter", "prometheus-blackbox-exporter"),
}
PROMTOOL = ("/usr/bin/promtool", "prometheus")
COMPONENTS = ("blackbox", "alertmanager", "prometheus")  # start order
PROXY_LABEL = "__proxy_address__"  # file_sd label: the replica's fault-proxy host:port
METRICS_PROXY_LABEL = "__metrics_proxy_address__"  # file_sd label: the proxy its scrapes go through

ComponentState = Literal["ready", "running-not-ready", "dead", "stopped"]


@dataclass(frozen=True)
class MonitoringEndpoints:
    """Where the monitoring stack answers, and where Alertmanager sends notifications."""

    prometheus_url: str
    alertmanager_url: str
    blackbox_url: str
    sink_host: str
    sink_port: int

    @property
    def sink_url(self) -> str:
        """The webhook URL Alertmanager posts to (``http://sink_host:sink_port/alerts``)."""
        return f"http://{self.sink_host}:{self.sink_port}/alerts"


@dataclass(frozen=True)
class ComponentStatus:
    """One monitoring process and what it is doing now."""

    name: str
    pid: int
    url: str
    state: ComponentState
    log_path: Path


def missing_binaries() -> list[tuple[str, str]]:
    """(binary path, Debian package) of every monitoring binary that is not installed."""
    return [(path, package) for path, package in (*BINARIES.values(), PROMTOOL) if find_program(path) is None]


def install_hint(missing: list[tuple[str, str]]) -> str:
    """The command that installs the packages of ``missing`` binaries."""
    packages = sorted({package for _, package in missing})
    return f"apt-get install {' '.join(packages)}"


def promtool() -> str:
    """Path of promtool; raise DriverError naming the package when it is missing."""
    found = find_program(PROMTOOL[0])
    if found is None:
        raise DriverError(f"promtool not found ({PROMTOOL[0]}): {install_hint([PROMTOOL])}")
    return found


class Monitoring:
    """The monitoring processes recorded in one sandbox state directory."""

    def __init__(self, state_dir: Path | None = None) -> None:
        if state_dir is None:
            state_dir = default_state_dir()
        self.state_dir = Path(state_dir).expanduser().absolute()  # the generated configs hold absolute paths
        self.state_file = self.state_dir / STATE_FILE
        self.config_dir = self.state_dir / "monitoring"
        self.token_file = self.config_dir / TOKEN_FILE  # the receiver's bearer token, as Alertmanager sends it
        self.rules_dir = self.config_dir / "rules.d"
        self.targets_dir = self.config_dir / "targets"
        self.log_dir = self.state_dir / "logs"

    # -- public API ---------------------------------------------------------------------

    def up(self, replicas: list[Any], params: RuleParameters = SANDBOX, timeout: float = 60,
           meanwhile: Callable[[], list[Any]] | None = None, avoid: Collection[int] = ()) -> MonitoringEndpoints:
        """Start (or heal) the stack for ``replicas``; wait until it is ready and scrapes them all.

        Components that are alive and ready are kept (and told to reload their
        config); dead ones are restarted on their recorded port. Raises
        SandboxError when a binary is missing or a component does not get ready.

        ``meanwhile`` is called once the components are spawned, before waiting for them, and returns the
        replicas to scrape (their targets are written again): ``mlchaos sandbox up`` starts the replicas there,
        on ports chosen beforehand, so that Prometheus' first target update (5 s after it starts, Prometheus
        2.42's fixed scrape-manager tick) already finds them. New component ports are none of ``avoid`` (the
        replicas' ports, chosen but not listened on yet).
        """
        missing = [m for m in missing_binaries() if m[0] != PROMTOOL[0]]
        if missing:
            paths = ", ".join(path for path, _ in missing)
            raise SandboxError(f"monitoring binaries not found ({paths}): {install_hint(missing)}"
                               " (or start the sandbox with --no-monitoring)")
        deadline = time.monotonic() + timeout
        with self._locked():
            state = self._load()
            ports = {name: int(info["port"]) for name, info in state.get("processes", {}).items()}
            recorded_sink = state.get("endpoints", {})
            fresh = iter(free_ports(len(COMPONENTS) + 1, avoid=avoid))
            for name in COMPONENTS:
                ports.setdefault(name, next(fresh))
            sink_host = recorded_sink.get("sink_host", HOST)
            sink_port = int(recorded_sink.get("sink_port") or next(fresh))
            endpoints = MonitoringEndpoints(
                prometheus_url=f"http://{HOST}:{ports['prometheus']}",
                alertmanager_url=f"http://{HOST}:{ports['alertmanager']}",
                blackbox_url=f"http://{HOST}:{ports['blackbox']}",
                sink_host=sink_host, sink_port=sink_port,
            )
            self._write_configs(endpoints, ports, params)
            self._write_targets(replicas)
            processes: dict[str, dict[str, Any]] = dict(state.get("processes", {}))
            started: dict[str, subprocess.Popen[bytes]] = {}
            for name in COMPONENTS:
                info = processes.get(name)
                if info and self._alive(name, int(info["pid"])) and _http_ok(f"{_url(ports[name])}/-/ready"):
                    _http_post(f"{_url(ports[name])}/-/reload")
                    continue
                if info:
                    self._stop_one(name, int(info["pid"]), timeout=5)
                proc = self._spawn(name, ports[name])
                started[name] = proc
                processes[name] = {"pid": proc.pid, "port": ports[name], "started_at": time.time()}
                self._save(endpoints, processes)  # record the pid before anything can fail
            self._save(endpoints, processes)
            ready_since: float | None = None  # when everything scraped was started and ready (None: not known)
            if meanwhile is not None:
                replicas = meanwhile()
                ready_since = time.time()
                self._write_targets(replicas)
            for name in COMPONENTS:
                self._wait_ready(name, int(processes[name]["pid"]), ports[name], started.get(name), deadline)
            self._wait_scraping(endpoints, replicas, params, deadline, ready_since)
        return endpoints

    def down(self, timeout: float = 10) -> list[str]:
        """Stop every monitoring process (SIGKILL after ``timeout`` s); keep ports for the next ``up``."""
        with self._locked():
            state = self._load()
            processes = state.get("processes", {})
            stopped = []
            for name, info in processes.items():
                if self._stop_one(name, int(info["pid"]), timeout):
                    stopped.append(name)
                info["pid"] = 0
            if state:
                self._write_state(state)
            # the sandbox is ephemeral: series of replicas that are gone would haunt the next
            # stack for 5 minutes (a killed replica's up == 0 firing ModelServerDown for a ghost)
            for data in ("prometheus", "alertmanager"):
                shutil.rmtree(self.config_dir / "data" / data, ignore_errors=True)
        return stopped

    def status(self) -> list[ComponentStatus]:
        """Report each recorded monitoring process as ready, running-not-ready, dead or stopped."""
        rows = []
        for name, info in self._load().get("processes", {}).items():
            pid, url = int(info["pid"]), _url(int(info["port"]))
            if pid == 0:
                state: ComponentState = "stopped"
            elif not self._alive(name, pid):
                state = "dead"
            else:
                state = "ready" if _http_ok(f"{url}/-/ready") else "running-not-ready"
            rows.append(ComponentStatus(name, pid, url, state, self.log_dir / f"{name}.log"))
        return rows

    def endpoints(self) -> MonitoringEndpoints:
        """The recorded endpoints; raise DriverError when the stack is not running."""
        state = self._load()
        rows = {row.name: row for row in self.status()}
        if not state or any(rows.get(name) is None or rows[name].state == "stopped" for name in COMPONENTS):
            raise DriverError(
                f"the sandbox monitoring stack is not running (no live stack recorded in {self.state_file});"
                " start it with `mlchaos sandbox up`"
            )
        dead = [name for name in COMPONENTS if rows[name].state == "dead"]
        if dead:
            raise DriverError(
                f"the sandbox monitoring stack is broken: {', '.join(dead)} not running (see {self.log_dir});"
                " heal it with `mlchaos sandbox up`"
            )
        return MonitoringEndpoints(**state["endpoints"])

    def recorded_endpoints(self) -> MonitoringEndpoints | None:
        """The endpoints recorded by the last ``up`` (running or not), None if it never ran."""
        state = self._load()
        return MonitoringEndpoints(**state["endpoints"]) if state.get("endpoints") else None

    def recorded_ports(self) -> set[int]:
        """The ports the recorded components and the notification sink were given (listened on or not yet)."""
        state = self._load()
        ports = {int(info["port"]) for info in state.get("processes", {}).values() if info.get("port")}
        sink = state.get("endpoints", {}).get("sink_port")
        return ports | ({int(sink)} if sink else set())

    def refresh_targets(self, replicas: list[Any]) -> None:
        """Rewrite the scrape/probe target list (Prometheus picks it up without a reload)."""
        self._write_targets(replicas)

    # -- configuration ------------------------------------------------------------------

    def _write_configs(self, endpoints: MonitoringEndpoints, ports: dict[str, int],
                       params: RuleParameters) -> None:
        for sub in ("rules", "rules.d", "targets", "data/prometheus", "data/alertmanager"):
            private_dir(self.config_dir / sub)
        tls_targets = self.targets_dir / "tls.json"
        if not tls_targets.exists():
            atomic_write(tls_targets, "[]\n")
        atomic_write(self.config_dir / "rules" / RULES_FILE, render_rules(params))
        pushgateway_targets = self.targets_dir / "pushgateway.json"  # mlchaos.sandbox.pipeline writes it
        if not pushgateway_targets.exists():
            atomic_write(pushgateway_targets, "[]\n")
        prometheus = self.prometheus_config(params, blackbox=f"{HOST}:{ports['blackbox']}",
                                            alertmanager=f"{HOST}:{ports['alertmanager']}", pushgateway=True)
        atomic_write(self.config_dir / "prometheus.yml", _dump(prometheus))
        if not self.token_file.exists():  # each run writes its own; until then nobody knows this one
            atomic_write(self.token_file, secrets.token_urlsafe(32) + "\n", mode=0o600)
        atomic_write(self.config_dir / "alertmanager.yml",
                     _dump(alertmanager_config(endpoints.sink_url, credentials_file=self.token_file)))
        sandbox_ca = self.state_dir / "tls" / "ca" / "ca.crt"  # mlchaos.lib.certificates.sandbox_tls_paths
        atomic_write(self.config_dir / "blackbox.yml", _dump(blackbox_config(sandbox_ca)))

    def prometheus_config(self, p: RuleParameters, *, blackbox: str, alertmanager: str,
                          pushgateway: bool = False) -> dict[str, Any]:
        """Prometheus' configuration: scrape and probe jobs over this state dir's target files, the
        rule files, and the blackbox exporter and Alertmanager at the given ``host:port``."""

        def file_sd(name: str) -> list[dict[str, Any]]:  # a fresh list per job: no YAML anchors in the file
            return [{"files": [str(self.targets_dir / name)]}]

        def probe_job(job: str, module: str, targets: str, url: str) -> dict[str, Any]:
            return {
                "job_name": job,
                "metrics_path": "/probe",
                "params": {"module": [module]},
                "file_sd_configs": file_sd(targets),
                "relabel_configs": [
                    # instance = the replica's host:port, the same as its scrape target's
                    {"source_labels": ["__address__"], "target_label": "instance"},
                    {"source_labels": ["__address__"], "regex": "(.*)", "replacement": url,
                     "target_label": "__param_target"},
                    # ... but the probe goes through the replica's fault proxy when it has one
                    {"source_labels": [PROXY_LABEL], "regex": "(.+)", "replacement": url,
                     "target_label": "__param_target"},
                    {"target_label": "__address__", "replacement": blackbox},
                ],
            }

        # the training pipeline's Pushgateway (mlchaos.sandbox.pipeline): its groups keep their own job label
        pushgateway_job = [{"job_name": "pushgateway", "honor_labels": True,
                            "file_sd_configs": file_sd("pushgateway.json")}]
        return {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.config_dir / "rules" / RULES_FILE), str(self.rules_dir / "*.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
            "scrape_configs": [
                {"job_name": p.model_job, "file_sd_configs": file_sd("model.json"), "relabel_configs": [
                    # instance = the replica's own host:port; the scrape itself goes through its metrics proxy
                    {"source_labels": ["__address__"], "target_label": "instance"},
                    {"source_labels": [METRICS_PROXY_LABEL], "regex": "(.+)", "target_label": "__address__"},
                ]},
                probe_job(p.blackbox_job, "http_2xx", "model.json", "http://$1/v2/health/live"),
                probe_job(p.readiness_job, "http_2xx", "model.json", "http://$1/v2/health/ready"),
                probe_job(p.tls_job, "tls_verify", "tls.json", "https://$1/v2/health/live"),
                probe_job(p.tls_insecure_job, "tls_insecure", "tls.json", "https://$1/v2/health/live"),
                {"job_name": "blackbox", "static_configs": [{"targets": [blackbox]}]},
                *(pushgateway_job if pushgateway else []),
            ],
        }

    def _write_targets(self, replicas: list[Any]) -> None:
        groups = [
            {"targets": [f"{r.host}:{r.port}"], "labels": {
                "replica": r.name, "service": r.service,
                # a hidden label (dropped after relabelling): where the probes reach the replica
                **({PROXY_LABEL: f"{r.host}:{r.proxy_port}"} if getattr(r, "proxy_port", 0) else {}),
                **({METRICS_PROXY_LABEL: f"{r.host}:{r.metrics_proxy_port}"}
                   if getattr(r, "metrics_proxy_port", 0) else {}),
            }}
            for r in replicas
        ]
        private_dir(self.targets_dir)
        atomic_write(self.targets_dir / "model.json", json.dumps(groups, indent=2) + "\n")
        tls = [{"targets": [f"{r.host}:{r.tls_port}"], "labels": {"replica": r.name, "service": r.service}}
               for r in replicas if getattr(r, "tls_port", 0)]
        atomic_write(self.targets_dir / "tls.json", json.dumps(tls, indent=2) + "\n")

    # -- processes ----------------------------------------------------------------------

    def _argv(self, name: str, port: int) -> list[str]:
        binary = find_program(BINARIES[name][0]) or BINARIES[name][0]
        listen = f"--web.listen-address={HOST}:{port}"
        if name == "prometheus":
            return [binary, f"--config.file={self.config_dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.config_dir / 'data' / 'prometheus'}", listen,
                    "--web.enable-lifecycle", "--storage.tsdb.retention.time=1d",
                    "--rules.alert.resend-delay=2s"]
        if name == "alertmanager":
            return [binary, f"--config.file={self.config_dir / 'alertmanager.yml'}",
                    f"--storage.path={self.config_dir / 'data' / 'alertmanager'}", listen,
                    "--cluster.listen-address="]
        return [binary, f"--config.file={self.config_dir / 'blackbox.yml'}", listen]

    def _spawn(self, name: str, port: int) -> subprocess.Popen[bytes]:
        private_dir(self.log_dir)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                self._argv(name, port), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, cwd=self.config_dir,
            )
        procs.track(proc)  # type: ignore[arg-type]
        return proc

    def _alive(self, name: str, pid: int) -> bool:
        """True when ``pid`` is our ``name`` process (its argv names our config), not a zombie."""
        argv = procs.live_cmdline(pid)
        if argv is None:
            return False
        config = f"--config.file={self.config_dir / _CONFIG_FILES[name]}"
        return bool(argv) and Path(argv[0]).name == Path(BINARIES[name][0]).name and config in argv

    def _stop_one(self, name: str, pid: int, timeout: float) -> bool:
        if not self._alive(name, pid):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: not self._alive(name, pid), timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not wait_for(lambda: not self._alive(name, pid), 5.0):
                raise SandboxError(f"could not stop {name} (pid {pid})")
        return True

    def _wait_ready(self, name: str, pid: int, port: int, proc: subprocess.Popen[bytes] | None,
                    deadline: float) -> None:
        delay = 0.02
        while not _http_ok(f"{_url(port)}/-/ready"):
            if (proc is not None and proc.poll() is not None) or not self._alive(name, pid):
                raise SandboxError(f"{name} exited before it was ready; last log lines:\n"
                                   f"{_tail(self.log_dir / f'{name}.log')}")
            if time.monotonic() >= deadline:
                raise SandboxError(f"{name} (pid {pid}) not ready on port {port} in time;"
                                   f" see {self.log_dir / f'{name}.log'}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def _wait_scraping(self, endpoints: MonitoringEndpoints, replicas: list[Any], params: RuleParameters,
                       deadline: float, ready_since: float | None = None) -> None:
        """Poll /api/v1/targets until every target of every replica is up: scrape, liveness and
        readiness probes, and both TLS probes where the replica serves TLS; then wait for the rules to settle
        on samples taken after ``ready_since`` (epoch seconds; without it, after every target was up)."""
        wanted = {(job, f"{r.host}:{r.port}") for r in replicas
                  for job in (params.model_job, params.blackbox_job, params.readiness_job)}
        wanted |= {(job, f"{r.host}:{r.tls_port}") for r in replicas if getattr(r, "tls_port", 0)
                   for job in (params.tls_job, params.tls_insecure_job)}
        delay = 0.05
        while True:
            data = _http_json(f"{endpoints.prometheus_url}/api/v1/targets?state=active")
            targets = (data or {}).get("data", {}).get("activeTargets", [])
            healthy = {(t["labels"].get("job"), t["labels"].get("instance"))
                       for t in targets if t.get("health") == "up"}
            missing = sorted(f"{job}/{inst}" for job, inst in wanted - healthy)
            if not missing:
                break
            if time.monotonic() >= deadline:
                raise SandboxError(f"Prometheus does not scrape {', '.join(missing)} in time;"
                                   f" see {endpoints.prometheus_url}/targets")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        scraped = time.time()
        wait_for_settled_rules(endpoints.prometheus_url, scraped if ready_since is None else ready_since, deadline,
                               params, not_before=scraped)

    # -- state file ---------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        data = read_json(self.state_file, "monitoring state")
        if data is None:
            return {}
        if not isinstance(data, dict) or not isinstance(data.get("processes"), dict):
            raise SandboxError(f"corrupt monitoring state {self.state_file}")
        return data

    def _save(self, endpoints: MonitoringEndpoints, processes: dict[str, dict[str, Any]]) -> None:
        self._write_state({"version": STATE_VERSION, "endpoints": asdict(endpoints), "processes": processes})

    def _write_state(self, data: dict[str, Any]) -> None:
        private_dir(self.state_dir)
        write_json(self.state_file, data)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.state_dir / "monitoring.lock")


_CONFIG_FILES = {"prometheus": "prometheus.yml", "alertmanager": "alertmanager.yml", "blackbox": "blackbox.yml"}


def endpoints(state_dir: Path | None = None) -> MonitoringEndpoints:
    """Endpoints of the running sandbox monitoring stack (DriverError when it is not running)."""
    return Monitoring(state_dir).endpoints()


def alertmanager_config(webhook_url: str, credentials_file: Path | str | None = None) -> dict[str, Any]:
    """Alertmanager's configuration: every alert, grouped per alert and instance within a second,
    to one webhook, resolved notifications included; with ``credentials_file``, each webhook request
    carries ``Authorization: Bearer <its content>`` (read at every request, so a run can rotate it)."""
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
    if credentials_file is not None:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(credentials_file)}}
    return {
        "route": {
            "receiver": "mlchaos",
            "group_by": ["alertname", "instance"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{
            "name": "mlchaos",
            "webhook_configs": [webhook],
        }],
    }


def blackbox_config(ca_file: Path) -> dict[str, Any]:
    """Probe modules; the verifying TLS module trusts the sandbox CA (as the sandbox's clients do)."""
    http = {"valid_status_codes": [], "preferred_ip_protocol": "ip4"}
    verify: dict[str, Any] = {"insecure_skip_verify": False, "ca_file": str(ca_file)}
    return {
        "modules": {
            "http_2xx": {"prober": "http", "timeout": "1s", "http": http},
            "tls_verify": {"prober": "http", "timeout": "1s",
                           "http": {**http, "fail_if_not_ssl": True, "tls_config": verify}},
            "tls_insecure": {"prober": "http", "timeout": "1s",
                             "http": {**http, "fail_if_not_ssl": True, "tls_config": {"insecure_skip_verify": True}}},
        }
    }


# -- small helpers ---------------------------------------------------------------------------


def _dump(data: Any) -> str:
    header = "# generated by mlchaos.sandbox.monitoring_stack -- rewritten at every `mlchaos sandbox up`\n"
    return header + yaml.safe_dump(data, sort_keys=False, width=1000)


def _url(port: int) -> str:
    return f"http://{HOST}:{port}"


def _http_post(url: str, timeout: float = 10.0) -> tuple[int, str]:
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 0, str(exc)


def wait_for_settled_rules(prometheus_url: str, since: float, deadline: float, params: RuleParameters,
                           not_before: float = 0.0) -> None:
    """Wait until Prometheus evaluated the ML-serving rules on samples all taken after ``since`` (epoch seconds),
    in an evaluation later than ``not_before`` too (when every target had been scraped).

    A start-up artefact (a probe that failed while a replica was still loading, a ``model_ready`` of 0) is
    real, but it is over once every replica is ready: the rules look back two scrapes (``max_over_time`` of
    the probes) and their newest sample may be one scrape old, so an evaluation later than ``since`` plus
    three scrapes sees none of it. SandboxError once ``deadline`` (monotonic) has passed.
    """
    settled = max(since + 3 * parse_duration(params.scrape_interval), not_before)
    while _last_evaluation(prometheus_url) <= settled:
        if time.monotonic() >= deadline:
            raise SandboxError(f"Prometheus did not evaluate the {GROUP_NAME} rules on settled samples in time")
        time.sleep(0.1)


def _last_evaluation(prometheus_url: str) -> float:
    """Epoch seconds of the last evaluation of the ml-serving rule group (0 when unknown)."""
    data = _http_json(f"{prometheus_url}/api/v1/rules?type=alert") or {}
    for group in data.get("data", {}).get("groups", []):
        if group.get("name") == GROUP_NAME and group.get("lastEvaluation"):
            stamp = re.sub(r"(\.\d{1,6})\d*", r"\1", group["lastEvaluation"]).replace("Z", "+00:00")
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(stamp).timestamp()
    return 0.0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def preflight_for_sandbox(arguments: dict[str, Any], needs_sandbox: bool = False) -> list[str]:
    """Validation-time problems of a monitoring driver aimed at the sandbox (no ``url`` given).

    Used by the ``preflight`` hooks of drivers.prometheus and drivers.alertmanager, so an
    experiment that needs the sandbox's monitoring fails validation, naming the packages
    to install, instead of half-running.
    """
    if (arguments.get("url") or arguments.get("endpoint")) and not needs_sandbox:
        return []
    missing = missing_binaries()
    if not missing:
        return []
    names = ", ".join(sorted({Path(path).name for path, _ in missing}))
    return [f"needs the sandbox monitoring stack, but {names} is not installed: {install_hint(missing)}"]


def component_url(url: str | None, component: Literal["prometheus", "alertmanager"]) -> str:
    """The API base URL of a monitoring component: ``url`` when given, else the sandbox's own.

    DriverError when ``url`` is not an http(s) URL or the sandbox's stack is not running.
    """
    label = {"prometheus": "Prometheus", "alertmanager": "Alertmanager"}[component]
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DriverError(f"url must be an http(s) URL of {label}, got {url!r}")
        return url.rstrip("/")
    try:
        found = endpoints()
    except DriverError as exc:
        raise DriverError(f"no {label} url given and the sandbox monitoring stack is not running: {exc}") from exc
    return getattr(found, f"{component}_url").rstrip("/")
