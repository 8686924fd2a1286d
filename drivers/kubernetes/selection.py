"""Which pods a Kubernetes fault hits: a namespace, a selector and a mode, validated before the API is asked.

Selector: a label selector (Kubernetes syntax ``app=model,tier in (a,b),!canary``, or a
mapping ``{app: model}``; ``null`` values mean "has the label") and/or a ``name_pattern``
(a regular expression on the pod name), optionally narrowed by a field selector
(``spec.nodeName=node-1,status.phase=Running``). An empty selector is an error, never
"every pod", and so is a label selector with only negative terms (``!x``, ``x!=y``,
``x notin (...)``): it would match almost everything. The label and field selectors are
sent to the API server *and* checked again here, so a pod is never chosen because a
server (or proxy) ignored a selector.

Eligible pods: matching, phase ``Running``, not being deleted, not labelled
``mlchaos.skip=true``, and not the pod mlchaos itself runs in. Modes and seeds are every
driver's (:mod:`drivers._common.selection`): ``count``, ``percentage`` (rounded down;
``at_least_one``) or ``all``; the choice is ``random.Random(seed).sample`` over the eligible
pods sorted by name, so the same seed over the same pods picks the same pods.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drivers._common import checks
from drivers._common import selection as common
from drivers._common.selection import SKIP_LABEL, Mode, check_seed, is_skipped, parse_mode
from mlchaos.driver_kit import DriverError

__all__ = ["SKIP_LABEL", "Mode", "check_seed", "parse_mode", "LabelSelector", "FieldSelector", "PodSelector",
           "parse_label_selector", "parse_field_selector", "parse_pod_selector", "check_namespace", "choose",
           "eligible", "is_skipped", "own_pod"]

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_KEY = re.compile(rf"^({_PREFIX}/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SET_TERM = re.compile(r"^(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ_TERM = re.compile(r"^(?P<key>[^\s!=()]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)$")
POSITIVE = frozenset({"=", "in", "exists"})
# the pod fields an API server accepts in a field selector, and where they are in a pod
POD_FIELDS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.restartPolicy": ("spec", "restartPolicy"),
    "spec.schedulerName": ("spec", "schedulerName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "spec.hostNetwork": ("spec", "hostNetwork"),
    "status.phase": ("status", "phase"),
    "status.podIP": ("status", "podIP"),
    "status.nominatedNodeName": ("status", "nominatedNodeName"),
}
POD_NAME_VARIABLE = "MLCHAOS_POD_NAME"  # set through the downward API (deploy/kubernetes/gameday-cronjob.yaml)
POD_NAMESPACE_VARIABLE = "MLCHAOS_POD_NAMESPACE"


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: ``key op values`` with op one of =, !=, in, notin, exists, !exists."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op in ("=", "in"):
            return self.key in labels and value in self.values
        return self.key not in labels or value not in self.values  # != and notin: a missing label matches

    def render(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!exists":
            return f"!{self.key}"
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{self.values[0]}"
        return f"{self.key} {self.op} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector: every requirement must hold."""

    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        return all(r.matches(labels or {}) for r in self.requirements)

    def render(self) -> str:
        """The canonical text sent to the API server (``labelSelector``)."""
        return ",".join(r.render() for r in self.requirements)

    @property
    def positive(self) -> bool:
        """True when at least one term narrows the selection (=, in, exists)."""
        return any(r.op in POSITIVE for r in self.requirements)


@dataclass(frozen=True)
class FieldSelector:
    """A parsed pod field selector (``field=value`` / ``field!=value`` terms)."""

    terms: tuple[tuple[str, str, str], ...]  # (field, "=" | "!=", value)

    def matches(self, pod: Mapping[str, Any]) -> bool:
        for field, op, value in self.terms:
            actual = _field(pod, field)
            if (actual == value) != (op == "="):
                return False
        return True

    def render(self) -> str:
        return ",".join(f"{field}{op}{value}" for field, op, value in self.terms)


