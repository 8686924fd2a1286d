"""The sandbox monitoring stack as the Prometheus driver sees it: its URL, its rule files, promtool, preflight.

The only module of drivers.prometheus that imports ``mlchaos.sandbox``; without a ``url``
argument the driver talks to the stack ``mlchaos sandbox up`` started.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivers._common.endpoints import base_url
from mlchaos.driver_kit import private_dir
from mlchaos.sandbox import monitoring_stack

DEFAULT_ENDPOINT = "prometheus"  # the declared endpoint used when neither url nor endpoint is given


def prometheus_url(url: str | None, endpoint: str | None = None) -> str:
    """The named ``endpoint``'s base URL, else ``url`` (an http(s) URL), else the declared ``prometheus`` endpoint's,
    else the sandbox Prometheus' (DriverError when its stack is not running)."""
    return base_url(endpoint, url, DEFAULT_ENDPOINT, lambda given: monitoring_stack.component_url(given, "prometheus"))


def rules_dir(create: bool = True) -> Path:
    """The directory of rule files the sandbox Prometheus loads (``rules.d/*.yml``)."""
    path = monitoring_stack.Monitoring().rules_dir
    if create:
        private_dir(path)
    return path


def promtool() -> str:
    """The path of promtool (DriverError naming the package when it is missing)."""
    return monitoring_stack.promtool()


def preflight(func: str, arguments: dict[str, Any]) -> list[str]:
    """Validation hook of the probes: aimed at the sandbox, the monitoring binaries must be installed."""
    if func.startswith(("notification_", "resolved_notification_")):
        return []  # served by the run's receiver; `notifications: listen: sandbox` is checked on its own
    return monitoring_stack.preflight_for_sandbox(arguments)


def preflight_rule_files(arguments: dict[str, Any]) -> list[str]:
    """What the actions need: rule files go into the sandbox Prometheus, which must be installed."""
    return monitoring_stack.preflight_for_sandbox(arguments, needs_sandbox=True)
