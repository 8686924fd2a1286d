"""The Kubernetes API connection and the one place where its errors become mlchaos errors.

Which cluster (the first that applies): the ``kubeconfig`` / ``context`` arguments of a
driver function, the experiment's configuration (``kubeconfig``, ``kube_context``,
``kube_in_cluster``), the ``KUBECONFIG`` environment variable or ``~/.kube/config``; with
no kubeconfig file and ``KUBERNETES_SERVICE_HOST`` set (mlchaos running as a pod), the
pod's service-account credentials. The context is always resolved to its name, so a change
record names it (``environment: kubernetes:<context>``, or ``kubernetes:in-cluster``) and
its undo reaches the same cluster, whatever ``KUBECONFIG`` says when it runs.

Every call goes through :meth:`Connection.call`: raw JSON in and out (no client-side model
validation, so a record holds exactly what the API server said), an explicit patch type (a
list is a JSON patch, a mapping a JSON merge patch: the same semantics on every resource;
the generated client would pick JSON patch and its REST layer turn a mapping into a strategic
merge patch), a timeout on every request (``_request_timeout``, with :func:`retries` that
never repeat a request that timed out) and :func:`kube_errors` around it. ``kubernetes`` is
imported lazily.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers._common import packages
from mlchaos.driver_kit import DriverError, TargetNotFound

API_TIMEOUT: tuple[float, float] = (5.0, 30.0)  # (connect, read) seconds, for every request (see retries())
POOL_SIZE = 32  # connections to the API server: one per concurrent worker
ENVIRONMENT_PREFIX = "kubernetes:"
IN_CLUSTER = "in-cluster"
SERVICE_HOST_VARIABLE = "KUBERNETES_SERVICE_HOST"
DEFAULT_KUBECONFIG = "~/.kube/config"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
CONFIG_KEYS = ("kubeconfig", "kube_context", "kube_in_cluster")  # keys read from the experiment's configuration
APIS = ("core", "apps", "networking", "custom")

_lock = threading.Lock()
_connections: dict[tuple[Any, ...], Connection] = {}


class ApiConflict(DriverError):
    """The API server refused a change because the object is not the one expected (HTTP 409)."""


@dataclass(frozen=True)
class Where:
    """Which cluster: kubeconfig file(s) (``:``-separated, absolute) and a context name, or in-cluster."""

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False

    @property
    def environment(self) -> str:
        """The environment id checked against the allow-lists: ``kubernetes:<context>`` or ``kubernetes:in-cluster``."""
        return ENVIRONMENT_PREFIX + (IN_CLUSTER if self.in_cluster else str(self.context))

    def arguments(self) -> dict[str, Any]:
        """The connection arguments an undo needs to reach this same cluster and context."""
        return {"kubeconfig": self.kubeconfig, "context": self.context, "in_cluster": self.in_cluster}


def resolve(kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
            configuration: dict[str, Any] | None = None) -> Where:
    """Decide which cluster to talk to (arguments, then configuration, then KUBECONFIG / in-cluster)."""
    config = configuration if isinstance(configuration, dict) else {}
    kubeconfig = kubeconfig if kubeconfig is not None else config.get("kubeconfig")
    context = context if context is not None else config.get("kube_context")
    if in_cluster is None:
        in_cluster = config.get("kube_in_cluster")
    for name, value in (("kubeconfig", kubeconfig), ("context", context)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise DriverError(f"{name} must be a non-empty string, got {value!r}")
    if in_cluster not in (None, True, False):
        raise DriverError(f"in_cluster must be true, false or null, got {in_cluster!r}")
    if in_cluster:
        if kubeconfig is not None or context is not None:
            raise DriverError("give either in_cluster: true or a kubeconfig/context, not both")
        return Where(in_cluster=True)
    paths = _kubeconfig_paths(kubeconfig)
    if not paths:
        if in_cluster is None and context is None and os.environ.get(SERVICE_HOST_VARIABLE):
            return Where(in_cluster=True)
        where = kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
        raise DriverError(f"no kubeconfig file at {where} and not running in a pod: pass kubeconfig "
                          "(or set KUBECONFIG) and context")
    joined = os.pathsep.join(paths)
    with kube_errors("read the kubeconfig"):
        from kubernetes import config as kube_config

        contexts, active = kube_config.list_kube_config_contexts(joined)
    names = [c.get("name") for c in contexts or []]
    if context is None:
        if not active:
            raise DriverError(f"{joined} has no current-context: pass context (one of {', '.join(names) or 'none'})")
        context = str(active["name"])
    elif context not in names:
        raise DriverError(f"no context {context!r} in {joined} (known: {', '.join(names) or 'none'})")
    return Where(kubeconfig=joined, context=context)


def connect(kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
            configuration: dict[str, Any] | None = None) -> Connection:
    """A (cached) connection to the cluster :func:`resolve` picks."""
    where = resolve(kubeconfig, context, in_cluster, configuration)
    key = (where, tuple(_stamp(p) for p in (where.kubeconfig or "").split(os.pathsep) if p))
    with _lock:
        found = _connections.get(key)
        if found is None:
            found = _connections[key] = Connection(where, _api_client(where))
    return found


class Connection:
    """One cluster's API client, with a timeout on every call and errors translated once."""

    def __init__(self, where: Where, api_client: Any, timeout: tuple[float, float] = API_TIMEOUT) -> None:
        from kubernetes import client

        self.where = where
        self.timeout = timeout
        self.host = str(api_client.configuration.host)
        self.configuration = api_client.configuration  # the credentials, for the service proxy's HTTP session
        self._apis = {"core": client.CoreV1Api(api_client), "apps": client.AppsV1Api(api_client),
                      "networking": client.NetworkingV1Api(api_client),
                      "custom": client.CustomObjectsApi(api_client)}  # PrometheusRules (monitoring.coreos.com)

    @property
    def environment(self) -> str:
        return self.where.environment

    def call(self, what: str, api: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``<api>.<method>(*args, **kwargs)`` with a timeout; the response's JSON (None when empty).

        A ``body`` that is a list is sent as a JSON patch, a mapping as a JSON merge patch
        (for ``patch_*`` methods; other methods send it as it is).
        """
        if method.startswith("patch_"):
            kwargs["_content_type"] = JSON_PATCH if isinstance(kwargs.get("body"), list) else MERGE_PATCH
        func = getattr(self._apis[api], method)
        with kube_errors(what, self.host):
            response = func(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            data = response.data
            return json.loads(data) if data else None


@contextlib.contextmanager
def kube_errors(what: str, host: str | None = None) -> Iterator[None]:
    """Translate kubernetes / urllib3 errors raised inside the block into DriverError or TargetNotFound."""
    try:
        yield
    except DriverError:
        raise
    except Exception as exc:
        raise translate(exc, what, host) from exc


def translate(exc: BaseException, what: str, host: str | None = None) -> DriverError:
    """The mlchaos error for a kubernetes client (or transport) exception, with a one-line message."""
    import urllib3.exceptions
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    api = f"the Kubernetes API at {host}" if host else "the Kubernetes API"
    if isinstance(exc, ApiException):
        status, message = exc.status, _api_message(exc)
        if status == 404:
            return TargetNotFound(f"{what}: not found ({message})")
        if status in (400, 403, 422) and "ValidatingAdmissionPolicy" in message:
            return DriverError(f"{what}: denied by an admission policy ({message}); "
                               "deploy/kubernetes/admission-policy.yaml lists what mlchaos may change")
        if status == 403:
            return DriverError(f"{what}: forbidden by RBAC ({message}); the role in deploy/kubernetes/rbac.yaml "
                               "lists what each action needs")
        if status == 401:
            return DriverError(f"{what}: not authenticated by {api} ({message}): check the kubeconfig's credentials")
        if status == 409:
            return ApiConflict(f"{what}: conflict ({message})")
        if status in (400, 422):
            return DriverError(f"{what}: the API server rejected the request ({message})")
        return DriverError(f"{what}: {api} answered HTTP {status} ({message})")
    if isinstance(exc, ConfigException):
        return DriverError(f"{what}: {_one_line(exc)}")
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # a subclass of ConnectTimeoutError in urllib3 2
        return DriverError(f"{what}: cannot talk to {api} ({_one_line(exc)})")
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return DriverError(f"{what}: {api} did not answer in time ({_one_line(exc)})")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return DriverError(f"{what}: cannot talk to {api} ({type(exc).__name__}: {_one_line(exc)})")
    if isinstance(exc, ValueError):
        return DriverError(f"{what}: unexpected answer from {api} ({_one_line(exc)})")
    return DriverError(f"{what}: {type(exc).__name__}: {_one_line(exc)}")


def _api_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and (body.get("message") or body.get("reason")):
        return _one_line(body.get("message") or body.get("reason"))
    return _one_line(f"HTTP {exc.status} {exc.reason or ''}".strip())


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    """The existing kubeconfig files (absolute) named by ``kubeconfig``, else KUBECONFIG, else ~/.kube/config.

    A ``kubeconfig`` argument that names a missing file is an error.
    """
    raw = kubeconfig if kubeconfig is not None else (os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG)
    paths = [str(Path(p).expanduser().resolve()) for p in raw.split(os.pathsep) if p.strip()]
    existing = [p for p in paths if Path(p).is_file()]
    if kubeconfig is not None and len(existing) < len(paths):  # KUBECONFIG may list absent files, as for kubectl
        missing = [p for p in paths if p not in existing]
        raise DriverError(f"kubeconfig file not found: {', '.join(missing)}")
    return existing


def _stamp(path: str) -> tuple[str, int, int]:
    try:
        info = os.stat(path)
    except OSError:
        return (path, 0, 0)
    return (path, info.st_mtime_ns, info.st_size)


def _api_client(where: Where) -> Any:
    from kubernetes import client
    from kubernetes import config as kube_config

    configuration = client.Configuration()
    with kube_errors("load the kubeconfig" if not where.in_cluster else "load the in-cluster credentials"):
        if where.in_cluster:
            kube_config.load_incluster_config(client_configuration=configuration)
        else:
            kube_config.load_kube_config(config_file=where.kubeconfig, context=where.context,
                                         client_configuration=configuration, persist_config=False)
    configuration.connection_pool_maxsize = POOL_SIZE
    configuration.retries = retries()
    return client.ApiClient(configuration)


def retries() -> Any:
    """Retry a connection that could not be made (nothing was sent), never a request that timed out reading:
    a call takes at most about 3 connect timeouts + 1 read timeout."""
    import urllib3

    return urllib3.Retry(total=2, connect=2, read=0, redirect=0, status=0, other=0, backoff_factor=0.1)


def preflight(func: str, arguments: dict[str, Any]) -> list[str]:
    """Validation hook of the modules that take it from here: the Kubernetes Python client is installed."""
    return packages.missing("kubernetes", "kubernetes", "drivers.kubernetes")
