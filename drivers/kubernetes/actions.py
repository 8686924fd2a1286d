"""Kubernetes faults against model-serving workloads, and the rollbacks that undo exactly what they did.

Every fault validates its arguments before the API is asked anything, selects its targets,
announces a :class:`~mlchaos.changes.ChangeRecord` *before* it changes anything
(``environment: kubernetes:<context>``, so an allow-list refuses a production context
before anything is touched; ``population``: every eligible pod's name) and returns it. The
undo names the rollback and the exact objects (names and uids). Dry runs select and
announce exactly as for real and change nothing.

The state a rollback needs is kept on the changed object itself, in an ``mlchaos.io/...``
annotation (the replica count before, the Secret's previous data, the Service's previous
selector and ports, the removed annotation's value): it lives in the cluster with the same
access control as the object, so a rollback works from the change record, from an
experiment's static rollback list (``restore_secret(namespace, secret)``), from ``mlchaos
recover`` on another machine, or from a TTL watchdog. A fault refuses to stack on an
object that still carries a backup (undo the earlier one first). Rollbacks are idempotent
(``already`` lists what needed nothing), go on past individual failures and raise one
DriverError naming every failure at the end.

Selection arguments of the pod faults: ``namespace``, ``label_selector``
(``"app=model,tier in (a,b)"`` or ``{app: model}``), ``field_selector``, ``name_pattern``,
``count`` / ``percentage`` (+ ``at_least_one``) / ``all``, ``seed``. Connection arguments of
every function: ``kubeconfig``, ``context``, ``in_cluster`` (or the experiment's
``configuration``: ``kubeconfig``, ``kube_context``, ``kube_in_cluster``).
"""

from __future__ import annotations

import base64
import math
import uuid
from datetime import UTC, datetime
from typing import Any

from drivers.kubernetes import backups, netpol, selection, tls_secrets
from drivers.kubernetes.backups import REPLICAS_BACKUP, SCRAPE_BACKUP, SECRET_BACKUP, SERVICE_BACKUP
from drivers.kubernetes.client import Connection, connect
from drivers.kubernetes.netpol import BLOCK_LABEL, CHANGE_LABEL, MANAGED_BY
from drivers.kubernetes.targets import (
    DRIVER,
    SCALABLE,
    PodSelection,
    check_kind,
    concurrently,
    parse_workloads,
    patch_replicas,
    read_workload,
    restart_workload,
    select_pods,
)
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.safety.changes import ChangeRecord, Target, announce
from mlchaos.safety.watchdog import start_record_watchdog, stop_covered, stop_watchdog

MODULE = "drivers.kubernetes.actions"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
LOWEST_DELETION_COST = "-2147483648"
SCRAPE_ANNOTATION = "prometheus.io/scrape"
SAFETY_TTL = 600.0
GONE = "gone (nothing left to undo)"
Selector = str | dict[str, Any] | None


# -- pods ----------------------------------------------------------------------------------------------


