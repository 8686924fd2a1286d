"""In-cluster HTTP endpoints reached through the Kubernetes API server's service proxy.

A Service's port (Prometheus, Alertmanager, the fault proxy's API, a model Service) is reached
without exposing it: every request goes to the API server, at
``/api/v1/namespaces/{namespace}/services/{scheme}:{service}:{port}/proxy/{path}``, with the
kubeconfig's credentials (bearer token, client certificate, CA; the in-cluster service
account in a pod), and the API server forwards it to one of the Service's endpoints.
:func:`open_service` returns a base URL and a configured ``requests.Session``: a driver uses
them as it uses any base URL (``session.get(base + "/api/v1/query", ...)``).

What the API server does, and so what this transport does:

* It authenticates the request, then **removes the Authorization header** before forwarding
  (k8s.io/apiserver, ``filters/authentication.go``). So no credential for the upstream can
  travel in Authorization: a request that sets one is refused here with the reason, unless the
  same credential also travels in a header the API server forwards (the fault proxy takes its
  token as ``X-Mlchaos-Proxy-Token``; :data:`PROXY_TOKEN_HEADER`), in which case only the
  Authorization copy is dropped. Other headers (``X-Scope-OrgID``, ``Host`` routing) are forwarded.
* RBAC: the verb is the HTTP method's (GET ``get``, POST ``create``, DELETE ``delete``...) on
  ``services/proxy``, and the resource name is exactly ``{scheme}:{service}:{port}``
  (``http:prometheus-operated:9090``), which a Role's ``resourceNames`` must list.
* Its own failures are ``Status`` objects: 401 (not authenticated), 403 (RBAC), 404 (no such
  Service) become one-line DriverErrors naming what is missing; 503 (no ready endpoint, port
  unknown, the pod refused the connection) becomes :class:`ServiceUnreachable`, a
  ``requests.ConnectionError``, so a probe sees the Service as unreachable exactly as it would
  with a direct URL. Answers of the upstream itself, whatever their status, pass unchanged.

Every request has a timeout (:data:`DEFAULT_TIMEOUT` when the caller gives none). The token is
read per request (refreshed as the kubernetes client refreshes it: exec plugins, projected
service-account tokens) and never appears in the base URL, a repr or an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth

from drivers.kubernetes.client import Connection, connect, kube_errors
from mlchaos.driver_kit import DriverError, TargetNotFound

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)  # (connect, read) seconds, when a request gives none
SCHEMES = ("http", "https")
URL_SCHEMES = {"k8s": "http", "k8s+http": "http", "k8s+https": "https"}
PROXY_TOKEN_HEADER = "X-Mlchaos-Proxy-Token"  # the fault proxy's token, in a header the API server forwards
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?")
VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class ServiceUnreachable(requests.ConnectionError):
    """The API server could not reach the Service (no ready endpoint, unknown port, connection refused)."""


@dataclass(frozen=True)
class ServiceRef:
    """A Service's port as the service proxy names it; ``path`` is a prefix on the upstream (``/prometheus``)."""

    namespace: str
    service: str
    port: str  # a number ("9090") or a port name ("web")
    scheme: str = "http"
    path: str = ""

    @property
    def proxy_name(self) -> str:
        """The resource name RBAC sees: ``{scheme}:{service}:{port}``."""
        return f"{self.scheme}:{self.service}:{self.port}"

    @property
    def label(self) -> str:
        """How messages name it: ``k8s://namespace/service:port`` (``k8s+https://`` for https)."""
        prefix = "k8s" if self.scheme == "http" else f"k8s+{self.scheme}"
        return f"{prefix}://{self.namespace}/{self.service}:{self.port}{self.path}"

    def proxy_path(self) -> str:
        """The API path of the proxied port, without a trailing slash."""
        return f"/api/v1/namespaces/{self.namespace}/services/{self.proxy_name}/proxy{self.path}"


