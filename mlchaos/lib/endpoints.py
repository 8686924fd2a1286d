"""Named endpoints declared once (``extensions: [{name: mlchaos, endpoints: {...}}]``) and how to reach them.

An :class:`Endpoint` is one HTTP server mlchaos talks to (Prometheus, Alertmanager, the Pushgateway, a model
server, the fault proxy's API) with what it takes to reach it: a URL or an in-cluster Service
(``kubernetes: {namespace, service, port, scheme}`` or ``k8s://NS/SERVICE:PORT``), a bearer token or basic
auth (each from a file, an environment variable or one of the experiment's ``secrets``), a CA bundle, a
client certificate and key, ``insecure_skip_verify``, extra headers and a per-request timeout.
Declarations hold no credential, only where to read it.

:func:`connect` turns an endpoint into a :class:`Connection`: a base URL and a ``requests.Session`` that
carries the endpoint's credentials, CA, client certificate and headers. A ``kubernetes`` endpoint goes
through the connector registered with :func:`register_kubernetes_connector` (the seam the Kubernetes
transport plugs into); until one is registered, connecting to it raises :class:`EndpointUnavailable`.

One table of endpoints is active per process while a run (or recovery) uses them: :func:`activate`
installs it, :func:`active` reads it, and :func:`session_for` finds the connection whose base URL a
request goes to, so a call to a declared endpoint's URL always carries that endpoint's credentials and
no other server ever sees them. Every credential read is handed to the table's ``on_secret`` (the run's
redactor), so it never appears in a journal, the console or a report.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlchaos.errors import InvalidInput

if TYPE_CHECKING:
    import requests

DEFAULT_NAMES = ("prometheus", "alertmanager", "pushgateway", "serving", "proxy")
K8S_URL = re.compile(r"^k8s://(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)/(?P<service>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
                     r"(:(?P<port>[^/:]+))?/?$")


class EndpointUnavailable(InvalidInput):
    """An endpoint cannot be reached from here: an unknown name, a credential that cannot be read, or a
    ``kubernetes`` endpoint while no Kubernetes connector is registered."""


@dataclass(frozen=True)
class Credential:
    """Where a credential is read from: ``file`` (a path), ``env`` (a variable) or ``secret`` (``scope.key``)."""

    source: str  # file | env | secret
    reference: str

    def describe(self) -> str:
        return {"file": "file", "env": "environment variable", "secret": "secret"}[self.source] + f" {self.reference}"


@dataclass(frozen=True)
class BasicAuth:
    """A user name and where its password is read from."""

    username: str
    password: Credential


@dataclass(frozen=True)
class KubernetesService:
    """An in-cluster Service reached through the API server's service proxy (the kubeconfig's credentials):
    ``context`` of ``kubeconfig`` when given, else KUBECONFIG's current context (or in-cluster)."""

    namespace: str
    service: str
    port: int | str
    scheme: str = "http"
    context: str | None = None
    kubeconfig: str | None = None  # relative to the experiment's folder (a var file's: made absolute)


@dataclass(frozen=True)
class Endpoint:
    """One declared endpoint (already validated): exactly one of ``url`` and ``kubernetes``."""

    name: str
    url: str | None = None
    kubernetes: KubernetesService | None = None
    bearer_token: Credential | None = None
    basic_auth: BasicAuth | None = None
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    insecure_skip_verify: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> Endpoint:
        """Build from a declaration that :mod:`mlchaos.experiment.endpoints` found valid."""
        url, kubernetes = data.get("url"), data.get("kubernetes")
        if isinstance(url, str) and url.startswith("k8s://"):
            kubernetes, url = parse_k8s_url(url), None
        elif isinstance(kubernetes, Mapping):
            kubernetes = KubernetesService(str(kubernetes["namespace"]), str(kubernetes["service"]),
                                           kubernetes["port"], str(kubernetes.get("scheme", "http")),
                                           kubernetes.get("context"), kubernetes.get("kubeconfig"))
        basic = data.get("basic_auth")
        return cls(
            name=name,
            url=url.rstrip("/") if isinstance(url, str) else None,
            kubernetes=kubernetes,
            bearer_token=credential(data, "bearer_token"),
            basic_auth=BasicAuth(str(basic["username"]), credential(basic, "password"))  # type: ignore[arg-type]
            if isinstance(basic, Mapping) else None,
            ca_file=data.get("ca_file"),
            client_cert_file=data.get("client_cert_file"),
            client_key_file=data.get("client_key_file"),
            insecure_skip_verify=bool(data.get("insecure_skip_verify", False)),
            headers=tuple(sorted((str(k), str(v)) for k, v in (data.get("headers") or {}).items())),
            timeout=float(data["timeout"]) if data.get("timeout") is not None else None,
        )

    def describe(self) -> str:
        """Where it is, never a credential: the URL or ``k8s://NS/SERVICE:PORT``."""
        if self.kubernetes is not None:
            k = self.kubernetes
            return f"k8s://{k.namespace}/{k.service}:{k.port}" + (f" (context {k.context})" if k.context else "")
        return str(self.url)