def delete_pods(
    namespace: str, label_selector: Selector = None, field_selector: str | None = None,
    name_pattern: str | None = None, count: int | None = None, percentage: float | None = None,
    all: bool = False, at_least_one: bool = False, seed: int | None = None,
    grace_period: int | None = None, keep_down: float | None = None, allow_unowned: bool = False,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Delete the selected pods, several at once; `grace_period` s (0 = hard kill, null = the pod's own).

    Their controller recreates them (nothing to undo). With `keep_down` (seconds) the owning
    Deployment / StatefulSet (ownerReferences: pod -> ReplicaSet -> Deployment) is scaled down by
    the number of its pods deleted, so they stay down; a detached watchdog scales it back after
    `keep_down` s, or the rollback does sooner (undo: restore_scale). Bare pods (no controller) are
    refused unless `allow_unowned`: nothing would bring them back.
    """
    _grace(grace_period)
    if keep_down is not None:
        _positive("keep_down", keep_down)
    sel = _select(namespace, label_selector, field_selector, name_pattern, count, percentage, all, at_least_one,
                  seed, kubeconfig, context, in_cluster, configuration)
    bare = [n for n in sel.names if sel.owners.get(n) is None]
    if bare and not allow_unowned:
        raise DriverError(f"{', '.join(bare)} have no controller: deleted, nothing would bring them back "
                          "(pass allow_unowned: true if that is what you want)")
    holds = _holds(sel) if keep_down is not None else []
    undo = _undo("restore_scale", sel.conn, namespace=namespace, workloads=[_workload(h) for h in holds]) \
        if holds else {}
    record = sel.record("delete-pods", undo, dry_run, grace_period=grace_period, keep_down=keep_down,
                        held=[{k: h[k] for k in ("kind", "name", "replicas", "held_at", "pods")} for h in holds])
    announce(record)
    if dry_run:
        return record.to_dict()
    if holds:
        _start_watchdog(record, float(keep_down or 0), "restore_scale", dict(undo["arguments"]))
        try:
            _hold(sel, holds)
        except Exception:
            restore_scale(namespace, [_workload(h) for h in holds], **sel.conn.where.arguments())
            raise
    pods = {p["metadata"]["name"]: p for p in sel.pods}
    results = concurrently(sel.names, lambda name: _delete_pod(sel.conn, pods[name], grace_period), "delete pods")
    output = record.to_dict()
    output["deleted"] = dict(zip(sel.names, results, strict=True))
    return output


def restore_scale(
    namespace: str, workloads: list[Any], kubeconfig: str | None = None, context: str | None = None,
    in_cluster: bool | None = None, configuration: dict[str, Any] | None = None, watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back scale_workload / delete_pods(keep_down): put each workload's replica count back (idempotent).

    `workloads`: the record's ``[{kind, name, uid, replicas}]``, or names (``model-server``,
    ``statefulset/db``) whose count before the fault is read from their ``mlchaos.io/replicas-before``.
    """
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    selection.check_namespace(namespace)
    items = _workload_items(workloads)
    conn = connect(kubeconfig, context, in_cluster, configuration)

    def restore(key: str) -> str:
        kind, name, uid, replicas = items[key]
        try:
            obj = read_workload(conn, namespace, kind, name)
        except TargetNotFound:
            return GONE
        if uid and (obj.get("metadata") or {}).get("uid") != uid:
            return "replaced since (another uid): left alone"
        backup = backups.annotations(obj).get(REPLICAS_BACKUP)
        wanted = replicas if replicas is not None else (int(backup) if backup is not None else None)
        if wanted is None:
            return "already: no scale change of mlchaos recorded on it"
        current = int((obj.get("spec") or {}).get("replicas") or 0)
        if current != wanted:
            patch_replicas(conn, namespace, kind, name, wanted)
        if backup is not None:
            _annotate(conn, kind, namespace, name, {REPLICAS_BACKUP: None})
        return f"restored {wanted} replicas (was {current})" if current != wanted else f"already at {wanted} replicas"

    keys = list(items)
    results = dict(zip(keys, concurrently(keys, restore, "restore scale"), strict=True))
    _stop_watchdogs("restore_scale", namespace, {n for _, n, _, _ in items.values()}, "workloads")
    return {"namespace": namespace, "workloads": results, "already": _already(results, "restored")}


def scale_workload(
    name: str, namespace: str, replicas: int, kind: str = "Deployment", ttl: float | None = SAFETY_TTL,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Scale a Deployment or StatefulSet to `replicas` (0 allowed); undo: restore_scale (the exact previous count).

    With `ttl` (seconds) a detached watchdog scales it back by itself, even if the runner died.
    """
    kind = check_kind(kind)
    selection.check_namespace(namespace)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise DriverError(f"replicas must be an integer >= 0, got {replicas!r}")
    _ttl(ttl)
    conn = connect(kubeconfig, context, in_cluster, configuration)
    obj = read_workload(conn, namespace, kind, name)
    backups.refuse_skipped(obj, kind)
    backups.refuse_stacked(obj, REPLICAS_BACKUP, "scale_workload", "restore_scale")
    previous = int((obj.get("spec") or {}).get("replicas") or 0)
    meta = obj.get("metadata") or {}
    workload = {"kind": kind, "name": name, "uid": meta.get("uid"), "replicas": previous}
    target = Target(kind=kind.lower(), name=name, details={
        "namespace": namespace, "labels": dict(meta.get("labels") or {}), "uid": meta.get("uid"),
        "replicas": previous, "kind": kind})
    undo = _undo("restore_scale", conn, namespace=namespace, workloads=[workload])
    record = ChangeRecord(driver=DRIVER, action="scale", targets=[target],
                          parameters={"namespace": namespace, "kind": kind, "name": name, "replicas": replicas,
                                      "previous_replicas": previous, "ttl": ttl},
                          undo=undo, dry_run=dry_run, environment=conn.environment,
                          population=_workload_population(conn, namespace, kind))
    announce(record)
    if dry_run:
        return record.to_dict()
    _annotate(conn, kind, namespace, name, {REPLICAS_BACKUP: str(previous)})
    patch_replicas(conn, namespace, kind, name, replicas)
    if ttl is not None:
        _start_watchdog(record, ttl, "restore_scale", dict(undo["arguments"]))
    return record.to_dict()


# -- TLS ---------------------------------------------------------------------------------------------


def swap_tls_certificate(
    secret: str, namespace: str, kind: str = "expired", hosts: list[str] | None = None, days: int = 3,
    ca_secret: str | None = None, ca_dir: str | None = None, restart: list[str] | None = None,
    label_selector: Selector = None, ttl: float | None = SAFETY_TTL,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Put a bad certificate (expired, wrong_hostname, untrusted...) into a TLS Secret; undo: restore_secret.

    The leaf is issued like drivers.tls does (mlchaos.certificates) for `hosts` (default: the
    current certificate's names), signed by the CA clients trust (`ca_secret`: a Secret with
    ca.crt/ca.key or tls.crt/tls.key; or `ca_dir`), except `untrusted` (a throw-away CA).
    `restart`: workloads to rollout-restart afterwards (``model-server``, ``statefulset/db``) so
    their pods load it. The previous data is kept in the Secret's ``mlchaos.io/secret-backup``
    annotation; targets are the pods that mount the Secret (the Secret itself when none does).
    """
    from mlchaos.lib import certificates as certs

    selection.check_namespace(namespace)
    if kind not in certs.KINDS:
        raise DriverError(f"kind must be one of {', '.join(certs.KINDS)}, got {kind!r}")
    if hosts is not None and (not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts)):
        raise DriverError(f"hosts must be a list of host names / IP addresses, got {hosts!r}")
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise DriverError(f"days must be a positive integer, got {days!r}")
    if ca_secret is not None and ca_dir is not None:
        raise DriverError("give ca_secret or ca_dir, not both")
    workloads = parse_workloads(restart)
    labels = selection.parse_label_selector(label_selector)
    _ttl(ttl)
    conn = connect(kubeconfig, context, in_cluster, configuration)
    obj = conn.call(f"get secret {namespace}/{secret}", "core", "read_namespaced_secret", secret, namespace)
    backups.refuse_skipped(obj, "Secret")
    backups.refuse_stacked(obj, SECRET_BACKUP, "swap_tls_certificate", "restore_secret")
    data = dict(obj.get("data") or {})
    if "tls.crt" not in data or "tls.key" not in data:
        raise DriverError(f"secret {namespace}/{secret} has no tls.crt and tls.key: not a TLS Secret")
    current = tls_secrets.certificate(data["tls.crt"], f"secret {namespace}/{secret}")
    names = hosts or certs.certificate_hosts(current) or list(certs.DEFAULT_HOSTS)
    ca = None if kind == "untrusted" else tls_secrets.load_ca(conn, namespace, ca_secret, ca_dir, kind)
    try:
        cert, key, issuer = certs.issue_certificate(kind, names, ca, days=days)
    except certs.CertificateError as exc:
        raise DriverError(str(exc)) from exc
    change = _change_id()
    new_data = {**data, "tls.crt": _b64(certs.cert_pem(cert)), "tls.key": _b64(certs.key_pem(key))}
    digest = backups.digest(data)
    backup = {"data": data, "sha256": digest, "change": change,
              "restart": [f"{k.lower()}/{n}" for k, n in workloads]}
    targets, population = tls_secrets.secret_targets(conn, namespace, secret, obj, labels)
    undo = _undo("restore_secret", conn, namespace=namespace, secret=secret, uid=(obj.get("metadata") or {}).get("uid"),
                 sha256=digest, restart=backup["restart"])
    record = ChangeRecord(driver=DRIVER, action="swap-tls-certificate", targets=targets,
                          parameters={"namespace": namespace, "secret": secret, "kind": kind, "hosts": names,
                                      "days": days, "before": certs.describe(current), "after": certs.describe(cert),
                                      "issuer": issuer.certificate.subject.rfc4514_string(),
                                      "restart": backup["restart"], "change": change, "ttl": ttl},
                          undo=undo, dry_run=dry_run, environment=conn.environment, population=population)
    announce(record)
    if dry_run:
        return record.to_dict()
    patch = backups.add_annotation_ops(obj, SECRET_BACKUP, backups.encode(backup))
    patch += [{"op": "replace", "path": "/data", "value": new_data}]
    conn.call(f"swap the certificate in secret {namespace}/{secret}", "core", "patch_namespaced_secret", secret,
              namespace, body=backups.guarded(obj, patch))
    if ttl is not None:
        _start_watchdog(record, ttl, "restore_secret", dict(undo["arguments"]))
    output = record.to_dict()
    output["restarted"] = _restart(conn, namespace, workloads)
    return output


def restore_secret(
    namespace: str, secret: str, uid: str | None = None, sha256: str | None = None, restart: list[str] | None = None,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back swap_tls_certificate: put the Secret's exact previous data back, then restart (idempotent).

    The previous data comes from the Secret's ``mlchaos.io/secret-backup`` annotation (checked
    against `sha256` when given); `restart` defaults to the workloads the swap restarted.
    """
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    selection.check_namespace(namespace)
    conn = connect(kubeconfig, context, in_cluster, configuration)
    try:
        obj = conn.call(f"get secret {namespace}/{secret}", "core", "read_namespaced_secret", secret, namespace)
    except TargetNotFound:
        return {"secret": secret, "result": GONE, "already": [secret]}
    if uid and (obj.get("metadata") or {}).get("uid") != uid:
        return {"secret": secret, "result": "replaced since (another uid): left alone", "already": [secret]}
    raw = backups.annotations(obj).get(SECRET_BACKUP)
    if raw is None:
        return {"secret": secret, "result": "already restored (no backup on the Secret)", "already": [secret]}
    backup = backups.decode(raw, f"the {SECRET_BACKUP} annotation of secret {namespace}/{secret}")
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
    _stop_watchdogs("restore_secret", namespace, {secret}, "secret")
    workloads = parse_workloads(restart if restart is not None else backup.get("restart") or [])
    return {"secret": secret, "result": "restored", "restarted": _restart(conn, namespace, workloads),
            "already": []}


# -- telemetry ---------------------------------------------------------------------------------------


def block_metrics_port(
    port: int, namespace: str, label_selector: Selector = None, field_selector: str | None = None,
    name_pattern: str | None = None, count: int | None = None, percentage: float | None = None,
    all: bool = False, at_least_one: bool = False, seed: int | None = None, scrapers: Selector = None,
    ttl: float | None = SAFETY_TTL,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Deny ingress to the metrics `port` of the selected pods with a NetworkPolicy; undo: unblock_metrics_port.

    The pods get the label ``mlchaos.io/blocked=<change>`` and the policy selects exactly them,
    allowing every other port (port ranges: Kubernetes >= 1.25 and a CNI that enforces
    NetworkPolicy). When serving and metrics share the port, give `scrapers` (the label of the
    Prometheus pods, e.g. ``app.kubernetes.io/name=prometheus``): only they lose the port, other
    pods keep it (clients outside the cluster lose it too). Policies that already allow the
    port are additive and may keep it open: they are listed in ``other_policies``.
    """
    _port("port", port)
    scraper_terms = _equality_terms(scrapers, "scrapers") if scrapers is not None else []
    _ttl(ttl)
    sel = _select(namespace, label_selector, field_selector, name_pattern, count, percentage, all, at_least_one,
                  seed, kubeconfig, context, in_cluster, configuration, owners=False)
    change = _change_id()
    policy = f"mlchaos-block-{port}-{change}"
    body = netpol.block_policy(namespace, policy, change, port, scraper_terms)
    others = netpol.policies_selecting(sel)
    undo = _undo("unblock_metrics_port", sel.conn, namespace=namespace, policy=policy, change=change,
                 pods=[{"name": p["metadata"]["name"], "uid": p["metadata"].get("uid")} for p in sel.pods])
    record = sel.record("block-metrics-port", undo, dry_run, port=port, policy=policy, change=change,
                        scrapers=dict(scraper_terms) or None, other_policies=others, ttl=ttl)
    announce(record)
    if dry_run:
        return record.to_dict()
    try:
        created = sel.conn.call(f"create networkpolicy {namespace}/{policy}", "networking",
                                "create_namespaced_network_policy", namespace, body=body)
        record.undo["arguments"]["policy_uid"] = (created or {}).get("metadata", {}).get("uid")
        concurrently(sel.names, lambda name: _label_pod(sel.conn, namespace, name, {BLOCK_LABEL: change}),
                     "label pods")
    except Exception:
        unblock_metrics_port(namespace, policy=policy, change=change, **sel.conn.where.arguments())
        raise
    if ttl is not None:
        _start_watchdog(record, ttl, "unblock_metrics_port", dict(record.undo["arguments"]))
    return record.to_dict()


def unblock_metrics_port(
    namespace: str, policy: str | None = None, change: str | None = None, pods: list[dict[str, Any]] | None = None,
    policy_uid: str | None = None,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back block_metrics_port: delete exactly that NetworkPolicy (name + uid) and the pods' label (idempotent).

    Without `policy`, every policy block_metrics_port created in the namespace (of `change`, when
    given) is deleted and every pod's ``mlchaos.io/blocked`` label removed. `pods` is informative.
    """
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    selection.check_namespace(namespace)
    conn = connect(kubeconfig, context, in_cluster, configuration)
    failures: list[str] = []
    policies: dict[str, str] = {}
    if policy is not None:
        names = [policy]
    else:
        wanted = ",".join([f"{k}={v}" for k, v in MANAGED_BY.items()] + ([f"{CHANGE_LABEL}={change}"] if change
                                                                           else [CHANGE_LABEL]))
        listed = conn.call(f"list networkpolicies in {namespace}", "networking", "list_namespaced_network_policy",
                           namespace, label_selector=wanted) or {}
        names = [p["metadata"]["name"] for p in listed.get("items") or [] if netpol.ours(p, change)]
    for name in names:
        try:
            policies[name] = netpol.delete_policy(conn, namespace, name, change, policy_uid if name == policy else None)
        except DriverError as exc:
            failures.append(f"networkpolicy {name}: {exc}")
    selector = f"{BLOCK_LABEL}={change}" if change else BLOCK_LABEL
    listed = conn.call(f"list pods in {namespace}", "core", "list_namespaced_pod", namespace,
                       label_selector=selector) or {}
    labelled = [p["metadata"]["name"] for p in listed.get("items") or []
                if BLOCK_LABEL in (p["metadata"].get("labels") or {})
                and (change is None or p["metadata"]["labels"][BLOCK_LABEL] == change)]
    try:
        concurrently(labelled, lambda name: _label_pod(conn, namespace, name, {BLOCK_LABEL: None}, missing_ok=True),
                     "remove the label")
    except DriverError as exc:
        failures.append(str(exc))
    _stop_watchdogs("unblock_metrics_port", namespace, set(names), "policy", single=True)
    if failures:
        raise DriverError("unblock_metrics_port: " + "; ".join(failures))
    if not names and policy is None:
        policies["(none)"] = "already: no NetworkPolicy of mlchaos in the namespace"
    return {"namespace": namespace, "policies": policies, "unlabelled_pods": labelled,
            "already": _already(policies, "deleted")}


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
    _ttl(ttl)

    def annotated(pod: dict[str, Any]) -> bool:
        return annotation in backups.annotations(pod)

    sel = _select(namespace, label_selector, field_selector, name_pattern, count, percentage, all, at_least_one,
                  seed, kubeconfig, context, in_cluster, configuration, owners=False, keep=annotated)
    stacked = [p["metadata"]["name"] for p in sel.pods if SCRAPE_BACKUP in backups.annotations(p)]
    if stacked:
        raise DriverError(f"{', '.join(stacked)} still carry {SCRAPE_BACKUP} from an earlier fault: "
                          "run restore_scrape_annotation first")
    pods = [{"name": p["metadata"]["name"], "uid": p["metadata"].get("uid")} for p in sel.pods]
    undo = _undo("restore_scrape_annotation", sel.conn, namespace=namespace, pods=pods)
    record = sel.record("remove-scrape-annotation", undo, dry_run, annotation=annotation, ttl=ttl,
                        values={p["metadata"]["name"]: backups.annotations(p)[annotation] for p in sel.pods})
    announce(record)
    if dry_run:
        return record.to_dict()

    def remove(name: str) -> None:
        pod = next(p for p in sel.pods if p["metadata"]["name"] == name)
        backup = backups.encode({"annotation": annotation, "value": backups.annotations(pod)[annotation]})
        _patch_pod(sel.conn, namespace, name, {"metadata": {"annotations": {annotation: None, SCRAPE_BACKUP: backup}}})

    try:
        concurrently(sel.names, remove, "remove the annotation")
    finally:  # some may be changed even when others failed: the watchdog covers them
        if ttl is not None:
            _start_watchdog(record, ttl, "restore_scrape_annotation", dict(undo["arguments"]))
    return record.to_dict()


def restore_scrape_annotation(
    namespace: str, pods: list[Any] | None = None,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back remove_scrape_annotation: put each pod's annotation back from its backup (idempotent).

    `pods`: the record's ``[{name, uid}]`` (or names); None: every pod of the namespace with a backup.
    """
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    selection.check_namespace(namespace)
    conn = connect(kubeconfig, context, in_cluster, configuration)
    listed = conn.call(f"list pods in {namespace}", "core", "list_namespaced_pod", namespace) or {}
    live = {p["metadata"]["name"]: p for p in listed.get("items") or []}
    wanted = _pod_refs(pods) if pods is not None else {n: None for n, p in live.items()
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
        _patch_pod(conn, namespace, name, {"metadata": {"annotations": {backup["annotation"]: backup["value"],
                                                                        SCRAPE_BACKUP: None}}})
        return "restored"

    names = sorted(wanted)
    results = dict(zip(names, concurrently(names, restore, "restore the annotation"), strict=True))
    _stop_watchdogs("restore_scrape_annotation", namespace, set(names), "pods")
    return {"namespace": namespace, "pods": results, "already": _already(results, "restored")}


# -- latency through the fault proxy ---------------------------------------------------------------------


def route_through_proxy(
    service: str, namespace: str, proxy_selector: Selector, proxy_port: int, port: int | str | None = None,
    latency_ms: float | None = None, jitter_ms: float = 0.0, proxy_url: str | None = None,
    proxy_name: str | None = None, ttl: float | None = SAFETY_TTL,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Point a Service at the fault-proxy pods (`proxy_selector`, `proxy_port`), optionally with a latency toxic.

    The Service's selector becomes `proxy_selector` and the chosen `port`'s targetPort becomes
    `proxy_port` (deploy/kubernetes/fault-proxy.yaml: the proxy forwards to a second Service
    that still selects the model pods). With `latency_ms`, a latency toxic (`jitter_ms`, expiring
    after `ttl`) is added first through the proxy's Toxiproxy API at `proxy_url`, on proxy
    `proxy_name` (default: the Service's name). Refused unless a proxy pod is ready. The
    Service's previous selector and ports are kept in its ``mlchaos.io/service-backup``
    annotation; undo: restore_service.
    """
    from drivers.proxy.client import api_url, call, check_toxic, get_proxy

    selection.check_namespace(namespace)
    target_selector = dict(_equality_terms(proxy_selector, "proxy_selector"))
    _port("proxy_port", proxy_port)
    _ttl(ttl)
    toxic = None
    if latency_ms is not None:
        if proxy_url is None:
            raise DriverError("latency_ms needs proxy_url: the fault proxy's Toxiproxy-compatible API")
        attributes = {"latency": latency_ms, "jitter": jitter_ms}
        check_toxic("latency", attributes, "downstream", 1.0, ttl)
        toxic = {"url": api_url(proxy_url), "proxy": proxy_name or service, "name": f"mlchaos-latency-{_change_id()}",
                 "attributes": attributes}
    conn = connect(kubeconfig, context, in_cluster, configuration)
    obj = conn.call(f"get service {namespace}/{service}", "core", "read_namespaced_service", service, namespace)
    backups.refuse_skipped(obj, "Service")
    backups.refuse_stacked(obj, SERVICE_BACKUP, "route_through_proxy", "restore_service")
    spec = obj.get("spec") or {}
    if spec.get("type") == "ExternalName" or not spec.get("selector"):
        raise DriverError(f"service {namespace}/{service} has no pod selector: nothing to reroute")
    ports = [dict(p) for p in spec.get("ports") or []]
    index = _service_port(ports, port, f"{namespace}/{service}")
    ready = _ready_proxy_pods(conn, namespace, target_selector)
    if toxic is not None:
        get_proxy(toxic["url"], toxic["proxy"])  # refuse before changing anything when it is not there
    change = _change_id()
    new_ports = [dict(p) for p in ports]
    new_ports[index]["targetPort"] = proxy_port
    backup = {"selector": spec.get("selector"), "ports": ports, "change": change, "toxic": toxic}
    meta = obj.get("metadata") or {}
    target = Target(kind="service", name=service, details={
        "namespace": namespace, "labels": dict(meta.get("labels") or {}), "uid": meta.get("uid"),
        "selector": spec.get("selector"), "ports": ports})
    undo = _undo("restore_service", conn, namespace=namespace, service=service, uid=meta.get("uid"))
    listed = conn.call(f"list services in {namespace}", "core", "list_namespaced_service", namespace) or {}
    population = [s["metadata"]["name"] for s in listed.get("items") or []
                  if not selection.is_skipped(s["metadata"].get("labels") or {})]
    record = ChangeRecord(driver=DRIVER, action="route-through-proxy", targets=[target],
                          parameters={"namespace": namespace, "service": service, "selector": target_selector,
                                      "port": ports[index].get("port"), "proxy_port": proxy_port,
                                      "proxy_pods": ready, "toxic": toxic, "change": change, "ttl": ttl},
                          undo=undo, dry_run=dry_run, environment=conn.environment, population=population)
    announce(record)
    if dry_run:
        return record.to_dict()
    if toxic is not None:
        call("POST", toxic["url"], f"/proxies/{toxic['proxy']}/toxics",
             {"name": toxic["name"], "type": "latency", "stream": "downstream", "toxicity": 1.0,
              "attributes": toxic["attributes"], "ttl": float(ttl) if ttl is not None else SAFETY_TTL})
    patch = backups.add_annotation_ops(obj, SERVICE_BACKUP, backups.encode(backup))
    patch += [{"op": "replace", "path": "/spec/selector", "value": target_selector},
              {"op": "replace", "path": "/spec/ports", "value": new_ports}]
    try:
        conn.call(f"reroute service {namespace}/{service}", "core", "patch_namespaced_service", service, namespace,
                  body=backups.guarded(obj, patch))
    except Exception:
        if toxic is not None:
            call("DELETE", toxic["url"], f"/proxies/{toxic['proxy']}/toxics/{toxic['name']}", missing_ok=True)
        raise
    if ttl is not None:
        _start_watchdog(record, ttl, "restore_service", dict(undo["arguments"]))
    return record.to_dict()


def restore_service(
    namespace: str, service: str, uid: str | None = None,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back route_through_proxy: the Service's exact previous selector and ports, and the toxic removed.

    Idempotent: the state comes from the Service's ``mlchaos.io/service-backup`` annotation,
    which is removed last (a failed toxic removal leaves it, so a second call retries).
    """
    from drivers.proxy.client import call

    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    selection.check_namespace(namespace)
    conn = connect(kubeconfig, context, in_cluster, configuration)
    try:
        obj = conn.call(f"get service {namespace}/{service}", "core", "read_namespaced_service", service, namespace)
    except TargetNotFound:
        return {"service": service, "result": GONE, "already": [service]}
    if uid and (obj.get("metadata") or {}).get("uid") != uid:
        return {"service": service, "result": "replaced since (another uid): left alone", "already": [service]}
    raw = backups.annotations(obj).get(SERVICE_BACKUP)
    if raw is None:
        return {"service": service, "result": "already restored (no backup on the Service)", "already": [service]}
    backup = backups.decode(raw, f"the {SERVICE_BACKUP} annotation of service {namespace}/{service}")
    spec = obj.get("spec") or {}
    result = "already restored"
    if spec.get("selector") != backup["selector"] or spec.get("ports") != backup["ports"]:
        conn.call(f"restore service {namespace}/{service}", "core", "patch_namespaced_service", service, namespace,
                  body=[{"op": "test", "path": backups.annotation_path(SERVICE_BACKUP), "value": raw},
                        {"op": "replace", "path": "/spec/selector", "value": backup["selector"]},
                        {"op": "replace", "path": "/spec/ports", "value": backup["ports"]}])
        result = "restored"
    toxic_result = None
    toxic = backup.get("toxic")
    if toxic:
        existed = call("GET", toxic["url"], f"/proxies/{toxic['proxy']}/toxics/{toxic['name']}", missing_ok=True)
        if existed is not None:
            call("DELETE", toxic["url"], f"/proxies/{toxic['proxy']}/toxics/{toxic['name']}", missing_ok=True)
        toxic_result = "removed" if existed is not None else "already gone (removed or expired)"
    conn.call(f"remove the backup of service {namespace}/{service}", "core", "patch_namespaced_service", service,
              namespace, body=[{"op": "test", "path": backups.annotation_path(SERVICE_BACKUP), "value": raw},
                               {"op": "remove", "path": backups.annotation_path(SERVICE_BACKUP)}])
    _stop_watchdogs("restore_service", namespace, {service}, "service")
    return {"service": service, "result": result, "toxic": toxic_result,
            "already": [] if result == "restored" else [service]}


# -- helpers -------------------------------------------------------------------------------------------


def _select(namespace: str, label_selector: Selector, field_selector: str | None, name_pattern: str | None,
            count: int | None, percentage: float | None, all: bool, at_least_one: bool, seed: int | None,
            kubeconfig: str | None, context: str | None, in_cluster: bool | None,
            configuration: dict[str, Any] | None, owners: bool = True, keep: Any = None) -> PodSelection:
    """Validate selector, mode and seed (before any API call), connect, then choose the pods."""
    selector = selection.parse_pod_selector(namespace, label_selector, field_selector, name_pattern)
    mode = selection.parse_mode(count, percentage, all, at_least_one)
    seed = selection.check_seed(seed)
    conn = connect(kubeconfig, context, in_cluster, configuration)
    return select_pods(conn, selector, mode, seed, owners=owners, keep=keep)


def _holds(sel: PodSelection) -> list[dict[str, Any]]:
    """For keep_down: each owning workload, its replica count, the count to hold it at, and its chosen pods."""
    groups: dict[str, list[str]] = {}
    for name in sel.names:
        owner = sel.owners.get(name)
        if owner is None or owner.kind not in SCALABLE:
            raise DriverError(f"keep_down: pod {name} is owned by {owner.key if owner else 'nothing'}; only the pods "
                              "of a Deployment or StatefulSet can be kept down")
        groups.setdefault(owner.key, []).append(name)
    holds = []
    for pods in groups.values():
        owner = sel.owners[pods[0]]
        assert owner is not None
        obj = read_workload(sel.conn, sel.namespace, owner.kind, owner.name)
        backups.refuse_skipped(obj, owner.kind)
        backups.refuse_stacked(obj, REPLICAS_BACKUP, "delete_pods(keep_down)", "restore_scale")
        replicas = int((obj.get("spec") or {}).get("replicas") or 0)
        if owner.kind == "StatefulSet":
            top = {f"{owner.name}-{i}" for i in range(replicas - len(pods), replicas)}
            if set(pods) != top:
                raise DriverError(f"keep_down: StatefulSet {owner.name} scales down from its highest ordinals "
                                  f"({', '.join(sorted(top))}), not {', '.join(pods)}: select those pods "
                                  "(e.g. name_pattern)")
        holds.append({"kind": owner.kind, "name": owner.name, "uid": (obj.get("metadata") or {}).get("uid"),
                      "replicas": replicas, "held_at": max(replicas - len(pods), 0), "pods": pods})
    return holds


def _hold(sel: PodSelection, holds: list[dict[str, Any]]) -> None:
    """Mark the chosen pods cheapest to delete (a ReplicaSet then removes exactly them), record, scale down."""
    marked = [p for h in holds if h["kind"] == "Deployment" for p in h["pods"]]
    concurrently(marked, lambda name: _patch_pod(sel.conn, sel.namespace, name, {
        "metadata": {"annotations": {DELETION_COST: LOWEST_DELETION_COST}}}, missing_ok=True), "mark pods")
    for hold in holds:
        _annotate(sel.conn, hold["kind"], sel.namespace, hold["name"], {REPLICAS_BACKUP: str(hold["replicas"])})
        patch_replicas(sel.conn, sel.namespace, hold["kind"], hold["name"], hold["held_at"])


def _workload(hold: dict[str, Any]) -> dict[str, Any]:
    return {"kind": hold["kind"], "name": hold["name"], "uid": hold["uid"], "replicas": hold["replicas"]}


def _workload_items(workloads: Any) -> dict[str, tuple[str, str, str | None, int | None]]:
    """``{"Deployment/x": (kind, name, uid, replicas)}`` from record dicts or ``kind/name`` strings."""
    if not isinstance(workloads, list) or not workloads:
        raise DriverError(f"workloads must be a non-empty list, got {workloads!r}")
    items: dict[str, tuple[str, str, str | None, int | None]] = {}
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


def _delete_pod(conn: Connection, pod: dict[str, Any], grace_period: int | None) -> str:
    meta = pod["metadata"]
    body: dict[str, Any] = {"preconditions": {"uid": meta.get("uid")}} if meta.get("uid") else {}
    if grace_period is not None:
        body["gracePeriodSeconds"] = grace_period
    from drivers.kubernetes.client import ApiConflict

    try:
        conn.call(f"delete pod {meta['namespace']}/{meta['name']}", "core", "delete_namespaced_pod", meta["name"],
                  meta["namespace"], body=body)
    except TargetNotFound:
        return "already gone"
    except ApiConflict:
        return "already replaced (a new pod has this name): not deleted"
    return "deleted"


def _patch_pod(conn: Connection, namespace: str, name: str, body: dict[str, Any], missing_ok: bool = False) -> None:
    try:
        conn.call(f"patch pod {namespace}/{name}", "core", "patch_namespaced_pod", name, namespace, body=body)
    except TargetNotFound:
        if not missing_ok:
            raise


def _label_pod(conn: Connection, namespace: str, name: str, labels: dict[str, Any], missing_ok: bool = False) -> None:
    _patch_pod(conn, namespace, name, {"metadata": {"labels": labels}}, missing_ok)


def _annotate(conn: Connection, kind: str, namespace: str, name: str, annotations: dict[str, Any]) -> None:
    api, noun = SCALABLE[kind]
    conn.call(f"annotate {kind.lower()} {namespace}/{name}", api, f"patch_namespaced_{noun}", name, namespace,
              body={"metadata": {"annotations": annotations}})


def _restart(conn: Connection, namespace: str, workloads: list[tuple[str, str]]) -> list[str]:
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for kind, name in workloads:
        restart_workload(conn, namespace, kind, name, at)
    return [f"{kind}/{name}" for kind, name in workloads]


def _ready_proxy_pods(conn: Connection, namespace: str, labels: dict[str, str]) -> list[str]:
    from drivers.kubernetes.targets import pod_ready

    text = ",".join(f"{k}={v}" for k, v in labels.items())
    listed = conn.call(f"list pods in {namespace}", "core", "list_namespaced_pod", namespace,
                       label_selector=text) or {}
    chooser = selection.parse_label_selector(labels)
    assert chooser is not None
    ready = sorted(p["metadata"]["name"] for p in listed.get("items") or []
                   if chooser.matches(p["metadata"].get("labels")) and pod_ready(p))
    if not ready:
        raise DriverError(f"no ready fault-proxy pod matches {text} in {namespace}: rerouting the Service there "
                          "would be an outage, not latency (deploy/kubernetes/fault-proxy.yaml)")
    return ready


def _service_port(ports: list[dict[str, Any]], port: int | str | None, where: str) -> int:
    if not ports:
        raise DriverError(f"service {where} has no ports")
    if port is None:
        if len(ports) > 1:
            raise DriverError(f"service {where} has {len(ports)} ports: say which with port "
                              f"({', '.join(str(p.get('name') or p.get('port')) for p in ports)})")
        return 0
    for index, entry in enumerate(ports):
        if port in (entry.get("port"), entry.get("name")):
            return index
    raise DriverError(f"service {where} has no port {port!r}")


def _workload_population(conn: Connection, namespace: str, kind: str) -> list[str]:
    api, noun = SCALABLE[kind]
    listed = conn.call(f"list {kind.lower()}s in {namespace}", api, f"list_namespaced_{noun}", namespace) or {}
    return sorted(w["metadata"]["name"] for w in listed.get("items") or []
                  if not selection.is_skipped(w["metadata"].get("labels") or {}))


def _equality_terms(value: Selector, what: str) -> list[tuple[str, str]]:
    parsed = selection.parse_label_selector(value)
    if parsed is None or not parsed.requirements or any(r.op != "=" for r in parsed.requirements):
        raise DriverError(f"{what} must be labels 'key=value' (or a mapping), got {value!r}")
    return [(r.key, r.values[0]) for r in parsed.requirements]


def _pod_refs(pods: Any) -> dict[str, str | None]:
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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _change_id() -> str:
    return uuid.uuid4().hex[:8]


def _undo(func: str, conn: Connection, **arguments: Any) -> dict[str, Any]:
    return {"func": f"{MODULE}.{func}", "arguments": {**arguments, **conn.where.arguments()}}


def _start_watchdog(record: ChangeRecord, ttl: float, func: str, arguments: dict[str, Any]) -> None:
    start_record_watchdog(record, ttl, f"{MODULE}.{func}", arguments)


def _stop_watchdogs(func: str, namespace: str, names: set[str], key: str, single: bool = False) -> None:
    """Stop the TTL watchdogs of ``func`` in ``namespace`` whose every object was just handled here."""

    def covered(arguments: dict[str, Any]) -> bool:
        if arguments.get("namespace") != namespace:
            return False
        theirs = arguments.get(key)
        if single or isinstance(theirs, str):
            return theirs in names
        found = {t.get("name") if isinstance(t, dict) else str(t).rpartition("/")[2] for t in theirs or []}
        return bool(found) and found <= names

    stop_covered(f"{MODULE}.{func}", covered)


def _already(results: dict[str, str], *changed: str) -> list[str]:
    return [key for key, result in results.items() if not result.startswith(changed)]


def _grace(value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise DriverError(f"grace_period must be an integer >= 0 (seconds; 0 = kill at once) or null, got {value!r}")


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise DriverError(f"{name} must be a positive number of seconds, got {value!r}")


def _ttl(ttl: Any) -> None:
    if ttl is not None:
        _positive("ttl", ttl)


def _port(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise DriverError(f"{name} must be a port number in 1..65535, got {value!r}")
