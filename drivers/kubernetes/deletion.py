"""Kubernetes pod deletion: delete pods (their controller recreates them), optionally kept down for a while.

With ``keep_down`` the owning Deployment / StatefulSet is scaled down by the pods deleted and
restore_scale (:mod:`drivers.kubernetes.scaling`) puts it back. Part of
:mod:`drivers.kubernetes.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

from typing import Any

from drivers._common import checks
from drivers.kubernetes import backups
from drivers.kubernetes.backups import REPLICAS_BACKUP
from drivers.kubernetes.client import ApiConflict, Connection
from drivers.kubernetes.faults import ROLLBACKS, Selector, undo
from drivers.kubernetes.scaling import restore_scale
from drivers.kubernetes.targets import PodSelection, concurrently, each, patch_pod, select
from drivers.kubernetes.workloads import SCALABLE, annotate, patch_replicas, read_workload
from mlchaos.driver_kit import DriverError, TargetNotFound, announce

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
LOWEST_DELETION_COST = "-2147483648"


def delete_pods(
    namespace: str, label_selector: Selector = None, field_selector: str | None = None,
    name_pattern: str | None = None, count: int | None = None, percentage: float | None = None,
    all: bool = False, at_least_one: bool = False, seed: int | None = None,
    grace_period: int | None = None, keep_down: float | None = None, allow_unowned: bool = False,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Delete the selected pods, several at once; `grace_period` s (0 = hard kill, null = the pod's own).

    Their controller recreates them (nothing to undo). With `keep_down` (seconds) the owning
    Deployment / StatefulSet (ownerReferences: pod -> ReplicaSet -> Deployment) is scaled down by
    the number of its pods deleted, so they stay down; a detached watchdog scales it back after
    `keep_down` s, or the rollback does sooner (undo: restore_scale). Bare pods (no controller) are
    refused unless `allow_unowned`: nothing would bring them back.
    """
    if grace_period is not None and (isinstance(grace_period, bool) or not isinstance(grace_period, int)
                                     or grace_period < 0):
        raise DriverError("grace_period must be an integer >= 0 (seconds; 0 = kill at once) or null, "
                          f"got {grace_period!r}")
    if keep_down is not None:
        checks.positive("keep_down", keep_down)
    sel = select(namespace, label_selector, field_selector, name_pattern, count, percentage, all, at_least_one,
                 seed, kubeconfig, context, in_cluster, configuration)
    bare = [n for n in sel.names if sel.owners.get(n) is None]
    if bare and not allow_unowned:
        raise DriverError(f"{', '.join(bare)} have no controller: deleted, nothing would bring them back "
                          "(pass allow_unowned: true if that is what you want)")
    holds = _holds(sel) if keep_down is not None else []
    workloads = [{k: h[k] for k in ("kind", "name", "uid", "replicas")} for h in holds]
    restore = undo("restore_scale", sel.conn, namespace=namespace, workloads=workloads) if holds else {}
    record = sel.record("delete-pods", restore, dry_run, grace_period=grace_period, keep_down=keep_down,
                        held=[{k: h[k] for k in ("kind", "name", "replicas", "held_at", "pods")} for h in holds])
    announce(record)
    if dry_run:
        return record.to_dict()
    if holds:
        ROLLBACKS.start_watchdog(record, float(keep_down or 0), "restore_scale", dict(restore["arguments"]))
        try:
            _hold(sel, holds)
        except Exception:
            restore_scale(namespace, workloads, **sel.conn.where.arguments())
            raise
    pods = {p["metadata"]["name"]: p for p in sel.pods}
    output = record.to_dict()
    output["deleted"] = each(sel.names, lambda name: delete_pod(sel.conn, pods[name], grace_period), "delete pods")
    return output


def delete_pod(conn: Connection, pod: dict[str, Any], grace_period: int | None) -> str:
    """Delete exactly this pod (its uid: a new pod under the same name is left alone); what happened."""
    meta = pod["metadata"]
    body: dict[str, Any] = {"preconditions": {"uid": meta.get("uid")}} if meta.get("uid") else {}
    if grace_period is not None:
        body["gracePeriodSeconds"] = grace_period
    try:
        conn.call(f"delete pod {meta['namespace']}/{meta['name']}", "core", "delete_namespaced_pod", meta["name"],
                  meta["namespace"], body=body)
    except TargetNotFound:
        return "already gone"
    except ApiConflict:
        return "already replaced (a new pod has this name): not deleted"
    return "deleted"


def _holds(sel: PodSelection) -> list[dict[str, Any]]:
    """For keep_down: each owning workload, its replica count, the count to hold it at, and its chosen pods."""
    groups: dict[str, list[str]] = {}
    for name in sel.names:
        owner = sel.owners.get(name)
        if owner is None or owner.kind not in SCALABLE:
            raise DriverError(f"keep_down: pod {name} is owned by {owner.key if owner else 'nothing'}; only the pods "
                              "of a Deployment or StatefulSet can be kept down")
        groups.setdefault(owner.key, []).append(name)
    holds = []
    for pods in groups.values():
        owner = sel.owners[pods[0]]
        assert owner is not None
        obj = read_workload(sel.conn, sel.namespace, owner.kind, owner.name)
        backups.refuse_skipped(obj, owner.kind)
        backups.refuse_stacked(obj, REPLICAS_BACKUP, "delete_pods(keep_down)", "restore_scale")
        replicas = int((obj.get("spec") or {}).get("replicas") or 0)
        if owner.kind == "StatefulSet":
            top = {f"{owner.name}-{i}" for i in range(replicas - len(pods), replicas)}
            if set(pods) != top:
                raise DriverError(f"keep_down: StatefulSet {owner.name} scales down from its highest ordinals "
                                  f"({', '.join(sorted(top))}), not {', '.join(pods)}: select those pods "
                                  "(e.g. name_pattern)")
        holds.append({"kind": owner.kind, "name": owner.name, "uid": (obj.get("metadata") or {}).get("uid"),
                      "replicas": replicas, "held_at": max(replicas - len(pods), 0), "pods": pods})
    return holds


def _hold(sel: PodSelection, holds: list[dict[str, Any]]) -> None:
    """Mark the chosen pods cheapest to delete (a ReplicaSet then removes exactly them), record, scale down."""
    marked = [p for h in holds if h["kind"] == "Deployment" for p in h["pods"]]
    concurrently(marked, lambda name: patch_pod(sel.conn, sel.namespace, name, {
        "metadata": {"annotations": {DELETION_COST: LOWEST_DELETION_COST}}}, missing_ok=True), "mark pods")
    for hold in holds:
        annotate(sel.conn, hold["kind"], sel.namespace, hold["name"], {REPLICAS_BACKUP: str(hold["replicas"])})
        patch_replicas(sel.conn, sel.namespace, hold["kind"], hold["name"], hold["held_at"])
