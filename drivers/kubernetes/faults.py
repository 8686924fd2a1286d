"""What every Kubernetes fault module shares: the undo paths, the watchdogs, change ids, a few argument checks.

Change records and watchdog command lines name the rollbacks ``drivers.kubernetes.actions.<func>``
(:data:`ROLLBACKS`: the facade, whatever module the function lives in now), with the
connection arguments that reach the same cluster and context again.
"""

from __future__ import annotations

import uuid
from typing import Any

from drivers._common.undo import Rollbacks, stop_told
from drivers.kubernetes import backups, selection
from drivers.kubernetes.client import Connection
from drivers.kubernetes.targets import connect_namespace
from mlchaos.driver_kit import DriverError, TargetNotFound

ROLLBACKS = Rollbacks("drivers.kubernetes.actions")
SAFETY_TTL = 600.0
GONE = "gone (nothing left to undo)"
Selector = str | dict[str, Any] | None


def undo(func: str, conn: Connection, **arguments: Any) -> dict[str, Any]:
    """A change record's undo: the rollback, its arguments and the connection that reaches the same cluster."""
    return ROLLBACKS.undo(func, **arguments, **conn.where.arguments())


def stop_watchdogs(func: str, namespace: str, names: set[str], key: str, single: bool = False) -> None:
    """Stop the TTL watchdogs of ``func`` in ``namespace`` whose every object was just handled here (their
    ``key`` argument: one name when ``single``, else a list of names, ``kind/name`` or ``{name}`` entries)."""

    def covered(arguments: dict[str, Any]) -> bool:
        if arguments.get("namespace") != namespace:
            return False
        theirs = arguments.get(key)
        if single or isinstance(theirs, str):
            return theirs in names
        found = {t.get("name") if isinstance(t, dict) else str(t).rpartition("/")[2] for t in theirs or []}
        return bool(found) and found <= names

    ROLLBACKS.stop_watchdogs(func, covered)


def read_backup(kind: str, namespace: str, name: str, uid: str | None, annotation: str, watchdog_pid: int | None,
                *where: Any) -> tuple[Connection, dict[str, Any], str, dict[str, Any]] | dict[str, Any]:
    """A rollback's start: stop the watchdog it was told about, connect (``where``: kubeconfig, context,
    in_cluster, configuration) and read the object it restores (a ``secret`` or ``service``).

    Returns the connection, the object, its backup annotation's text and value; or, when there
    is nothing to restore (gone, replaced since, no backup left on it), the rollback's answer.
    """
    stop_told(watchdog_pid)
    conn = connect_namespace(namespace, *where)
    try:
        obj = conn.call(f"get {kind} {namespace}/{name}", "core", f"read_namespaced_{kind}", name, namespace)
    except TargetNotFound:
        return {kind: name, "result": GONE, "already": [name]}
    if uid and (obj.get("metadata") or {}).get("uid") != uid:
        return {kind: name, "result": "replaced since (another uid): left alone", "already": [name]}
    raw = backups.annotations(obj).get(annotation)
    if raw is None:
        return {kind: name, "result": f"already restored (no backup on the {kind.capitalize()})", "already": [name]}
    return conn, obj, raw, backups.decode(raw, f"the {annotation} annotation of {kind} {namespace}/{name}")


def change_id() -> str:
    """A short random id that ties the objects of one fault together (labels, names)."""
    return uuid.uuid4().hex[:8]


def equality_terms(value: Selector, what: str) -> list[tuple[str, str]]:
    """``key=value`` terms only (a mapping, or a label selector of equalities); DriverError otherwise."""
    parsed = selection.parse_label_selector(value)
    if parsed is None or not parsed.requirements or any(r.op != "=" for r in parsed.requirements):
        raise DriverError(f"{what} must be labels 'key=value' (or a mapping), got {value!r}")
    return [(r.key, r.values[0]) for r in parsed.requirements]


def pod_refs(pods: Any) -> dict[str, str | None]:
    """``{name: uid or None}`` of a record's ``[{name, uid}]`` (or plain names)."""
    if not isinstance(pods, list):
        raise DriverError(f"pods must be a list of names or {{name, uid}}, got {pods!r}")
    refs: dict[str, str | None] = {}
    for entry in pods:
        if isinstance(entry, str) and entry:
            refs[entry] = None
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            refs[entry["name"]] = entry.get("uid")
        else:
            raise DriverError(f"pods: each entry is a name or {{name, uid}}, got {entry!r}")
    return refs
