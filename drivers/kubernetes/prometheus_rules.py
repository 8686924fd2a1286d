"""A drill's PrometheusRule (Prometheus Operator): creating it, and deleting exactly the one mlchaos created.

The object is named ``mlchaos-drill-<name>`` and labelled ``app.kubernetes.io/managed-by:
mlchaos``, ``mlchaos.io/drill: <name>`` and ``mlchaos.io/change: <change id>``, plus the labels
the operator's ``ruleSelector`` needs (``release: kube-prometheus-stack``...). It is never
updated: a leftover of an earlier run makes the create fail (409), naming it. The delete reads
the object and deletes it only when it carries this change's labels (and uid, when known),
with a uid precondition. deploy/kubernetes/admission-policy.yaml holds the runner to exactly
such objects, with alert rules only.
"""

from __future__ import annotations

import re
from typing import Any

from drivers.kubernetes.client import ApiConflict, Connection
from mlchaos.driver_kit import DriverError, TargetNotFound, alert_rules

GROUP, VERSION, PLURAL = "monitoring.coreos.com", "v1", "prometheusrules"
PREFIX = "mlchaos-drill-"
DRILL_LABEL = "mlchaos.io/drill"
CHANGE_LABEL = "mlchaos.io/change"
MANAGED_BY = {"app.kubernetes.io/managed-by": "mlchaos"}
OURS = (DRILL_LABEL, CHANGE_LABEL, *MANAGED_BY)
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,47}[a-z0-9])?")  # mlchaos-drill- + 49: a DNS label


def object_name(name: str) -> str:
    """``mlchaos-drill-<name>`` (DriverError when ``name`` is not a short DNS label)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DriverError(f"a PrometheusRule drill name must be a DNS label of at most 49 characters (lower-case"
                          f" letters, digits, '-'), got {name!r}")
    return PREFIX + name


def drill_rule(name: str, namespace: str, groups: list[dict[str, Any]], labels: dict[str, Any] | None,
               change: str) -> dict[str, Any]:
    """The PrometheusRule object of a drill (DriverError naming what is wrong with it)."""
    labels = dict(labels or {})
    clash = sorted(set(labels) & set(OURS))
    if clash:
        raise DriverError(f"labels: {', '.join(clash)} are set by mlchaos")
    for i, group in enumerate(groups):
        records = [r.get("record") for r in group.get("rules") or [] if isinstance(r, dict) and "record" in r]
        if records:
            raise DriverError(f"groups[{i}] has recording rules ({', '.join(map(str, records))}): a drill's"
                              " PrometheusRule holds alert rules only (a recorded series changes what others read)")
    obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PrometheusRule",
           "metadata": {"name": object_name(name), "namespace": namespace,
                        "labels": {**labels, **MANAGED_BY, DRILL_LABEL: name, CHANGE_LABEL: change}},
           "spec": {"groups": groups}}
    problems = alert_rules.prometheus_rule_problems(obj)
    if problems:
        raise DriverError("not a valid PrometheusRule: " + "; ".join(problems))
    return obj


def create(conn: Connection, obj: dict[str, Any]) -> dict[str, Any]:
    """Create the object; DriverError naming a leftover of an earlier run (409)."""
    meta = obj["metadata"]
    try:
        return conn.call(f"create prometheusrule {meta['namespace']}/{meta['name']}", "custom",
                         "create_namespaced_custom_object", GROUP, VERSION, meta["namespace"], PLURAL, body=obj) or {}
    except ApiConflict as exc:
        raise DriverError(f"PrometheusRule {meta['namespace']}/{meta['name']} already exists (left by an earlier"
                          f" run? `mlchaos recover`, or remove_rule_file with its name and namespace): {exc}") from None


def ours(obj: dict[str, Any], change: str | None) -> bool:
    """True when the object carries mlchaos' labels (and this change's, when given)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in MANAGED_BY.items()) and DRILL_LABEL in labels \
        and CHANGE_LABEL in labels and (change is None or labels[CHANGE_LABEL] == change)


def delete(conn: Connection, namespace: str, name: str, change: str | None, uid: str | None) -> str:
    """Delete the PrometheusRule only when it is the one mlchaos created (labels, and uid when known)."""
    what = f"prometheusrule {namespace}/{name}"
    try:
        obj = conn.call(f"get {what}", "custom", "get_namespaced_custom_object", GROUP, VERSION, namespace, PLURAL,
                        name)
    except TargetNotFound:
        return "already deleted"
    actual = (obj.get("metadata") or {}).get("uid")
    if not ours(obj, change) or (uid and actual != uid):
        return "not the one mlchaos created (other labels or uid): left alone"
    try:
        conn.call(f"delete {what}", "custom", "delete_namespaced_custom_object", GROUP, VERSION, namespace, PLURAL,
                  name, body={"preconditions": {"uid": actual}} if actual else {})
    except TargetNotFound:
        return "already deleted"
    except ApiConflict:
        return "replaced since (another uid): left alone"
    return "deleted"
