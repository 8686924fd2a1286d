"""Waiting for a monitored system to settle before a drill checks its steady state.

A stack that has just started (or a sandbox whose monitoring just came up) may honestly alert for its first
seconds: a replica still loading its model, probes slow on a loaded host (the windowed rules look back 10-30 s).
No fault was injected, so such an alert must resolve by itself; a drill's "no unrelated alert" steady state is
only meaningful once it has.
"""

from __future__ import annotations

import dataclasses
import time

from drivers.prometheus.probes import no_unexpected_alerts, unexpected_alert_count
from mlchaos.monitoring.alert_rules import SANDBOX, RuleParameters, parse_duration
from mlchaos.sandbox.monitoring_stack import wait_for_settled_rules

SETTLE_SECONDS = 90.0


def wait_until_quiet(prometheus_url: str, timeout: float = SETTLE_SECONDS) -> None:
    """Return once Prometheus has no firing alert; fail naming the ones still firing after ``timeout`` s."""
    if unexpected_alert_count(allowed=[], url=prometheus_url, within=timeout) != 0:
        firing = no_unexpected_alerts(allowed=[], url=prometheus_url)
        raise AssertionError(f"alerts still firing {timeout:g}s after start, with no fault injected: {firing}")


def longest_window(params: RuleParameters = SANDBOX) -> float:
    """The longest lookback window of the profile's rules, in seconds."""
    return max(parse_duration(value) for name, value in dataclasses.asdict(params).items()
               if name.endswith("_window"))


def wait_until_settled(prometheus_url: str, params: RuleParameters = SANDBOX, timeout: float = SETTLE_SECONDS) -> None:
    """Return once nothing done before the call can still be in a rule's window and nothing is pending or firing:
    the rules were evaluated on samples all taken after now plus the longest window, then every alert resolved.
    For a test that checks a steady state after tests that sent invalid inputs or NaN answers on the same stack
    (the sandbox profile's windows are seconds: what they did may still be firing, or about to)."""
    deadline = time.monotonic() + timeout
    wait_for_settled_rules(prometheus_url, time.time() + longest_window(params), deadline, params)
    if unexpected_alert_count(allowed=[], url=prometheus_url, within=max(deadline - time.monotonic(), 0.0),
                              pending=True) != 0:
        left = no_unexpected_alerts(allowed=[], url=prometheus_url, pending=True)
        raise AssertionError(f"alerts still pending or firing {timeout:g}s after the last test's faults: {left}")