def credential(data: Mapping[str, Any], prefix: str) -> Credential | None:
    """The credential ``{prefix}_file`` / ``_env`` / ``_secret`` of a declaration, or None."""
    for source in ("file", "env", "secret"):
        value = data.get(f"{prefix}_{source}")
        if value is not None:
            return Credential(source, str(value))
    return None


def parse_k8s_url(url: str) -> KubernetesService:
    """``k8s://NAMESPACE/SERVICE:PORT`` (the port a number or a port name; http) as a Service; ValueError if not."""
    match = K8S_URL.match(url)
    if match is None or not match["port"]:
        raise ValueError(f"{url!r} is not k8s://NAMESPACE/SERVICE:PORT")
    port = match["port"]
    return KubernetesService(match["namespace"], match["service"], int(port) if port.isdigit() else port)


@dataclass(frozen=True)
class Connection:
    """How to reach one endpoint now: its base URL (no trailing slash) and a session carrying its credentials."""

    name: str
    base_url: str
    session: requests.Session = field(repr=False, compare=False)
    timeout: float | None = None  # the endpoint's cap on one request, seconds

    def request_timeout(self, timeout: float) -> float:
        """The smaller of a call's own timeout and the endpoint's."""
        return timeout if self.timeout is None else min(timeout, self.timeout)

    @property
    def url(self) -> BoundURL:
        """The base URL, bound to this connection: two endpoints may share a URL (two tenants of one Mimir, one
        ingress routing by Host), so a driver passes this on and every call made with it uses this session."""
        return BoundURL(self.base_url, self)


