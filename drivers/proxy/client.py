"""The one place where the proxy drivers talk HTTP: errors become DriverError here.

``url`` is the API of any Toxiproxy-compatible server (mlchaos' own proxy or
Toxiproxy itself); None means the sandbox's proxy (``mlchaos sandbox up``). Every call
carries the API token when one is configured (``MLCHAOS_PROXY_TOKEN`` or
``MLCHAOS_PROXY_TOKEN_FILE``, as ``Authorization: Bearer``; Toxiproxy ignores it).
"""

from __future__ import annotations

from typing import Any

import requests

from drivers._common import checks
from drivers._common.errors import http_errors
from drivers.process.sandbox import Replica
from drivers.proxy.sandbox import check_toxic_type, replica_behind, sandbox_api_headers, sandbox_api_url
from mlchaos.driver_kit import DriverError, proxy_api_headers

HTTP_TIMEOUT = 5.0


def api_url(url: str | None) -> str:
    """The API base URL: ``url``, or the sandbox proxy's."""
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DriverError(f"url must be the http(s) URL of a Toxiproxy-compatible API, got {url!r}")
        return url.rstrip("/")
    return sandbox_api_url()


def sandbox_replica(proxy: str, url: str | None) -> Replica | None:
    """The sandbox replica that proxy ``proxy`` fronts (only when ``url`` is None), else None."""
    return replica_behind(proxy) if url is None else None


def call(method: str, base: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
    """One API call; the parsed JSON (None for an empty body, or a 404 with ``missing_ok``)."""
    headers = sandbox_api_headers(base) or proxy_api_headers(error=DriverError)
    with http_errors(f"proxy API at {base}", f"{method} {path}", HTTP_TIMEOUT):
        resp = requests.request(method, f"{base}{path}", json=body, headers=headers, timeout=HTTP_TIMEOUT)
    if resp.status_code == 404 and missing_ok:
        return None
    if resp.status_code >= 400:
        try:
            message = resp.json().get("error") or resp.text
        except ValueError:
            message = resp.text
        raise DriverError(f"proxy API {method} {path}: HTTP {resp.status_code}: {str(message).strip()}")
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        raise DriverError(f"proxy API {method} {path}: not JSON: {resp.text[:200]!r}") from None


def get_proxy(base: str, proxy: str) -> dict[str, Any]:
    """The proxy's JSON; a missing one is a DriverError naming the known proxies."""
    if not isinstance(proxy, str) or not proxy:
        raise DriverError(f"proxy must be a proxy name, got {proxy!r}")
    found = call("GET", base, f"/proxies/{proxy}", missing_ok=True)
    if found is None:
        known = sorted(call("GET", base, "/proxies") or {})
        raise DriverError(f"no proxy {proxy!r} at {base} (known: {', '.join(known) or 'none'})")
    return found


def check_toxic(type: str, attributes: dict[str, Any] | None, stream: str, toxicity: float,
                ttl: float | None) -> None:
    """Validate a toxic before anything is changed; DriverError with a clear message."""
    check_toxic_type(type, attributes, stream)
    if isinstance(toxicity, bool) or not isinstance(toxicity, int | float) or not 0 <= toxicity <= 1:
        raise DriverError(f"toxicity must be a number in [0, 1] (fraction of connections), got {toxicity!r}")
    checks.ttl(ttl)
