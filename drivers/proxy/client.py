"""The one place where the proxy drivers talk HTTP: errors become DriverError here.

``endpoint`` names a declared endpoint (docs/experiment-format.md, "Endpoints"), whose session carries its
credentials (a bearer token: the proxy API's token), CA and headers; else ``url`` is the API of any
Toxiproxy-compatible server (mlchaos' own proxy or Toxiproxy itself); with neither, the endpoint declared as
``proxy``, else the sandbox's proxy (``mlchaos sandbox up``). A call without an endpoint carries the API token
when one is configured (``MLCHAOS_PROXY_TOKEN`` or ``MLCHAOS_PROXY_TOKEN_FILE``, as ``Authorization: Bearer``;
Toxiproxy ignores it).
"""

from __future__ import annotations

from typing import Any

import requests

from drivers._common import checks
from drivers._common.endpoints import connection, http_for
from drivers._common.errors import http_errors
from drivers._common.http import refused
from drivers.process.sandbox import Replica
from drivers.proxy.sandbox import check_toxic_type, replica_behind, sandbox_api_headers, sandbox_api_url
from mlchaos.driver_kit import DriverError, proxy_api_headers

HTTP_TIMEOUT = 5.0
DEFAULT_ENDPOINT = "proxy"  # the declared endpoint used when neither url nor endpoint is given


def api_url(url: str | None, endpoint: str | None = None) -> str:
    """The API base URL: the named ``endpoint``'s, ``url``, the declared ``proxy`` endpoint's, or the sandbox's."""
    found = connection(endpoint, url, DEFAULT_ENDPOINT)
    if found is not None:
        return found.url
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DriverError(f"url must be the http(s) URL of a Toxiproxy-compatible API, got {url!r}")
        return url.rstrip("/")
    return sandbox_api_url()


def sandbox_replica(proxy: str, url: str | None, endpoint: str | None = None) -> Replica | None:
    """The sandbox replica that proxy ``proxy`` fronts (only when the sandbox's proxy is the one called), else None."""
    if url is not None or connection(endpoint, url, DEFAULT_ENDPOINT) is not None:
        return None
    return replica_behind(proxy)


def call(method: str, base: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
    """One API call; the parsed JSON (None for an empty body, or a 404 with ``missing_ok``)."""
    http, capped = http_for(base)  # a declared endpoint's session carries its own credentials
    if http is requests:
        headers = sandbox_api_headers(base) or proxy_api_headers(error=DriverError)
    else:  # the endpoint's session has its credentials; a configured token also goes in the header that survives
        # the Kubernetes API server's service proxy (it removes Authorization; kubernetes endpoints carry no token)
        headers = {k: v for k, v in proxy_api_headers(error=DriverError).items() if k != "Authorization"} or None
    with http_errors(f"proxy API at {base}", f"{method} {path}", capped(HTTP_TIMEOUT)):
        resp = http.request(method, f"{base}{path}", json=body, headers=headers, timeout=capped(HTTP_TIMEOUT))
    refused("proxy API", base, f"{method} {path}", resp)
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
