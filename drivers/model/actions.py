"""Model faults on model-server replicas, through the reference server's own hooks (see docs/ml-faults.md).

Each fault picks ``count`` random live replicas (``seed`` makes the pick repeatable), announces a
:class:`~mlchaos.driver_kit.ChangeRecord` *before* acting and returns ``record.to_dict()``;
``dry_run`` returns the same record without acting. Where the replicas are is ``target``
(:mod:`drivers.model.endpoints`): ``sandbox`` (default: the replicas of the sandbox ``service``,
called on their direct loopback URL), ``docker`` (containers chosen by ``labels``, default
``{"mlchaos.target": "model"}``, ``name_pattern`` and ``project``, called through ``docker exec``
inside each: the admin hooks answer loopback clients only) or ``url`` (any server speaking the
protocol at ``urls``: the public API only, so the admin faults are refused). Calls never go
through a fault proxy, each with a ``timeout`` (seconds). Undos: :func:`clear_model_faults` for
``emit_nan_outputs`` and ``make_not_ready``, :func:`restore_model_version` for
``pin_model_version``, :func:`restore_pushed_model` for ``push_bad_model``; all are idempotent
(a second call lists the replicas under ``already``) and the recorded undo carries the target
arguments, so ``mlchaos recover`` finds the replicas again. ``send_invalid_inputs`` leaves
nothing to undo: its record has an empty undo.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from itertools import cycle
from typing import Any

import requests as http  # `requests` is also an argument (a count)

from drivers._common.checks import is_number
from drivers._common.undo import Rollbacks
from drivers.model.endpoints import Endpoint, Scope, environment, parse_scope, served_in
from drivers.model.sandbox import DEFECTS, N_FEATURES, VERSION_NAME, holdout_split
from mlchaos.driver_kit import ChangeRecord, DriverError, announce

ROLLBACKS = Rollbacks("drivers.model.actions")
CLEAR_FUNC = ROLLBACKS.path("clear_model_faults")
RESTORE_FUNC = ROLLBACKS.path("restore_model_version")
RESTORE_PUSHED_FUNC = ROLLBACKS.path("restore_pushed_model")
INVALID_KINDS = ("nan", "out_of_range", "wrong_shape", "wrong_datatype")
MAX_REQUESTS = 10_000
MAX_RATE = 500.0
JSON = {"Content-Type": "application/json"}
Labels = dict[str, Any] | list[str] | None


# emit_nan_outputs, make_not_ready and fail_model_loads are three thin public wrappers of _admin_fault with the
# same "where" parameters: kept apart (not generated) so that each keeps its own signature and docstring, which
# `mlchaos discover` shows and experiments bind their arguments to. A deliberate repetition.


def emit_nan_outputs(
    service: str = "model", count: int = 1, seed: int | None = None, timeout: float = 5.0,
    target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Make `count` random replicas answer every inference with NaN outputs (admin fault nan_outputs).

    Undo: clear_model_faults.
    """
    scope = parse_scope(target, service, labels, name_pattern, project, urls)
    return _admin_fault("nan_outputs", scope, count, seed, timeout, dry_run)


