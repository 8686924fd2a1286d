"""Kubernetes TLS fault: a bad certificate in a TLS Secret, and restore_secret.

The Secret's previous data is kept in its ``mlchaos.io/secret-backup`` annotation. Part of
:mod:`drivers.kubernetes.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

import base64
from typing import Any

from drivers._common import checks
from drivers._common.errors import translated
from drivers.kubernetes import backups, selection, tls_secrets
from drivers.kubernetes.backups import SECRET_BACKUP
from drivers.kubernetes.faults import ROLLBACKS, SAFETY_TTL, Selector, change_id, read_backup, stop_watchdogs, undo
from drivers.kubernetes.targets import DRIVER, connect_namespace
from drivers.kubernetes.workloads import parse_workloads, restart_all
from mlchaos.driver_kit import ChangeRecord, DriverError, announce, certificates, undo_function


def swap_tls_certificate(
    secret: str, namespace: str, kind: str = "expired", hosts: list[str] | None = None, days: int = 3,
    ca_secret: str | None = None, ca_dir: str | None = None, restart: list[str] | None = None,
    label_selector: Selector = None, ttl: float | None = SAFETY_TTL,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Put a bad certificate (expired, wrong_hostname, untrusted...) into a TLS Secret; undo: restore_secret.

    The leaf is issued like drivers.tls does (mlchaos.lib.certificates) for `hosts` (default: the
    current certificate's names), signed by the CA clients trust (`ca_secret`: a Secret with
    ca.crt/ca.key or tls.crt/tls.key; or `ca_dir`), except `untrusted` (a throw-away CA).
    `restart`: workloads to rollout-restart afterwards (``model-server``, ``statefulset/db``) so
    their pods load it. The previous data is kept in the Secret's ``mlchaos.io/secret-backup``
    annotation; targets are the pods that mount the Secret (the Secret itself when none does).
    """
    selection.check_namespace(namespace)
    if kind not in certificates.KINDS:
        raise DriverError(f"kind must be one of {', '.join(certificates.KINDS)}, got {kind!r}")
    if hosts is not None and (not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts)):
        raise DriverError(f"hosts must be a list of host names / IP addresses, got {hosts!r}")
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise DriverError(f"days must be a positive integer, got {days!r}")
    if ca_secret is not None and ca_dir is not None:
        raise DriverError("give ca_secret or ca_dir, not both")
    workloads = parse_workloads(restart)
    labels = selection.parse_label_selector(label_selector)
    checks.ttl(ttl)
    conn = connect_namespace(namespace, kubeconfig, context, in_cluster, configuration)
    obj = conn.call(f"get secret {namespace}/{secret}", "core", "read_namespaced_secret", secret, namespace)
    backups.refuse_skipped(obj, "Secret")
    backups.refuse_stacked(obj, SECRET_BACKUP, "swap_tls_certificate", "restore_secret")
    data = dict(obj.get("data") or {})
    if "tls.crt" not in data or "tls.key" not in data:
        raise DriverError(f"secret {namespace}/{secret} has no tls.crt and tls.key: not a TLS Secret")
    current = tls_secrets.certificate(data["tls.crt"], f"secret {namespace}/{secret}")
    names = hosts or certificates.certificate_hosts(current) or list(certificates.DEFAULT_HOSTS)
    ca = None if kind == "untrusted" else tls_secrets.load_ca(conn, namespace, ca_secret, ca_dir, kind)
    with translated():
        cert, key, issuer = certificates.issue_certificate(kind, names, ca, days=days)
    change = change_id()
    new_data = {**data, "tls.crt": _b64(certificates.cert_pem(cert)), "tls.key": _b64(certificates.key_pem(key))}
    digest = backups.digest(data)
    backup = {"data": data, "sha256": digest, "change": change,
              "restart": [f"{k.lower()}/{n}" for k, n in workloads]}
    targets, population = tls_secrets.secret_targets(conn, namespace, secret, obj, labels)
    record = ChangeRecord(driver=DRIVER, action="swap-tls-certificate", targets=targets,
                          parameters={"namespace": namespace, "secret": secret, "kind": kind, "hosts": names,
                                      "days": days, "before": certificates.describe(current),
                                      "after": certificates.describe(cert),
                                      "issuer": issuer.certificate.subject.rfc4514_string(),
                                      "restart": backup["restart"], "change": change, "ttl": ttl},
                          undo=undo("restore_secret", conn, namespace=namespace, secret=secret,
                                    uid=(obj.get("metadata") or {}).get("uid"), sha256=digest,
                                    restart=backup["restart"]),
                          dry_run=dry_run, environment=conn.environment, population=population)
    announce(record)
    if dry_run:
        return record.to_dict()
    patch = backups.add_annotation_ops(obj, SECRET_BACKUP, backups.encode(backup))
    patch += [{"op": "replace", "path": "/data", "value": new_data}]
    conn.call(f"swap the certificate in secret {namespace}/{secret}", "core", "patch_namespaced_secret", secret,
              namespace, body=backups.guarded(obj, patch))
    if ttl is not None:
        ROLLBACKS.start_watchdog(record, ttl, "restore_secret", dict(record.undo["arguments"]))
    output = record.to_dict()
    output["restarted"] = restart_all(conn, namespace, workloads)
    return output


@undo_function
def restore_secret(
    namespace: str, secret: str, uid: str | None = None, sha256: str | None = None, restart: list[str] | None = None,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back swap_tls_certificate: put the Secret's exact previous data back, then restart (idempotent).

    The previous data comes from the Secret's ``mlchaos.io/secret-backup`` annotation (checked
    against `sha256` when given); `restart` defaults to the workloads the swap restarted.
    """
    found = read_backup("secret", namespace, secret, uid, SECRET_BACKUP, watchdog_pid, kubeconfig, context, in_cluster,
                        configuration)
    if isinstance(found, dict):
        return found
    conn, _, raw, backup = found
    previous = backup.get("data")
    if not isinstance(previous, dict) or backups.digest(previous) != backup.get("sha256"):
        raise DriverError(f"the backup on secret {namespace}/{secret} is damaged (its digest does not match): "
                          "nothing restored")
    if sha256 is not None and backup["sha256"] != sha256:
        raise DriverError(f"the backup on secret {namespace}/{secret} is from another change "
                          f"(sha256 {backup['sha256'][:12]}, expected {sha256[:12]}): nothing restored")
    patch = [{"op": "test", "path": backups.annotation_path(SECRET_BACKUP), "value": raw},
             {"op": "replace", "path": "/data", "value": previous},
             {"op": "remove", "path": backups.annotation_path(SECRET_BACKUP)}]
    conn.call(f"restore secret {namespace}/{secret}", "core", "patch_namespaced_secret", secret, namespace,
              body=patch)
    stop_watchdogs("restore_secret", namespace, {secret}, "secret")
    workloads = parse_workloads(restart if restart is not None else backup.get("restart") or [])
    return {"secret": secret, "result": "restored", "restarted": restart_all(conn, namespace, workloads),
            "already": []}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
