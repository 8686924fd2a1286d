"""Who may steer the API: the checks every request passes before it is routed (no I/O here).

In order, each refusal with its own status and a message that says what to do:

1. **Host** (403): the name the client asked for must be a loopback name or address, the
   address the API is bound to, a name given with ``--allow-host``, or -- when the API is
   bound to every interface (``0.0.0.0``, ``::``) -- any IP literal. A web page whose name
   an attacker re-pointed at this machine (DNS rebinding) sends its own name: refused.
2. **Origin** (403): a request carrying an ``Origin`` header comes from a browser page; it is
   refused unless that origin was given with ``--allow-origin``. So is one whose
   ``Sec-Fetch-Site`` says a browser sent it on behalf of another site.
3. **Token** (401): when a token is configured (required when the API listens beyond
   loopback, see :func:`require_token`), the request must carry it: ``Authorization: Bearer
   TOKEN``, HTTP basic authentication with the token as the password, or ``X-Mlchaos-Proxy-Token:
   TOKEN`` (what reaches the API through the Kubernetes API server's service proxy, which removes
   the Authorization header before forwarding). Compared in constant time.
4. **Content type** (415): a request with a body, and any POST, PUT, PATCH or DELETE that
   declares a ``Content-Type``, must be ``application/json``: what a cross-origin form or
   ``no-cors`` fetch cannot send without a preflight, which the API never answers.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass, field

from mlchaos.proxy.addresses import is_loopback
from mlchaos.proxy.request import RequestHead

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOKEN_HEADER = "x-mlchaos-proxy-token"  # the token in a header the Kubernetes API server's service proxy forwards
WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})
BROWSER_SITES = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values that are not another site


class InsecureApi(ValueError):
    """The API would listen beyond loopback without a token."""


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: its status and message."""

    status: int
    message: str


def host_name(value: str) -> str:
    """The host part of a ``Host`` header value (brackets and port removed, lower-cased, no final dot)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    name, colon, port = value.rpartition(":")
    if colon and port.isdigit():
        value = name
    return value.rstrip(".")


def require_token(host: str, token: str | None) -> None:
    """Raise InsecureApi, saying what to do, when the API host is beyond loopback and no token is set."""
    if token is None and not is_loopback(host):
        raise InsecureApi(
            f"the API would listen on {host or '0.0.0.0'}, beyond loopback, without a token: anyone who reaches"
            " it could re-point every proxy. Set MLCHAOS_PROXY_TOKEN (or MLCHAOS_PROXY_TOKEN_FILE, or"
            " --token-file), or bind the API to 127.0.0.1")


@dataclass(frozen=True)
class ApiGuard:
    """The checks of one API server (see the module doc)."""

    bound_host: str
    token: str | None = None
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    allowed_origins: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        require_token(self.bound_host, self.token)
        object.__setattr__(self, "allowed_hosts", frozenset(host_name(h) for h in self.allowed_hosts))
        object.__setattr__(self, "allowed_origins", frozenset(o.strip().lower().rstrip("/")
                                                              for o in self.allowed_origins))

    def check(self, head: RequestHead, body: bytes) -> Refusal | None:
        """None when the request may be routed, else why not."""
        return (self._host(head) or self._origin(head) or self._token(head) or self._content_type(head, body))

    def host_allowed(self, name: str) -> bool:
        """May a request asking for host ``name`` (from the Host header) be answered?"""
        if not name:
            return False
        if is_loopback(name) or name in self.allowed_hosts:
            return True
        bound = self.bound_host.strip("[]").lower()
        if bound not in WILDCARDS:
            return name == bound
        try:
            ipaddress.ip_address(name)  # an address, never a name someone could re-point at us
        except ValueError:
            return False
        return True

    def _host(self, head: RequestHead) -> Refusal | None:
        value = head.headers.get("host")
        if value is None:
            return Refusal(400, "a Host header is required")
        name = host_name(value)
        if self.host_allowed(name):
            return None
        return Refusal(403, f"this API does not answer to host {name[:100]!r} (a DNS-rebinding page would ask"
                            " for its own name); use a loopback address or the API's own address, or have the"
                            " proxy's operator add the name with --allow-host")

    def _origin(self, head: RequestHead) -> Refusal | None:
        origin = head.headers.get("origin")
        if origin is not None:
            if origin.strip().lower().rstrip("/") in self.allowed_origins:
                return None
            return Refusal(403, f"requests from web pages (Origin {origin[:100]!r}) are refused; the proxy's"
                                " operator allows one with --allow-origin")
        site = head.headers.get("sec-fetch-site")
        if site is not None and site.lower() not in BROWSER_SITES:
            return Refusal(403, f"a browser request made on behalf of another site (Sec-Fetch-Site: {site[:40]})"
                                " is refused")
        return None

    def _token(self, head: RequestHead) -> Refusal | None:
        if self.token is None:
            return None
        for given in (presented_token(head.headers.get("authorization", "")), head.headers.get(TOKEN_HEADER)):
            if given is not None and hmac.compare_digest(given.strip().encode(), self.token.encode()):
                return None
        return Refusal(401, "missing or wrong API token: send it as 'Authorization: Bearer TOKEN' (or as the"
                            " password of HTTP basic authentication, or as X-Mlchaos-Proxy-Token); mlchaos' clients"
                            " read it from MLCHAOS_PROXY_TOKEN or MLCHAOS_PROXY_TOKEN_FILE")

    @staticmethod
    def _content_type(head: RequestHead, body: bytes) -> Refusal | None:
        declared = head.headers.get("content-type")
        if not body and (declared is None or head.method not in WRITES):
            return None
        if declared is None:
            return Refusal(415, "a request body must be sent with Content-Type: application/json")
        if declared.split(";", 1)[0].strip().lower() == "application/json":
            return None
        return Refusal(415, f"the API takes JSON only (Content-Type: application/json), got {declared[:100]!r}")


def presented_token(authorization: str) -> str | None:
    """The token in an Authorization header value (Bearer, or basic auth's password), or None."""
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        _, colon, password = decoded.partition(":")
        return password if colon else None
    return None
