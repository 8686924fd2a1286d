"""Background client traffic, with a feedback stream, to every live replica of a sandbox service or to servers by URL.

``start_traffic`` announces a change record, then starts a detached generator
(``python -m drivers.model.traffic_process``, see there) that keeps sending real rows, and the true
labels as feedback, while a drill puts a fault in place, rolls it back and checks the recovery. The
generator is bounded (``rate`` <= 500/s, ``duration`` <= 1 h: its time to live, after which it exits
by itself) and writes its running stats to a JSON file in the state directory, which the probes
``traffic_stats`` and ``traffic_answers`` read. ``stop_traffic`` (the undo, what ``mlchaos recover``
calls) ends exactly that process: it is named by its pid, its start time and a token on its command
line, so a reused pid is never signalled, and it is found by its token alone when the record was
journaled before the start. The record is marked ``undo_after_recovery``: a run with no declared
rollback for it keeps the traffic flowing through its recovery check and stops it after.

Where it goes (``target``): ``sandbox``, every live replica of a sandbox service (through its proxy
or not); ``url``, the base URLs clients use (``urls``: a Docker stack's published proxy ports, any
server speaking the protocol), each named by ``names`` (the replica it reaches, e.g. ``model-1``, so
stats and record targets name it as alerts' ``replica`` label does; default ``host:port``). Such a
record's environment is the URLs' origin (as drivers.model.endpoints names a server by URL; several
ports of one host: ``scheme://host``), and each target carries the ``instance`` label the
compose stack's Prometheus gives the replica when the URL is one of the stack's published ports.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.model.actions import _details
from drivers.model.endpoints import Endpoint, parse_scope
from drivers.model.endpoints import environment as url_environment
from drivers.model.traffic_process import ENDPOINTS, MARKER, Plan
from mlchaos.errors import DriverError, SandboxError, TargetNotFound
from mlchaos.lib.files import read_json, write_json
from mlchaos.lib.state_dir import state_dir
from mlchaos.safety import run_context
from mlchaos.safety.changes import ChangeRecord, Target, announce, local_environment
from mlchaos.sandbox import dataset, procs
from mlchaos.sandbox.manager import Sandbox

__all__ = ["start_traffic", "stop_traffic", "traffic_answers", "traffic_stats"]  # what `mlchaos discover` lists
PROBES = ("traffic_answers", "traffic_stats")
STOP_FUNC = "drivers.model.traffic.stop_traffic"
MAX_RATE = 500.0
MAX_DURATION = 3600.0
MAX_BATCH = 100
MAX_TIMEOUT = 30.0
ROWS = {"holdout": dataset.holdout_split, "training": dataset.training_split}
START_TIMEOUT = 20.0  # seconds for the generator to write its first stats
STOP_TIMEOUT = 5.0  # seconds after SIGTERM before SIGKILL
KILL_TIMEOUT = 5.0
_PROC = Path("/proc")  # tests point this at a fake /proc
_STATUS = re.compile(r"^(\d{3}|[1-5]xx|error|any)$")
TARGETS = ("sandbox", "url")


@dataclass(frozen=True)
class Receiver:
    """One replica the traffic goes to: its name (stats, record target), the base URL called, the target's details."""

    name: str
    url: str
    details: dict[str, Any]


