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
With ``endpoint`` (target url), the traffic goes to a declared endpoint (``serving`` when neither
``urls`` nor ``endpoint`` is given and one is declared): its URL, with its credentials, CA, client
certificate and headers, which reach the generator through a pipe on its standard input, never its
command line, environment or plan file; a URL of ``urls`` under a declared endpoint goes with that
endpoint's (as every driver call does). The record names the endpoint, never a credential.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from drivers._common import selection
from drivers._common.checks import is_number
from drivers._common.endpoints import client_settings
from drivers._common.errors import translated
from drivers._common.undo import Rollbacks
from drivers.model import generators, sandbox
from drivers.model import receivers as receivers_
from drivers.model.generators import find_generators as find_generators
from drivers.model.generators import is_generator as is_generator
from drivers.model.traffic_process import ENDPOINTS, Plan
from mlchaos.driver_kit import (
    ChangeRecord,
    DriverError,
    Target,
    TargetNotFound,
    announce,
    current_run,
    read_json,
    state_dir,
    undo_function,
)

__all__ = ["start_traffic", "stop_traffic", "traffic_answers", "traffic_stats"]  # what `mlchaos discover` lists
DEFAULT_ENDPOINT = "serving"  # with target url, start_traffic takes a declared endpoint (``endpoint``) instead of urls
ENDPOINT_FUNCTIONS = ("start_traffic",)  # traffic_answers' ``endpoint`` is infer or feedback, not a declared one
PROBES = ("traffic_answers", "traffic_stats")
ROLLBACKS = Rollbacks("drivers.model.traffic")
STOP_FUNC = ROLLBACKS.path("stop_traffic")
MAX_RATE = 500.0
MAX_DURATION = 3600.0
MAX_BATCH = 100
MAX_TIMEOUT = 30.0
ROWS = {"holdout": sandbox.holdout_split, "training": sandbox.training_split}
_STATUS = re.compile(r"^(\d{3}|[1-5]xx|error|any)$")


def start_traffic(
    service: str = "model", rate: float = 20.0, duration: float = 120.0, feedback: bool = True,
    feedback_every: int = 1, rows: str = "holdout", batch: int = 1, via_proxy: bool = True, model: str = "iris",
    seed: int | None = None, timeout: float = 2.0, target: str = "sandbox", urls: list[str] | None = None,
    names: list[str] | None = None, endpoint: str | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Send `rate` infer calls/s in total, round robin over every replica, for `duration` s, in the background.

    `target` "sandbox": every live replica of `service`, through its proxy when `via_proxy` (so proxy faults
    apply); "url": the base URLs `urls` as given (clients' URLs, e.g. a Docker stack's proxy ports), named by
    `names` (one per URL, e.g. model-0..2; default host:port), or the declared `endpoint` (default: the one
    declared as serving, when neither urls nor endpoint is given), whose credentials go with every call. Rows
    are real `rows` ("holdout" or "training")
    rows picked with `seed`, `batch` per call. With `feedback`, the true labels of every `feedback_every`-th
    infer answered 200 go to the same replica. Returns once the generator runs. Undo: stop_traffic.
    """
    _check_start(service, rate, duration, feedback, feedback_every, rows, batch, via_proxy, model, timeout)
    seed = selection.check_seed(seed)  # recorded: it repeats this very traffic
    servers, declared = receivers_.check_where(target, service, via_proxy, urls, names, endpoint)
    receivers, environment = (receivers_.url_receivers(servers) if target == "url"
                              else receivers_.sandbox_receivers(service, via_proxy))
    # what the generator needs to reach URLs under declared endpoints (credentials read now: unreadable ones
    # fail here, naming the endpoint and where its credential was to come from)
    access = {r.url: found for r in receivers if target == "url" and (found := client_settings(r.url))}
    token = uuid.uuid4().hex
    folder = state_dir() / "traffic"
    stats_path, log_path = folder / f"{token}.stats.json", folder / f"{token}.log"
    stop = {"pid": None, "token": token, "start_time": None, "stats_path": str(stats_path)}
    where: dict[str, Any] = {"target": target}
    if target == "url":
        where |= {"urls": [r.url for r in receivers], "names": [r.name for r in receivers]}
        if declared is not None:
            where["endpoint"] = declared
    record = ChangeRecord(
        driver="model", action="start_traffic",
        # kind "traffic": the replicas receive load, nothing of theirs is changed
        targets=[Target(kind="traffic", name=r.name, details=r.details) for r in receivers],
        parameters={"service": service, "rate": rate, "duration": duration, "feedback": feedback,
                    "feedback_every": feedback_every, "rows": rows, "batch": batch, "via_proxy": via_proxy,
                    "model": model, "seed": seed, "timeout": timeout, **where, "token": token, "pid": None,
                    "stats_path": str(stats_path), "log_path": str(log_path)},
        undo=ROLLBACKS.undo("stop_traffic", **stop), dry_run=dry_run,
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
                stats_path=str(stats_path), endpoint=declared, credentials=bool(access))
    pid, start_time = generators.spawn(plan, folder / f"{token}.plan.json", log_path,
                                       lambda: _read_stats(stats_path) is not None, access)
    record.undo["arguments"].update(pid=pid, start_time=start_time)
    record.parameters["pid"] = pid
    return record.to_dict()


@undo_function
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
        (killed if generators.end(candidate, token) else stopped).append(candidate)
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


# -- validation and selection ------------------------------------------------------------------


def _check_start(service: Any, rate: Any, duration: Any, feedback: Any, feedback_every: Any, rows: Any,
                 batch: Any, via_proxy: Any, model: Any, timeout: Any) -> None:
    if not isinstance(service, str) or not service:
        raise DriverError(f"service must be a non-empty string, got {service!r}")
    if not is_number(rate) or not 0 < rate <= MAX_RATE:
        raise DriverError(f"rate must be a number of infer calls per second in (0, {MAX_RATE:g}], got {rate!r}")
    if not is_number(duration) or not 0 < duration <= MAX_DURATION:
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
    if not is_number(timeout) or not 0 < timeout <= MAX_TIMEOUT:
        raise DriverError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], got {timeout!r}")


def _stats_path(stats_path: str | None, planned: bool = False) -> Path:
    """The given path, or that of the run's latest generator (a planned one too when ``planned``)."""
    if stats_path is not None:
        if not isinstance(stats_path, str) or not stats_path:
            raise DriverError(f"stats_path must be a path or null, got {stats_path!r}")
        return Path(stats_path)
    context = current_run()
    for record in reversed(context.changes if context is not None else []):
        if record.driver == "model" and record.action == "start_traffic" and (planned or not record.dry_run):
            return Path(record.parameters["stats_path"])
    raise DriverError("give stats_path: no traffic generator was started in this run")


def _read_stats(path: Path) -> dict[str, Any] | None:
    """The stats the generator wrote (atomically: never half a file); None when there are none yet."""
    with translated():
        return read_json(path, "the traffic stats")
