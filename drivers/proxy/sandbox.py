"""mlchaos' own fault proxy and sandbox as the proxy driver sees them: the toxic catalogue, the sandbox's proxy API.

The one place drivers.proxy (and drivers.telemetry, which acts on the sandbox's metrics
proxies) reach ``mlchaos.proxy`` and ``mlchaos.sandbox``. A toxic is checked against
mlchaos' proxy's catalogue before anything changes, whichever Toxiproxy-compatible server
receives it.
"""

from __future__ import annotations

from typing import Any

from drivers._common.errors import translated
from drivers.process.sandbox import Replica, recorded
from mlchaos.driver_kit import DriverError
from mlchaos.proxy.errors import InvalidToxic
from mlchaos.proxy.toxics import TOXICS, build
from mlchaos.proxy.toxics.http_requests import FEEDBACK_PATH, INFER_PATH
from mlchaos.sandbox.manager import METRICS_PROXY_SUFFIX, Sandbox

__all__ = ["FEEDBACK_PATH", "INFER_PATH", "METRICS_PROXY_SUFFIX", "check_toxic_type", "metrics_proxy",
           "replica_behind", "sandbox_api_headers", "sandbox_api_url"]


def sandbox_api_url() -> str:
    """The API URL of the sandbox's running proxy (DriverError when it is not running)."""
    with translated():
        return Sandbox().proxy_api_url()


def sandbox_api_headers(base: str) -> dict[str, str]:
    """The sandbox proxy's token header when ``base`` is the sandbox's proxy API, else {} (never sent elsewhere)."""
    proxy = Sandbox().proxy()
    return proxy.api_headers() if proxy.api_url() == base.rstrip("/") else {}


def replica_behind(proxy: str) -> Replica | None:
    """The sandbox replica that proxy ``proxy`` fronts (``<replica>`` or ``<replica>-metrics``), if any."""
    name = proxy.removesuffix(METRICS_PROXY_SUFFIX)  # "<replica>-metrics" carries that replica's scrapes
    return next((r for r in recorded() if r.name == name), None)


def metrics_proxy(replica: str) -> str:
    """The name of the sandbox proxy that carries only Prometheus' scrapes of ``replica``."""
    return f"{replica}{METRICS_PROXY_SUFFIX}"


def check_toxic_type(type: str, attributes: dict[str, Any] | None, stream: str) -> None:
    """A known toxic type with valid attributes, on a stream it acts on (DriverError otherwise)."""
    if type not in TOXICS:
        raise DriverError(f"unknown toxic type {type!r}; known: {', '.join(sorted(TOXICS))}")
    if attributes is not None and not isinstance(attributes, dict):
        raise DriverError(f"attributes must be a mapping, got {attributes!r}")
    try:
        build(type, attributes)
    except InvalidToxic as exc:
        raise DriverError(str(exc)) from None
    if stream not in ("upstream", "downstream"):
        raise DriverError(f"stream must be upstream (client->server) or downstream (server->client), got {stream!r}")
    if stream not in TOXICS[type].streams:
        raise DriverError(f"toxic {type} acts on the {' or '.join(TOXICS[type].streams)} stream only, not {stream}")
