"""TLS Secrets for swap_tls_certificate: the current certificate, and the pods that mount the Secret (the
fault's targets)."""

from __future__ import annotations

import base64
from typing import Any

from drivers.kubernetes import selection
from drivers.kubernetes.client import Connection
from mlchaos.driver_kit import DriverError, Target


def secret_targets(conn: Connection, namespace: str, secret: str, obj: dict[str, Any],
                    labels: selection.LabelSelector | None) -> tuple[list[Target], list[str]]:
    """The pods that mount the Secret (refused when one opted out) and the namespace's eligible pods."""
    from drivers.kubernetes.targets import pod_target

    query = {"label_selector": labels.render()} if labels is not None else {}
    listed = conn.call(f"list pods in {namespace}", "core", "list_namespaced_pod", namespace, **query) or {}
    pods = [p for p in listed.get("items") or [] if labels is None or labels.matches(p["metadata"].get("labels"))]
    mounting = [p for p in pods if mounts(p, secret) and not p["metadata"].get("deletionTimestamp")]
    opted_out = [p["metadata"]["name"] for p in mounting if selection.is_skipped(p["metadata"].get("labels") or {})]
    if opted_out:
        raise DriverError(f"secret {namespace}/{secret} is mounted by {', '.join(opted_out)}, labelled "
                          f"{selection.SKIP_LABEL}=true: refused")
    population = sorted(p["metadata"]["name"] for p in pods if not selection.is_skipped(p["metadata"].get("labels")
                                                                                        or {}))
    if mounting:
        return [pod_target(p, None) for p in sorted(mounting, key=lambda p: p["metadata"]["name"])], population
    meta = obj.get("metadata") or {}
    return [Target(kind="secret", name=secret, details={"namespace": namespace, "uid": meta.get("uid"),
                                                        "labels": dict(meta.get("labels") or {})})], []


def mounts(pod: dict[str, Any], secret: str) -> bool:
    """True when the pod mounts the Secret (a secret volume or a projected source)."""
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if (volume.get("secret") or {}).get("secretName") == secret:
            return True
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get("secret") or {}).get("name") == secret:
                return True
    return False


def certificate(value: str, where: str) -> Any:
    """The certificate in a Secret's base64 PEM value."""
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(base64.b64decode(value))
    except ValueError as exc:
        raise DriverError(f"{where}: tls.crt is not a PEM certificate ({exc})") from exc

