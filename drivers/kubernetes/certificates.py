"""Kubernetes TLS fault: a bad certificate in a TLS Secret, and restore_secret.

The bad certificate is signed by a throw-away CA made for the swap. mlchaos never reads the key
of the CA that clients trust. The Secret's previous data is kept in the Secret
``mlchaos-backups`` beside it (:mod:`drivers.kubernetes.secret_backups`), where ``kubectl
describe`` does not print it. Part of :mod:`drivers.kubernetes.actions`: experiments and
change records name the functions there.
"""

from __future__ import annotations

import base64
from typing import Any

from drivers._common import checks
from drivers._common.errors import translated
from drivers._common.undo import stop_told
from drivers.kubernetes import backups, secret_backups, selection, tls_secrets
from drivers.kubernetes.faults import GONE, ROLLBACKS, SAFETY_TTL, Selector, change_id, stop_watchdogs, undo
from drivers.kubernetes.targets import DRIVER, connect_namespace
from drivers.kubernetes.workloads import parse_workloads, restart_all
from mlchaos.driver_kit import ChangeRecord, DriverError, TargetNotFound, announce, certificates, undo_function

THROWAWAY_CA = "mlchaos throw-away CA (trusted by nobody)"


def swap_tls_certificate(
    secret: str, namespace: str, kind: str = "expired", hosts: list[str] | None = None, days: int = 3,
    restart: list[str] | None = None, label_selector: Selector = None, ttl: float | None = SAFETY_TTL,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Put a bad certificate (expired, wrong_hostname, untrusted...) into a TLS Secret; undo: restore_secret.

    The leaf is issued as drivers.tls issues them (mlchaos.lib.certificates), for `hosts`
    (default: the current certificate's names). It is signed by a throw-away CA made for this
    swap, never by the CA clients trust, so a verifying client also finds its issuer unknown.
    `restart`: workloads to rollout-restart afterwards (``model-server``, ``statefulset/db``) so
    their pods load it. The previous data is kept in Secret ``mlchaos-backups`` (key
    ``secret.<name>``). The targets are the pods that mount the Secret, or the Secret itself
    when none does.
    """
    selection.check_namespace(namespace)
    if kind not in certificates.KINDS:
        raise DriverError(f"kind must be one of {', '.join(certificates.KINDS)}, got {kind!r}")
    if hosts is not None and (not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts)):
        raise DriverError(f"hosts must be a list of host names / IP addresses, got {hosts!r}")
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise DriverError(f"days must be a positive integer, got {days!r}")
    workloads = parse_workloads(restart)
    labels = selection.parse_label_selector(label_selector)
    checks.ttl(ttl)
    conn = connect_namespace(namespace, kubeconfig, context, in_cluster, configuration)
    obj = conn.call(f"get secret {namespace}/{secret}", "core", "read_namespaced_secret", secret, namespace)
    backups.refuse_skipped(obj, "Secret")
    backups.refuse_stacked(obj, secret_backups.LEGACY_ANNOTATION, "swap_tls_certificate", "restore_secret")
    data = dict(obj.get("data") or {})
    if "tls.crt" not in data or "tls.key" not in data:
        raise DriverError(f"secret {namespace}/{secret} has no tls.crt and tls.key: not a TLS Secret")
    store = secret_backups.read_store(conn, namespace)
    assert store is not None
    if secret_backups.stored(store, secret) is not None:
        raise DriverError(f"{secret_backups.BACKUP_SECRET} in {namespace} still holds a backup of secret {secret} "
                          "from an earlier swap_tls_certificate: run restore_secret first")
    current = tls_secrets.certificate(data["tls.crt"], f"secret {namespace}/{secret}")
    names = hosts or certificates.certificate_hosts(current) or list(certificates.DEFAULT_HOSTS)
    with translated():
        cert, key, issuer = certificates.issue_certificate(
            kind, names, certificates.CertificateAuthority.create(THROWAWAY_CA), days=days)
    change = change_id()
    new_data = {**data, "tls.crt": _b64(certificates.cert_pem(cert)), "tls.key": _b64(certificates.key_pem(key))}
    uid = (obj.get("metadata") or {}).get("uid")
    digest = backups.digest(data)
    backup = {"secret": secret, "uid": uid, "data": data, "sha256": digest, "change": change,
              "restart": [f"{k.lower()}/{n}" for k, n in workloads]}
    targets, population = tls_secrets.secret_targets(conn, namespace, secret, obj, labels)
    record = ChangeRecord(driver=DRIVER, action="swap-tls-certificate", targets=targets,
                          parameters={"namespace": namespace, "secret": secret, "kind": kind, "hosts": names,
                                      "days": days, "before": certificates.describe(current),
                                      "after": certificates.describe(cert),
                                      "issuer": issuer.certificate.subject.rfc4514_string(),
                                      "backup": f"{secret_backups.BACKUP_SECRET}/{secret_backups.key(secret)}",
                                      "restart": backup["restart"], "change": change, "ttl": ttl},
                          undo=undo("restore_secret", conn, namespace=namespace, secret=secret, uid=uid, sha256=digest,
                                    restart=backup["restart"]),
                          dry_run=dry_run, environment=conn.environment, population=population)
    announce(record)
    if dry_run:
        return record.to_dict()
    secret_backups.put(conn, namespace, store, secret, backup)
    try:
        conn.call(f"swap the certificate in secret {namespace}/{secret}", "core", "patch_namespaced_secret", secret,
                  namespace, body=backups.guarded(obj, [{"op": "replace", "path": "/data", "value": new_data}]))
    except Exception:  # nothing was swapped: the backup must not make the next swap refuse
        stored = secret_backups.stored(secret_backups.read_store(conn, namespace, required=False), secret)
        if stored is not None:
            secret_backups.drop(conn, namespace, secret, stored)
        raise
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

    The previous data comes from Secret ``mlchaos-backups``, or from the Secret's own
    ``mlchaos.io/secret-backup`` annotation when an older mlchaos made the swap. It is checked
    against `sha256` when given. `restart` defaults to the workloads the swap restarted. A
    backup whose Secret is gone, or was replaced (another uid), is dropped and nothing is
    written.
    """
    stop_told(watchdog_pid)
    conn = connect_namespace(namespace, kubeconfig, context, in_cluster, configuration)
    store = secret_backups.read_store(conn, namespace, required=False)
    raw = secret_backups.stored(store, secret)
    found = _backup(raw, namespace, secret)
    try:
        obj = conn.call(f"get secret {namespace}/{secret}", "core", "read_namespaced_secret", secret, namespace)
    except TargetNotFound:
        if raw is not None:
            secret_backups.drop(conn, namespace, secret, raw)
        return {"secret": secret, "result": GONE, "restarted": [], "already": [secret]}
    actual = (obj.get("metadata") or {}).get("uid")
    if (uid and actual != uid) or (found and found.get("uid") and found["uid"] != actual):
        if raw is not None:
            secret_backups.drop(conn, namespace, secret, raw)
        return {"secret": secret, "result": "replaced since (another uid): left alone", "restarted": [],
                "already": [secret]}
    legacy = backups.annotations(obj).get(secret_backups.LEGACY_ANNOTATION) if found is None else None
    if legacy is not None:
        found = backups.decode(legacy, f"the {secret_backups.LEGACY_ANNOTATION} annotation of secret "
                                       f"{namespace}/{secret}")
    if found is None:
        return {"secret": secret, "result": "already restored (no backup of it left)", "restarted": [],
                "already": [secret]}
    previous = found.get("data")
    if not isinstance(previous, dict) or backups.digest(previous) != found.get("sha256"):
        raise DriverError(f"the backup of secret {namespace}/{secret} is damaged (its digest does not match): "
                          "nothing restored")
    if sha256 is not None and found["sha256"] != sha256:
        raise DriverError(f"the backup of secret {namespace}/{secret} is from another change "
                          f"(sha256 {found['sha256'][:12]}, expected {sha256[:12]}): nothing restored")
    if legacy is not None:  # the old place: data and annotation in one patch, as the old rollback did
        path = backups.annotation_path(secret_backups.LEGACY_ANNOTATION)
        patch = [{"op": "test", "path": path, "value": legacy}, {"op": "replace", "path": "/data", "value": previous},
                 {"op": "remove", "path": path}]
    else:
        patch = backups.guarded(obj, [{"op": "replace", "path": "/data", "value": previous}])
    conn.call(f"restore secret {namespace}/{secret}", "core", "patch_namespaced_secret", secret, namespace,
              body=patch)
    if raw is not None:
        secret_backups.drop(conn, namespace, secret, raw)
    stop_watchdogs("restore_secret", namespace, {secret}, "secret")
    workloads = parse_workloads(restart if restart is not None else found.get("restart") or [])
    return {"secret": secret, "result": "restored", "restarted": restart_all(conn, namespace, workloads),
            "already": []}


def _backup(raw: str | None, namespace: str, secret: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    return secret_backups.decode(raw, f"the backup of secret {namespace}/{secret} in {secret_backups.BACKUP_SECRET}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
