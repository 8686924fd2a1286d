"""One GET of a JSON HTTP API (Prometheus, Alertmanager), its transport failures translated once."""

from __future__ import annotations

from typing import Any

import requests

from drivers._common.errors import http_errors


def get_json(service: str, base: str, path: str, params: dict[str, str] | None,
             timeout: float) -> tuple[requests.Response, Any]:
    """GET ``base + path``: the answer and its JSON body (None when it is not JSON); DriverError without an answer.

    ``service`` names the server in the error (``Prometheus at <base> is unreachable: ...``).
    """
    with http_errors(f"{service} at {base}", path, timeout):
        resp = requests.get(base + path, params=params, timeout=timeout)
    try:
        return resp, resp.json()
    except ValueError:
        return resp, None
