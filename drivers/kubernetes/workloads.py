"""Deployments and StatefulSets: read, scale (the ``scale`` subresource), annotate, rollout-restart, name.

A workload is named ``model-server`` (a Deployment) or ``statefulset/db``; a change record's
undo names it ``{kind, name, uid, replicas}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drivers.kubernetes import selection
from drivers.kubernetes.client import Connection
from mlchaos.driver_kit import DriverError

SCALABLE = {"Deployment": ("apps", "deployment"), "StatefulSet": ("apps", "stateful_set")}
Workload = tuple[str, str, str | None, int | None]  # kind, name, uid, replicas


def check_kind(kind: Any) -> str:
    """``Deployment`` or ``StatefulSet`` (any case); DriverError otherwise."""
    for known in SCALABLE:
        if isinstance(kind, str) and kind.lower() == known.lower():
            return known
    raise DriverError(f"kind must be one of {', '.join(SCALABLE)}, got {kind!r}")


def read_workload(conn: Connection, namespace: str, kind: str, name: str) -> dict[str, Any]:
    """The Deployment or StatefulSet (TargetNotFound when missing)."""
    api, noun = SCALABLE[kind]
    return conn.call(f"get {kind.lower()} {namespace}/{name}", api, f"read_namespaced_{noun}", name, namespace)


def read_replicas(conn: Connection, namespace: str, kind: str, name: str) -> int:
    """``spec.replicas`` read through the ``scale`` subresource."""
    api, noun = SCALABLE[kind]
    scale = conn.call(f"get the scale of {kind.lower()} {namespace}/{name}", api,
                      f"read_namespaced_{noun}_scale", name, namespace)
    return int(((scale or {}).get("spec") or {}).get("replicas") or 0)


def patch_replicas(conn: Connection, namespace: str, kind: str, name: str, replicas: int) -> None:
    """Set ``spec.replicas`` through the ``scale`` subresource."""
    api, noun = SCALABLE[kind]
    conn.call(f"scale {kind.lower()} {namespace}/{name} to {replicas}", api, f"patch_namespaced_{noun}_scale",
              name, namespace, body={"spec": {"replicas": replicas}})


def restart_workload(conn: Connection, namespace: str, kind: str, name: str, at: str) -> None:
    """A rollout restart: ``kubectl.kubernetes.io/restartedAt`` on the pod template (what ``kubectl rollout
    restart`` does); the controller replaces every pod."""
    api, noun = SCALABLE[kind]
    body = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}}}
    conn.call(f"restart {kind.lower()} {namespace}/{name}", api, f"patch_namespaced_{noun}", name, namespace,
              body=body)


def parse_workloads(values: Any, what: str = "restart") -> list[tuple[str, str]]:
    """``["model-server", "statefulset/db"]`` -> [(Deployment, model-server), (StatefulSet, db)]."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise DriverError(f"{what} must be a list of workload names ('name' or 'kind/name'), got {values!r}")
    found = []
    for value in values:
        kind, sep, name = value.partition("/")
        found.append((check_kind(kind), name) if sep else ("Deployment", value))
    return found


def annotate(conn: Connection, kind: str, namespace: str, name: str, annotations: dict[str, Any]) -> None:
    """Set (a value) or remove (None) annotations of a Deployment or StatefulSet (a merge patch)."""
    api, noun = SCALABLE[kind]
    conn.call(f"annotate {kind.lower()} {namespace}/{name}", api, f"patch_namespaced_{noun}", name, namespace,
              body={"metadata": {"annotations": annotations}})


def restart_all(conn: Connection, namespace: str, workloads: list[tuple[str, str]]) -> list[str]:
    """Rollout-restart each workload (now); their ``kind/name``."""
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for kind, name in workloads:
        restart_workload(conn, namespace, kind, name, at)
    return [f"{kind}/{name}" for kind, name in workloads]


def population(conn: Connection, namespace: str, kind: str) -> list[str]:
    """The names of the namespace's workloads of ``kind`` that did not opt out (a record's population)."""
    api, noun = SCALABLE[kind]
    listed = conn.call(f"list {kind.lower()}s in {namespace}", api, f"list_namespaced_{noun}", namespace) or {}
    return sorted(w["metadata"]["name"] for w in listed.get("items") or []
                  if not selection.is_skipped(w["metadata"].get("labels") or {}))


def workload_items(workloads: Any) -> dict[str, Workload]:
    """``{"Deployment/x": (kind, name, uid, replicas)}`` from record dicts or ``kind/name`` strings."""
    if not isinstance(workloads, list) or not workloads:
        raise DriverError(f"workloads must be a non-empty list, got {workloads!r}")
    items: dict[str, Workload] = {}
    for entry in workloads:
        if isinstance(entry, str):
            ((kind, name),) = parse_workloads([entry], "workloads")
            uid, replicas = None, None
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            kind, name, uid, replicas = check_kind(entry.get("kind", "Deployment")), entry["name"], entry.get("uid"), \
                entry.get("replicas")
            if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0):
                raise DriverError(f"workloads: replicas of {name} must be an integer >= 0, got {replicas!r}")
        else:
            raise DriverError(f"workloads: each entry is 'kind/name' or {{kind, name, replicas}}, got {entry!r}")
        items[f"{kind}/{name}"] = (kind, name, uid, replicas)
    return items
