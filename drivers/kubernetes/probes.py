"""Kubernetes probes: pods ready, ready replicas, Deployment available, restarts, events since the fault.

Pod probes take the faults' selector (``namespace``, ``label_selector``, ``field_selector``,
``name_pattern``; an empty selector is an error) and count every matching pod that is not
labelled ``mlchaos.skip=true``, in any phase (a pod being deleted is not ready). No pod
matching is an answer, not an error (every pod of a Deployment may be gone for a moment):
counts are 0 and pods_ready is false. Every probe only reads (get / list). ``within``
(seconds) makes a boolean probe wait for its condition, polling every second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drivers._common import checks, polling
from drivers.kubernetes import selection
from drivers.kubernetes.client import connect
from drivers.kubernetes.client import preflight as preflight  # the validation hook (not an activity)
from drivers.kubernetes.targets import connect_namespace, list_pods, pod_ready, restart_count
from drivers.kubernetes.workloads import check_kind, read_workload
from mlchaos.driver_kit import DriverError, current_run

Selector = str | dict[str, Any] | None


def pods_ready(
    namespace: str, label_selector: Selector = None, field_selector: str | None = None,
    name_pattern: str | None = None, within: float = 0.0, kubeconfig: str | None = None,
    context: str | None = None, in_cluster: bool | None = None, configuration: dict[str, Any] | None = None,
) -> bool:
    """True when there are selected pods and every one is Ready (not being deleted), waiting up to `within` s."""

    def ready() -> bool:
        pods = _pods(namespace, label_selector, field_selector, name_pattern, kubeconfig, context, in_cluster,
                     configuration)
        return bool(pods) and all(pod_ready(p) for p in pods)

    return polling.poll(within, ready)


def ready_pod_count(
    namespace: str, label_selector: Selector = None, field_selector: str | None = None,
    name_pattern: str | None = None, kubeconfig: str | None = None, context: str | None = None,
    in_cluster: bool | None = None, configuration: dict[str, Any] | None = None,
) -> int:
    """Number of selected pods that are Ready."""
    return sum(1 for p in _pods(namespace, label_selector, field_selector, name_pattern, kubeconfig, context,
                                in_cluster, configuration) if pod_ready(p))


def ready_replicas(
    name: str, namespace: str, kind: str = "Deployment", kubeconfig: str | None = None, context: str | None = None,
    in_cluster: bool | None = None, configuration: dict[str, Any] | None = None,
) -> int:
    """``status.readyReplicas`` of a Deployment or StatefulSet (0 when none is ready)."""
    conn = connect_namespace(namespace, kubeconfig, context, in_cluster, configuration)
    workload = read_workload(conn, namespace, check_kind(kind), name)
    return int((workload.get("status") or {}).get("readyReplicas") or 0)


def deployment_available(
    name: str, namespace: str, all_replicas: bool = False, within: float = 0.0, kubeconfig: str | None = None,
    context: str | None = None, in_cluster: bool | None = None, configuration: dict[str, Any] | None = None,
) -> bool:
    """True when the Deployment is Available (`all_replicas`: every replica available too), waiting up to `within` s."""
    conn = connect_namespace(namespace, kubeconfig, context, in_cluster, configuration)

    def available() -> bool:
        deployment = read_workload(conn, namespace, "Deployment", name)
        status = deployment.get("status") or {}
        found = any(c.get("type") == "Available" and c.get("status") == "True" for c in status.get("conditions") or [])
        wanted = int((deployment.get("spec") or {}).get("replicas", 1))
        return found and (not all_replicas or int(status.get("availableReplicas") or 0) >= wanted)

    return polling.poll(within, available)


def restart_counts(
    namespace: str, label_selector: Selector = None, field_selector: str | None = None,
    name_pattern: str | None = None, kubeconfig: str | None = None, context: str | None = None,
    in_cluster: bool | None = None, configuration: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Container restarts of each selected pod: ``{pod: restarts}``."""
    return {p["metadata"]["name"]: restart_count(p) for p in _pods(
        namespace, label_selector, field_selector, name_pattern, kubeconfig, context, in_cluster, configuration)}


def total_restarts(
    namespace: str, label_selector: Selector = None, field_selector: str | None = None,
    name_pattern: str | None = None, kubeconfig: str | None = None, context: str | None = None,
    in_cluster: bool | None = None, configuration: dict[str, Any] | None = None,
) -> int:
    """Container restarts of all selected pods together (put the bound in the tolerance)."""
    return sum(restart_counts(namespace, label_selector, field_selector, name_pattern, kubeconfig, context,
                              in_cluster, configuration).values())


