"""A real VictoriaMetrics monitoring stack around the sandbox's replicas, for drills against another backend.

Debian's ``victoria-metrics`` package (1.79; scripts/install-system-packages.sh installs it) ships the
binaries; there is no systemd here, so :func:`start` runs them itself, each in its own process group, with
its config, data and log under one folder:

* ``victoria-metrics``, the query backend. It scrapes the sandbox's targets itself (``-promscrape.config``):
  the ``global`` scrape settings and ``scrape_configs`` of the sandbox Prometheus' own configuration
  (:meth:`mlchaos.sandbox.monitoring_stack.Monitoring.prometheus_config`: the replicas' metrics through
  their metrics proxies, the liveness and readiness probes through the sandbox's blackbox exporter), over
  the sandbox's target files. ``-vmalert.proxyURL`` makes it answer vmalert's ``/api/v1/rules`` and
  ``/api/v1/alerts`` as well, so one URL without credentials serves every Prometheus probe.
* ``vmalert``, the ruler: the sandbox's ML-serving rules (``render_rules(SANDBOX)``), evaluated every second
  against victoria-metrics, its ``ALERTS``/``ALERTS_FOR_STATE`` series written back there
  (``-remoteWrite.url``; read back at start, ``-remoteRead.url``), its alerts sent to
* an Alertmanager of its own (the sandbox's binary and its webhook configuration), which posts to
  ``receiver`` (``HOST:PORT`` where ``mlchaos run`` listens) with ``Authorization: Bearer`` read from
  ``receiver_token_file`` (``notifications: {listen: HOST:PORT, token_file: ...}``: the run writes its
  token there).
* ``vmauth`` in front, the authenticating gateway staging clusters put there: a bearer token user and a
  basic-auth user (``users``: ``bearer_token``, and ``username``/``password``), each routed by path: the
  query API (and ``/api/v1/status/config``) to victoria-metrics, ``/api/v1/rules`` and ``/api/v1/alerts``
  to vmalert. Anything else, or no credential, is refused.

The sandbox's own Prometheus and Alertmanager may run beside it: they notify the sandbox's sink, not
``receiver``, so a drill that listens on ``receiver`` sees only this stack's notifications.
"""

from __future__ import annotations

import copy
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from mlchaos.lib.files import free_ports
from mlchaos.lib.programs import find_program
from mlchaos.monitoring.alert_rules import SANDBOX, render_rules
from mlchaos.sandbox import monitoring_stack
from tests.support.components import require_component
from tests.support.paths import ROOT
from tests.support.polling import poll

BINARIES = {name: Path(f"/usr/bin/{name}") for name in ("victoria-metrics", "vmalert", "vmauth")}
HOW_TO_GET_IT = "apt-get install victoria-metrics (scripts/install-system-packages.sh does it)"
START_TIMEOUT = 90.0
MODEL_JOBS = (SANDBOX.model_job, SANDBOX.blackbox_job, SANDBOX.readiness_job)
QUERY_PATHS = ["/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels",
               "/api/v1/label/[^/]+/values", "/api/v1/status/config", "/api/v1/targets"]
RULER_PATHS = ["/api/v1/rules", "/api/v1/alerts"]
BASIC_USER = "drill"
DRILL = ROOT / "experiments" / "kill-one-replica-alerts.yaml"
MONITORING_MODULES = {"drivers.prometheus.probes": "prometheus", "drivers.alertmanager.probes": "alertmanager"}


def require() -> None:
    """The VictoriaMetrics binaries and the sandbox's monitoring binaries must be installed."""
    from tests.support.components import require_monitoring

    require_monitoring()
    missing = [str(path) for path in BINARIES.values() if not path.is_file()]
    require_component("VictoriaMetrics", not missing, f"missing {', '.join(missing)}: {HOW_TO_GET_IT}")


