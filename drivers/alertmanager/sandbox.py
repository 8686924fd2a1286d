"""The sandbox monitoring stack as the Alertmanager driver sees it: its Alertmanager and the sink it notifies.

The only module of drivers.alertmanager that imports ``mlchaos.sandbox``.
"""

from __future__ import annotations

from mlchaos.sandbox import monitoring_stack


def alertmanager_url(url: str | None) -> str:
    """``url`` (an http(s) URL), else the sandbox Alertmanager's (DriverError when its stack is not running)."""
    return monitoring_stack.component_url(url, "alertmanager")


def sink_address() -> tuple[str, int]:
    """(host, port) of the webhook sink the sandbox Alertmanager notifies (DriverError when it is not running)."""
    found = monitoring_stack.endpoints()
    return found.sink_host, found.sink_port
