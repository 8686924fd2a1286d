"""Where swap_tls_certificate keeps a Secret's previous data: the Secret ``mlchaos-backups`` beside it.

The backup is never an annotation any more. ``kubectl describe`` prints annotations, and the
backup holds ``tls.key``; describe shows a Secret's data only as key names and sizes. The
backup Secret ships with the Role (deploy/kubernetes/rbac.yaml). The runner may only get and
patch it (resourceNames), and the admission policy lets it change nothing but its
``secret.<name>`` data keys. Each value is the base64 of the backup's canonical JSON, and
the JSON carries the changed Secret's uid.

Older mlchaos kept the backup in the changed Secret's own ``mlchaos.io/secret-backup``
annotation (:data:`LEGACY_ANNOTATION`). restore_secret still reads that one and removes it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from drivers.kubernetes import backups
from drivers.kubernetes.client import Connection
from mlchaos.driver_kit import DriverError, TargetNotFound

BACKUP_SECRET = "mlchaos-backups"
LEGACY_ANNOTATION = backups.SECRET_BACKUP  # where mlchaos before issue 15 kept it, on the Secret itself
PREFIX = "secret."


def key(secret: str) -> str:
    """The data key of a Secret's backup: ``secret.<name>``."""
    return PREFIX + secret


def read_store(conn: Connection, namespace: str, required: bool = True) -> dict[str, Any] | None:
    """The backup Secret of the namespace. When it is missing: DriverError if ``required``, else None."""
    try:
        return conn.call(f"get secret {namespace}/{BACKUP_SECRET}", "core", "read_namespaced_secret", BACKUP_SECRET,
                         namespace)
    except TargetNotFound:
        if not required:
            return None
        raise DriverError(f"secret {namespace}/{BACKUP_SECRET}, where mlchaos keeps the previous data of the Secrets "
                          "it changes, does not exist: apply deploy/kubernetes/rbac.yaml (it creates it)") from None


def stored(store: dict[str, Any] | None, secret: str) -> str | None:
    """The raw (base64) value of the Secret's backup in the store, None when there is none."""
    return ((store or {}).get("data") or {}).get(key(secret))


def decode(raw: str, where: str) -> dict[str, Any]:
    """The backup JSON object in a base64 data value; DriverError when it is not one mlchaos wrote."""
    try:
        text = base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    return backups.decode(text, where)


def put(conn: Connection, namespace: str, store: dict[str, Any], secret: str, backup: dict[str, Any]) -> None:
    """Add the Secret's backup to the store (refused when someone changed the store since it was read)."""
    value = base64.b64encode(backups.encode(backup).encode()).decode()
    ops: list[dict[str, Any]] = [] if store.get("data") else [{"op": "add", "path": "/data", "value": {}}]
    ops.append({"op": "add", "path": f"/data/{_pointer(key(secret))}", "value": value})
    conn.call(f"back up secret {namespace}/{secret} in {BACKUP_SECRET}", "core", "patch_namespaced_secret",
              BACKUP_SECRET, namespace, body=backups.guarded(store, ops))


def drop(conn: Connection, namespace: str, secret: str, raw: str) -> None:
    """Remove the Secret's backup from the store, exactly the one read (a test of its value first)."""
    path = f"/data/{_pointer(key(secret))}"
    conn.call(f"remove the backup of secret {namespace}/{secret} from {BACKUP_SECRET}", "core",
              "patch_namespaced_secret", BACKUP_SECRET, namespace,
              body=[{"op": "test", "path": path, "value": raw}, {"op": "remove", "path": path}])


def _pointer(text: str) -> str:
    return text.replace("~", "~0").replace("/", "~1")