@dataclass
class VictoriaStack:
    """The running stack: where each part answers, the gateway's credentials, and the processes."""

    folder: Path
    victoria_url: str  # victoria-metrics: the query API, and vmalert's API through -vmalert.proxyURL
    vmalert_url: str
    alertmanager_url: str
    gateway_url: str  # vmauth
    token_file: Path  # the bearer token vmauth accepts (0600)
    password_file: Path  # the password of BASIC_USER (0600)
    receiver: str  # HOST:PORT the Alertmanager posts its webhooks to
    receiver_token_file: Path  # the Alertmanager webhook's credentials_file
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def stop(self) -> None:
        """SIGTERM every process group of the stack (the gateway first), SIGKILL what is left after 10 s."""
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last lines one part of the stack wrote (for a failure message)."""
        path = self.folder / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def start(folder: Path, sandbox_state: Path, timeout: float = START_TIMEOUT) -> VictoriaStack:
    """Start the stack in ``folder`` over the running sandbox monitoring of ``sandbox_state``; wait until it
    scrapes every replica and vmalert has evaluated the rules on settled samples."""
    monitoring = monitoring_stack.Monitoring(sandbox_state)
    blackbox = monitoring.endpoints().blackbox_url.removeprefix("http://")
    folder.mkdir(parents=True, exist_ok=True)
    vm_port, vmalert_port, am_port, auth_port, receiver_port = free_ports(5)
    victoria, vmalert = f"http://127.0.0.1:{vm_port}", f"http://127.0.0.1:{vmalert_port}"
    alertmanager, gateway = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{auth_port}"
    stack = VictoriaStack(
        folder=folder, victoria_url=victoria, vmalert_url=vmalert, alertmanager_url=alertmanager,
        gateway_url=gateway, token_file=folder / "gateway.token", password_file=folder / "gateway.password",
        receiver=f"127.0.0.1:{receiver_port}", receiver_token_file=folder / "receiver.token")
    token, password = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    _write_private(stack.token_file, token + "\n")
    _write_private(stack.password_file, password + "\n")
    _write_private(stack.receiver_token_file, secrets.token_urlsafe(32) + "\n")  # each run writes its own
    _write(folder / "scrape.yml", _scrape_config(monitoring, blackbox))
    (folder / "rules.yml").write_text(render_rules(SANDBOX), encoding="utf-8")
    _write(folder / "alertmanager.yml", monitoring_stack.alertmanager_config(
        f"http://{stack.receiver}/alerts", credentials_file=stack.receiver_token_file))
    _write_private(folder / "auth.yml", yaml.safe_dump(_auth_config(token, password, victoria, vmalert)))
    alertmanager_binary = find_program(monitoring_stack.BINARIES["alertmanager"][0])
    commands = {
        "victoria-metrics": [str(BINARIES["victoria-metrics"]), f"-storageDataPath={folder / 'vm-data'}",
                             f"-httpListenAddr=127.0.0.1:{vm_port}", f"-promscrape.config={folder / 'scrape.yml'}",
                             "-promscrape.fileSDCheckInterval=1s", f"-vmalert.proxyURL={vmalert}",
                             # instant queries "now" are not moved back by the default 30 s (see docs)
                             "-search.latencyOffset=1s"],
        "alertmanager": [str(alertmanager_binary), f"--config.file={folder / 'alertmanager.yml'}",
                         f"--storage.path={folder / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                         "--cluster.listen-address="],
        "vmalert": [str(BINARIES["vmalert"]), f"-rule={folder / 'rules.yml'}", f"-datasource.url={victoria}",
                    f"-remoteWrite.url={victoria}", f"-remoteRead.url={victoria}", f"-notifier.url={alertmanager}",
                    "-evaluationInterval=1s", f"-httpListenAddr=127.0.0.1:{vmalert_port}",
                    f"-external.url={gateway}"],
        "vmauth": [str(BINARIES["vmauth"]), f"-auth.config={folder / 'auth.yml'}",
                   f"-httpListenAddr=127.0.0.1:{auth_port}"],
    }
    try:
        for name, argv in commands.items():
            with (folder / f"{name}.log").open("ab") as log:
                stack.processes[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                         cwd=folder, start_new_session=True)
        _wait_ready(stack, timeout)
    except BaseException:
        stack.stop()
        raise
    return stack


def drill(stack: VictoriaStack, prometheus_url: str | None = None, auth: str = "bearer") -> dict[str, Any]:
    """The bundled kill drill (experiments/kill-one-replica-alerts.yaml) aimed at this stack, its receiver where
    the stack's Alertmanager posts (with the token file it reads).

    With ``prometheus_url`` its Prometheus probes get that ``url`` (victoria-metrics itself: no credentials)
    and its Alertmanager probes the stack's. Without, the experiment declares the endpoints instead, as a
    staging experiment does: ``prometheus`` is vmauth with the credential ``auth`` names (``bearer``: the
    token file; ``basic``: BASIC_USER and the password file; ``none``: nothing, which vmauth refuses),
    ``alertmanager`` the stack's Alertmanager; no probe names them (the default names).
    """
    data = copy.deepcopy(yaml.safe_load(DRILL.read_text()))
    extension = next(e for e in data["extensions"] if e["name"] == "mlchaos")
    extension["notifications"] = {"listen": stack.receiver, "token_file": str(stack.receiver_token_file)}
    if prometheus_url is None:
        credentials = {
            "bearer": {"bearer_token_file": str(stack.token_file)},
            "basic": {"basic_auth": {"username": BASIC_USER, "password_file": str(stack.password_file)}},
            "none": {},
        }[auth]
        extension["endpoints"] = {
            "prometheus": {"url": stack.gateway_url, **credentials},
            "alertmanager": {"url": stack.alertmanager_url},
        }
        return data
    urls = {"prometheus": prometheus_url, "alertmanager": stack.alertmanager_url}
    for activity in [*data["steady-state-hypothesis"]["probes"], *data["method"], *extension["recovery"]]:
        kind = MONITORING_MODULES.get(activity["provider"].get("module"))
        if kind is not None:
            activity["provider"]["arguments"]["url"] = urls[kind]
    return data


def gateway_headers(stack: VictoriaStack) -> dict[str, str]:
    """The ``Authorization`` header vmauth accepts (for the test's own requests, never printed)."""
    return {"Authorization": f"Bearer {stack.token_file.read_text().strip()}"}


# -- configuration ---------------------------------------------------------------------------


def _scrape_config(monitoring: monitoring_stack.Monitoring, blackbox: str) -> dict[str, Any]:
    """The sandbox Prometheus' scrape jobs and scrape settings (what promscrape knows of its config)."""
    config = monitoring.prometheus_config(SANDBOX, blackbox=blackbox, alertmanager="127.0.0.1:9")
    scrape = {key: value for key, value in config["global"].items() if key.startswith("scrape_")}
    return {"global": scrape, "scrape_configs": config["scrape_configs"]}


def _auth_config(token: str, password: str, victoria: str, vmalert: str) -> dict[str, Any]:
    """vmauth's users: one by bearer token, one by basic auth; each routed by path to its backend."""
    routes = [{"src_paths": QUERY_PATHS, "url_prefix": victoria},
              {"src_paths": RULER_PATHS, "url_prefix": vmalert}]
    return {"users": [{"bearer_token": token, "url_map": routes},
                      {"username": BASIC_USER, "password": password, "url_map": routes}]}


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=1000), encoding="utf-8")


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


