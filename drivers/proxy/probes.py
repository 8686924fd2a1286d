"""Probes of a Toxiproxy-compatible proxy: its toxics, whether it is enabled, latency through it.

``url`` is the proxy API (None: the sandbox's proxy); every call has a timeout.
"""

from __future__ import annotations

import http.client
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

from drivers.proxy.client import DEFAULT_ENDPOINT as DEFAULT_ENDPOINT  # takes declared endpoints
from drivers.proxy.client import api_url, get_proxy
from mlchaos.driver_kit import DriverError

MAX_REQUESTS = 1000


def list_toxics(proxy: str, url: str | None = None, endpoint: str | None = None) -> list[dict[str, Any]]:
    """The toxics on a proxy (name, type, stream, toxicity, attributes, ttl, expires_at)."""
    return list(get_proxy(api_url(url, endpoint), proxy).get("toxics") or [])


def toxic_count(proxy: str, url: str | None = None, endpoint: str | None = None) -> int:
    """Number of toxics on a proxy (0: no network fault left)."""
    return len(list_toxics(proxy, url, endpoint))


def proxy_enabled(proxy: str, url: str | None = None, endpoint: str | None = None) -> bool:
    """True when the proxy accepts connections."""
    return bool(get_proxy(api_url(url, endpoint), proxy).get("enabled"))


def proxy_latency_ms(
    proxy: str, requests: int = 20, path: str = "/v2/health/live", url: str | None = None, timeout: float = 5.0,
    endpoint: str | None = None,
) -> float:
    """Median milliseconds of `requests` keep-alive HTTP GETs of `path` through the proxy.

    Only 2xx answers are timed; raises DriverError when none succeeded.
    """
    if isinstance(requests, bool) or not isinstance(requests, int) or not 1 <= requests <= MAX_REQUESTS:
        raise DriverError(f"requests must be an integer in [1, {MAX_REQUESTS}], got {requests!r}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise DriverError(f"path must start with '/', got {path!r}")
    listen = get_proxy(api_url(url, endpoint), proxy).get("listen", "")
    host, _, port = str(listen).rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        api = url or (api_url(url, endpoint) if endpoint else None)
        host = "127.0.0.1" if not api else urlsplit(api).hostname or "127.0.0.1"
    timings: list[float] = []
    errors: list[str] = []
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        for _ in range(requests):
            started = time.perf_counter()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(str(exc) or type(exc).__name__)
                conn.close()
                continue
            if 200 <= resp.status < 300:
                timings.append((time.perf_counter() - started) * 1000.0)
            else:
                errors.append(f"HTTP {resp.status}")
    finally:
        conn.close()
    if not timings:
        raise DriverError(f"none of {requests} requests through proxy {proxy!r} ({listen}{path}) succeeded:"
                          f" {errors[-1] if errors else 'no answer'}")
    return round(statistics.median(timings), 3)