@dataclass(frozen=True)
class PodSelector:
    """Namespace, label selector, field selector and name pattern; at least one of labels / name pattern."""

    namespace: str
    labels: LabelSelector | None = None
    fields: FieldSelector | None = None
    name_pattern: str | None = None

    def matches(self, pod: Mapping[str, Any]) -> bool:
        """True when the pod is in the namespace and matches every part of the selector."""
        meta = pod.get("metadata") or {}
        if meta.get("namespace") not in (None, self.namespace):
            return False
        if self.labels is not None and not self.labels.matches(meta.get("labels")):
            return False
        if self.fields is not None and not self.fields.matches(pod):
            return False
        return self.name_pattern is None or re.search(self.name_pattern, str(meta.get("name", ""))) is not None

    def query(self) -> dict[str, str]:
        """The ``label_selector`` / ``field_selector`` arguments of a list call."""
        found = {}
        if self.labels is not None:
            found["label_selector"] = self.labels.render()
        if self.fields is not None:
            found["field_selector"] = self.fields.render()
        return found

    def describe(self) -> dict[str, Any]:
        """JSON-ready form, for change records and error messages."""
        return {"namespace": self.namespace, "label_selector": self.labels.render() if self.labels else None,
                "field_selector": self.fields.render() if self.fields else None, "name_pattern": self.name_pattern}


def check_namespace(namespace: Any) -> str:
    """A valid namespace name (DriverError otherwise)."""
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise DriverError(f"namespace must be a Kubernetes namespace name, got {namespace!r}")
    return namespace


