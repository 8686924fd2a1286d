"""One GET of a JSON HTTP API (Prometheus, Alertmanager), its transport failures and refusals translated once.

A call to a declared endpoint's URL goes through its session (its credentials, CA, client certificate).
"""

from __future__ import annotations

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


def get_json(service: str, base: str, path: str, params: dict[str, str] | None,
             timeout: float) -> tuple[requests.Response, Any]:
    """GET ``base + path``: the answer and its JSON body (None when it is not JSON); DriverError without an answer.

    ``service`` names the server in the error (``Prometheus at <base> is unreachable: ...``).
    """
    http, capped = http_for(base)
    with http_errors(f"{service} at {base}", path, capped(timeout)):
        resp = http.get(base + path, params=params, timeout=capped(timeout))
    refused(service, base, path, resp)
    try:
        return resp, resp.json()
    except ValueError:
        return resp, None