# -- readiness -------------------------------------------------------------------------------


def _wait_ready(stack: VictoriaStack, timeout: float) -> None:
    """Every part answers, victoria-metrics scrapes every replica's jobs and answers queries on them, vmalert
    evaluated every rule."""
    checks = {
        "victoria-metrics": lambda: _ok(f"{stack.victoria_url}/health"),
        "alertmanager": lambda: _ok(f"{stack.alertmanager_url}/-/ready"),
        "vmalert": lambda: _ok(f"{stack.vmalert_url}/health"),
        "vmauth": lambda: _ok(f"{stack.gateway_url}/health"),
        "scraping": lambda: _scraping(stack.victoria_url),
        "querying": lambda: _queryable(stack.victoria_url),
        "rules": lambda: _rules_evaluated(stack.vmalert_url),
    }
    for name, check in checks.items():
        process = stack.processes.get(name)
        if not poll(lambda: (process is not None and process.poll() is not None) or check(),  # noqa: B023
                    timeout=timeout, interval=0.2) or (process is not None and process.poll() is not None):
            log = name if name in stack.processes else "victoria-metrics"
            raise RuntimeError(f"VictoriaMetrics stack: {name} not ready within {timeout:g}s:\n{stack.log_tail(log)}")


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def _scraping(victoria: str) -> bool:
    """Every job of every replica (the sandbox's target file) has an up target."""
    try:
        targets = requests.get(f"{victoria}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return False
    jobs = {}
    for target in targets:
        job = target["labels"].get("job")
        jobs.setdefault(job, []).append(target.get("health") == "up")
    return all(jobs.get(job) and all(jobs[job]) for job in MODEL_JOBS)


def _queryable(victoria: str) -> bool:
    """Each model job's ``up`` series answer a query by their job label: victoria-metrics finds new series by
    a label filter only some seconds after their first samples (``up`` alone answers sooner)."""
    for job in MODEL_JOBS:
        try:
            answer = requests.get(f"{victoria}/api/v1/query", params={"query": f'count(up{{job="{job}"}})'},
                                  timeout=2).json()
        except (requests.RequestException, ValueError):
            return False
        if not (answer.get("data") or {}).get("result"):
            return False
    return True


def _rules_evaluated(vmalert: str) -> bool:
    """Every alerting rule has been evaluated (health ``ok``) at least once."""
    try:
        groups = requests.get(f"{vmalert}/api/v1/rules", timeout=2).json()["data"]["groups"]
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return False
    rules = [r for g in groups for r in g.get("rules") or []]
    return bool(rules) and all(r.get("health") == "ok" and not str(r.get("lastEvaluation", "")).startswith("0001")
                               for r in rules)