def service_ref(namespace: Any, service: Any, port: Any, scheme: Any = "http", path: Any = "") -> ServiceRef:
    """A checked :class:`ServiceRef` (DriverError naming the bad field)."""
    for field, value in (("namespace", namespace), ("service", service)):
        if not isinstance(value, str) or not _DNS_LABEL.fullmatch(value):
            raise DriverError(f"kubernetes endpoint: {field} must be a DNS label (lower-case letters, digits, '-',"
                              f" at most 63), got {value!r}")
    if isinstance(port, bool) or not isinstance(port, int | str):
        raise DriverError(f"kubernetes endpoint: port must be a number or a port name, got {port!r}")
    text = str(port)
    if text.isdigit():
        if not 1 <= int(text) <= 65535:
            raise DriverError(f"kubernetes endpoint: port must be 1-65535, got {port!r}")
        text = str(int(text))
    elif not _PORT_NAME.fullmatch(text) or not re.search("[a-z]", text):
        raise DriverError(f"kubernetes endpoint: port must be a number or a Service port name, got {port!r}")
    if scheme not in SCHEMES:
        raise DriverError(f"kubernetes endpoint: scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if not isinstance(path, str) or (path and (not path.startswith("/") or "?" in path or "#" in path)):
        raise DriverError(f"kubernetes endpoint: path must start with '/' and have no query, got {path!r}")
    return ServiceRef(namespace, service, text, str(scheme), path.rstrip("/"))


def is_k8s_url(url: Any) -> bool:
    """True for a ``k8s://`` (``k8s+http://``, ``k8s+https://``) URL."""
    return isinstance(url, str) and url.split("://", 1)[0].lower() in URL_SCHEMES and "://" in url


def parse_k8s_url(url: str) -> ServiceRef:
    """``k8s://NAMESPACE/SERVICE:PORT[/PATH]`` (``k8s+https://`` for an https port) as a :class:`ServiceRef`."""
    if not is_k8s_url(url):
        raise DriverError(f"not a k8s:// URL: {url!r} (k8s://NAMESPACE/SERVICE:PORT, or k8s+https://...)")
    parts = urlsplit(url)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise DriverError(f"a k8s:// URL takes no credentials, query or fragment: {url!r}")
    service, colon, port = parts.path.lstrip("/").partition("/")[0].partition(":")
    rest = parts.path.lstrip("/").partition("/")[2]
    if not colon or not port:
        raise DriverError(f"k8s:// URL {url!r} needs a port: k8s://NAMESPACE/SERVICE:PORT")
    return service_ref(parts.netloc, service, port, URL_SCHEMES[parts.scheme.lower()], f"/{rest}" if rest else "")


@dataclass(frozen=True)
class ServiceEndpoint:
    """A proxied Service port: ``base_url`` + ``session`` (credentials attached), and which cluster it went through."""

    ref: ServiceRef
    base_url: str
    session: requests.Session
    environment: str  # kubernetes:<context> or kubernetes:in-cluster

    def __repr__(self) -> str:
        return f"ServiceEndpoint({self.ref.label} via {self.environment})"


def open_service(namespace: str | None = None, service: str | None = None, port: int | str | None = None,
                 scheme: str = "http", *, url: str | None = None, path: str = "", kubeconfig: str | None = None,
                 context: str | None = None, in_cluster: bool | None = None,
                 configuration: dict[str, Any] | None = None) -> ServiceEndpoint:
    """The base URL and session that reach ``namespace/service:port`` through the API server's service proxy.

    Give either ``url`` (``k8s://ns/svc:port``) or ``namespace``, ``service`` and ``port``. The cluster
    is chosen as for every Kubernetes driver function (kubeconfig, context, in-cluster, configuration).
    """
    if url is not None:
        if namespace is not None or service is not None or port is not None:
            raise DriverError("kubernetes endpoint: give either url (k8s://...) or namespace, service and port")
        ref = parse_k8s_url(url)
    else:
        if namespace is None or service is None or port is None:
            raise DriverError("kubernetes endpoint: namespace, service and port are required")
        ref = service_ref(namespace, service, port, scheme, path)
    conn = connect(kubeconfig, context, in_cluster, configuration)
    return ServiceEndpoint(ref, conn.host.rstrip("/") + ref.proxy_path(), proxy_session(conn, ref),
                           conn.environment)


def endpoint_connector(endpoint: Any, session: requests.Session) -> str:
    """The connector of declared ``kubernetes`` endpoints (``mlchaos.lib.endpoints.register_kubernetes_connector``):
    configures ``session`` for the Service's port and returns its base URL through the API server.

    The cluster is the endpoint's ``context`` of its ``kubeconfig`` when it names them, else the one every
    Kubernetes driver function picks without arguments: ``KUBECONFIG`` (or ``~/.kube/config``) and its current
    context, or the pod's service account in a pod.
    """
    found = endpoint.kubernetes
    ref = service_ref(found.namespace, found.service, found.port, found.scheme)
    conn = connect(getattr(found, "kubeconfig", None), getattr(found, "context", None))
    configure_session(session, conn, ref)
    return conn.host.rstrip("/") + ref.proxy_path()


def proxy_session(conn: Connection, ref: ServiceRef) -> requests.Session:
    """A session that sends the connection's credentials and translates the API server's own failures."""
    return configure_session(_TimeoutSession(), conn, ref)


def configure_session(session: requests.Session, conn: Connection, ref: ServiceRef) -> requests.Session:
    """Give ``session`` the connection's credentials, CA, client certificate and proxy, and the Status translation."""
    config = conn.configuration
    if getattr(config, "tls_server_name", None):
        raise DriverError("kubernetes endpoint: the kubeconfig sets tls-server-name, which the service proxy"
                          " transport does not support; use a kubeconfig without it")
    session.trust_env = False  # no netrc, no environment proxies: the kubernetes client's settings only
    session.auth = _ApiServerAuth(config, ref, conn.host)
    with kube_errors("set up the service proxy session", conn.host):
        session.verify = _verify(config)
        if getattr(config, "cert_file", None):
            session.cert = (config.cert_file, config.key_file) if config.key_file else config.cert_file
        proxy = getattr(config, "proxy", None)
        if proxy and not requests.utils.should_bypass_proxies(conn.host, no_proxy=getattr(config, "no_proxy", None)):
            session.proxies = {"http": proxy, "https": proxy}
    session.hooks["response"].append(_StatusTranslator(ref, conn.host))
    return session


class _TimeoutSession(requests.Session):
    """A session whose requests time out after :data:`DEFAULT_TIMEOUT` unless the caller says otherwise."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None and len(args) < 7:  # timeout is the 7th after method and url
            kwargs["timeout"] = DEFAULT_TIMEOUT
        return super().request(method, url, *args, **kwargs)


class _ApiServerAuth(requests.auth.AuthBase):
    """The kubeconfig's bearer token on every request (read per request, so refreshed tokens are used)."""

    def __init__(self, configuration: Any, ref: ServiceRef, host: str) -> None:
        self._configuration = configuration
        self._ref = ref
        self._host = host

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        given = request.headers.get("Authorization")
        if given is not None:
            if not request.headers.get(PROXY_TOKEN_HEADER):
                raise DriverError(
                    f"{self._ref.label}: a request through the Kubernetes API's service proxy cannot carry an"
                    " Authorization header for the upstream: the API server authenticates the request with it and"
                    " removes it before forwarding. Reach an endpoint that needs its own credentials directly, or"
                    f" from the in-cluster runner (the fault proxy takes its token as {PROXY_TOKEN_HEADER})")
            del request.headers["Authorization"]  # the same credential travels in the forwarded header
        with kube_errors("read the kubeconfig's credentials", self._host):
            token = self._configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            request.headers["Authorization"] = token
        return request

    def __repr__(self) -> str:
        return "<kubernetes credentials>"


class _StatusTranslator:
    """A response hook: a ``Status`` failure of the API server itself becomes an mlchaos error."""

    def __init__(self, ref: ServiceRef, host: str) -> None:
        self._ref = ref
        self._host = host

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        status = _api_status(response)
        if status is None:
            return response
        code = response.status_code
        message = " ".join(str(status.get("message") or status.get("reason") or f"HTTP {code}").split())[:300]
        where = f"{self._ref.label} through the Kubernetes API at {self._host}"
        verb = VERBS.get(str(response.request.method or "GET").upper(), "get")
        if code == 401:
            raise DriverError(f"{where}: not authenticated ({message}): check the kubeconfig's credentials")
        if code == 403:
            raise DriverError(f"{where}: forbidden by RBAC ({message}); the runner needs {verb} on services/proxy"
                              f" named {self._ref.proxy_name} in namespace {self._ref.namespace}"
                              " (deploy/kubernetes/rbac.yaml)")
        if code == 404:
            raise TargetNotFound(f"{where}: {message}")
        raise ServiceUnreachable(f"{where}: HTTP {code}: {message}", response=response)


def _api_status(response: requests.Response) -> dict[str, Any] | None:
    """The API server's own ``Status`` failure in a response, or None (an upstream's answer)."""
    if response.status_code < 400 or "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("apiVersion") == "v1" \
            and body.get("status") == "Failure":
        return body
    return None


def _verify(configuration: Any) -> bool | str:
    if not configuration.verify_ssl:
        return False  # the kubeconfig's insecure-skip-tls-verify, as kubectl honours it
    if configuration.ssl_ca_cert:
        return str(configuration.ssl_ca_cert)
    if getattr(configuration, "ca_cert_data", None):
        raise DriverError("kubernetes endpoint: in-memory CA data is not supported; give the CA as a file")
    return True