def make_not_ready(
    service: str = "model", count: int = 1, seed: int | None = None, timeout: float = 5.0,
    target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Make `count` random replicas live but not ready: readiness and infer 503 (admin fault not_ready).

    Undo: clear_model_faults.
    """
    scope = parse_scope(target, service, labels, name_pattern, project, urls)
    return _admin_fault("not_ready", scope, count, seed, timeout, dry_run)


def fail_model_loads(
    service: str = "model", count: int = 1, seed: int | None = None, timeout: float = 5.0,
    replicas: list[str] | None = None, target: str = "sandbox", labels: Labels = None,
    name_pattern: str | None = None, project: str | None = None, urls: list[str] | None = None, *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Make every repository load fail on `count` random replicas (admin fault fail_load); the served version stays.

    A rollout then silently does not happen there. `replicas` names them instead. Undo: clear_model_faults.
    """
    scope = parse_scope(target, service, labels, name_pattern, project, urls)
    return _admin_fault("fail_load", scope, count, seed, timeout, dry_run, replicas)


def roll_out_model(
    version: str | None = None, service: str = "model", model: str = "iris", timeout: float = 5.0,
    target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Load `version` (default: the server's current one) on every live replica, as a deploy would.

    A load that fails does not raise: `loaded` and `failed` (replica -> error) say what happened, as a
    deploy pipeline's log would. Undo: restore_model_version (the versions served before).
    """
    if version is not None and (not isinstance(version, str) or not version):
        raise DriverError(f"version must be a version string such as '2', or null for the current one, got {version!r}")
    _check_timeout(timeout)
    scope = parse_scope(target, service, labels, name_pattern, project, urls)
    chosen = [e for e in scope.named(None) if e.alive()]
    if not chosen:
        raise DriverError(f"no live replica to roll {model!r} out to")
    previous = {e.name: e.served_version(model, timeout) or "" for e in chosen}
    record = _record("roll_out_model", scope, chosen, [e.name for e in chosen],
                     {"service": service, "version": version, "model": model, "previous": previous},
                     _restore_undo(service, chosen, previous, model), dry_run)
    result = record.to_dict()
    if dry_run:
        return result
    body = {"parameters": {"version": version}} if version is not None else None
    loaded, failed = [], {}
    for e in chosen:
        try:
            e.call("POST", f"/v2/repository/models/{model}/load", body, timeout)
            loaded.append(e.name)
        except DriverError as exc:
            failed[e.name] = str(exc)
    return {**result, "loaded": loaded, "failed": failed}


def clear_model_faults(
    service: str = "model", replicas: list[str] | None = None, timeout: float = 5.0,
    target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None,
) -> dict[str, Any]:
    """Roll back the admin faults: clear every one on the replicas (only `replicas` when given; idempotent).

    A replica that is not running has no fault left (they live in memory): listed under ``gone``.
    """
    _check_timeout(timeout)
    scope = _admin_scope(parse_scope(target, service, labels, name_pattern, project, urls), "clear_model_faults")
    cleared, already, gone = [], [], []
    for e in scope.named(replicas):
        if not e.alive():
            gone.append(e.name)
            continue
        faults = e.call("GET", "/admin/faults", timeout=timeout)["faults"]
        if any(faults.values()):
            e.call("DELETE", "/admin/faults", timeout=timeout)
            cleared.append(e.name)
        else:
            already.append(e.name)
    return {"service": service, "cleared": cleared, "already": already, "gone": gone}


def pin_model_version(
    version: str = "1", service: str = "model", count: int = 1, seed: int | None = None, model: str = "iris",
    timeout: float = 5.0, target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None,
    project: str | None = None, urls: list[str] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Serve an older model `version` on `count` random replicas (repository load API): a stale model.

    The version each replica served before is recorded for the undo: restore_model_version.
    """
    if not isinstance(version, str) or not version:
        raise DriverError(f"version must be a non-empty string such as '1', got {version!r}")
    _check_timeout(timeout)
    scope = parse_scope(target, service, labels, name_pattern, project, urls)
    chosen, population, seed = scope.select(count, seed)
    previous: dict[str, str] = {}
    for e in chosen:
        index = e.repository_index(model, timeout)
        if version not in index:
            raise DriverError(f"{e.name}: model {model!r} has no version {version!r} (known: {', '.join(index)})")
        previous[e.name] = served_in(index) or ""
    record = _record("pin_model_version", scope, chosen, population,
                     {"service": service, "count": count, "seed": seed, "version": version, "model": model,
                      "previous": previous},
                     _restore_undo(service, chosen, previous, model), dry_run)
    if not dry_run:
        for e in chosen:
            e.call("POST", f"/v2/repository/models/{model}/load", {"parameters": {"version": version}}, timeout)
    return record.to_dict()


def restore_model_version(
    service: str = "model", replicas: list[str] | None = None, versions: dict[str, str] | None = None,
    model: str = "iris", timeout: float = 5.0, target: str = "sandbox", labels: Labels = None,
    name_pattern: str | None = None, project: str | None = None, urls: list[str] | None = None,
) -> dict[str, Any]:
    """Roll back a pinned version: serve `versions[replica]` again, or the server's current one (idempotent)."""
    _check_timeout(timeout)
    _check_versions(versions)
    scope = parse_scope(target, service, labels, name_pattern, project, urls)
    restored, already, gone = [], [], []
    for e in scope.named(replicas):
        if not e.alive():
            gone.append(e.name)
            continue
        (restored if _restore(e, versions, model, timeout) else already).append(e.name)
    return {"service": service, "restored": restored, "already": already, "gone": gone}


def push_bad_model(
    defect: str = "label_flipped", version: str = "bad", service: str = "model", count: int = 1,
    seed: int | None = None, model: str = "iris", timeout: float = 5.0, replicas: list[str] | None = None,
    target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Push a defective model `version` (label_flipped or random_weights) to `count` random replicas and serve it.

    A bad artifact pushed and loaded: accuracy drops (ModelAccuracyLow), random_weights drifts too.
    `replicas` names the replicas instead of a random pick (a canary: `[model-2]`; count is then ignored).
    The version each replica served before is recorded for the undo: restore_pushed_model.
    """
    if defect not in DEFECTS:
        raise DriverError(f"defect must be one of {', '.join(DEFECTS)}, got {defect!r}")
    if not isinstance(version, str) or not VERSION_NAME.match(version):
        raise DriverError(f"version must be 1-64 letters, digits, '.', '_' or '-', got {version!r}")
    _check_timeout(timeout)
    scope = _admin_scope(parse_scope(target, service, labels, name_pattern, project, urls), "push_bad_model")
    chosen, population, seed = scope.choose(count, seed, replicas)
    previous: dict[str, str] = {}
    for e in chosen:
        index = e.repository_index(model, timeout)
        served = served_in(index)
        if served is None:
            raise DriverError(f"{e.name}: model {model!r} serves no version")
        if version in index:
            held = {v["version"]: v["defect"] for v in e.call("GET", "/admin/versions", timeout=timeout)["versions"]}
            if held.get(version) != defect:
                what = f"pushed with defect {held[version]!r}" if version in held else "a release"
                raise DriverError(f"{e.name}: version {version!r} of {model!r} is {what}: pick another version name")
        if served == version:
            raise DriverError(f"{e.name}: already serves version {version!r}: nothing to roll back to")
        previous[e.name] = served
    record = _record("push_bad_model", scope, chosen, population,
                     {"service": service, "count": count, "seed": seed, "defect": defect, "version": version,
                      "model": model, "previous": previous},
                     ROLLBACKS.undo("restore_pushed_model", service=service, replicas=[e.name for e in chosen],
                                    versions=previous, model=model, remove_version=version), dry_run)
    if not dry_run:
        for e in chosen:
            e.call("POST", "/admin/versions", {"version": version, "defect": defect}, timeout)
            e.call("POST", f"/v2/repository/models/{model}/load", {"parameters": {"version": version}}, timeout)
    return record.to_dict()


def restore_pushed_model(
    service: str = "model", replicas: list[str] | None = None, versions: dict[str, str] | None = None,
    model: str = "iris", remove_version: str = "bad", timeout: float = 5.0, target: str = "sandbox",
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None,
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
    scope = _admin_scope(parse_scope(target, service, labels, name_pattern, project, urls), "restore_pushed_model")
    restored, removed, already, gone = [], [], [], []
    for e in scope.named(replicas):
        if not e.alive():
            gone.append(e.name)  # a restarted replica holds no pushed version (they live in memory)
            continue
        changed = False
        if _restore(e, versions, model, timeout):
            restored.append(e.name)
            changed = True
        if remove_version in e.repository_index(model, timeout):
            e.call("DELETE", f"/admin/versions/{remove_version}", timeout=timeout)
            removed.append(e.name)
            changed = True
        if not changed:
            already.append(e.name)
    return {"service": service, "restored": restored, "removed": removed, "already": already, "gone": gone}


def send_invalid_inputs(
    kind: str = "nan", requests: int = 100, rate: float = 20.0, invalid_fraction: float = 0.5,
    service: str = "model", count: int = 1, seed: int | None = None, model: str = "iris",
    max_seconds: float = 60.0, timeout: float = 2.0, target: str = "sandbox", labels: Labels = None,
    name_pattern: str | None = None, project: str | None = None, urls: list[str] | None = None,
    *, dry_run: bool = False,
) -> dict[str, Any]:
    """Send `requests` infer calls at `rate`/s to `count` random replicas, `invalid_fraction` of them invalid.

    Bounded by count and by `max_seconds`. The valid calls are real holdout rows. Every invalid call
    must be answered 4xx (never a prediction, never 5xx), else DriverError. Nothing to undo.
    A container is sent its calls at its published port (through docker exec when it has none: slower).
    """
    if kind not in INVALID_KINDS:
        raise DriverError(f"kind must be one of {', '.join(INVALID_KINDS)}, got {kind!r}")
    if isinstance(requests, bool) or not isinstance(requests, int) or not 1 <= requests <= MAX_REQUESTS:
        raise DriverError(f"requests must be an integer in [1, {MAX_REQUESTS}], got {requests!r}")
    if not is_number(rate) or not 0 < rate <= MAX_RATE:
        raise DriverError(f"rate must be a number of requests per second in (0, {MAX_RATE:g}], got {rate!r}")
    if not is_number(invalid_fraction) or not 0 < invalid_fraction <= 1:
        raise DriverError(f"invalid_fraction must be in (0, 1], got {invalid_fraction!r}")
    if not is_number(max_seconds) or max_seconds <= 0:
        raise DriverError(f"max_seconds must be a positive number, got {max_seconds!r}")
    _check_timeout(timeout)
    scope = parse_scope(target, service, labels, name_pattern, project, urls)
    chosen, population, seed = scope.select(count, seed)
    record = _record("send_invalid_inputs", scope, chosen, population,
                     {"service": service, "count": count, "seed": seed, "kind": kind, "requests": requests,
                      "rate": rate, "invalid_fraction": invalid_fraction, "model": model, "max_seconds": max_seconds},
                     {}, dry_run)
    if dry_run:
        return record.to_dict()
    rows, _ = holdout_split()
    pick = random.Random(record.parameters["seed"])
    answers: dict[str, Counter[str]] = {"invalid": Counter(), "valid": Counter()}
    path = f"/v2/models/{model}/infer"
    started = time.monotonic()
    with http.Session() as session:
        for i, e in zip(range(requests), cycle(chosen), strict=False):
            if time.monotonic() - started >= max_seconds:
                break
            time.sleep(max(started + i / rate - time.monotonic(), 0.0))
            invalid = int((i + 1) * invalid_fraction) > int(i * invalid_fraction)
            body = _invalid_body(kind) if invalid else _row_body(pick.choice(rows))
            try:
                if e.url:  # json.dumps writes the NaN literal that requests' own json= refuses to send
                    status = str(session.post(e.url + path, data=json.dumps(body), headers=JSON,
                                              timeout=timeout).status_code)
                else:
                    status = str(e.request("POST", path, body, timeout).status)
            except (http.RequestException, DriverError) as exc:
                status = type(exc).__name__
            answers["invalid" if invalid else "valid"][status] += 1
    counts = {k: dict(sorted(v.items())) for k, v in answers.items()}
    record.parameters["answers"] = counts
    wrong = {s: n for s, n in counts["invalid"].items() if not s.startswith("4")}
    if wrong:
        raise DriverError(f"invalid {kind} inputs must be answered 4xx, got {wrong} (all answers: {counts})")
    return record.to_dict()


# -- records and calls ---------------------------------------------------------------------


def _admin_fault(fault: str, scope: Scope, count: int, seed: int | None, timeout: float,
                 dry_run: bool, replicas: list[str] | None = None) -> dict[str, Any]:
    _check_timeout(timeout)
    _admin_scope(scope, fault)
    chosen, population, seed = scope.choose(count, seed, replicas)
    record = _record(fault, scope, chosen, population,
                     {"service": scope.service, "count": count, "seed": seed, "fault": fault},
                     ROLLBACKS.undo("clear_model_faults", service=scope.service, replicas=[e.name for e in chosen]),
                     dry_run)
    if not dry_run:
        for e in chosen:
            e.call("POST", "/admin/faults", {fault: True}, timeout)
    return record.to_dict()


def _admin_scope(scope: Scope, what: str) -> Scope:
    """Refuse, before selecting anything, an admin fault on servers by URL (nothing could undo it either)."""
    if scope.target == "url":
        raise DriverError(f"{what} needs the admin endpoint, which answers loopback clients only: use target "
                          "sandbox or docker (docker exec), not url")
    return scope


def _record(action: str, scope: Scope, chosen: list[Endpoint], population: list[str], parameters: dict[str, Any],
            undo: dict[str, Any], dry_run: bool) -> ChangeRecord:
    """The change record, announced; the target arguments go into the parameters and the undo (none for the
    sandbox, whose records stay as they were)."""
    if undo:
        undo = {**undo, "arguments": {**undo["arguments"], **scope.arguments()}}
    record = ChangeRecord(
        driver="model", action=action, targets=[e.target() for e in chosen],
        parameters={**parameters, **scope.arguments()}, undo=undo, dry_run=dry_run,
        environment=environment(chosen), population=population,
    )
    announce(record)
    return record


def _restore_undo(service: str, chosen: list[Endpoint], previous: dict[str, str], model: str) -> dict[str, Any]:
    """The undo of a version change: serve each replica's previous version again."""
    return ROLLBACKS.undo("restore_model_version", service=service, replicas=[e.name for e in chosen],
                          versions=previous, model=model)


def _restore(e: Endpoint, versions: dict[str, str] | None, model: str, timeout: float) -> bool:
    """Serve `versions[e]` (or the server's current version) on a live replica; False when it already did."""
    wanted = (versions or {}).get(e.name) or None  # None: the server's current version
    before = e.served_version(model, timeout)
    if wanted is not None and before == wanted:
        return False
    body = {"parameters": {"version": wanted}} if wanted else None
    after = e.call("POST", f"/v2/repository/models/{model}/load", body, timeout).get("version")
    return after != before


def _check_versions(versions: Any) -> None:
    if versions is not None and (not isinstance(versions, dict)
                                 or not all(isinstance(v, str) and v for v in versions.values())):
        raise DriverError(f"versions must map replica names to version strings, got {versions!r}")


def _invalid_body(kind: str) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "input-0", "shape": [1, N_FEATURES], "datatype": "FP64",
                              "data": [5.1, 3.5, 1.4, 0.2]}
    if kind == "nan":
        tensor["data"] = [5.1, float("nan"), 1.4, 0.2]
    elif kind == "out_of_range":
        tensor["data"] = [5.1, 3.5, 1400.0, 0.2]
    elif kind == "wrong_shape":
        tensor["shape"], tensor["data"] = [1, N_FEATURES - 1], [5.1, 3.5, 1.4]
    else:  # wrong_datatype
        tensor["datatype"], tensor["data"] = "BYTES", ["5.1", "3.5", "1.4", "0.2"]
    return {"inputs": [tensor]}


def _row_body(row: list[float]) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": list(row)}]}


def _check_timeout(timeout: Any) -> None:
    if not is_number(timeout) or not 0 < timeout <= 60:
        raise DriverError(f"timeout must be a number of seconds in (0, 60], got {timeout!r}")
