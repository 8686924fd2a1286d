"""An in-memory Kubernetes API server over real HTTP, for the driver's tests and benchmark (needs ``kmock``).

Not used by any driver function: only ``tests/*/test_kubernetes_*.py`` and
``benchmarks/kubernetes_selection.py`` import it (``pip install -e '.[test]'`` brings kmock).

kmock's ``KubernetesEmulator`` keeps objects as plain JSON and serves list / get / create /
patch / delete over HTTP; the official ``kubernetes`` client talks to it unchanged
(:class:`EmulatedCluster` writes a kubeconfig that points at it). What it lacks, and
:class:`ApiServerEmulator` adds, because a real API server does it and the driver relies on it:

* ``metadata.uid``, ``creationTimestamp``, ``resourceVersion`` and ``namespace`` on create;
* label and field selectors on lists (kmock returns every object of the namespace);
* patch content types: a mapping sent as a JSON patch (or a list as a merge patch), or a
  patch without a content type, is refused, as a real server does;
* delete preconditions: 409 when ``preconditions.uid`` names another object;
* an empty list for a known resource that has no object yet (kmock answers 404);
* a log of every request as (verb, group, resource), for the RBAC tests; kmock's own request
  log is cut to the current request (kmock matches each request against all earlier ones, so
  its cost grows with the number served: 100 deletes took 1.8 s, then 9.9 s after 400 more);
* validating admission: every create, patch and delete is logged as a :class:`Write` (the
  object before and after), and when ``admission`` is set (``EmulatedCluster(admission=...)``,
  e.g. tests/support/admission_policy.py's ValidatingAdmissionPolicies) a write it denies is
  refused with 403 before it is stored, as a real server refuses it;
* the service proxy, ``/api/v1/namespaces/{ns}/services/{scheme}:{name}:{port}/proxy/{path}``
  (:meth:`EmulatedCluster.expose` says which real local HTTP server is a Service port's
  endpoint): the bearer token is checked (401), the request is logged in RBAC terms
  (``services/proxy``, the verb of its method, the name ``scheme:name:port``) and, when
  ``authorize`` is set, refused (403) unless granted; then the API server's work: 404 for an
  unknown Service, 503 for an unknown port or no endpoint, the Authorization header removed
  and the request forwarded, hop-by-hop headers dropped both ways, 503 "error trying to reach
  service" when the endpoint refuses the connection. Failures are ``Status`` objects, as a
  real server writes them. Only this path checks the token (kmock's own paths accept any).

No controller runs in the emulator: deleting a pod does not recreate it, scaling creates no
pod, a rollout restart replaces nothing, nothing becomes ready and no event is emitted.
:meth:`EmulatedCluster.start_controller` runs a tiny one in a thread (ReplicaSets and
StatefulSets keep their pod count, deletion cost honoured, template changes replace pods,
Deployment status and Available condition, Killing / SuccessfulCreate events) for the tests
that need one; each such test says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import kmock
import yaml
from kmock._internal import dicts, enums

from drivers.kubernetes.selection import parse_label_selector

RESOURCES = ("v1/pods", "v1/services", "v1/secrets", "v1/events", "v1/configmaps", "apps/v1/deployments",
             "apps/v1/replicasets", "apps/v1/statefulsets", "networking.k8s.io/v1/networkpolicies",
             "monitoring.coreos.com/v1/prometheusrules")  # the last: the Prometheus Operator's CRD
PODS, SERVICES, SECRETS, EVENTS = "v1/pods", "v1/services", "v1/secrets", "v1/events"
DEPLOYMENTS, REPLICASETS, STATEFULSETS = "apps/v1/deployments", "apps/v1/replicasets", "apps/v1/statefulsets"
NETWORKPOLICIES = "networking.k8s.io/v1/networkpolicies"
PROMETHEUSRULES = "monitoring.coreos.com/v1/prometheusrules"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
CONTROLLER_AGENT = "mlchaos-emulated-controller"
TOKEN = "emulator-token"  # the kubeconfig's bearer token (EmulatedCluster.kubeconfig_data)
SERVICE_PROXY = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/services/(?P<name>[^/]+)/proxy(?P<rest>/.*)?$")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "host", "content-length"})
PROXY_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete",
               "OPTIONS": "get"}


@dataclass(frozen=True)
class ApiCall:
    """One request the emulator served, as RBAC sees it."""

    method: str
    path: str
    verb: str  # get, list, watch, create, patch, update, delete, deletecollection
    group: str  # "" for the core API
    resource: str  # plural, with "/subresource" when there is one (deployments/scale)
    namespace: str | None
    name: str | None
    content_type: str | None


@dataclass(frozen=True)
class Write:
    """One create, patch or delete the emulator admitted: the object before and after (None where there is none)."""

    call: ApiCall
    old: dict[str, Any] | None
    new: dict[str, Any] | None


# operation, group, resource, namespace, name, object, oldObject -> the denials (empty: admitted)
Admission = Callable[[str, str, str, "str | None", "str | None", "dict[str, Any] | None", "dict[str, Any] | None"],
                     list[str]]
OPERATIONS = {enums.action.CREATE: "CREATE", enums.action.UPDATE: "UPDATE", enums.action.DELETE: "DELETE"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus what a real API server does that the driver relies on (see the module docstring)."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for resource in RESOURCES:
            self.resources[resource] = {}
        self.calls: list[ApiCall] = []
        self.writes: list[Write] = []
        self.admission: Admission | None = None
        self._versions = itertools.count(1)
        self.backends: dict[tuple[str, str, int], str] = {}  # (namespace, service, port) -> a real server's URL
        self.tokens: set[str] = {TOKEN}
        self.authorize: Callable[[ApiCall], bool] | None = None  # RBAC for the service proxy (None: all granted)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        match = SERVICE_PROXY.match(raw_request.rel_url.raw_path)
        if match is None:
            return await super().__call__(raw_request)
        return await self._service_proxy(raw_request, match)

    async def _service_proxy(self, raw: aiohttp.web.BaseRequest, match: re.Match[str]) -> aiohttp.web.StreamResponse:
        """The API server's service proxy (see the module docstring)."""
        namespace, proxy_name = match["namespace"], match["name"]
        scheme, name, port = _proxy_name(proxy_name)
        given = raw.headers.get("Authorization", "")
        if not given.startswith("Bearer ") or given[len("Bearer "):] not in self.tokens:
            return _status(401, "Unauthorized", "Unauthorized")
        call = ApiCall(raw.method, raw.rel_url.raw_path, PROXY_VERBS.get(raw.method, raw.method.lower()), "",
                       "services/proxy", namespace, proxy_name, raw.headers.get("Content-Type"))
        self.calls.append(call)
        if self.authorize is not None and not self.authorize(call):
            return _status(403, "Forbidden", f'services "{proxy_name}" is forbidden: User '
                           f'"system:serviceaccount:mlchaos:mlchaos" cannot {call.verb} resource "services/proxy" '
                           f'in API group "" in the namespace "{namespace}"')
        key = (kmock.resource(SERVICES), namespace, name)
        stored = self.objects[key] if key in self.objects and not self.objects[key].deleted else None
        if stored is None:
            return _status(404, "NotFound", f'services "{name}" not found')
        ports = (stored.raw.get("spec") or {}).get("ports") or []
        found = next((p for p in ports if str(p.get("port")) == port or p.get("name") == port), None) if port \
            else (ports[0] if len(ports) == 1 else None)
        if found is None:
            return _status(503, "ServiceUnavailable", f'no service port "{port}" found for service "{name}"')
        backend = self.backends.get((namespace, name, int(found["port"])))
        if backend is None:
            return _status(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
        query = raw.rel_url.raw_query_string
        target = backend.rstrip("/") + (match["rest"] or "/") + (f"?{query}" if query else "")
        headers = {k: v for k, v in raw.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "authorization"}
        body = await raw.read()
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as session, session.request(
                    raw.method, target, headers=headers, data=body or None, allow_redirects=False,
                    ssl=False if scheme == "https" else None, timeout=aiohttp.ClientTimeout(total=60)) as answer:
                content = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
                return aiohttp.web.Response(status=answer.status, body=content, headers=kept)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return _status(503, "ServiceUnavailable", f"error trying to reach service: {exc}")

    async def _handle(self, request: Any) -> Any:
        # kmock logs every request and matches each new one against the whole log: quadratic, so a
        # thousand deletes take minutes. Keep only the current one (this emulator's log is `calls`).
        del self._requests[:-1]
        if request.resource is not None:
            self.calls.append(_call(request))
            if request.action == enums.action.UPDATE:
                _check_patch(request)
            elif request.action == enums.action.CREATE and isinstance(request.data, dict):
                meta = request.data.setdefault("metadata", {})
                meta.setdefault("namespace", request.namespace)
                meta["uid"] = str(uuid.uuid4())
                meta["creationTimestamp"] = _now()
                meta["resourceVersion"] = str(next(self._versions))
            elif request.action == enums.action.DELETE and request.name and isinstance(request.data, dict):
                wanted = (request.data.get("preconditions") or {}).get("uid")
                key = (request.resource, request.namespace, request.name)
                if wanted and key in self.objects and not self.objects[key].deleted:
                    actual = (self.objects[key].raw.get("metadata") or {}).get("uid")
                    if actual != wanted:
                        raise kmock.KubernetesError(
                            status=409, reason="Conflict",
                            message=f"Precondition failed: UID in precondition: {wanted}, UID in object meta: {actual}")
            if request.action in OPERATIONS:
                self._admit(request)
        return await super()._handle(request)

    def _admit(self, request: Any) -> None:
        """Log the write with its object before and after; refuse it (403) when the admission hook denies it."""
        call = self.calls[-1]
        name = call.name
        if name is None and isinstance(request.data, dict):  # a create names the object in its body
            name = (request.data.get("metadata") or {}).get("name")
        key = (request.resource, request.namespace, name)
        stored = self.objects[key] if key in self.objects and not self.objects[key].deleted else None
        old = copy.deepcopy(dict(stored.raw)) if stored is not None else None
        if request.action == enums.action.CREATE:
            new = copy.deepcopy(request.data)
        elif request.action == enums.action.DELETE:
            new = None
        else:
            if old is None:
                return  # 404 from kmock
            try:
                new = dicts.patch_dict(copy.deepcopy(old), request.data)  # what kmock is about to store
            except Exception:  # noqa: BLE001 - a failed JSON-patch test: kmock refuses it
                return
        operation = OPERATIONS[request.action]
        if self.admission is not None and (operation == "CREATE" or old is not None):
            denied = self.admission(operation, call.group, call.resource, call.namespace, name, new, old)
            if denied:
                resource = f"{call.resource}.{call.group}" if call.group else call.resource
                raise kmock.KubernetesError(status=403, reason="Forbidden",
                                            message=f'{resource} "{name}" is forbidden: ' + "; ".join(denied))
        self.writes.append(Write(call, old, copy.deepcopy(dict(new)) if new is not None else None))

    async def _serve_list(self, request: Any) -> Any:
        answer = await super()._serve_list(request)
        labels = parse_label_selector(request.params.get("labelSelector") or None)
        fields = request.params.get("fieldSelector") or ""
        answer["items"] = [item for item in answer["items"]
                           if (labels is None or labels.matches((item.get("metadata") or {}).get("labels")))
                           and _fields_match(item, fields)]
        return answer


def container_status(name: str, image: str, ready: bool) -> dict[str, Any]:
    """A container's status with the fields a real API server always sets (``image`` and ``imageID`` are required
    by the official client's model: chaostoolkit-kubernetes' ``pods_in_phase`` reads them), running."""
    digest = hashlib.sha256(image.encode()).hexdigest()
    return {"name": name, "ready": ready, "restartCount": 0, "image": image, "imageID": f"{image}@sha256:{digest}",
            "started": True, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}


class EmulatedCluster:
    """The emulator in a background thread with its own event loop, and a kubeconfig that points at it.

    ``contexts`` are the kubeconfig's context names (all on this one server; the first is
    current), so a test can name a production-looking context and see the allow-list refuse it.
    """

    def __init__(self, directory: Path | str, contexts: tuple[str, ...] = ("staging-emulator",),
                 admission: Admission | None = None) -> None:
        self.directory = Path(directory)
        self.admission = admission
        self.contexts = contexts
        self.context = contexts[0]
        self.kubeconfig = self.directory / "kubeconfig"
        self.url = ""
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._controller: threading.Thread | None = None
        self._controller_stop = threading.Event()
        self._failure: BaseException | None = None
        self.emulator: ApiServerEmulator | None = None
        self._seen_pods: set[tuple[str, str, str]] = set()
        self._ips = itertools.count(10)
        self._born: dict[tuple[str, str], float] = {}
        self.ready_after = 0.0  # seconds before a pod the controller creates becomes Ready

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> EmulatedCluster:
        self._thread = threading.Thread(target=self._serve, name="kmock-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(20) or self._failure is not None:
            raise RuntimeError(f"the Kubernetes emulator did not start: {self._failure!r}")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(yaml.safe_dump(self.kubeconfig_data()))
        return self

    def stop(self) -> None:
        self.stop_controller()
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> EmulatedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig_data(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": TOKEN}}],
            "contexts": [{"name": c, "context": {"cluster": "emulator", "user": "emulator"}} for c in self.contexts],
            "current-context": self.context,
        }

    def expose(self, namespace: str, service: str, port: int, url: str | None, port_name: str | None = None) -> None:
        """Make the real HTTP server at ``url`` the endpoint of Service ``namespace/service`` port ``port``
        (the Service is created when absent; ``url`` None: the port has no endpoint)."""
        assert self.emulator is not None
        if self.get(SERVICES, namespace, service) is None:
            spec_port: dict[str, Any] = {"port": port, "targetPort": port, "protocol": "TCP"}
            if port_name:
                spec_port["name"] = port_name
            self.put(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                "metadata": {"name": service, "namespace": namespace},
                                "spec": {"ports": [spec_port], "selector": {"app.kubernetes.io/name": service}}})
        if url is None:
            self.emulator.backends.pop((namespace, service, port), None)
        else:
            self.emulator.backends[namespace, service, port] = url

    def connection(self, context: str | None = None) -> dict[str, Any]:
        """The connection arguments of the driver functions for this cluster."""
        return {"kubeconfig": str(self.kubeconfig), "context": context or self.context}

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._failure = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        async with ApiServerEmulator() as emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            emulator.admission = self.admission
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stopping.wait()

    # -- the object store (run on the emulator's loop) --------------------------------------------
    def run(self, func: Callable[[], Any]) -> Any:
        """Run ``func`` on the emulator's loop, under its lock, and return its result."""
        assert self._loop is not None and self.emulator is not None

        async def locked() -> Any:
            async with self.emulator._lock:
                return func()

        return asyncio.run_coroutine_threadsafe(locked(), self._loop).result(30)

    @property
    def calls(self) -> list[ApiCall]:
        """Every request served so far (the controller works on the store and makes none)."""
        assert self.emulator is not None
        return list(self.emulator.calls)

    def clear_calls(self) -> None:
        """Forget the requests and writes served so far."""
        assert self.emulator is not None
        self.emulator.calls.clear()
        self.emulator.writes.clear()

    @property
    def writes(self) -> list[Write]:
        """Every create, patch and delete admitted so far, with the object before and after."""
        assert self.emulator is not None
        return list(self.emulator.writes)

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object's current JSON (a copy), None when absent or deleted."""
        return self.run(lambda: self._get(resource, namespace, name))

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every live object of the resource (in the namespace), copies."""
        return self.run(lambda: [copy.deepcopy(o) for o in self._list(resource, namespace)])

    def put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object directly in the store (uid and timestamps filled in)."""
        return self.run(lambda: self._put(resource, obj))

    def put_many(self, resource: str, objs: list[dict[str, Any]]) -> None:
        """Create many objects at once (one trip to the loop)."""
        self.run(lambda: [self._put(resource, o) for o in objs])

    def delete(self, resource: str, namespace: str | None, name: str) -> None:
        self.run(lambda: self._delete(resource, namespace, name))

    def history(self, resource: str, namespace: str | None, name: str) -> list[dict[str, Any] | None]:
        """Every version of the object (None where it was deleted)."""
        assert self.emulator is not None
        return self.run(lambda: [None if v is None else copy.deepcopy(dict(v.raw))
                                 for v in self.emulator.objects[resource, namespace, name].history])

    def _get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        assert self.emulator is not None
        key = (kmock.resource(resource), namespace, name)
        if key not in self.emulator.objects or self.emulator.objects[key].deleted:
            return None
        return copy.deepcopy(self.emulator.objects[key].raw)

    def _list(self, resource: str, namespace: str | None) -> list[dict[str, Any]]:
        assert self.emulator is not None
        wanted = kmock.resource(resource)
        return [obj.raw for (res, ns, _), obj in self.emulator.objects.items()
                if res == wanted and not obj.deleted and (namespace is None or ns == namespace)]

    def _put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        assert self.emulator is not None
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["resourceVersion"] = str(next(self.emulator._versions))
        key = (kmock.resource(resource), meta.get("namespace"), meta["name"])
        if key in self.emulator.objects:
            self.emulator.objects[key].create(obj)
        else:
            self.emulator.objects[key] = obj
        return copy.deepcopy(obj)

    def _delete(self, resource: str, namespace: str | None, name: str) -> None:
        assert self.emulator is not None
        key = (kmock.resource(resource), namespace, name)
        if key in self.emulator.objects and not self.emulator.objects[key].deleted:
            self.emulator.objects[key].delete()

    def _patch(self, resource: str, obj: dict[str, Any], changes: dict[str, Any]) -> None:
        assert self.emulator is not None
        meta = obj["metadata"]
        self.emulator.objects[kmock.resource(resource), meta.get("namespace"), meta["name"]].patch(changes)

    # -- seeding -----------------------------------------------------------------------------------
    def add_deployment(self, namespace: str, name: str, replicas: int = 3, labels: dict[str, str] | None = None,
                       port: int = 8000, annotations: dict[str, str] | None = None,
                       volumes: list[dict[str, Any]] | None = None, pod_labels: dict[str, str] | None = None,
                       ) -> dict[str, Any]:
        """A Deployment with its ReplicaSet and ``replicas`` Running, Ready pods (what its controllers would make)."""
        labels = labels or {"app.kubernetes.io/name": name}
        template = {"metadata": {"labels": {**labels, **(pod_labels or {})}, "annotations": dict(annotations or {})},
                    "spec": {"containers": [{"name": "server", "image": "mlchaos/model-server:latest",
                                             "ports": [{"name": "http", "containerPort": port}]}],
                             "volumes": list(volumes or [])}}
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": name, "namespace": namespace, "labels": dict(labels), "generation": 1},
                      "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)}, "template": template},
                      "status": {}}

        def seed() -> dict[str, Any]:
            made = self._put(DEPLOYMENTS, deployment)
            self._reconcile_deployment(made)
            self._reconcile_all_replicasets()
            self._update_deployment_status(self._get(DEPLOYMENTS, namespace, name) or made)
            return self._get(DEPLOYMENTS, namespace, name) or made

        return self.run(seed)

    def add_workload(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """A Deployment or StatefulSet as given (say from deploy/kubernetes/), and the pods its controllers make."""

        def seed() -> dict[str, Any]:
            made = self._put(resource, obj)
            meta = made["metadata"]
            if resource == DEPLOYMENTS:
                self._reconcile_deployment(made)
                self._reconcile_all_replicasets()
                self._update_deployment_status(self._get(DEPLOYMENTS, meta["namespace"], meta["name"]) or made)
            else:
                self._reconcile_statefulset(made)
            return self._get(resource, meta["namespace"], meta["name"]) or made

        return self.run(seed)

    def add_backup_secret(self, namespace: str) -> dict[str, Any]:
        """The empty Secret ``mlchaos-backups`` that deploy/kubernetes/rbac.yaml creates (swap_tls_certificate's
        backups live there)."""
        return self.put(SECRETS, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                  "metadata": {"name": "mlchaos-backups", "namespace": namespace,
                                               "labels": {"app.kubernetes.io/name": "mlchaos",
                                                          "app.kubernetes.io/managed-by": "mlchaos"}}})

    def add_statefulset(self, namespace: str, name: str, replicas: int = 3,
                        labels: dict[str, str] | None = None, port: int = 8000) -> dict[str, Any]:
        """A StatefulSet and its pods ``<name>-0``... (Running, Ready)."""
        labels = labels or {"app.kubernetes.io/name": name}
        template = {"metadata": {"labels": dict(labels)},
                    "spec": {"containers": [{"name": "server", "image": "mlchaos/model-server:latest",
                                             "ports": [{"name": "http", "containerPort": port}]}]}}
        statefulset = {"apiVersion": "apps/v1", "kind": "StatefulSet",
                       "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
                       "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                                "serviceName": name, "template": template}, "status": {}}

        def seed() -> dict[str, Any]:
            made = self._put(STATEFULSETS, statefulset)
            self._reconcile_statefulset(made)
            return made

        return self.run(seed)

    def add_pod(self, namespace: str, name: str, labels: dict[str, str] | None = None, phase: str = "Running",
                ready: bool = True, owner: dict[str, Any] | None = None, port: int | None = 8000,
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
        """A pod (bare, or with ``owner`` as its controller reference)."""
        return self.put(PODS, self._pod(namespace, name, labels or {}, annotations or {}, owner, port, phase, ready))

    def pods_for(self, namespace: str, labels: dict[str, str] | None = None, count: int = 1000,
                 owner: dict[str, Any] | None = None, prefix: str = "model") -> None:
        """``count`` Running pods at once (the benchmark's population)."""
        pods = [self._pod(namespace, f"{prefix}-{i:05d}", dict(labels or {}), {}, owner, 8000, "Running", True)
                for i in range(count)]
        self.put_many(PODS, pods)

    def _pod(self, namespace: str, name: str, labels: dict[str, str], annotations: dict[str, str],
             owner: dict[str, Any] | None, port: int | None, phase: str, ready: bool,
             spec: dict[str, Any] | None = None) -> dict[str, Any]:
        number = next(self._ips)
        spec = copy.deepcopy(spec) if spec else {"containers": [{"name": "server", "image": "mlchaos/model-server",
                                                                 "ports": [{"name": "http", "containerPort": port}]
                                                                 if port else []}]}
        spec["nodeName"] = f"node-{number % 3 + 1}"
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations}
        if owner is not None:
            meta["ownerReferences"] = [{"apiVersion": owner.get("apiVersion", "apps/v1"), "kind": owner["kind"],
                                        "name": owner["name"], "uid": owner.get("uid"), "controller": True}]
        status = {"phase": phase, "podIP": f"10.0.{number // 250}.{number % 250 + 1}",
                  "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                  "containerStatuses": [container_status(c["name"], c.get("image", ""), ready)
                                        for c in spec.get("containers") or []]}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}

    # -- the tiny controller ---------------------------------------------------------------------
    def start_controller(self, interval: float = 0.02) -> None:
        """Run the emulated controllers in a thread until :meth:`stop_controller` (see the module docstring)."""
        self._controller_stop.clear()
        self.run(self._remember_pods)

        def loop() -> None:
            while not self._controller_stop.wait(interval):
                with contextlib.suppress(Exception):
                    self.run(self.reconcile_once)

        self._controller = threading.Thread(target=loop, name="emulated-controller", daemon=True)
        self._controller.start()

    def stop_controller(self) -> None:
        self._controller_stop.set()
        if self._controller is not None:
            self._controller.join(5)
            self._controller = None

    @contextlib.contextmanager
    def controller(self, interval: float = 0.02) -> Iterator[None]:
        self.start_controller(interval)
        try:
            yield
        finally:
            self.stop_controller()

    def wait_until(self, check: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.01)
        return check()

    def _remember_pods(self) -> None:
        self._seen_pods = {(p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"])
                           for p in self._list(PODS, None)}

    def reconcile_once(self) -> None:
        """One pass of every emulated controller (call under :meth:`run`)."""
        live = {(p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"])
                for p in self._list(PODS, None)}
        for namespace, name, uid in sorted(self._seen_pods - live):  # deleted by someone: the kubelet kills it
            self._event(namespace, {"kind": "Pod", "name": name, "uid": uid}, "Killing", "Normal",
                        "Stopping container server")
        for deployment in list(self._list(DEPLOYMENTS, None)):
            self._reconcile_deployment(copy.deepcopy(deployment))
        self._reconcile_all_replicasets()
        for statefulset in list(self._list(STATEFULSETS, None)):
            self._reconcile_statefulset(copy.deepcopy(statefulset))
        now = time.monotonic()
        for pod in list(self._list(PODS, None)):
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            born = self._born.get(key)
            if born is not None and now - born >= self.ready_after:
                self._born.pop(key)
                self._patch(PODS, pod, {"status": {"conditions": [{"type": "Ready", "status": "True"}],
                                                   "containerStatuses": [container_status(
                                                       "server", "mlchaos/model-server", True)]}})
        for deployment in list(self._list(DEPLOYMENTS, None)):
            self._update_deployment_status(deployment)
        self._remember_pods()

    def _reconcile_deployment(self, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        template = spec["template"]
        digest = hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{meta['name']}-{digest}"
        owned = [rs for rs in self._list(REPLICASETS, meta["namespace"])
                 if (rs["metadata"].get("ownerReferences") or [{}])[0].get("uid") == meta["uid"]]
        for old in owned:
            if old["metadata"]["name"] != name and old["spec"]["replicas"] != 0:
                self._patch(REPLICASETS, old, {"spec": {"replicas": 0}})  # a rollout: the new set replaces it
        current = next((rs for rs in owned if rs["metadata"]["name"] == name), None)
        if current is None:
            labels = {**template["metadata"].get("labels", {}), "pod-template-hash": digest}
            self._put(REPLICASETS, {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels,
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                                  "uid": meta["uid"], "controller": True}]},
                "spec": {"replicas": spec.get("replicas", 1), "selector": {"matchLabels": labels},
                         "template": {**template, "metadata": {**template["metadata"], "labels": labels}}}})
        elif current["spec"]["replicas"] != spec.get("replicas", 1):
            self._patch(REPLICASETS, current, {"spec": {"replicas": spec.get("replicas", 1)}})

    def _reconcile_all_replicasets(self) -> None:
        for replicaset in list(self._list(REPLICASETS, None)):
            self._reconcile_replicaset(copy.deepcopy(replicaset))

    def _reconcile_replicaset(self, replicaset: dict[str, Any]) -> None:
        meta = replicaset["metadata"]
        owner = {"kind": "ReplicaSet", "name": meta["name"], "uid": meta["uid"]}
        pods = [p for p in self._list(PODS, meta["namespace"])
                if (p["metadata"].get("ownerReferences") or [{}])[0].get("uid") == meta["uid"]
                and not p["metadata"].get("deletionTimestamp")]
        wanted = int(replicaset["spec"].get("replicas") or 0)
        template = replicaset["spec"]["template"]
        for _ in range(wanted - len(pods)):
            name = f"{meta['name']}-{uuid.uuid4().hex[:5]}"
            self._create_pod(meta["namespace"], name, template, {**owner, "apiVersion": "apps/v1"}, owner)
        if len(pods) > wanted:
            def cost(pod: dict[str, Any]) -> tuple[int, str]:
                annotations = pod["metadata"].get("annotations") or {}
                return int(annotations.get(DELETION_COST, 0)), pod["metadata"]["creationTimestamp"]

            for pod in sorted(pods, key=cost)[: len(pods) - wanted]:
                self._delete(PODS, meta["namespace"], pod["metadata"]["name"])
                self._event(meta["namespace"], owner, "SuccessfulDelete", "Normal",
                            f"Deleted pod: {pod['metadata']['name']}")

    def _reconcile_statefulset(self, statefulset: dict[str, Any]) -> None:
        meta = statefulset["metadata"]
        owner = {"kind": "StatefulSet", "name": meta["name"], "uid": meta["uid"]}
        wanted = int(statefulset["spec"].get("replicas") or 0)
        existing = {p["metadata"]["name"] for p in self._list(PODS, meta["namespace"])}
        for ordinal in range(wanted):
            name = f"{meta['name']}-{ordinal}"
            if name not in existing:
                self._create_pod(meta["namespace"], name, statefulset["spec"]["template"],
                                 {**owner, "apiVersion": "apps/v1"}, owner)
        for pod in self._list(PODS, meta["namespace"]):
            ref = (pod["metadata"].get("ownerReferences") or [{}])[0]
            ordinal = pod["metadata"]["name"].rpartition("-")[2]
            if ref.get("uid") == meta["uid"] and ordinal.isdigit() and int(ordinal) >= wanted:
                self._delete(PODS, meta["namespace"], pod["metadata"]["name"])
        ready = sum(1 for p in self._list(PODS, meta["namespace"])
                    if (p["metadata"].get("ownerReferences") or [{}])[0].get("uid") == meta["uid"])
        if (statefulset.get("status") or {}).get("readyReplicas") != ready:
            self._patch(STATEFULSETS, statefulset, {"status": {"replicas": ready, "readyReplicas": ready}})

    def _create_pod(self, namespace: str, name: str, template: dict[str, Any], owner: dict[str, Any],
                    event_object: dict[str, Any]) -> None:
        ready = self.ready_after <= 0
        pod = self._pod(namespace, name, dict(template["metadata"].get("labels") or {}),
                        dict(template["metadata"].get("annotations") or {}), owner, None, "Running", ready,
                        spec=template.get("spec"))
        self._put(PODS, pod)
        if not ready:
            self._born[(namespace, name)] = time.monotonic()
        self._event(namespace, event_object, "SuccessfulCreate", "Normal", f"Created pod: {name}")

    def _update_deployment_status(self, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        sets = {rs["metadata"]["uid"] for rs in self._list(REPLICASETS, meta["namespace"])
                if (rs["metadata"].get("ownerReferences") or [{}])[0].get("uid") == meta["uid"]}
        pods = [p for p in self._list(PODS, meta["namespace"])
                if (p["metadata"].get("ownerReferences") or [{}])[0].get("uid") in sets]
        ready = sum(1 for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                           for c in (p.get("status") or {}).get("conditions") or []))
        wanted = int(spec.get("replicas", 1))
        available = ready >= wanted - wanted // 4  # maxUnavailable 25 %, rounded down
        status = {"observedGeneration": meta.get("generation", 1), "replicas": len(pods), "readyReplicas": ready,
                  "availableReplicas": ready, "updatedReplicas": len(pods),
                  "conditions": [{"type": "Available", "status": "True" if available else "False",
                                  "reason": "MinimumReplicasAvailable" if available else
                                  "MinimumReplicasUnavailable"}]}
        if deployment.get("status") != status:
            self._patch(DEPLOYMENTS, deployment, {"status": status})

    def _event(self, namespace: str, involved: dict[str, Any], reason: str, type_: str, message: str) -> None:
        self._put(EVENTS, {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{involved['name']}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
            "involvedObject": {"kind": involved["kind"], "name": involved["name"], "namespace": namespace,
                               "uid": involved.get("uid")},
            "reason": reason, "type": type_, "message": message, "count": 1,
            "firstTimestamp": _now(), "lastTimestamp": _now(), "source": {"component": CONTROLLER_AGENT}})