def events_since_fault(
    namespace: str, reasons: list[str] | None = None, types: list[str] | None = None,
    objects: list[str] | None = None, since_seconds: float | None = None, kubeconfig: str | None = None,
    context: str | None = None, in_cluster: bool | None = None, configuration: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Events about the last fault's targets (pods and their owners) since it was injected, oldest first.

    Inside a run the targets and the time come from the run's last change record; `objects`
    (``pod/name``, ``deployment/name`` or plain names) and `since_seconds` (look back that far)
    override them. `reasons` / `types` (Normal, Warning) filter further. Each event:
    ``{time, type, reason, object, message, count}``.
    """
    conn = connect_namespace(namespace, kubeconfig, context, in_cluster, configuration)
    since = _since(since_seconds)
    wanted = _objects(objects)
    listed = conn.call(f"list events in {namespace}", "core", "list_namespaced_event", namespace) or {}
    found = []
    for event in listed.get("items") or []:
        involved = event.get("involvedObject") or {}
        when = _event_time(event)
        if since is not None and (when is None or when < since):
            continue
        if wanted is not None and not _involves(involved, wanted):
            continue
        if reasons is not None and event.get("reason") not in reasons:
            continue
        if types is not None and event.get("type") not in types:
            continue
        found.append({"time": when.isoformat() if when else None, "type": event.get("type"),
                      "reason": event.get("reason"), "object": f"{involved.get('kind')}/{involved.get('name')}",
                      "message": " ".join(str(event.get("message") or "").split())[:300],
                      "count": int(event.get("count") or 1)})
    return sorted(found, key=lambda e: e["time"] or "")


def event_count(
    namespace: str, reasons: list[str] | None = None, types: list[str] | None = None,
    objects: list[str] | None = None, since_seconds: float | None = None, kubeconfig: str | None = None,
    context: str | None = None, in_cluster: bool | None = None, configuration: dict[str, Any] | None = None,
) -> int:
    """Number of events_since_fault (each counted once, whatever its repeat count)."""
    return len(events_since_fault(namespace, reasons, types, objects, since_seconds, kubeconfig, context,
                                  in_cluster, configuration))


def _pods(namespace: str, label_selector: Selector, field_selector: str | None, name_pattern: str | None,
          kubeconfig: str | None, context: str | None, in_cluster: bool | None,
          configuration: dict[str, Any] | None) -> list[dict[str, Any]]:
    selector = selection.parse_pod_selector(namespace, label_selector, field_selector, name_pattern)
    conn = connect(kubeconfig, context, in_cluster, configuration)
    return selection.eligible(list_pods(conn, selector), selector, running_only=False)


def _since(since_seconds: float | None) -> datetime | None:
    if since_seconds is not None:
        checks.positive("since_seconds", since_seconds)
        return datetime.fromtimestamp(datetime.now(UTC).timestamp() - since_seconds, UTC)
    run = current_run()
    at = run.fault_time() if run is not None else None
    # event timestamps have whole seconds: an event in the fault's own second counts
    return datetime.fromtimestamp(int(at), UTC) if at is not None else None


def _objects(objects: list[str] | None) -> set[tuple[str | None, str]] | None:
    """(kind or None, name) of the objects whose events count: `objects`, else the last fault's targets."""
    if objects is not None:
        if not isinstance(objects, list) or not all(isinstance(o, str) and o for o in objects):
            raise DriverError(f"objects must be a list of 'kind/name' or names, got {objects!r}")
        return {(k.lower() if sep else None, n) if sep else (None, k)
                for k, sep, n in (o.partition("/") for o in objects)}
    run = current_run()
    if run is None or run.last_fault() is None:
        return None
    found: set[tuple[str | None, str]] = set()
    for target in run.fault_targets():
        found.add((None, target["name"]))  # the record's targets carry no kind: any object of that name
        owner = target.get("owner") or {}
        if owner.get("name"):
            found.add((str(owner.get("kind")).lower(), owner["name"]))
        if owner.get("replicaset"):
            found.add(("replicaset", owner["replicaset"]))
    return found


def _involves(involved: dict[str, Any], wanted: set[tuple[str | None, str]]) -> bool:
    kind, name = str(involved.get("kind") or "").lower(), involved.get("name")
    return (kind, name) in wanted or (None, name) in wanted


def _event_time(event: dict[str, Any]) -> datetime | None:
    for key in ("eventTime", "lastTimestamp", "firstTimestamp"):
        value = event.get(key)
        if value:
            try:
                parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    created = (event.get("metadata") or {}).get("creationTimestamp")
    return _event_time({"eventTime": created}) if created else None
