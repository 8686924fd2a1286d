"""The sandbox monitoring stack as the Alertmanager driver sees it: its Alertmanager and the sink it notifies.

The only module of drivers.alertmanager that imports ``mlchaos.sandbox``.
"""

from __future__ import annotations

from drivers._common.endpoints import base_url
from mlchaos.sandbox import monitoring_stack

DEFAULT_ENDPOINT = "alertmanager"  # the declared endpoint used when neither url nor endpoint is given


def alertmanager_url(url: str | None, endpoint: str | None = None) -> str:
    """The named ``endpoint``'s base URL, else ``url`` (an http(s) URL), else the declared ``alertmanager``
    endpoint's, else the sandbox Alertmanager's (DriverError when its stack is not running)."""
    return base_url(endpoint, url, DEFAULT_ENDPOINT,
                    lambda given: monitoring_stack.component_url(given, "alertmanager"))


def sink_address() -> tuple[str, int]:
    """(host, port) of the webhook sink the sandbox Alertmanager notifies (DriverError when it is not running)."""
    found = monitoring_stack.endpoints()
    return found.sink_host, found.sink_port