def start_traffic(
    service: str = "model", rate: float = 20.0, duration: float = 120.0, feedback: bool = True,
    feedback_every: int = 1, rows: str = "holdout", batch: int = 1, via_proxy: bool = True, model: str = "iris",
    seed: int | None = None, timeout: float = 2.0, target: str = "sandbox", urls: list[str] | None = None,
    names: list[str] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Send `rate` infer calls/s in total, round robin over every replica, for `duration` s, in the background.

    `target` "sandbox": every live replica of `service`, through its proxy when `via_proxy` (so proxy faults
    apply); "url": the base URLs `urls` as given (clients' URLs, e.g. a Docker stack's proxy ports), named by
    `names` (one per URL, e.g. model-0..2; default host:port). Rows are real `rows` ("holdout" or "training")
    rows picked with `seed`, `batch` per call. With `feedback`, the true labels of every `feedback_every`-th
    infer answered 200 go to the same replica. Returns once the generator runs. Undo: stop_traffic.
    """
    _check_start(service, rate, duration, feedback, feedback_every, rows, batch, via_proxy, model, seed, timeout)
    servers = _check_where(target, service, via_proxy, urls, names)
    receivers, environment = _url_receivers(servers) if target == "url" else _sandbox_receivers(service, via_proxy)
    if seed is None:  # record a seed that repeats this very traffic
        seed = random.SystemRandom().randrange(2**31)
    token = uuid.uuid4().hex
    folder = state_dir() / "traffic"
    stats_path, log_path = folder / f"{token}.stats.json", folder / f"{token}.log"
    stop = {"pid": None, "token": token, "start_time": None, "stats_path": str(stats_path)}
    where: dict[str, Any] = {"target": target}
    if target == "url":
        where |= {"urls": [r.url for r in receivers], "names": [r.name for r in receivers]}
    record = ChangeRecord(
        driver="model", action="start_traffic",
        # kind "traffic": the replicas receive load, nothing of theirs is changed
        targets=[Target(kind="traffic", name=r.name, details=r.details) for r in receivers],
        parameters={"service": service, "rate": rate, "duration": duration, "feedback": feedback,
                    "feedback_every": feedback_every, "rows": rows, "batch": batch, "via_proxy": via_proxy,
                    "model": model, "seed": seed, "timeout": timeout, **where, "token": token, "pid": None,
                    "stats_path": str(stats_path), "log_path": str(log_path)},
        undo={"func": STOP_FUNC, "arguments": stop}, dry_run=dry_run,
        environment=environment, population=[r.name for r in receivers],
        undo_after_recovery=True,  # a load: the recovery check needs the traffic still flowing
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    features, labels = ROWS[rows]()
    plan = Plan(token=token, replicas=[[r.name, r.url] for r in receivers], rows=features, labels=labels,
                rate=float(rate), duration=float(duration), batch=batch, feedback=feedback,
                feedback_every=feedback_every, model=model, seed=seed, timeout=float(timeout),
                stats_path=str(stats_path))
    pid, start_time = _spawn(plan, folder / f"{token}.plan.json", log_path)
    stop.update(pid=pid, start_time=start_time)
    record.parameters["pid"] = pid
    return record.to_dict()


def stop_traffic(
    pid: int | None = None, token: str | None = None, start_time: int | None = None, stats_path: str | None = None
) -> dict[str, Any]:
    """Roll back start_traffic: end exactly that generator (SIGTERM, SIGKILL after 5 s; idempotent).

    It is ours only when its command line carries the generator and `token` and, given `start_time`, it
    started then (a reused pid is never signalled); without `pid` it is looked for by `token`. Returns
    ``stopped``, ``killed``, ``already`` (it had ended: time to live, or gone) and its final ``stats``.
    """
    if not isinstance(token, str) or not re.fullmatch(r"[0-9a-f]{32}", token):
        raise DriverError(f"token must be the generator's token (32 hex digits), got {token!r}")
    for name, value in (("pid", pid), ("start_time", start_time)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise DriverError(f"{name} must be a positive integer or null, got {value!r}")
    if stats_path is not None and not isinstance(stats_path, str):
        raise DriverError(f"stats_path must be a path or null, got {stats_path!r}")
    found = find_generators(token, pid, start_time)
    stopped, killed = [], []
    for candidate in found:
        (killed if _end(candidate, token) else stopped).append(candidate)
    result: dict[str, Any] = {"token": token, "stopped": stopped, "killed": killed,
                              "already": [] if found else [pid if pid is not None else token]}
    result["stats"] = _read_stats(Path(stats_path)) if stats_path else None
    return result


def traffic_stats(stats_path: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
    """The running (or final) stats of a traffic generator: sent, skipped, answers per replica and endpoint.

    Without `stats_path`: those of the generator most recently started in this run. A dry run (a plan)
    only says which stats it would read.
    """
    path = _stats_path(stats_path, planned=dry_run)
    if dry_run:
        return {"dry_run": True, "stats_path": str(path)}
    stats = _read_stats(path)
    if stats is None:
        raise DriverError(f"no traffic stats at {path} (the generator never started?)")
    return stats


def traffic_answers(
    status: str = "5xx", endpoint: str = "infer", replica: str | None = None, stats_path: str | None = None,
    *, dry_run: bool = False,
) -> int | dict[str, Any]:
    """How many `endpoint` calls ("infer" or "feedback") of a traffic generator were answered `status`.

    `status`: a code ("200"), a class ("5xx"), "error" (no HTTP answer: a timeout, a refused connection)
    or "any"; counted over every replica, or `replica` only. Without `stats_path`: the generator most
    recently started in this run. A dry run (a plan) checks the arguments and counts nothing.
    """
    if not isinstance(status, str) or not _STATUS.match(status):
        raise DriverError(f"status must be a code such as '200', a class such as '5xx', 'error' or 'any', "
                          f"got {status!r}")
    if endpoint not in ENDPOINTS:
        raise DriverError(f"endpoint must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}")
    stats = traffic_stats(stats_path, dry_run=dry_run)
    if dry_run:
        return {**stats, "status": status, "endpoint": endpoint, "replica": replica}
    answers = stats["answers"]
    if replica is not None and replica not in answers:
        raise TargetNotFound(f"the traffic went to {', '.join(answers)}, not to replica {replica!r}")
    return sum(n for name, by in answers.items() if replica in (None, name)
               for code, n in by.get(endpoint, {}).items() if status_matches(code, status))


def status_matches(code: str, status: str) -> bool:
    """True when an answer counted as `code` ("200", "ReadTimeout"...) is one `status` asks for."""
    if status == "any":
        return True
    if status == "error":
        return not code.isdigit()
    if status.endswith("xx"):
        return code.isdigit() and code[0] == status[0]
    return code == status


def find_generators(token: str, pid: int | None = None, start_time: int | None = None) -> list[int]:
    """The live generators carrying `token` (only `pid` when given, and only if it started at `start_time`)."""
    candidates = [pid] if pid is not None else sorted(int(e.name) for e in _PROC.iterdir() if e.name.isdigit())
    return [c for c in candidates if is_generator(c, token, start_time)]


def is_generator(pid: int, token: str, start_time: int | None = None) -> bool:
    """True when `pid` is a live (never zombie) traffic generator with `token` (started at `start_time`)."""
    started = process_start_time(pid)
    if started is None or (start_time is not None and started != start_time):
        return False  # gone, a zombie, or a reused pid
    try:
        argv = [a.decode(errors="replace") for a in (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")]
    except OSError:
        return False
    return MARKER in argv and any(a == "--token" and b == token for a, b in zip(argv, argv[1:], strict=False))


def process_start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (with the pid it names one process for good); None when it is
    gone or a zombie."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name in (...) may hold spaces and parentheses
    return None if fields[0] in ("Z", "X") else int(fields[19])


# -- validation, selection and the process ---------------------------------------------------


def _check_start(service: Any, rate: Any, duration: Any, feedback: Any, feedback_every: Any, rows: Any,
                 batch: Any, via_proxy: Any, model: Any, seed: Any, timeout: Any) -> None:
    if not isinstance(service, str) or not service:
        raise DriverError(f"service must be a non-empty string, got {service!r}")
    if not _number(rate) or not 0 < rate <= MAX_RATE:
        raise DriverError(f"rate must be a number of infer calls per second in (0, {MAX_RATE:g}], got {rate!r}")
    if not _number(duration) or not 0 < duration <= MAX_DURATION:
        raise DriverError(f"duration must be a number of seconds in (0, {MAX_DURATION:g}], got {duration!r}")
    for name, value in (("feedback", feedback), ("via_proxy", via_proxy)):
        if not isinstance(value, bool):
            raise DriverError(f"{name} must be true or false, got {value!r}")
    if isinstance(feedback_every, bool) or not isinstance(feedback_every, int) or feedback_every < 1:
        raise DriverError(f"feedback_every must be an integer >= 1, got {feedback_every!r}")
    if rows not in ROWS:
        raise DriverError(f"rows must be one of {', '.join(ROWS)}, got {rows!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise DriverError(f"batch must be an integer in [1, {MAX_BATCH}], got {batch!r}")
    if not isinstance(model, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", model):
        raise DriverError(f"model must be a model name such as 'iris', got {model!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise DriverError(f"seed must be an integer or null, got {seed!r}")
    if not _number(timeout) or not 0 < timeout <= MAX_TIMEOUT:
        raise DriverError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], got {timeout!r}")


def _check_where(target: Any, service: Any, via_proxy: bool, urls: Any, names: Any) -> list[tuple[str, Endpoint]]:
    """Check where the traffic goes (touching nothing); with target url: (name, server) pairs, names defaulted to
    host:port."""
    if target not in TARGETS:
        raise DriverError(f"target must be one of {', '.join(TARGETS)} (a Docker stack: target url with its "
                          f"published proxy ports), got {target!r}")
    if target != "url" and names is not None:
        raise DriverError(f"names name the urls: give them with target url, not {target}")
    scope = parse_scope(target, service, urls=urls)  # urls: a non-empty list of distinct http(s) base URLs
    if target != "url":
        return []
    if not via_proxy:
        raise DriverError("via_proxy false picks a sandbox replica's own URL: with target url the urls are called "
                          "as given (give the replicas' own URLs to bypass a proxy)")
    found = scope.named(None)
    _environment(found)
    if names is None:
        names = [e.instance for e in found]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DriverError(f"names: the urls share host:port {', '.join(twice)}: give each URL a name")
    elif isinstance(names, str) or not isinstance(names, list | tuple) or len(names) != len(found) or not all(
            isinstance(n, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", n) for n in names):
        raise DriverError(f"names must be a list of {len(found)} replica name(s), one per URL of urls "
                          f"(such as 'model-1'), got {names!r}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DriverError(f"names: {', '.join(map(repr, twice))} is given twice")
    return list(zip(names, found, strict=True))


def _sandbox_receivers(service: str, via_proxy: bool) -> tuple[list[Receiver], str]:
    try:
        replicas = Sandbox().replicas(service)
    except SandboxError as exc:
        raise DriverError(str(exc)) from exc
    live = [r for r in replicas if procs.is_alive(r.pid, r.name)]
    if not live:
        raise TargetNotFound(f"no live replica of service {service!r}")
    return [Receiver(r.name, url, {**_details(r), "traffic_url": url})
            for r in live for url in [r.client_url if via_proxy else r.url]], local_environment()


def _url_receivers(servers: list[tuple[str, Endpoint]]) -> tuple[list[Receiver], str]:
    """The servers by URL (as drivers.model.endpoints names them) and the record's one environment."""
    stack = _stack_instances()
    receivers = []
    for name, server in servers:
        details: dict[str, Any] = {"url": server.name, "traffic_url": server.name}
        if server.name in stack:  # only when known: how the Prometheus that scrapes the replica labels it
            details["instance"] = stack[server.name]
        receivers.append(Receiver(name, server.name, details))
    return receivers, _environment([e for _, e in servers])


def _environment(found: list[Endpoint]) -> str:
    """The origin of the URLs; several ports of one host: ``scheme://host`` (one generator, one record)."""
    origins = sorted({e.environment for e in found})
    if len(origins) == 1:
        return url_environment(found)
    hosts = sorted({o.rsplit(":", 1)[0] for o in origins})  # an origin always names its port (endpoints)
    if len(hosts) > 1:
        raise DriverError(f"urls: one traffic record names one environment, and these are not on one scheme and "
                          f"host ({', '.join(origins)}): start one generator per host")
    return hosts[0]


def _stack_instances() -> dict[str, str]:
    """The compose stack's published replica URLs (through its fault proxy, and direct) -> the ``instance``
    label its Prometheus gives that replica (``model-N:8000``, deploy/docker/prometheus/targets/model.json)."""
    from mlchaos.containers import configs, stack

    found = stack.endpoints()
    return {url: f"{name}:{configs.MODEL_PORT}"
            for by_name in (found.model_urls, found.direct_urls) for name, url in by_name.items()}


def _spawn(plan: Plan, plan_path: Path, log_path: Path) -> tuple[int, int | None]:
    """Start the generator in its own session; return (pid, start time) once it wrote its first stats."""
    write_json(plan_path, plan.to_dict())
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", MARKER, "--token", plan.token, "--config", str(plan_path)],
                                   start_new_session=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    procs.track(process)  # reaped once it exits, so it never lingers as a zombie of the runner
    start_time = process_start_time(process.pid)
    deadline = time.monotonic() + START_TIMEOUT
    stats_path = Path(plan.stats_path)
    while _read_stats(stats_path) is None:
        code = process.poll()
        if code is not None:
            raise DriverError(f"the traffic generator exited at its start (code {code}): {_tail(log_path)}")
        if time.monotonic() >= deadline:
            _end(process.pid, plan.token)
            raise DriverError(f"the traffic generator wrote no stats within {START_TIMEOUT:g}s: {_tail(log_path)}")
        time.sleep(0.02)
    return process.pid, start_time


def _end(pid: int, token: str) -> bool:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; wait until it is gone. True when it had to be killed."""
    start_time = process_start_time(pid)
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, KILL_TIMEOUT)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while is_generator(pid, token, start_time):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
            procs.reap(pid)  # our own child: collect it, or it stays a zombie
        else:
            return sig is signal.SIGKILL
    raise DriverError(f"the traffic generator (pid {pid}) did not end after SIGKILL")


def _stats_path(stats_path: str | None, planned: bool = False) -> Path:
    """The given path, or that of the run's latest generator (a planned one too when ``planned``)."""
    if stats_path is not None:
        if not isinstance(stats_path, str) or not stats_path:
            raise DriverError(f"stats_path must be a path or null, got {stats_path!r}")
        return Path(stats_path)
    context = run_context.current()
    for record in reversed(context.changes if context is not None else []):
        if record.driver == "model" and record.action == "start_traffic" and (planned or not record.dry_run):
            return Path(record.parameters["stats_path"])
    raise DriverError("give stats_path: no traffic generator was started in this run")


def _read_stats(path: Path) -> dict[str, Any] | None:
    """The stats the generator wrote (atomically: never half a file); None when there are none yet."""
    try:
        return read_json(path, "the traffic stats")
    except SandboxError as exc:
        raise DriverError(str(exc)) from None


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)
