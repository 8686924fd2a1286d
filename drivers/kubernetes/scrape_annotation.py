"""Kubernetes telemetry fault: remove pods' scrape annotation (discovery drops them), and restore_scrape_annotation.

The old value is kept in each pod's ``mlchaos.io/scrape-backup`` annotation. Part of
:mod:`drivers.kubernetes.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

from typing import Any

from drivers._common import checks
from drivers._common.undo import already, stop_told
from drivers.kubernetes import backups
from drivers.kubernetes.backups import SCRAPE_BACKUP
from drivers.kubernetes.faults import GONE, ROLLBACKS, SAFETY_TTL, Selector, pod_refs, stop_watchdogs, undo
from drivers.kubernetes.targets import concurrently, connect_namespace, each, patch_pod, select
from mlchaos.driver_kit import DriverError, announce, undo_function

SCRAPE_ANNOTATION = "prometheus.io/scrape"


def remove_scrape_annotation(
    namespace: str, label_selector: Selector = None, field_selector: str | None = None,
    name_pattern: str | None = None, count: int | None = None, percentage: float | None = None,
    all: bool = False, at_least_one: bool = False, seed: int | None = None,
    annotation: str = SCRAPE_ANNOTATION, ttl: float | None = SAFETY_TTL,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Remove `annotation` (prometheus.io/scrape) from the selected pods: annotation-based discovery drops them.

    Only pods that carry the annotation are eligible. The old value is kept in the pod's
    ``mlchaos.io/scrape-backup`` annotation; undo: restore_scrape_annotation. (Prometheus
    Operator ServiceMonitors ignore this annotation: use block_metrics_port there.)
    """
    if not isinstance(annotation, str) or not annotation:
        raise DriverError(f"annotation must be an annotation key, got {annotation!r}")
    checks.ttl(ttl)

    def annotated(pod: dict[str, Any]) -> bool:
        return annotation in backups.annotations(pod)

    sel = select(namespace, label_selector, field_selector, name_pattern, count, percentage, all, at_least_one,
                 seed, kubeconfig, context, in_cluster, configuration, owners=False, keep=annotated)
    stacked = [p["metadata"]["name"] for p in sel.pods if SCRAPE_BACKUP in backups.annotations(p)]
    if stacked:
        raise DriverError(f"{', '.join(stacked)} still carry {SCRAPE_BACKUP} from an earlier fault: "
                          "run restore_scrape_annotation first")
    pods = [{"name": p["metadata"]["name"], "uid": p["metadata"].get("uid")} for p in sel.pods]
    restore = undo("restore_scrape_annotation", sel.conn, namespace=namespace, pods=pods)
    record = sel.record("remove-scrape-annotation", restore, dry_run, annotation=annotation, ttl=ttl,
                        values={p["metadata"]["name"]: backups.annotations(p)[annotation] for p in sel.pods})
    announce(record)
    if dry_run:
        return record.to_dict()

    def remove(name: str) -> None:
        pod = next(p for p in sel.pods if p["metadata"]["name"] == name)
        backup = backups.encode({"annotation": annotation, "value": backups.annotations(pod)[annotation]})
        patch_pod(sel.conn, namespace, name, {"metadata": {"annotations": {annotation: None, SCRAPE_BACKUP: backup}}})

    try:
        concurrently(sel.names, remove, "remove the annotation")
    finally:  # some may be changed even when others failed: the watchdog covers them
        if ttl is not None:
            ROLLBACKS.start_watchdog(record, ttl, "restore_scrape_annotation", dict(restore["arguments"]))
    return record.to_dict()


@undo_function
def restore_scrape_annotation(
    namespace: str, pods: list[Any] | None = None,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back remove_scrape_annotation: put each pod's annotation back from its backup (idempotent).

    `pods`: the record's ``[{name, uid}]`` (or names); None: every pod of the namespace with a backup.
    """
    stop_told(watchdog_pid)
    conn = connect_namespace(namespace, kubeconfig, context, in_cluster, configuration)
    listed = conn.call(f"list pods in {namespace}", "core", "list_namespaced_pod", namespace) or {}
    live = {p["metadata"]["name"]: p for p in listed.get("items") or []}
    wanted = pod_refs(pods) if pods is not None else {n: None for n, p in live.items()
                                                      if SCRAPE_BACKUP in backups.annotations(p)}

    def restore(name: str) -> str:
        pod = live.get(name)
        if pod is None:
            return GONE
        if wanted[name] and pod["metadata"].get("uid") != wanted[name]:
            return "replaced since (the new pod has its template's annotations): left alone"
        raw = backups.annotations(pod).get(SCRAPE_BACKUP)
        if raw is None:
            return "already restored"
        backup = backups.decode(raw, f"the {SCRAPE_BACKUP} annotation of pod {namespace}/{name}")
        patch_pod(conn, namespace, name, {"metadata": {"annotations": {backup["annotation"]: backup["value"],
                                                                       SCRAPE_BACKUP: None}}})
        return "restored"

    results = each(sorted(wanted), restore, "restore the annotation")
    stop_watchdogs("restore_scrape_annotation", namespace, set(results), "pods")
    return {"namespace": namespace, "pods": results, "already": already(results, "restored")}
