"""What the Kubernetes faults share: select pods, describe them, find their owners, patch them, act on many at once.

A :class:`PodSelection` is the validated selector and mode, the seed, the chosen pods (as
the API server returned them), the names of every eligible pod (the record's
``population``) and each chosen pod's owner, found through ``ownerReferences``
(pod -> ReplicaSet -> Deployment; pod -> StatefulSet). Listing the pods is one API call
whatever their number; resolving owners is one call per distinct ReplicaSet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from drivers._common import concurrency
from drivers.kubernetes import selection
from drivers.kubernetes.client import Connection, connect
from mlchaos.driver_kit import ChangeRecord, Target, TargetNotFound

T = TypeVar("T")
SERVICE_LABELS = ("mlchaos.service", "app.kubernetes.io/name", "app")  # the first present names the service
DRIVER = "kubernetes"
THREAD_PREFIX = "mlchaos-k8s"  # the threads of concurrently/each


@dataclass(frozen=True)
class Owner:
    """The workload that owns a pod: its top-level controller (Deployment, StatefulSet, DaemonSet, Job...)."""

    kind: str
    name: str
    uid: str | None = None
    via: str | None = None  # the ReplicaSet between a Deployment and its pods

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.via:
            found["replicaset"] = self.via
        return found

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class PodSelection:
    """The chosen pods, the eligible ones they were chosen from, and how (selector, mode, seed)."""

    conn: Connection
    selector: selection.PodSelector
    mode: selection.Mode
    seed: int
    pods: list[dict[str, Any]]
    population: list[str]
    owners: dict[str, Owner | None] = field(default_factory=dict)  # pod name -> owner

    @property
    def namespace(self) -> str:
        return self.selector.namespace

    @property
    def names(self) -> list[str]:
        return [p["metadata"]["name"] for p in self.pods]

    def parameters(self, **extra: Any) -> dict[str, Any]:
        """Selector, mode and seed (to replay the drill) plus the action's own parameters."""
        return {**self.selector.describe(), **self.mode.describe(), "seed": self.seed, **extra}

    def targets(self) -> list[Target]:
        return [pod_target(p, self.owners.get(p["metadata"]["name"])) for p in self.pods]

    def record(self, action: str, undo: dict[str, Any], dry_run: bool, **parameters: Any) -> ChangeRecord:
        """The change record of ``action`` on these pods (announce it before acting)."""
        return ChangeRecord(driver=DRIVER, action=action, targets=self.targets(),
                            parameters=self.parameters(**parameters), undo=undo, dry_run=dry_run,
                            environment=self.conn.environment, population=list(self.population))


def connect_namespace(namespace: str, kubeconfig: str | None, context: str | None, in_cluster: bool | None,
                      configuration: dict[str, Any] | None) -> Connection:
    """Check the namespace's name (before any API call), then connect (:func:`~drivers.kubernetes.client.connect`)."""
    selection.check_namespace(namespace)
    return connect(kubeconfig, context, in_cluster, configuration)


def select(namespace: str, label_selector: str | dict[str, Any] | None, field_selector: str | None,
           name_pattern: str | None, count: int | None, percentage: float | None, all: bool, at_least_one: bool,
           seed: int | None, kubeconfig: str | None, context: str | None, in_cluster: bool | None,
           configuration: dict[str, Any] | None, owners: bool = True,
           keep: Callable[[dict[str, Any]], bool] | None = None) -> PodSelection:
    """Validate selector, mode and seed (before any API call), connect, then choose the pods."""
    selector = selection.parse_pod_selector(namespace, label_selector, field_selector, name_pattern)
    mode = selection.parse_mode(count, percentage, all, at_least_one)
    seed = selection.check_seed(seed)
    conn = connect(kubeconfig, context, in_cluster, configuration)
    return select_pods(conn, selector, mode, seed, owners=owners, keep=keep)


def select_pods(conn: Connection, selector: selection.PodSelector, mode: selection.Mode, seed: int,
                owners: bool = True, keep: Callable[[dict[str, Any]], bool] | None = None) -> PodSelection:
    """List the namespace's pods matching the selector (one call), choose, and resolve the chosen pods' owners.

    ``keep`` narrows the eligible pods further (e.g. only those carrying an annotation).
    """
    pool = selection.eligible(list_pods(conn, selector), selector)
    if keep is not None:
        pool = [p for p in pool if keep(p)]
    chosen = selection.choose(pool, selector, mode, seed)
    found = PodSelection(conn, selector, mode, seed, chosen, [p["metadata"]["name"] for p in pool])
    if owners:
        found.owners = resolve_owners(conn, selector.namespace, chosen)
    return found


