"""Waiting for a monitored system to settle before a drill checks its steady state.

A stack that has just started (or a sandbox whose monitoring just came up) may honestly alert for its first
seconds: a replica still loading its model, probes slow on a loaded host (the windowed rules look back 10-30 s).
No fault was injected, so such an alert must resolve by itself; a drill's "no unrelated alert" steady state is
only meaningful once it has.
"""

from __future__ import annotations

from drivers.prometheus.probes import no_unexpected_alerts, unexpected_alert_count

SETTLE_SECONDS = 90.0


def wait_until_quiet(prometheus_url: str, timeout: float = SETTLE_SECONDS) -> None:
    """Return once Prometheus has no firing alert; fail naming the ones still firing after ``timeout`` s."""
    if unexpected_alert_count(allowed=[], url=prometheus_url, within=timeout) != 0:
        firing = no_unexpected_alerts(allowed=[], url=prometheus_url)
        raise AssertionError(f"alerts still firing {timeout:g}s after start, with no fault injected: {firing}")
