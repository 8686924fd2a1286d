"""The NetworkPolicy of block_metrics_port: how it is built, which policies already select the pods, and
deleting exactly the one mlchaos created (its labels, name and uid)."""

from __future__ import annotations

from typing import Any

from drivers.kubernetes import selection
from drivers.kubernetes.client import Connection
from drivers.kubernetes.targets import PodSelection
from mlchaos.driver_kit import TargetNotFound

BLOCK_LABEL = "mlchaos.io/blocked"  # on the pods a metrics NetworkPolicy selects
CHANGE_LABEL = "mlchaos.io/change"
MANAGED_BY = {"app.kubernetes.io/managed-by": "mlchaos"}


def block_policy(namespace: str, name: str, change: str, port: int, scrapers: list[tuple[str, str]]) -> dict:
    """Allow every port but `port` to everyone; with scrapers, `port` too, except from the scraper pods."""
    ports: list[dict[str, Any]] = []
    if port > 1:
        ports.append({"protocol": "TCP", "port": 1, **({"endPort": port - 1} if port - 1 > 1 else {})})
    if port < 65535:
        ports.append({"protocol": "TCP", "port": port + 1, **({"endPort": 65535} if port + 1 < 65535 else {})})
    ports += [{"protocol": "UDP", "port": 1, "endPort": 65535}, {"protocol": "SCTP", "port": 1, "endPort": 65535}]
    ingress: list[dict[str, Any]] = [{"ports": ports}]
    if scrapers:  # not(a and b) = not a or not b: one peer per label, any namespace
        peers = [{"namespaceSelector": {}, "podSelector": {"matchExpressions": [
            {"key": key, "operator": "NotIn", "values": [value]}]}} for key, value in scrapers]
        ingress.append({"from": peers, "ports": [{"protocol": "TCP", "port": port}]})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace, "labels": {**MANAGED_BY, CHANGE_LABEL: change}},
            "spec": {"podSelector": {"matchLabels": {BLOCK_LABEL: change}}, "policyTypes": ["Ingress"],
                     "ingress": ingress}}


def policies_selecting(sel: PodSelection) -> list[str]:
    """Ingress policies already selecting a target pod: they are additive, and may keep the port open."""
    listed = sel.conn.call(f"list networkpolicies in {sel.namespace}", "networking",
                           "list_namespaced_network_policy", sel.namespace) or {}
    found = []
    for policy in listed.get("items") or []:
        spec = policy.get("spec") or {}
        if "Ingress" not in (spec.get("policyTypes") or ["Ingress"]):
            continue
        chooser = selection.selector_from_object(spec.get("podSelector"))
        if any(chooser.matches(p["metadata"].get("labels")) for p in sel.pods):
            found.append(policy["metadata"]["name"])
    return sorted(found)


def ours(policy: dict[str, Any], change: str | None) -> bool:
    """True when the policy carries mlchaos' labels (and this change's, when given)."""
    labels = policy["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in MANAGED_BY.items()) and CHANGE_LABEL in labels \
        and (change is None or labels[CHANGE_LABEL] == change)


def delete_policy(conn: Connection, namespace: str, name: str, change: str | None, uid: str | None) -> str:
    """Delete the policy only when it is the one mlchaos created (labels, and uid when known)."""
    try:
        policy = conn.call(f"get networkpolicy {namespace}/{name}", "networking", "read_namespaced_network_policy",
                           name, namespace)
    except TargetNotFound:
        return "already deleted"
    actual = (policy.get("metadata") or {}).get("uid")
    if not ours(policy, change) or (uid and actual != uid):
        return "not the one mlchaos created (other labels or uid): left alone"
    body = {"preconditions": {"uid": actual}} if actual else {}
    try:
        conn.call(f"delete networkpolicy {namespace}/{name}", "networking", "delete_namespaced_network_policy", name,
                  namespace, body=body)
    except TargetNotFound:
        return "already deleted"
    return "deleted"

