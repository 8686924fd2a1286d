"""One GET of an HTTP API (Prometheus, Alertmanager: JSON, or a /metrics page), its transport failures and refusals
translated once.

A call to a declared endpoint's URL goes through its session (its credentials, CA, client certificate).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import requests

from drivers._common.endpoints import http_for
from drivers._common.errors import http_errors
from mlchaos.driver_kit import DriverError

AUTH_STATUSES = {401: "Unauthorized", 403: "Forbidden"}


def refused(service: str, base: str, path: str, resp: requests.Response) -> None:
    """DriverError when the server refused the request for want of (the right) credentials: HTTP 401 or 403."""
    if resp.status_code in AUTH_STATUSES:
        raise DriverError(f"{service} at {base} refused {path}: HTTP {resp.status_code} "
                          f"{AUTH_STATUSES[resp.status_code]} (credentials missing or wrong: declare them on an "
                          f"endpoint, extensions: mlchaos: endpoints, and name it with endpoint)")


def echoed(service: str, base: str, path: str, resp: requests.Response) -> None:
    """DriverError, the credential masked, when a refusal's text echoes the credential the request carried.

    vmauth 1.79 answers an unknown bearer token with HTTP 400 ``cannot find the provided auth token "Bearer
    <token>"``: a wrong token may still be a real one (stale, or another system's), so it is never shown.
    """
    if resp.ok:
        return
    text = resp.text[:300]
    masked = text
    for secret in _credentials(resp.request.headers.get("Authorization") if resp.request is not None else None):
        masked = masked.replace(secret, "***")
    if masked != text:
        raise DriverError(f"{service} at {base} refused {path}: HTTP {resp.status_code}: {masked!r} "
                          f"(the credential it echoed is masked)")


def _credentials(authorization: str | bytes | None) -> list[str]:
    """The secret parts of an Authorization header: a token; basic auth's encoded pair and its password."""
    if not authorization:
        return []
    value = authorization.decode(errors="replace") if isinstance(authorization, bytes) else authorization
    scheme, _, secret = value.partition(" ")
    found = [secret] if len(secret) >= 4 else []
    if scheme.lower() == "basic":
        try:
            password = base64.b64decode(secret, validate=True).decode(errors="replace").partition(":")[2]
        except (binascii.Error, ValueError):
            password = ""
        found += [password] if len(password) >= 4 else []
    return sorted(found, key=len, reverse=True)


def get(service: str, base: str, path: str, params: dict[str, str] | None, timeout: float) -> requests.Response:
    """GET ``base + path`` through the endpoint's session: the answer, whatever its status; DriverError without an
    answer, or when it refused the request for want of credentials (or echoed the one it got).

    ``service`` names the server in the error (``Prometheus at <base> is unreachable: ...``).
    """
    http, capped = http_for(base)
    with http_errors(f"{service} at {base}", path, capped(timeout)):
        resp = http.get(base + path, params=params, timeout=capped(timeout))
    refused(service, base, path, resp)
    echoed(service, base, path, resp)
    return resp


def get_json(service: str, base: str, path: str, params: dict[str, str] | None,
             timeout: float) -> tuple[requests.Response, Any]:
    """:func:`get`, and the answer's JSON body (None when it is not JSON)."""
    resp = get(service, base, path, params, timeout)
    try:
        return resp, resp.json()
    except ValueError:
        return resp, None
