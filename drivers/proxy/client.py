"""The one place where the proxy drivers talk HTTP: errors become DriverError here.

``url`` is the API of any Toxiproxy-compatible server (mlchaos' own proxy or
Toxiproxy itself); None means the sandbox's proxy (``mlchaos sandbox up``).
"""

from __future__ import annotations

import math
from typing import Any

import requests

from mlchaos.errors import DriverError, SandboxError
from mlchaos.proxy.errors import InvalidToxic
from mlchaos.proxy.toxics import TOXICS, build
from mlchaos.sandbox.manager import METRICS_PROXY_SUFFIX, Replica, Sandbox

HTTP_TIMEOUT = 5.0
STREAMS = ("upstream", "downstream")


def api_url(url: str | None) -> str:
    """The API base URL: ``url``, or the sandbox proxy's."""
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DriverError(f"url must be the http(s) URL of a Toxiproxy-compatible API, got {url!r}")
        return url.rstrip("/")
    try:
        return Sandbox().proxy_api_url()
    except SandboxError as exc:
        raise DriverError(str(exc)) from exc


def sandbox_replica(proxy: str, url: str | None) -> Replica | None:
    """The sandbox replica that proxy ``proxy`` fronts (only when ``url`` is None), else None."""
    if url is not None:
        return None
    try:
        replicas = Sandbox().recorded()
    except SandboxError as exc:
        raise DriverError(str(exc)) from exc
    name = proxy.removesuffix(METRICS_PROXY_SUFFIX)  # "<replica>-metrics" carries that replica's scrapes
    return next((r for r in replicas if r.name == name), None)


def call(method: str, base: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
    """One API call; the parsed JSON (None for an empty body, or a 404 with ``missing_ok``)."""
    try:
        resp = requests.request(method, f"{base}{path}", json=body, timeout=HTTP_TIMEOUT)
    except requests.RequestException as exc:
        raise DriverError(f"proxy API {method} {base}{path} failed: {exc}") from exc
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
    if type not in TOXICS:
        raise DriverError(f"unknown toxic type {type!r}; known: {', '.join(sorted(TOXICS))}")
    if attributes is not None and not isinstance(attributes, dict):
        raise DriverError(f"attributes must be a mapping, got {attributes!r}")
    try:
        build(type, attributes)
    except InvalidToxic as exc:
        raise DriverError(str(exc)) from None
    if stream not in STREAMS:
        raise DriverError(f"stream must be upstream (client->server) or downstream (server->client), got {stream!r}")
    if stream not in TOXICS[type].streams:
        raise DriverError(f"toxic {type} acts on the {' or '.join(TOXICS[type].streams)} stream only, not {stream}")
    if isinstance(toxicity, bool) or not isinstance(toxicity, int | float) or not 0 <= toxicity <= 1:
        raise DriverError(f"toxicity must be a number in [0, 1] (fraction of connections), got {toxicity!r}")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)
                            or not math.isfinite(ttl) or ttl <= 0):
        raise DriverError(f"ttl must be a number of seconds > 0, got {ttl!r}")
