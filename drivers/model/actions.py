"""Model faults on sandbox replicas, through the reference server's own hooks (see docs/ml-faults.md).

Each fault picks ``count`` random live replicas of a sandbox ``service`` (``seed`` makes the pick
repeatable), announces a :class:`~mlchaos.changes.ChangeRecord` *before* acting and returns
``record.to_dict()``; ``dry_run`` returns the same record without acting. The calls go to each
replica's direct URL over loopback (the admin hooks answer loopback clients only), never through
the fault proxy, each with a ``timeout`` (seconds). Undos: :func:`clear_model_faults` for
``emit_nan_outputs`` and ``make_not_ready``, :func:`restore_model_version` for
``pin_model_version``, :func:`restore_pushed_model` for ``push_bad_model``; all are idempotent
(a second call lists the replicas under ``already``). ``send_invalid_inputs`` leaves nothing to
undo: its record has an empty undo.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from itertools import cycle
from typing import Any

import requests as http  # `requests` is also an argument (a count)

from mlchaos.changes import ChangeRecord, Target, announce, local_environment
from mlchaos.errors import DriverError, SandboxError, TargetNotFound
from mlchaos.sandbox import dataset, procs
from mlchaos.sandbox.manager import Replica, Sandbox
from mlchaos.sandbox.model import DEFECTS, VERSION_NAME

CLEAR_FUNC = "drivers.model.actions.clear_model_faults"
RESTORE_FUNC = "drivers.model.actions.restore_model_version"
RESTORE_PUSHED_FUNC = "drivers.model.actions.restore_pushed_model"
INVALID_KINDS = ("nan", "out_of_range", "wrong_shape", "wrong_datatype")
MAX_REQUESTS = 10_000
MAX_RATE = 500.0
JSON = {"Content-Type": "application/json"}


def emit_nan_outputs(
    service: str = "model", count: int = 1, seed: int | None = None, timeout: float = 5.0, *, dry_run: bool = False
) -> dict[str, Any]:
    """Make `count` random replicas answer every inference with NaN outputs (admin fault nan_outputs).

    Undo: clear_model_faults.
    """
    return _admin_fault("nan_outputs", service, count, seed, timeout, dry_run)


def make_not_ready(
    service: str = "model", count: int = 1, seed: int | None = None, timeout: float = 5.0, *, dry_run: bool = False
) -> dict[str, Any]:
    """Make `count` random replicas live but not ready: readiness and infer 503 (admin fault not_ready).

    Undo: clear_model_faults.
    """
    return _admin_fault("not_ready", service, count, seed, timeout, dry_run)


def clear_model_faults(
    service: str = "model", replicas: list[str] | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """Roll back the admin faults: clear every one on the replicas (only `replicas` when given; idempotent).

    A replica that is not running has no fault left (they live in memory): listed under ``gone``.
    """
    _check_timeout(timeout)
    cleared, already, gone = [], [], []
    for r in _named(service, replicas):
        if not procs.is_alive(r.pid, r.name):
            gone.append(r.name)
            continue
        faults = _call("GET", r, "/admin/faults", timeout)["faults"]
        if any(faults.values()):
            _call("DELETE", r, "/admin/faults", timeout)
            cleared.append(r.name)
        else:
            already.append(r.name)
    return {"service": service, "cleared": cleared, "already": already, "gone": gone}


def pin_model_version(
    version: str = "1", service: str = "model", count: int = 1, seed: int | None = None, model: str = "iris",
    timeout: float = 5.0, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Serve an older model `version` on `count` random replicas (repository load API): a stale model.

    The version each replica served before is recorded for the undo: restore_model_version.
    """
    if not isinstance(version, str) or not version:
        raise DriverError(f"version must be a non-empty string such as '1', got {version!r}")
    _check_timeout(timeout)
    chosen, live, seed = _select(service, count, seed)
    previous: dict[str, str] = {}
    for r in chosen:
        index = _index(r, model, timeout)
        if version not in index:
            raise DriverError(f"{r.name}: model {model!r} has no version {version!r} (known: {', '.join(index)})")
        previous[r.name] = next((v for v, state in index.items() if state == "READY"), "")
    record = _record("pin_model_version", chosen, live, {"service": service, "count": count, "seed": seed,
                                                          "version": version, "model": model, "previous": previous},
                     {"func": RESTORE_FUNC, "arguments": {"service": service, "replicas": [r.name for r in chosen],
                                                          "versions": previous, "model": model}}, dry_run)
    if not dry_run:
        for r in chosen:
            _call("POST", r, f"/v2/repository/models/{model}/load", timeout, {"parameters": {"version": version}})
    return record.to_dict()