def list_pods(conn: Connection, selector: selection.PodSelector) -> list[dict[str, Any]]:
    """The pods the API server lists for the selector (label and field selectors applied server-side)."""
    answer = conn.call(f"list pods in {selector.namespace}", "core", "list_namespaced_pod", selector.namespace,
                       **selector.query())
    return list((answer or {}).get("items") or [])


def resolve_owners(conn: Connection, namespace: str, pods: Sequence[Mapping[str, Any]]) -> dict[str, Owner | None]:
    """Each pod's top-level owner (None for a bare pod); one GET per distinct ReplicaSet."""
    replicasets: dict[str, Owner] = {}
    found: dict[str, Owner | None] = {}
    for pod in pods:
        ref = controller_ref(pod)
        name = pod["metadata"]["name"]
        if ref is None:
            found[name] = None
        elif ref["kind"] != "ReplicaSet":
            found[name] = Owner(ref["kind"], ref["name"], ref.get("uid"))
        else:
            if ref["name"] not in replicasets:
                replicasets[ref["name"]] = _replicaset_owner(conn, namespace, ref)
            found[name] = replicasets[ref["name"]]
    return found


def controller_ref(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def pod_target(pod: Mapping[str, Any], owner: Owner | None) -> Target:
    """A pod as a change-record target: namespace, labels, uid, node, owner, pod_ip (and service, instance)."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    labels = dict(meta.get("labels") or {})
    details: dict[str, Any] = {
        "namespace": meta.get("namespace"),
        "labels": labels,
        "uid": meta.get("uid"),
        "node": spec.get("nodeName"),
        "owner": owner.describe() if owner else None,
        "pod_ip": status.get("podIP"),
        "phase": status.get("phase"),
        "ready": pod_ready(pod),
        "restarts": restart_count(pod),
    }
    service = next((labels[k] for k in SERVICE_LABELS if labels.get(k)), None)
    if service:
        details["service"] = service
    port = first_port(pod)
    if status.get("podIP") and port:
        details["instance"] = f"{status['podIP']}:{port}"  # what a Prometheus pod/endpoints target is called
    return Target(kind="pod", name=str(meta.get("name")), details=details)


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """True when the pod's Ready condition is True (and it is not being deleted)."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def restart_count(pod: Mapping[str, Any]) -> int:
    """Restarts of all the pod's containers together."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def first_port(pod: Mapping[str, Any]) -> int | None:
    """The pod's serving port: one named http or metrics, else the first container port."""
    ports = [p for c in (pod.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []]
    for wanted in ("http", "metrics"):
        for port in ports:
            if port.get("name") == wanted and port.get("containerPort"):
                return int(port["containerPort"])
    return int(ports[0]["containerPort"]) if ports and ports[0].get("containerPort") else None


def patch_pod(conn: Connection, namespace: str, name: str, body: dict[str, Any], missing_ok: bool = False) -> None:
    """A merge patch of one pod (a pod gone meanwhile is fine with ``missing_ok``)."""
    try:
        conn.call(f"patch pod {namespace}/{name}", "core", "patch_namespaced_pod", name, namespace, body=body)
    except TargetNotFound:
        if not missing_ok:
            raise


def label_pod(conn: Connection, namespace: str, name: str, labels: dict[str, Any], missing_ok: bool = False) -> None:
    """Set (a value) or remove (None) labels of one pod."""
    patch_pod(conn, namespace, name, {"metadata": {"labels": labels}}, missing_ok)


def concurrently(items: Sequence[str], work: Callable[[str], T], what: str) -> list[T]:
    """Run ``work(item)`` for every pod (or object) name at once; one DriverError naming every failure."""
    return concurrency.concurrently(items, work, what, thread_prefix=THREAD_PREFIX)


def each(names: list[str], work: Callable[[str], str], what: str) -> dict[str, str]:
    """:func:`concurrently`, as ``{name: result}``."""
    return concurrency.each(names, work, what, thread_prefix=THREAD_PREFIX)


def _replicaset_owner(conn: Connection, namespace: str, ref: Mapping[str, Any]) -> Owner:
    try:
        replicaset = conn.call(f"get replicaset {namespace}/{ref['name']}", "apps", "read_namespaced_replica_set",
                               ref["name"], namespace)
    except TargetNotFound:
        return Owner("ReplicaSet", ref["name"], ref.get("uid"))
    top = controller_ref(replicaset or {})
    if top is None:
        return Owner("ReplicaSet", ref["name"], ref.get("uid"))
    return Owner(top["kind"], top["name"], top.get("uid"), via=ref["name"])
