"""Alertmanager's own notification counters, read from its ``/metrics``: did an integration's calls succeed?

Seen on Alertmanager 0.25 (Debian's binary), per ``integration`` label (``webhook``, ``slack``,
``pagerduty``, ``email``...; no receiver label in 0.25; a version that adds ``receiver_name`` is read per
receiver):

* ``alertmanager_notification_requests_total`` and ``alertmanager_notification_requests_failed_total``: every
  request to the integration and those that failed (a 5xx answer, no answer), counted as each returns;
* ``alertmanager_notifications_total``: notifications *started* (a group flushed to the integration), counted
  before the first request, so it rises for a notification that then fails;
* ``alertmanager_notifications_failed_total``: notifications given up after retrying until the notify
  timeout (10 s or the group interval, whichever is longer, in 0.25), so it rises late.

Hence a success is a request that returned success: ``requests`` rose by more than ``requests_failed``; and
a failure is either failed counter rising. Other labels (``reason`` in newer versions) are summed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from drivers._common.http import get
from mlchaos.driver_kit import DriverError

NAMES = {
    "notifications": "alertmanager_notifications_total",
    "notifications_failed": "alertmanager_notifications_failed_total",
    "requests": "alertmanager_notification_requests_total",
    "requests_failed": "alertmanager_notification_requests_failed_total",
}
RECEIVER_LABEL = "receiver_name"
BASELINE_KEY = "alertmanager-notifications {base} {integration}"  # RunContext.baselines


@dataclass(frozen=True)
class Sample:
    """One counter sample of the integration: its name (a key of NAMES), its other labels, its value."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True)
class Counters:
    """The integration's counter samples on one Alertmanager at one moment."""

    alertmanager: str
    integration: str
    samples: tuple[Sample, ...]
    read_at: float  # epoch seconds

    @property
    def per_receiver(self) -> bool:
        """Whether this Alertmanager labels its counters with the receiver (0.25 does not)."""
        return any(k == RECEIVER_LABEL for s in self.samples for k, _ in s.labels)

    def totals(self, receiver: str | None = None) -> dict[str, float]:
        """Each counter summed over its other labels; only ``receiver``'s when the counters carry one."""
        found = {key: 0.0 for key in NAMES}
        for sample in self.samples:
            labels = dict(sample.labels)
            if receiver is not None and RECEIVER_LABEL in labels and labels[RECEIVER_LABEL] != receiver:
                continue
            found[sample.name] += sample.value
        return found

    def since(self, baseline: Counters, receiver: str | None = None) -> dict[str, float]:
        """How much each counter rose since ``baseline``; DriverError when one went back (a restart)."""
        now, before = self.totals(receiver), baseline.totals(receiver)
        delta = {key: now[key] - before[key] for key in NAMES}
        fell = [NAMES[key] for key, value in delta.items() if value < 0]
        if fell:
            raise DriverError(f"Alertmanager at {self.alertmanager}: {', '.join(fell)} went back since the baseline "
                              f"(restarted?): record the baseline again")
        return delta

    def to_dict(self, receiver: str | None = None) -> dict[str, Any]:
        return {"integration": self.integration, "read_at": self.read_at, "per_receiver": self.per_receiver,
                **{key: value for key, value in self.totals(receiver).items()}}


def read(base: str, integration: str, timeout: float) -> Counters:
    """The integration's counters from ``base``'s /metrics (through the endpoint's session: its credentials).

    DriverError when Alertmanager does not answer, refuses, or exports no request counters for the integration.
    """
    from prometheus_client.parser import text_string_to_metric_families

    resp = get("Alertmanager", base, "/metrics", None, timeout)
    if not resp.ok:
        raise DriverError(f"Alertmanager at {base}: /metrics failed (HTTP {resp.status_code}): {resp.text[:200]!r}")
    by_name = {name: key for key, name in NAMES.items()}
    samples, integrations = [], set()
    try:
        for family in text_string_to_metric_families(resp.text):
            for sample in family.samples:
                key = by_name.get(sample.name)
                if key is None:
                    continue
                integrations.add(sample.labels.get("integration", ""))
                if sample.labels.get("integration") == integration:
                    labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "integration"))
                    samples.append(Sample(key, labels, float(sample.value)))
    except ValueError as exc:
        raise DriverError(f"Alertmanager at {base}: /metrics is not the Prometheus text format ({exc})") from None
    names = {s.name for s in samples}
    if not names:
        known = ", ".join(sorted(i for i in integrations if i)) or "none"
        raise DriverError(f"Alertmanager at {base} exports no notification counters for integration "
                          f"{integration!r} (its integrations: {known})")
    missing = [NAMES[key] for key in ("requests", "requests_failed") if key not in names]
    if missing:
        raise DriverError(f"Alertmanager at {base} does not export {', '.join(missing)}{{integration="
                          f"{integration!r}}}: without per-request counters a success cannot be told from a "
                          f"notification still retrying (0.25 exports them)")
    return Counters(base, integration, tuple(samples), time.time())
