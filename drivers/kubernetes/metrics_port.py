"""Kubernetes telemetry fault: deny ingress to pods' metrics port with a NetworkPolicy, and unblock_metrics_port.

The policy (:mod:`drivers.kubernetes.netpol`) selects exactly the chosen pods, which get the
label ``mlchaos.io/blocked=<change>``. Part of :mod:`drivers.kubernetes.actions` (experiments
and change records name the functions there).
"""

from __future__ import annotations

from typing import Any

from drivers._common import checks
from drivers._common.undo import already, stop_told
from drivers.kubernetes import netpol
from drivers.kubernetes.faults import ROLLBACKS, SAFETY_TTL, Selector, change_id, equality_terms, stop_watchdogs, undo
from drivers.kubernetes.netpol import BLOCK_LABEL, CHANGE_LABEL, MANAGED_BY
from drivers.kubernetes.targets import concurrently, connect_namespace, label_pod, select
from mlchaos.driver_kit import DriverError, announce, undo_function


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
    checks.port("port", port)
    scraper_terms = equality_terms(scrapers, "scrapers") if scrapers is not None else []
    checks.ttl(ttl)
    sel = select(namespace, label_selector, field_selector, name_pattern, count, percentage, all, at_least_one,
                 seed, kubeconfig, context, in_cluster, configuration, owners=False)
    change = change_id()
    policy = f"mlchaos-block-{port}-{change}"
    body = netpol.block_policy(namespace, policy, change, port, scraper_terms)
    others = netpol.policies_selecting(sel)
    restore = undo("unblock_metrics_port", sel.conn, namespace=namespace, policy=policy, change=change,
                   pods=[{"name": p["metadata"]["name"], "uid": p["metadata"].get("uid")} for p in sel.pods])
    record = sel.record("block-metrics-port", restore, dry_run, port=port, policy=policy, change=change,
                        scrapers=dict(scraper_terms) or None, other_policies=others, ttl=ttl)
    announce(record)
    if dry_run:
        return record.to_dict()
    try:
        created = sel.conn.call(f"create networkpolicy {namespace}/{policy}", "networking",
                                "create_namespaced_network_policy", namespace, body=body)
        record.undo["arguments"]["policy_uid"] = (created or {}).get("metadata", {}).get("uid")
        concurrently(sel.names, lambda name: label_pod(sel.conn, namespace, name, {BLOCK_LABEL: change}),
                     "label pods")
    except Exception:
        unblock_metrics_port(namespace, policy=policy, change=change, **sel.conn.where.arguments())
        raise
    if ttl is not None:
        ROLLBACKS.start_watchdog(record, ttl, "unblock_metrics_port", dict(record.undo["arguments"]))
    return record.to_dict()


@undo_function
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
    stop_told(watchdog_pid)
    conn = connect_namespace(namespace, kubeconfig, context, in_cluster, configuration)
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
        concurrently(labelled, lambda name: label_pod(conn, namespace, name, {BLOCK_LABEL: None}, missing_ok=True),
                     "remove the label")
    except DriverError as exc:
        failures.append(str(exc))
    stop_watchdogs("unblock_metrics_port", namespace, set(names), "policy", single=True)
    if failures:
        raise DriverError("unblock_metrics_port: " + "; ".join(failures))
    if not names and policy is None:
        policies["(none)"] = "already: no NetworkPolicy of mlchaos in the namespace"
    return {"namespace": namespace, "policies": policies, "unlabelled_pods": labelled,
            "already": already(policies, "deleted")}
