"""Where a Kubernetes fault keeps what its rollback needs: an ``mlchaos.io/...`` annotation on the changed object.

A replica count, a Service's selector and ports, a removed annotation's value: nothing secret,
so an annotation that ``kubectl describe`` prints is fine. A Secret's previous data is the
exception: it lives in the Secret ``mlchaos-backups`` (:mod:`drivers.kubernetes.secret_backups`).
Either way the backup stays in the cluster, so a rollback works from the change record, from an
experiment's static arguments, from ``mlchaos recover`` elsewhere or from a watchdog. JSON
patches that write or consume a backup test what they expect first (the resourceVersion that
was read, the backup's exact text), so a concurrent change makes them fail instead of
overwriting it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from drivers.kubernetes import selection
from mlchaos.driver_kit import DriverError

REPLICAS_BACKUP = "mlchaos.io/replicas-before"
SECRET_BACKUP = "mlchaos.io/secret-backup"  # before issue 15 only: restore_secret still reads it
SERVICE_BACKUP = "mlchaos.io/service-backup"
SCRAPE_BACKUP = "mlchaos.io/scrape-backup"


def refuse_skipped(obj: dict[str, Any], what: str) -> None:
    """DriverError when the object is labelled mlchaos.skip=true: never a target."""
    meta = obj.get("metadata") or {}
    if selection.is_skipped(meta.get("labels") or {}):
        raise DriverError(f"{what} {meta.get('namespace')}/{meta.get('name')} is labelled {selection.SKIP_LABEL}=true: "
                          "never a target")


def refuse_stacked(obj: dict[str, Any], annotation: str, fault: str, undo: str) -> None:
    """DriverError when the object still carries a backup of an earlier fault (undo that first)."""
    meta = obj.get("metadata") or {}
    if annotation in annotations(obj):
        raise DriverError(f"{meta.get('namespace')}/{meta.get('name')} still carries {annotation} from an earlier "
                          f"{fault}: run {undo} first")


def annotations(obj: dict[str, Any]) -> dict[str, str]:
    """The object's annotations (a copy; empty when none)."""
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def annotation_path(key: str) -> str:
    """The JSON-patch path of an annotation (``/`` and ``~`` escaped)."""
    return "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")


def add_annotation_ops(obj: dict[str, Any], key: str, value: str) -> list[dict[str, Any]]:
    """JSON-patch operations that add an annotation (creating the map when there is none)."""
    ops: list[dict[str, Any]] = []
    if not (obj.get("metadata") or {}).get("annotations"):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    return ops + [{"op": "add", "path": annotation_path(key), "value": value}]


def guarded(obj: dict[str, Any], patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prefix a JSON patch with a test of the resourceVersion read: nobody changed the object meanwhile."""
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return ([{"op": "test", "path": "/metadata/resourceVersion", "value": version}] if version else []) + patch


def encode(value: dict[str, Any]) -> str:
    """Canonical JSON (sorted keys, no spaces): the backup's text and what its digest covers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def decode(raw: str, where: str) -> dict[str, Any]:
    """A backup's JSON object; DriverError when it is not one."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise DriverError(f"{where} is not the JSON mlchaos wrote: nothing restored")
    return value


def digest(data: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``data``."""
    return hashlib.sha256(encode(data).encode()).hexdigest()

