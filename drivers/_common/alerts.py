"""Which alerts a probe is about: a name, required labels, optionally the instances the run's last fault hit.

The Prometheus and Alertmanager probes select alerts (and delivered notifications) alike;
``match_fault_targets`` narrows them to the ``instance`` labels of the targets of the run's
most recent fault, as its change record names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mlchaos.driver_kit import DriverError, current_run, label_text


@dataclass(frozen=True)
class AlertSelector:
    """Which alerts a probe is about: a name, required labels, optionally the instances of the last fault."""

    alertname: str
    labels: dict[str, str] = field(default_factory=dict)
    instances: tuple[str, ...] | None = None  # None: any instance

    def matches(self, alertname: str, labels: Mapping[str, str]) -> bool:
        """True when the alert has this name, every required label, and (if asked) a fault instance."""
        if alertname != self.alertname or any(labels.get(k) != v for k, v in self.labels.items()):
            return False
        return self.instances is None or labels.get("instance") in self.instances

    def describe(self) -> str:
        """``Name{label="value"}`` plus the fault instances when they are required."""
        text = label_text(self.alertname, self.labels)
        if self.instances is not None:
            text += f" on instance {' or '.join(self.instances)}"
        return text


def alert_selector(
    alert: str, labels: dict[str, str] | None = None, match_fault_targets: bool = False
) -> AlertSelector:
    """Build a selector; with ``match_fault_targets`` the instances of the run's most recent fault.

    Raises DriverError when there is no run, no fault yet, or targets without an ``instance``.
    """
    if not isinstance(alert, str) or not alert:
        raise DriverError(f"alert must be a non-empty alert name, got {alert!r}")
    if labels is not None and (
        not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
    ):
        raise DriverError(f"labels must map label names to string values, got {labels!r}")
    instances = None
    if match_fault_targets:
        context = current_run()
        if context is None:
            raise DriverError("match_fault_targets needs a running experiment (no run context)")
        record = context.last_fault()
        if record is None:
            raise DriverError("match_fault_targets: no fault has been injected in this run yet")
        targets = context.fault_targets()
        found = tuple(sorted({str(t["instance"]) for t in targets if t.get("instance")}))
        if not found:
            names = ", ".join(t["name"] for t in targets) or "none"
            raise DriverError(
                f"match_fault_targets: the targets of the last fault ({record.action}: {names}) carry no 'instance'"
            )
        instances = found
    return AlertSelector(alert, dict(labels or {}), instances)