def parse_label_selector(value: str | Mapping[str, Any] | None) -> LabelSelector | None:
    """Parse a label selector (text or mapping); None for None; DriverError when malformed or empty."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        requirements = [_mapping_term(str(k), v) for k, v in value.items()]
    elif isinstance(value, str):
        requirements = [_text_term(term.strip()) for term in _split_terms(value)]
    else:
        raise DriverError(f"label_selector must be a string or a mapping, got {value!r}")
    if not requirements:
        raise DriverError(f"label_selector {value!r} is empty: it would select every pod")
    return LabelSelector(tuple(requirements))


def selector_from_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """The LabelSelector of an API object's selector (``matchLabels`` / ``matchExpressions``); empty matches all."""
    selector = selector or {}
    found = [Requirement(str(k), "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(expr.get("operator"))
        if op is None:
            raise DriverError(f"unknown label selector operator {expr.get('operator')!r}")
        found.append(Requirement(str(expr.get("key")), op, tuple(str(v) for v in expr.get("values") or ())))
    return LabelSelector(tuple(found))


def parse_field_selector(value: str | None) -> FieldSelector | None:
    """Parse a pod field selector; only the fields an API server supports for pods (:data:`POD_FIELDS`)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise DriverError(f"field_selector must be a non-empty string like 'spec.nodeName=node-1', got {value!r}")
    terms = []
    for term in value.split(","):
        match = re.fullmatch(r"\s*([A-Za-z.]+)\s*(==|=|!=)\s*([^,]*?)\s*", term)
        if match is None:
            raise DriverError(f"field_selector term {term.strip()!r} is not 'field=value' or 'field!=value'")
        field, op, text = match.groups()
        if field not in POD_FIELDS:
            raise DriverError(f"field_selector: pods cannot be selected by {field!r} (known: {', '.join(POD_FIELDS)})")
        terms.append((field, "!=" if op == "!=" else "=", text))
    return FieldSelector(tuple(terms))


def parse_pod_selector(namespace: str, label_selector: str | Mapping[str, Any] | None = None,
                       field_selector: str | None = None, name_pattern: str | None = None) -> PodSelector:
    """Validate the whole pod selector; an empty (or only negative) selector is an error, never 'every pod'."""
    check_namespace(namespace)
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector)
    if name_pattern is not None:
        checks.name_pattern(name_pattern)
    if name_pattern is None and (labels is None or not labels.positive):
        what = "an empty selector" if labels is None else f"label_selector {labels.render()!r} (only negative terms)"
        raise DriverError(f"{what} would select (almost) every pod in {namespace}: give a label_selector with at "
                          "least one 'key=value', 'key in (...)' or 'key' term, and/or name_pattern")
    return PodSelector(namespace, labels, fields, name_pattern)


def eligible(pods: Iterable[Mapping[str, Any]], selector: PodSelector, running_only: bool = True) -> list[dict]:
    """Matching pods (Running and not terminating when ``running_only``), skipped ones and mlchaos' own left out."""
    own = own_pod()
    found = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if not selector.matches(pod) or is_skipped(meta.get("labels") or {}):
            continue
        if own is not None and (meta.get("namespace"), meta.get("name")) == own:
            continue
        if running_only and (meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") != "Running"):
            continue
        found.append(dict(pod))
    return sorted(found, key=lambda p: p["metadata"]["name"])


def choose(pool: Sequence[dict], selector: PodSelector, mode: Mode, seed: int) -> list[dict]:
    """Pick the targets out of the eligible ``pool``: TargetNotFound when empty, DriverError when too many wanted."""
    return common.choose(pool, mode, seed, noun="running pod(s)", scope=f"match {_describe(selector)}",
                         nothing=f"no running pod matches {_describe(selector)} (pods labelled {SKIP_LABEL}=true "
                                 "are never targeted)", name=lambda p: p["metadata"]["name"], shown=20)


def own_pod() -> tuple[str, str] | None:
    """(namespace, name) of the pod mlchaos runs in, when it runs in one: never a target."""
    if not os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get(POD_NAME_VARIABLE):
        return None
    name = os.environ.get(POD_NAME_VARIABLE) or socket.gethostname()
    namespace = os.environ.get(POD_NAMESPACE_VARIABLE)
    if namespace is None:
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as handle:
                namespace = handle.read().strip()
        except OSError:
            namespace = ""
    return namespace, name


def _describe(selector: PodSelector) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in selector.describe().items() if v is not None)


def _field(pod: Mapping[str, Any], field: str) -> str:
    value: Any = pod
    for part in POD_FIELDS[field]:
        value = (value or {}).get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _split_terms(text: str) -> list[str]:
    """Split on the commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    if depth != 0:
        raise DriverError(f"label_selector {text!r}: unbalanced parentheses")
    return terms if text.strip() else []


def _text_term(term: str) -> Requirement:
    if not term:
        raise DriverError("label_selector has an empty term (two commas in a row?)")
    if term.startswith("!"):
        return Requirement(_key(term[1:].strip()), "!exists")
    match = _SET_TERM.match(term)
    if match:
        values = tuple(v.strip() for v in match["values"].split(","))
        if not values or any(not v for v in values):
            raise DriverError(f"label_selector term {term!r}: give at least one value, e.g. 'key in (a,b)'")
        return Requirement(_key(match["key"]), match["op"], tuple(_value(v) for v in values))
    match = _EQ_TERM.match(term)
    if match:
        return Requirement(_key(match["key"]), "!=" if match["op"] == "!=" else "=", (_value(match["value"]),))
    if re.fullmatch(r"[^\s!=(),]+", term):
        return Requirement(_key(term), "exists")
    raise DriverError(f"label_selector term {term!r} is not 'key', '!key', 'key=value', 'key!=value', "
                      "'key in (a,b)' or 'key notin (a,b)'")


def _mapping_term(key: str, value: Any) -> Requirement:
    if value is None:
        return Requirement(_key(key), "exists")
    if isinstance(value, list | tuple):
        if not value:
            raise DriverError(f"label_selector {key!r}: an empty list of values matches nothing")
        return Requirement(_key(key), "in", tuple(_value(_text(v)) for v in value))
    return Requirement(_key(key), "=", (_value(_text(value)),))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str | int | float):
        raise DriverError(f"label values must be strings, got {value!r}")
    return str(value)


def _key(key: str) -> str:
    name = key.rpartition("/")[2]
    if not _KEY.match(key) or len(name) > 63 or len(key) > 317:
        raise DriverError(f"invalid label key {key!r}")
    return key


def _value(value: str) -> str:
    if not _VALUE.match(value) or len(value) > 63:
        raise DriverError(f"invalid label value {value!r} (63 characters at most: letters, digits, '-', '_', '.')")
    return value
