"""Rule groups as a Prometheus Operator ``PrometheusRule`` (monitoring.coreos.com/v1), and its structural check.

Where the Prometheus Operator manages rules (kube-prometheus-stack), Prometheus loads the
PrometheusRule objects its ``ruleSelector`` (labels, e.g. ``release: kube-prometheus-stack``)
and ``ruleNamespaceSelector`` pick. :func:`prometheus_rule` wraps rule groups in one, with the
labels given; :func:`problems` checks an object's shape as the CRD's schema does (the
``openAPIV3Schema`` of prometheus-operator 0.82's ``monitoring.coreos.com_prometheusrules.yaml``:
required fields, types, duration patterns; plus Kubernetes names and labels, and unknown fields,
which a structural schema would silently drop), so a bad object is refused here, not ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from mlchaos.errors import InvalidInput

API_VERSION = "monitoring.coreos.com/v1"
KIND = "PrometheusRule"
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?")
_RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
_GROUP_KEYS = {"name", "rules", "interval", "limit", "partial_response_strategy", "query_offset", "labels"}
_DURATION = re.compile(r"0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?")


def prometheus_rule(groups: list[dict[str, Any]], name: str, namespace: str,
                    labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A PrometheusRule object holding ``groups`` (raises InvalidInput when it would not be a valid one)."""
    obj = {"apiVersion": API_VERSION, "kind": KIND,
           "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
           "spec": {"groups": groups}}
    found = problems(obj)
    if found:
        raise InvalidInput("not a valid PrometheusRule: " + "; ".join(found))
    return obj


def parse_labels(pairs: Iterable[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a label mapping (InvalidInput naming the bad pair)."""
    labels: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals:
            raise InvalidInput(f"a label is KEY=VALUE, got {pair!r}")
        labels[key.strip()] = value.strip()
    found = label_problems(labels, "label")
    if found:
        raise InvalidInput("; ".join(found))
    return labels


def label_problems(labels: Any, where: str) -> list[str]:
    """What is wrong with a Kubernetes label mapping (keys ``[prefix/]name``, values of at most 63 characters)."""
    if not isinstance(labels, dict):
        return [f"{where}s must be a mapping of strings, got {labels!r}"]
    found = []
    for key, value in labels.items():
        prefix, slash, name = str(key).rpartition("/")
        if not isinstance(key, str) or not _LABEL_NAME.fullmatch(name) or \
                (slash and (len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix))):
            found.append(f"{where} key {key!r} is not a valid Kubernetes label name ([prefix/]name)")
        if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
            found.append(f"{where} {key!r}: value {value!r} is not a valid label value (at most 63 of [A-Za-z0-9-_.],"
                         " starting and ending alphanumeric)")
    return found


def problems(obj: Any) -> list[str]:
    """Every structural problem of a PrometheusRule object (empty: valid), each naming its place."""
    if not isinstance(obj, dict):
        return ["a PrometheusRule must be a mapping"]
    found = []
    if obj.get("apiVersion") != API_VERSION or obj.get("kind") != KIND:
        found.append(f"apiVersion/kind must be {API_VERSION} {KIND}, got {obj.get('apiVersion')} {obj.get('kind')}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [*found, "metadata must be a mapping"]
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        found.append(f"metadata.name {name!r} is not a DNS subdomain (lower-case letters, digits, '-', '.')")
    if namespace is not None and (not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace)):
        found.append(f"metadata.namespace {namespace!r} is not a DNS label")
    found += label_problems(meta.get("labels") or {}, "metadata.labels")
    groups = (obj.get("spec") or {}).get("groups") if isinstance(obj.get("spec"), dict) else None
    if not isinstance(groups, list) or not groups:
        return [*found, "spec.groups must be a non-empty list"]
    names = [g.get("name") for g in groups if isinstance(g, dict)]
    if len(set(names)) != len(names):
        found.append("spec.groups: group names must be unique")
    for i, group in enumerate(groups):
        found += _group_problems(group, f"spec.groups[{i}]")
    return found


def _group_problems(group: Any, where: str) -> list[str]:
    if not isinstance(group, dict):
        return [f"{where} must be a mapping"]
    found = [f"{where}.{key}: unknown field" for key in group if key not in _GROUP_KEYS]
    if not isinstance(group.get("name"), str) or not group["name"]:
        found.append(f"{where}.name is required (a non-empty string)")
    found += _duration_problems(group, ("interval", "query_offset"), where)
    if "limit" in group and (not isinstance(group["limit"], int) or isinstance(group["limit"], bool)):
        found.append(f"{where}.limit must be an integer")
    rules = group.get("rules")
    if not isinstance(rules, list):
        return [*found, f"{where}.rules must be a list"]
    for j, rule in enumerate(rules):
        here = f"{where}.rules[{j}]"
        if not isinstance(rule, dict):
            found.append(f"{here} must be a mapping")
            continue
        found += [f"{here}.{key}: unknown field" for key in rule if key not in _RULE_KEYS]
        if ("alert" in rule) == ("record" in rule):
            found.append(f"{here}: exactly one of alert or record")
        if not isinstance(rule.get("expr"), str | int) or rule.get("expr") == "":
            found.append(f"{here}.expr is required (a PromQL expression)")
        found += _duration_problems(rule, ("for", "keep_firing_for"), here)
        for key in ("labels", "annotations"):
            value = rule.get(key)
            if value is not None and (not isinstance(value, dict) or
                                      not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
                found.append(f"{here}.{key} must map strings to strings")
    return found


def _duration_problems(item: dict[str, Any], keys: tuple[str, ...], where: str) -> list[str]:
    return [f"{where}.{key}: {item[key]!r} is not a Prometheus duration (e.g. 30s, 5m, 1h30m)" for key in keys
            if key in item and (not isinstance(item[key], str) or not item[key] or not _DURATION.fullmatch(item[key]))]