def restore_model_version(
    service: str = "model", replicas: list[str] | None = None, versions: dict[str, str] | None = None,
    model: str = "iris", timeout: float = 5.0,
) -> dict[str, Any]:
    """Roll back a pinned version: serve `versions[replica]` again, or the server's current one (idempotent)."""
    _check_timeout(timeout)
    _check_versions(versions)
    restored, already, gone = [], [], []
    for r in _named(service, replicas):
        if not procs.is_alive(r.pid, r.name):
            gone.append(r.name)
            continue
        (restored if _restore(r, versions, model, timeout) else already).append(r.name)
    return {"service": service, "restored": restored, "already": already, "gone": gone}


def push_bad_model(
    defect: str = "label_flipped", version: str = "bad", service: str = "model", count: int = 1,
    seed: int | None = None, model: str = "iris", timeout: float = 5.0, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Push a defective model `version` (label_flipped or random_weights) to `count` random replicas and serve it.

    A bad artifact pushed and loaded: accuracy drops (ModelAccuracyLow), random_weights drifts too.
    The version each replica served before is recorded for the undo: restore_pushed_model.
    """
    if defect not in DEFECTS:
        raise DriverError(f"defect must be one of {', '.join(DEFECTS)}, got {defect!r}")
    if not isinstance(version, str) or not VERSION_NAME.match(version):
        raise DriverError(f"version must be 1-64 letters, digits, '.', '_' or '-', got {version!r}")
    _check_timeout(timeout)
    chosen, live, seed = _select(service, count, seed)
    previous: dict[str, str] = {}
    for r in chosen:
        served = _served(r, model, timeout)
        if served is None:
            raise DriverError(f"{r.name}: model {model!r} serves no version")
        if version in _index(r, model, timeout):
            held = {v["version"]: v["defect"] for v in _call("GET", r, "/admin/versions", timeout)["versions"]}
            if held.get(version) != defect:
                what = f"pushed with defect {held[version]!r}" if version in held else "a release"
                raise DriverError(f"{r.name}: version {version!r} of {model!r} is {what}: pick another version name")
        if served == version:
            raise DriverError(f"{r.name}: already serves version {version!r}: nothing to roll back to")
        previous[r.name] = served
    record = _record("push_bad_model", chosen, live,
                     {"service": service, "count": count, "seed": seed, "defect": defect, "version": version,
                      "model": model, "previous": previous},
                     {"func": RESTORE_PUSHED_FUNC, "arguments": {
                         "service": service, "replicas": [r.name for r in chosen], "versions": previous,
                         "model": model, "remove_version": version}}, dry_run)
    if not dry_run:
        for r in chosen:
            _call("POST", r, "/admin/versions", timeout, {"version": version, "defect": defect})
            _call("POST", r, f"/v2/repository/models/{model}/load", timeout, {"parameters": {"version": version}})
    return record.to_dict()


def restore_pushed_model(
    service: str = "model", replicas: list[str] | None = None, versions: dict[str, str] | None = None,
    model: str = "iris", remove_version: str = "bad", timeout: float = 5.0,
) -> dict[str, Any]:
    """Roll back a bad push: serve the previous version again, then remove `remove_version` (idempotent).

    Serves `versions[replica]` (the server's current version when null) as restore_model_version
    does, then deletes the pushed version from each replica's repository.
    """
    _check_timeout(timeout)
    _check_versions(versions)
    if not isinstance(remove_version, str) or not VERSION_NAME.match(remove_version):
        raise DriverError(f"remove_version must be a version name such as 'bad', got {remove_version!r}")
    if remove_version in (versions or {}).values():
        raise DriverError(f"remove_version {remove_version!r} is also a version to restore: {versions!r}")
    restored, removed, already, gone = [], [], [], []
    for r in _named(service, replicas):
        if not procs.is_alive(r.pid, r.name):
            gone.append(r.name)  # a restarted replica holds no pushed version (they live in memory)
            continue
        changed = False
        if _restore(r, versions, model, timeout):
            restored.append(r.name)
            changed = True
        if remove_version in _index(r, model, timeout):
            _call("DELETE", r, f"/admin/versions/{remove_version}", timeout)
            removed.append(r.name)
            changed = True
        if not changed:
            already.append(r.name)
    return {"service": service, "restored": restored, "removed": removed, "already": already, "gone": gone}


def send_invalid_inputs(
    kind: str = "nan", requests: int = 100, rate: float = 20.0, invalid_fraction: float = 0.5,
    service: str = "model", count: int = 1, seed: int | None = None, model: str = "iris",
    max_seconds: float = 60.0, timeout: float = 2.0, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Send `requests` infer calls at `rate`/s to `count` random replicas, `invalid_fraction` of them invalid.

    Bounded by count and by `max_seconds`. The valid calls are real holdout rows. Every invalid call
    must be answered 4xx (never a prediction, never 5xx), else DriverError. Nothing to undo.
    """
    if kind not in INVALID_KINDS:
        raise DriverError(f"kind must be one of {', '.join(INVALID_KINDS)}, got {kind!r}")
    if isinstance(requests, bool) or not isinstance(requests, int) or not 1 <= requests <= MAX_REQUESTS:
        raise DriverError(f"requests must be an integer in [1, {MAX_REQUESTS}], got {requests!r}")
    if not _number(rate) or not 0 < rate <= MAX_RATE:
        raise DriverError(f"rate must be a number of requests per second in (0, {MAX_RATE:g}], got {rate!r}")
    if not _number(invalid_fraction) or not 0 < invalid_fraction <= 1:
        raise DriverError(f"invalid_fraction must be in (0, 1], got {invalid_fraction!r}")
    if not _number(max_seconds) or max_seconds <= 0:
        raise DriverError(f"max_seconds must be a positive number, got {max_seconds!r}")
    _check_timeout(timeout)
    chosen, live, seed = _select(service, count, seed)
    record = _record("send_invalid_inputs", chosen, live,
                     {"service": service, "count": count, "seed": seed, "kind": kind, "requests": requests,
                      "rate": rate, "invalid_fraction": invalid_fraction, "model": model, "max_seconds": max_seconds},
                     {}, dry_run)
    if dry_run:
        return record.to_dict()
    rows, _ = dataset.holdout_split()
    pick = random.Random(record.parameters["seed"])
    answers: dict[str, Counter[str]] = {"invalid": Counter(), "valid": Counter()}
    started = time.monotonic()
    with http.Session() as session:
        for i, r in zip(range(requests), cycle(chosen), strict=False):
            if time.monotonic() - started >= max_seconds:
                break
            time.sleep(max(started + i / rate - time.monotonic(), 0.0))
            invalid = int((i + 1) * invalid_fraction) > int(i * invalid_fraction)
            body = _invalid_body(kind) if invalid else _row_body(pick.choice(rows))
            try:
                # json.dumps writes the NaN literal that requests' own json= refuses to send
                status = str(session.post(f"{r.url}/v2/models/{model}/infer", data=json.dumps(body), headers=JSON,
                                          timeout=timeout).status_code)
            except http.RequestException as exc:
                status = type(exc).__name__
            answers["invalid" if invalid else "valid"][status] += 1
    counts = {k: dict(sorted(v.items())) for k, v in answers.items()}
    record.parameters["answers"] = counts
    wrong = {s: n for s, n in counts["invalid"].items() if not s.startswith("4")}
    if wrong:
        raise DriverError(f"invalid {kind} inputs must be answered 4xx, got {wrong} (all answers: {counts})")
    return record.to_dict()


# -- selection, records and HTTP -----------------------------------------------------------


def _admin_fault(fault: str, service: str, count: int, seed: int | None, timeout: float,
                 dry_run: bool) -> dict[str, Any]:
    _check_timeout(timeout)
    chosen, live, seed = _select(service, count, seed)
    record = _record(fault, chosen, live, {"service": service, "count": count, "seed": seed, "fault": fault},
                     {"func": CLEAR_FUNC, "arguments": {"service": service, "replicas": [r.name for r in chosen]}},
                     dry_run)
    if not dry_run:
        for r in chosen:
            _call("POST", r, "/admin/faults", timeout, {fault: True})
    return record.to_dict()


def _select(service: str, count: int, seed: int | None) -> tuple[list[Replica], list[Replica], int]:
    """`count` random live replicas of the service, every live one (the population) and the seed of the pick."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DriverError(f"count must be an integer >= 1, got {count!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise DriverError(f"seed must be an integer or null, got {seed!r}")
    live = [r for r in _replicas(service) if procs.is_alive(r.pid, r.name)]
    if not live:
        raise TargetNotFound(f"no live replica of service {service!r}")
    if count > len(live):
        raise DriverError(f"count={count} but service {service!r} has only {len(live)} live replica(s)")
    if seed is None:  # record a seed that repeats this very pick
        seed = random.SystemRandom().randrange(2**31)
    return sorted(random.Random(seed).sample(live, count), key=lambda r: r.index), live, seed


def _record(action: str, chosen: list[Replica], live: list[Replica], parameters: dict[str, Any],
            undo: dict[str, Any], dry_run: bool) -> ChangeRecord:
    record = ChangeRecord(
        driver="model", action=action,
        targets=[Target(kind="process", name=r.name, details=_details(r)) for r in chosen],
        parameters=parameters, undo=undo, dry_run=dry_run,
        environment=local_environment(), population=[r.name for r in live],
    )
    announce(record)
    return record


def _replicas(service: str) -> list[Replica]:
    try:
        return Sandbox().replicas(service)
    except SandboxError as exc:
        raise DriverError(str(exc)) from exc


def _named(service: str, names: list[str] | None) -> list[Replica]:
    if names is not None and (isinstance(names, str) or not isinstance(names, list | tuple)):
        raise DriverError(f"replicas must be a list of replica names, got {names!r}")
    replicas = _replicas(service)
    if names is None:
        return replicas
    unknown = sorted(set(names) - {r.name for r in replicas})
    if unknown:
        raise TargetNotFound(f"no replica(s) {unknown} in service {service!r}")
    return [r for r in replicas if r.name in names]


def _index(r: Replica, model: str, timeout: float) -> dict[str, str]:
    entries = _call("GET", r, "/v2/repository/index", timeout).get("models", [])
    return {e["version"]: e["state"] for e in entries if e.get("name") == model}


def _served(r: Replica, model: str, timeout: float) -> str | None:
    return next((v for v, state in _index(r, model, timeout).items() if state == "READY"), None)


def _restore(r: Replica, versions: dict[str, str] | None, model: str, timeout: float) -> bool:
    """Serve `versions[r]` (or the server's current version) on a live replica; False when it already did."""
    wanted = (versions or {}).get(r.name) or None  # None: the server's current version
    before = _served(r, model, timeout)
    if wanted is not None and before == wanted:
        return False
    body = {"parameters": {"version": wanted}} if wanted else None
    after = _call("POST", r, f"/v2/repository/models/{model}/load", timeout, body).get("version")
    return after != before


def _check_versions(versions: Any) -> None:
    if versions is not None and (not isinstance(versions, dict)
                                 or not all(isinstance(v, str) and v for v in versions.values())):
        raise DriverError(f"versions must map replica names to version strings, got {versions!r}")


def _call(method: str, r: Replica, path: str, timeout: float, body: Any = None) -> dict[str, Any]:
    """One HTTP call to the replica's direct URL; every failure becomes a one-line DriverError."""
    try:
        resp = http.request(method, r.url + path, json=body, timeout=timeout)
        resp.raise_for_status()
        return resp.json()
    except http.HTTPError as exc:
        detail = exc.response.text.strip()[:200] if exc.response is not None else ""
        raise DriverError(f"{r.name}: {method} {path} answered {exc}: {detail}") from None
    except (http.RequestException, ValueError) as exc:
        raise DriverError(f"{r.name}: {method} {path} failed: {type(exc).__name__}: {exc}") from None


def _invalid_body(kind: str) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "input-0", "shape": [1, dataset.N_FEATURES], "datatype": "FP64",
                              "data": [5.1, 3.5, 1.4, 0.2]}
    if kind == "nan":
        tensor["data"] = [5.1, float("nan"), 1.4, 0.2]
    elif kind == "out_of_range":
        tensor["data"] = [5.1, 3.5, 1400.0, 0.2]
    elif kind == "wrong_shape":
        tensor["shape"], tensor["data"] = [1, dataset.N_FEATURES - 1], [5.1, 3.5, 1.4]
    else:  # wrong_datatype
        tensor["datatype"], tensor["data"] = "BYTES", ["5.1", "3.5", "1.4", "0.2"]
    return {"inputs": [tensor]}


def _row_body(row: list[float]) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": list(row)}]}


def _details(r: Replica) -> dict[str, Any]:
    # instance: the address Prometheus scrapes, so alerts can be matched to the replica that was hit
    return {"pid": r.pid, "port": r.port, "service": r.service, "url": r.url, "instance": f"{r.host}:{r.port}"}


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _check_timeout(timeout: Any) -> None:
    if not _number(timeout) or not 0 < timeout <= 60:
        raise DriverError(f"timeout must be a number of seconds in (0, 60], got {timeout!r}")
