"""The notification receiver's token in a Kubernetes Secret: each run takes one fresh token and rotates it at its end.

The in-cluster runner serves the run's receiver; Alertmanager posts to it with the Bearer token of
the AlertmanagerConfig's Secret (deploy/kubernetes/notification-receiver.yaml: ``mlchaos-receiver-token``
in ``ml-serving``, key ``token``). The Prometheus Operator copies the Secret into Alertmanager's
configuration, which reloads: that takes time (``reload_seconds``), so a token is written one run
ahead. The Secret carries, besides the token, three annotations (never a credential):

* ``mlchaos.io/token-rotated-at``: when mlchaos wrote the token (RFC 3339, UTC);
* ``mlchaos.io/token-taken-by`` / ``-taken-at``: the claim of the run that took it, and when.

:func:`take` (a run's start) returns a token no earlier run has taken. The Secret's token is used as
it is when mlchaos wrote it and no run took it; then the run waits what is left of
``reload_seconds`` since it was written. Otherwise (no token; one mlchaos did not write; one an
earlier run took and did not rotate: it was killed, or its rotation failed) it writes a fresh one
and waits ``reload_seconds``. It marks the token taken by the run's claim. :func:`rotate` (the
run's end) writes the next run's token, if the run's claim still holds the Secret. :func:`check` (a
plan) only reads. Every write is a JSON patch that first tests the resourceVersion read, so a
concurrent change fails it instead of being overwritten; the Secret is never created (the manifest
ships it empty: RBAC grants get and patch on that one name, and cannot scope a create).
Each function returns an exact record of what it read and changed (uid, resourceVersions, times),
never the token.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from drivers.kubernetes import backups
from drivers.kubernetes.client import Connection, connect
from mlchaos.driver_kit import DriverError, TargetNotFound

ROTATED_AT = "mlchaos.io/token-rotated-at"
TAKEN_BY = "mlchaos.io/token-taken-by"
TAKEN_AT = "mlchaos.io/token-taken-at"
MANIFEST = "deploy/kubernetes/notification-receiver.yaml"


def take(namespace: str, name: str, key: str, reload_seconds: float, claim: str,
         configuration: dict[str, Any] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> tuple[str, dict[str, Any]]:
    """The token for the run ``claim``, marked taken by it, and the record; waits for Alertmanager's reload."""
    conn = connect(configuration=configuration)
    secret = _read(conn, namespace, name)
    meta = secret.get("metadata") or {}
    notes = backups.annotations(secret)
    token, rotated = _token(secret, key), _instant(notes.get(ROTATED_AT))
    stale = ("no token" if not token else
             f"taken by an earlier run ({notes[TAKEN_BY]}) that did not rotate it" if notes.get(TAKEN_BY) else
             "not written by mlchaos" if rotated is None else None)
    now = time.time()
    ops = []
    if stale is not None:
        token, rotated = secrets.token_urlsafe(32), now
        ops += _write_ops(secret, key, token, now)
    ops += _set_ops(secret, {TAKEN_BY: claim, TAKEN_AT: _stamp(now)}, ops)
    written = _patch(conn, namespace, name, secret, ops, f"take the receiver token of {namespace}/{name}")
    wait = min(max(float(reload_seconds) - (now - float(rotated)), 0.0), float(reload_seconds))
    if wait > 0:
        sleep(wait)
    return token, {
        "secret": f"{namespace}/{name}", "key": key, "uid": meta.get("uid"), "claim": claim,
        "resource_version_before": meta.get("resourceVersion"),
        "resource_version_after": (written.get("metadata") or {}).get("resourceVersion"),
        "rotated_now": stale is not None, "why": stale or "fresh, written by the run before",
        "rotated_at": _stamp(float(rotated)), "taken_at": _stamp(now), "waited_seconds": round(wait, 3),
        "environment": conn.environment,
    }


def rotate(namespace: str, name: str, key: str, claim: str,
           configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the next run's token, when the run ``claim`` still holds the Secret; the record says which."""
    conn = connect(configuration=configuration)
    secret = _read(conn, namespace, name)
    meta = secret.get("metadata") or {}
    holder = backups.annotations(secret).get(TAKEN_BY)
    record: dict[str, Any] = {"secret": f"{namespace}/{name}", "key": key, "uid": meta.get("uid"), "claim": claim,
                              "resource_version_before": meta.get("resourceVersion")}
    if holder != claim:
        return record | {"rotated": False, "why": f"the Secret is no longer this run's (taken by {holder or 'none'}):"
                                                  " left for its holder, or for the next run to rotate"}
    now = time.time()
    ops = _write_ops(secret, key, secrets.token_urlsafe(32), now)
    ops += [{"op": "remove", "path": backups.annotation_path(k)} for k in (TAKEN_BY, TAKEN_AT)
            if k in backups.annotations(secret)]
    written = _patch(conn, namespace, name, secret, ops, f"rotate the receiver token of {namespace}/{name}")
    return record | {"rotated": True, "rotated_at": _stamp(now),
                     "resource_version_after": (written.get("metadata") or {}).get("resourceVersion")}


def check(namespace: str, name: str, key: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a run would find, read only (a plan): whether the Secret holds a token no run took yet."""
    conn = connect(configuration=configuration)
    secret = _read(conn, namespace, name)
    notes = backups.annotations(secret)
    return {"secret": f"{namespace}/{name}", "key": key, "uid": (secret.get("metadata") or {}).get("uid"),
            "has_token": bool(_token(secret, key)), "rotated_at": notes.get(ROTATED_AT),
            "taken_by": notes.get(TAKEN_BY), "environment": conn.environment}


# -- helpers --------------------------------------------------------------------------------


def _read(conn: Connection, namespace: str, name: str) -> dict[str, Any]:
    try:
        return conn.call(f"get secret {namespace}/{name}", "core", "read_namespaced_secret", name, namespace)
    except TargetNotFound:
        raise DriverError(f"secret {namespace}/{name}, which holds the notification receiver's token, does not exist: "
                          f"apply {MANIFEST} (it creates it empty; mlchaos never creates a Secret)") from None


def _token(secret: dict[str, Any], key: str) -> str | None:
    raw = (secret.get("data") or {}).get(key)
    try:
        return base64.b64decode(raw, validate=True).decode().strip() or None if raw else None
    except (binascii.Error, UnicodeDecodeError):
        return None


def _write_ops(secret: dict[str, Any], key: str, token: str, now: float) -> list[dict[str, Any]]:
    """JSON-patch operations that write ``token`` under ``key`` and stamp the rotation."""
    ops: list[dict[str, Any]] = [] if secret.get("data") else [{"op": "add", "path": "/data", "value": {}}]
    ops.append({"op": "add", "path": "/data/" + key.replace("~", "~0").replace("/", "~1"),
                "value": base64.b64encode(token.encode()).decode()})
    return ops + _set_ops(secret, {ROTATED_AT: _stamp(now)}, [])


def _set_ops(secret: dict[str, Any], values: dict[str, str], earlier: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add or replace annotations (the map created once, unless ``earlier`` operations already did)."""
    ops: list[dict[str, Any]] = []
    created = any(op["path"] == "/metadata/annotations" for op in earlier)
    if not backups.annotations(secret) and not created:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    return ops + [{"op": "add", "path": backups.annotation_path(k), "value": v} for k, v in values.items()]


def _patch(conn: Connection, namespace: str, name: str, secret: dict[str, Any], ops: list[dict[str, Any]],
           what: str) -> dict[str, Any]:
    return conn.call(what, "core", "patch_namespaced_secret", name, namespace, body=backups.guarded(secret, ops))


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _instant(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
