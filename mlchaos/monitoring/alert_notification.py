"""One alert as Alertmanager delivered it (:class:`Notification`), and how to name an alert in a line.

Apart from the webhook receiver (:mod:`mlchaos.monitoring.notifications`), so a driver reading
notifications does not import the receiver's HTTP server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlchaos.lib.records import JsonRecord

ALERT_STATUSES = ("firing", "resolved")


@dataclass(frozen=True)
class Notification(JsonRecord):
    """One alert of one webhook payload, as Alertmanager delivered it."""

    received_at: float  # epoch seconds
    status: str  # "firing" | "resolved"
    alertname: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: str = ""
    ends_at: str = ""
    fingerprint: str = ""
    receiver: str = ""
    group_key: str = ""

    def describe(self) -> str:
        """``Name{label="value", ...} status`` (alertname left out of the labels)."""
        return f"{label_text(self.alertname, self.labels)} {self.status}"


def label_text(name: str, labels: dict[str, str]) -> str:
    """``Name{label="value", ...}``: the labels sorted, alertname left out; the bare name without other labels."""
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "alertname")
    return f"{name}{{{rest}}}" if rest else name