def _proxy_name(value: str) -> tuple[str, str, str]:
    """``[scheme:]name[:port]`` as the API server splits a service proxy name."""
    parts = value.split(":")
    if len(parts) == 3:
        return parts[0] or "http", parts[1], parts[2]
    if len(parts) == 2:
        return "http", parts[0], parts[1]
    return "http", parts[0], ""


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    """A failure as the API server writes it: a v1 Status object."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return aiohttp.web.json_response(body, status=code)


def _call(request: Any) -> ApiCall:
    resource = request.resource
    group = resource.group or ""
    plural = resource.plural or ""
    if request.subresource:
        plural = f"{plural}/{request.subresource}"
    method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
    named = request.name is not None
    if method == "GET":
        verb = "watch" if request.params.get("watch") in ("true", "1") else ("get" if named else "list")
    else:
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update",
                "DELETE": "delete" if named else "deletecollection"}.get(method, method.lower())
    return ApiCall(method, str(request.url.path), verb, group, plural, request.namespace, request.name,
                   request.headers.get("Content-Type"))


def _check_patch(request: Any) -> None:
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
    if content_type == "application/json-patch+json" and not isinstance(request.data, list):
        raise kmock.KubernetesError(
            status=400, reason="BadRequest",
            message="json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp")
    if content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json") \
            and not isinstance(request.data, dict):
        raise kmock.KubernetesError(status=400, reason="BadRequest",
                                    message=f"a {content_type} body must be a JSON object")
    if not content_type:
        raise kmock.KubernetesError(status=415, reason="UnsupportedMediaType", message="no patch content type")


def _fields_match(item: dict[str, Any], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        negate = "!=" in term
        field, _, value = term.partition("!=") if negate else term.replace("==", "=").partition("=")
        actual: Any = item
        for part in field.strip().split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        text = ("true" if actual else "false") if isinstance(actual, bool) else ("" if actual is None else str(actual))
        if (text == value.strip()) == negate:
            return False
    return True