class BoundURL(str):
    """A base URL that remembers the connection it came from. Copied, pickled or serialised it is a plain string
    (a change record or a journal never holds a session)."""

    connection: Connection

    def __new__(cls, value: str, connection: Connection) -> BoundURL:
        made = super().__new__(cls, value)
        made.connection = connection
        return made

    def __copy__(self) -> str:
        return str(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> str:
        return str(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (str(self),))


SENSITIVE_HEADERS = ("authorization", "proxy-authorization", "cookie")


def client_settings(connection: Connection) -> dict[str, Any]:
    """What another process (the traffic generator) needs to make the calls ``connection`` makes: its base URL,
    the headers of a request (its credentials, read now, among them), ``verify``, ``cert``, ``proxies``, the
    endpoint's timeout and ``mask`` (the credential values, never to be written). Secret: hand it over privately
    (a pipe or a 0600 file), never on a command line or in the environment."""
    import requests

    session = connection.session
    prepared = session.prepare_request(requests.Request("GET", connection.base_url + "/"))
    defaults = requests.utils.default_headers()
    headers = {k: v for k, v in prepared.headers.items() if defaults.get(k) != v and k.lower() != "content-length"}
    mask = [v for k, v in headers.items() if k.lower() in SENSITIVE_HEADERS]
    mask += [v.split(" ", 1)[1] for v in mask if " " in v]  # the token without its scheme ("Bearer ...")
    mask += [_basic_password(v) for v in mask if v.lower().startswith("basic ")]
    cert = session.cert
    return {"base_url": connection.base_url, "headers": headers, "verify": session.verify,
            "cert": list(cert) if isinstance(cert, tuple) else cert, "proxies": dict(session.proxies),
            "timeout": connection.timeout, "mask": sorted(set(mask) - {""}, key=len, reverse=True)}


def _basic_password(header: str) -> str:
    """The password in a ``Basic`` Authorization header's value ('' when it holds none)."""
    import base64
    import binascii

    try:
        return base64.b64decode(header.split(" ", 1)[1], validate=True).decode("utf-8").partition(":")[2]
    except (binascii.Error, UnicodeDecodeError, IndexError):
        return ""


def settings_session(settings: Mapping[str, Any]) -> requests.Session:
    """A session that makes the calls :func:`client_settings` describes (in the process it was handed to)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    session.headers.update(settings.get("headers") or {})
    session.verify = settings.get("verify", True)
    cert = settings.get("cert")
    session.cert = tuple(cert) if isinstance(cert, list) else cert
    session.proxies = dict(settings.get("proxies") or {})
    return session


KubernetesConnector = Callable[[Endpoint, "requests.Session"], str]
_kubernetes_connector: KubernetesConnector | None = None


def register_kubernetes_connector(connector: KubernetesConnector | None) -> None:
    """Install how ``kubernetes`` endpoints are reached (None removes it).

    ``connector(endpoint, session)`` returns the base URL of the Service through the API server's service
    proxy (of the endpoint's ``kubernetes.context`` of its ``kubernetes.kubeconfig``, an absolute path here, when
    given) (``https://API/api/v1/namespaces/NS/services/SCHEME:SERVICE:PORT/proxy``) and configures
    ``session`` with the kubeconfig's credentials (its own headers, CA and client certificate). The
    endpoint's own extra headers and timeout are applied after it; its own bearer token / basic auth are
    not (the API server takes the kubeconfig's; a token for the Service itself would be replaced).
    """
    global _kubernetes_connector
    _kubernetes_connector = connector


def kubernetes_connector() -> KubernetesConnector | None:
    """The registered Kubernetes connector, if any (to restore it after replacing it)."""
    return _kubernetes_connector


def read_credential(cred: Credential, secrets: Mapping[str, Any], base_dir: Path, endpoint: str) -> str:
    """The credential's value; EndpointUnavailable naming the endpoint and the source when it cannot be read."""
    where = f"endpoint {endpoint!r}: {cred.describe()}"
    if cred.source == "file":
        path = resolve_path(cred.reference, base_dir)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise EndpointUnavailable(f"{where}: cannot read {path}: {exc.__class__.__name__}: "
                                      f"{getattr(exc, 'strerror', None) or exc}") from None
    elif cred.source == "env":
        value = os.environ.get(cred.reference, "").strip()
        if not value:
            raise EndpointUnavailable(f"{where} is not set (or empty)")
    else:
        scope, _, key = cred.reference.partition(".")
        found = (secrets.get(scope) or {}).get(key) if isinstance(secrets.get(scope), Mapping) else None
        if not isinstance(found, str) or not found:
            raise EndpointUnavailable(f"{where}: no such secret (or not a string) among the experiment's secrets "
                                      f"(during `mlchaos recover` and in the guardian the experiment's secrets are "
                                      f"not available: use bearer_token_file or _env for endpoints that undos use)")
        value = found.strip()
    if not value:
        raise EndpointUnavailable(f"{where} is empty")
    return value


def resolve_path(path: str, base_dir: Path) -> Path:
    """A declared file: ``~`` expanded, relative to the experiment's folder."""
    return base_dir / Path(path).expanduser()


def connect(endpoint: Endpoint, secrets: Mapping[str, Any] | None = None, base_dir: Path | None = None,
            on_secret: Callable[[str], None] | None = None) -> Connection:
    """A :class:`Connection` to ``endpoint``: the seam every driver call to a declared endpoint goes through.

    Reads the credentials now (a projected ServiceAccount token is re-read on each connect), hands each
    value to ``on_secret`` before it is used, and checks the files the session needs. A ``kubernetes``
    endpoint goes through the registered connector (EndpointUnavailable while there is none).
    """
    import requests

    secrets, base_dir = secrets or {}, base_dir or Path.cwd()
    session = requests.Session()
    session.trust_env = False  # no proxy or netrc credentials from the environment leak into these calls
    if endpoint.kubernetes is not None:
        if _kubernetes_connector is None:
            raise EndpointUnavailable(f"endpoint {endpoint.name!r} ({endpoint.describe()}): in-cluster endpoints "
                                      f"are not available in this installation (no Kubernetes connector is "
                                      f"registered); give its url instead")
        kubeconfig = endpoint.kubernetes.kubeconfig
        if kubeconfig is not None:  # the connector gets it as a path from here
            endpoint = dataclasses.replace(endpoint, kubernetes=dataclasses.replace(
                endpoint.kubernetes, kubeconfig=str(resolve_path(kubeconfig, base_dir))))
        base_url = _kubernetes_connector(endpoint, session).rstrip("/")
    else:
        base_url = str(endpoint.url)
        _configure_tls(endpoint, session, base_dir)
        _configure_auth(endpoint, session, secrets, base_dir, on_secret)
    for name, value in endpoint.headers:
        session.headers[name] = value
    return Connection(endpoint.name, base_url, session, endpoint.timeout)


def _configure_tls(endpoint: Endpoint, session: requests.Session, base_dir: Path) -> None:
    def existing(path: str, what: str) -> str:
        resolved = resolve_path(path, base_dir)
        if not resolved.is_file():
            raise EndpointUnavailable(f"endpoint {endpoint.name!r}: {what} {resolved} does not exist")
        return str(resolved)

    if endpoint.insecure_skip_verify:
        session.verify = False
    elif endpoint.ca_file:
        session.verify = existing(endpoint.ca_file, "ca_file")
    if endpoint.client_cert_file and endpoint.client_key_file:
        session.cert = (existing(endpoint.client_cert_file, "client_cert_file"),
                        existing(endpoint.client_key_file, "client_key_file"))


def _configure_auth(endpoint: Endpoint, session: requests.Session, secrets: Mapping[str, Any], base_dir: Path,
                    on_secret: Callable[[str], None] | None) -> None:
    def value(cred: Credential) -> str:
        text = read_credential(cred, secrets, base_dir, endpoint.name)
        if on_secret is not None:
            on_secret(text)
        return text

    if endpoint.bearer_token is not None:
        session.headers["Authorization"] = f"Bearer {value(endpoint.bearer_token)}"
    elif endpoint.basic_auth is not None:
        session.auth = (endpoint.basic_auth.username, value(endpoint.basic_auth.password))


@dataclass
class EndpointTable:
    """The endpoints one experiment declares, with what reading their credentials needs."""

    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    secrets: Mapping[str, Any] = field(default_factory=dict)
    base_dir: Path = field(default_factory=Path.cwd)
    on_secret: Callable[[str], None] | None = None
    _connections: dict[str, Connection] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, name: str) -> Endpoint:
        found = self.endpoints.get(name)
        if found is None:
            known = ", ".join(sorted(self.endpoints)) or "none"
            raise EndpointUnavailable(f"no endpoint named {name!r} is declared (declared: {known})")
        return found

    def connection(self, name: str) -> Connection:
        """The (cached) connection to the endpoint called ``name``."""
        with self._lock:
            found = self._connections.get(name)
            if found is None:
                found = connect(self.get(name), self.secrets, self.base_dir, self.on_secret)
                self._connections[name] = found
            return found

    def connections(self) -> Iterator[Connection]:
        with self._lock:
            yield from list(self._connections.values())

    def credentials(self) -> Iterator[str]:
        """Every credential value that can be read now (for redaction before anything runs); unreadable ones
        are skipped here: the endpoint that needs one fails clearly when it is used."""
        for endpoint in self.endpoints.values():
            creds = [endpoint.bearer_token, endpoint.basic_auth.password if endpoint.basic_auth else None]
            for cred in creds:
                if cred is None:
                    continue
                try:
                    yield read_credential(cred, self.secrets, self.base_dir, endpoint.name)
                except EndpointUnavailable:
                    continue

    def problems(self) -> list[str]:
        """What keeps a declared endpoint from being used here: a credential that cannot be read, a CA, client
        certificate or key file that does not exist (``kubernetes`` endpoints are left to their connector)."""
        found = []
        for endpoint in self.endpoints.values():
            if endpoint.kubernetes is not None:
                continue
            try:
                _configure_tls(endpoint, _NoSession(), self.base_dir)
                for cred in (endpoint.bearer_token, endpoint.basic_auth.password if endpoint.basic_auth else None):
                    if cred is not None:
                        read_credential(cred, self.secrets, self.base_dir, endpoint.name)
            except EndpointUnavailable as exc:
                found.append(str(exc))
        return found

    def close(self) -> None:
        with self._lock:
            for conn in self._connections.values():
                conn.session.close()
            self._connections.clear()


class _NoSession:
    """Takes what :func:`_configure_tls` sets, so its checks run without a session."""

    verify: Any = True
    cert: Any = None


_active: EndpointTable | None = None
_active_lock = threading.Lock()


def activate(table: EndpointTable | None) -> EndpointTable | None:
    """Make ``table`` the process's endpoints (the run's threads and guards all see it); returns the previous one."""
    global _active
    with _active_lock:
        previous, _active = _active, table
    return previous


def active() -> EndpointTable | None:
    """The endpoints of the run (or recovery) in progress, or None."""
    return _active


def session_for(url: str) -> Connection | None:
    """The connection a :class:`BoundURL` carries; else the connection of the active endpoint whose base URL
    ``url`` starts with (same scheme, host, port and path prefix), or None: a call to a declared endpoint's URL
    carries its credentials whether the activity named the endpoint or gave its URL; a call elsewhere carries none.

    EndpointUnavailable when that endpoint's credentials cannot be read.
    """
    if isinstance(url, BoundURL):
        return url.connection
    table = _active
    if table is None:
        return None
    for conn in table.connections():  # opened ones first: a kubernetes endpoint's base URL is known only then
        if _under(url, conn.base_url):
            return conn
    for name, endpoint in table.endpoints.items():
        if endpoint.url is not None and _under(url, endpoint.url):
            return table.connection(name)
    return None


def _under(url: str, base_url: str) -> bool:
    target, base = urlsplit(url), urlsplit(base_url)
    return (base.scheme, base.netloc) == (target.scheme, target.netloc) and \
        (target.path.rstrip("/") + "/").startswith(base.path.rstrip("/") + "/")
