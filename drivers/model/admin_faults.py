"""Model admin faults through the reference server's admin hooks: NaN outputs, not ready, failing loads; and
clear_model_faults, their rollback. The hooks answer loopback clients only: target sandbox or docker.

Part of :mod:`drivers.model.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

from typing import Any

from drivers.model.endpoints import Scope, parse_scope
from drivers.model.faults import ROLLBACKS, Labels, admin_scope, announce_record, check_timeout
from mlchaos.driver_kit import undo_function

# emit_nan_outputs, make_not_ready and fail_model_loads are three thin public wrappers of _admin_fault with the
# same "where" parameters: kept apart (not generated) so that each keeps its own signature and docstring, which
# `mlchaos discover` shows and experiments bind their arguments to. A deliberate repetition.


def emit_nan_outputs(
    service: str = "model", count: int = 1, seed: int | None = None, timeout: float = 5.0,
    target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, endpoint: str | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Make `count` random replicas answer every inference with NaN outputs (admin fault nan_outputs).

    Undo: clear_model_faults.
    """
    scope = parse_scope(target, service, labels, name_pattern, project, urls, endpoint)
    return _admin_fault("nan_outputs", scope, count, seed, timeout, dry_run)


def make_not_ready(
    service: str = "model", count: int = 1, seed: int | None = None, timeout: float = 5.0,
    target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, endpoint: str | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Make `count` random replicas live but not ready: readiness and infer 503 (admin fault not_ready).

    Undo: clear_model_faults.
    """
    scope = parse_scope(target, service, labels, name_pattern, project, urls, endpoint)
    return _admin_fault("not_ready", scope, count, seed, timeout, dry_run)


def fail_model_loads(
    service: str = "model", count: int = 1, seed: int | None = None, timeout: float = 5.0,
    replicas: list[str] | None = None, target: str = "sandbox", labels: Labels = None,
    name_pattern: str | None = None, project: str | None = None, urls: list[str] | None = None,
    endpoint: str | None = None, *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Make every repository load fail on `count` random replicas (admin fault fail_load); the served version stays.

    A rollout then silently does not happen there. `replicas` names them instead. Undo: clear_model_faults.
    """
    scope = parse_scope(target, service, labels, name_pattern, project, urls, endpoint)
    return _admin_fault("fail_load", scope, count, seed, timeout, dry_run, replicas)


@undo_function
def clear_model_faults(
    service: str = "model", replicas: list[str] | None = None, timeout: float = 5.0,
    target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, endpoint: str | None = None,
) -> dict[str, Any]:
    """Roll back the admin faults: clear every one on the replicas (only `replicas` when given; idempotent).

    A replica that is not running has no fault left (they live in memory): listed under ``gone``.
    """
    check_timeout(timeout)
    scope = admin_scope(parse_scope(target, service, labels, name_pattern, project, urls,
                                                endpoint), "clear_model_faults")
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


def _admin_fault(fault: str, scope: Scope, count: int, seed: int | None, timeout: float,
                 dry_run: bool, replicas: list[str] | None = None) -> dict[str, Any]:
    check_timeout(timeout)
    admin_scope(scope, fault)
    chosen, population, seed = scope.choose(count, seed, replicas)
    record = announce_record(fault, scope, chosen, population,
                             {"service": scope.service, "count": count, "seed": seed, "fault": fault},
                             ROLLBACKS.undo("clear_model_faults", service=scope.service,
                                            replicas=[e.name for e in chosen]), dry_run)
    if not dry_run:
        for e in chosen:
            e.call("POST", "/admin/faults", {fault: True}, timeout)
    return record.to_dict()
