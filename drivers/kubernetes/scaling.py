"""Kubernetes scale fault: scale a Deployment or StatefulSet, and restore_scale (also delete_pods' keep_down undo).

The replica count before the fault is kept in the workload's ``mlchaos.io/replicas-before``
annotation. Part of :mod:`drivers.kubernetes.actions` (experiments and change records name
the functions there).
"""

from __future__ import annotations

from typing import Any

from drivers._common import checks
from drivers._common.undo import already, stop_told
from drivers.kubernetes import backups, selection
from drivers.kubernetes.backups import REPLICAS_BACKUP
from drivers.kubernetes.client import connect
from drivers.kubernetes.faults import GONE, ROLLBACKS, SAFETY_TTL, stop_watchdogs, undo
from drivers.kubernetes.targets import DRIVER, each
from drivers.kubernetes.workloads import annotate, check_kind, patch_replicas, population, read_workload, workload_items
from mlchaos.driver_kit import ChangeRecord, DriverError, Target, TargetNotFound, announce, undo_function


def scale_workload(
    name: str, namespace: str, replicas: int, kind: str = "Deployment", ttl: float | None = SAFETY_TTL,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Scale a Deployment or StatefulSet to `replicas` (0 allowed); undo: restore_scale (the exact previous count).

    With `ttl` (seconds) a detached watchdog scales it back by itself, even if the runner died.
    """
    kind = check_kind(kind)
    selection.check_namespace(namespace)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise DriverError(f"replicas must be an integer >= 0, got {replicas!r}")
    checks.ttl(ttl)
    conn = connect(kubeconfig, context, in_cluster, configuration)
    obj = read_workload(conn, namespace, kind, name)
    backups.refuse_skipped(obj, kind)
    backups.refuse_stacked(obj, REPLICAS_BACKUP, "scale_workload", "restore_scale")
    previous = int((obj.get("spec") or {}).get("replicas") or 0)
    meta = obj.get("metadata") or {}
    workload = {"kind": kind, "name": name, "uid": meta.get("uid"), "replicas": previous}
    target = Target(kind=kind.lower(), name=name, details={
        "namespace": namespace, "labels": dict(meta.get("labels") or {}), "uid": meta.get("uid"),
        "replicas": previous, "kind": kind})
    record = ChangeRecord(driver=DRIVER, action="scale", targets=[target],
                          parameters={"namespace": namespace, "kind": kind, "name": name, "replicas": replicas,
                                      "previous_replicas": previous, "ttl": ttl},
                          undo=undo("restore_scale", conn, namespace=namespace, workloads=[workload]),
                          dry_run=dry_run, environment=conn.environment,
                          population=population(conn, namespace, kind))
    announce(record)
    if dry_run:
        return record.to_dict()
    annotate(conn, kind, namespace, name, {REPLICAS_BACKUP: str(previous)})
    patch_replicas(conn, namespace, kind, name, replicas)
    if ttl is not None:
        ROLLBACKS.start_watchdog(record, ttl, "restore_scale", dict(record.undo["arguments"]))
    return record.to_dict()


@undo_function
def restore_scale(
    namespace: str, workloads: list[Any], kubeconfig: str | None = None, context: str | None = None,
    in_cluster: bool | None = None, configuration: dict[str, Any] | None = None, watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back scale_workload / delete_pods(keep_down): put each workload's replica count back (idempotent).

    `workloads`: the record's ``[{kind, name, uid, replicas}]``, or names (``model-server``,
    ``statefulset/db``) whose count before the fault is read from their ``mlchaos.io/replicas-before``.
    """
    stop_told(watchdog_pid)
    selection.check_namespace(namespace)
    items = workload_items(workloads)
    conn = connect(kubeconfig, context, in_cluster, configuration)

    def restore(key: str) -> str:
        kind, name, uid, replicas = items[key]
        try:
            obj = read_workload(conn, namespace, kind, name)
        except TargetNotFound:
            return GONE
        if uid and (obj.get("metadata") or {}).get("uid") != uid:
            return "replaced since (another uid): left alone"
        backup = backups.annotations(obj).get(REPLICAS_BACKUP)
        wanted = replicas if replicas is not None else (int(backup) if backup is not None else None)
        if wanted is None:
            return "already: no scale change of mlchaos recorded on it"
        current = int((obj.get("spec") or {}).get("replicas") or 0)
        if current != wanted:
            patch_replicas(conn, namespace, kind, name, wanted)
        if backup is not None:
            annotate(conn, kind, namespace, name, {REPLICAS_BACKUP: None})
        return f"restored {wanted} replicas (was {current})" if current != wanted else f"already at {wanted} replicas"

    results = each(list(items), restore, "restore scale")
    stop_watchdogs("restore_scale", namespace, {n for _, n, _, _ in items.values()}, "workloads")
    return {"namespace": namespace, "workloads": results, "already": already(results, "restored")}
