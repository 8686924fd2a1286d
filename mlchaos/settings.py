"""mlchaos' own settings, read from the experiment's ``extensions`` entry named ``mlchaos``.

Keeping them in an extension keeps the file a valid Chaos Toolkit experiment.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

DEFAULT_ACTIVITY_TIMEOUT = 60.0
DEFAULT_ROLLBACK_TIMEOUT = 120.0
SANDBOX = "sandbox"
BUDGET_KINDS = {"detect": "time_to_detect", "notify": "time_to_notify", "recover": "time_to_recover",
                "notify_resolved": "time_to_notify_resolved"}
_ADDRESS = re.compile(r"^(?P<host>[^\s:]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")

Check = Callable[[Any], Iterator[tuple[str, str]]]


def _positive_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool) and value > 0


def _check_seconds(value: Any) -> Iterator[tuple[str, str]]:
    if not _positive_number(value):
        yield "", f"must be a positive number of seconds, got {value!r}"


def _check_probes(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, list):
        yield "", f"must be a list of probes with tolerances, got {value!r}"


def _check_notifications(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, dict) or set(value) - {"listen"}:
        yield "", "must be a mapping with 'listen': 'sandbox' or 'HOST:PORT'"
        return
    listen = value.get("listen", SANDBOX)
    if listen != SANDBOX and not (isinstance(listen, str) and _ADDRESS.match(listen)):
        yield "/listen", f"listen must be 'sandbox' or HOST:PORT, got {listen!r}"
    elif listen != SANDBOX and not 0 < int(_ADDRESS.match(listen)["port"]) < 65536:
        yield "/listen", f"port out of range in {listen!r}"


def _check_budgets(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, list):
        yield "", "must be a list of {alert, detect, notify, recover, notify_resolved} budgets"
        return
    for index, budget in enumerate(value):
        if not isinstance(budget, dict):
            yield f"/{index}", "a budget must be a mapping"
            continue
        if not isinstance(budget.get("alert"), str) or not budget.get("alert"):
            yield f"/{index}/alert", "required: the name of the alert the budget is about"
        unknown = set(budget) - {"alert", *BUDGET_KINDS}
        for key in sorted(unknown):
            yield f"/{index}/{key}", f"unknown budget {key!r} (use {', '.join(BUDGET_KINDS)})"
        if not set(budget) & set(BUDGET_KINDS):
            yield f"/{index}", f"a budget needs at least one of {', '.join(BUDGET_KINDS)} (seconds)"
        for key in set(budget) & set(BUDGET_KINDS):
            if not _positive_number(budget[key]):
                yield f"/{index}/{key}", f"must be a positive number of seconds, got {budget[key]!r}"


SETTINGS_CHECKS: dict[str, Check] = {
    "activity_timeout": _check_seconds,
    "rollback_timeout": _check_seconds,
    "recovery": _check_probes,
    "notifications": _check_notifications,
    "budgets": _check_budgets,
}


@dataclass(frozen=True)
class Budget:
    """How fast one alert must be detected / notified / resolved, in seconds after the fault."""

    alert: str
    limits: dict[str, float]  # measurement kind (time_to_detect...) -> seconds


@dataclass(frozen=True)
class Settings:
    """Run settings with their defaults filled in."""

    activity_timeout: float = DEFAULT_ACTIVITY_TIMEOUT
    rollback_timeout: float = DEFAULT_ROLLBACK_TIMEOUT
    notifications_listen: str | None = None
    budgets: tuple[Budget, ...] = ()

    @classmethod
    def from_experiment(cls, data: dict[str, Any]) -> Settings:
        """Read the (already validated) mlchaos extension of an experiment."""
        ext = mlchaos_extension(data)
        if ext is None:
            return cls()
        notifications = ext.get("notifications")
        return cls(
            activity_timeout=float(ext.get("activity_timeout", DEFAULT_ACTIVITY_TIMEOUT)),
            rollback_timeout=float(ext.get("rollback_timeout", DEFAULT_ROLLBACK_TIMEOUT)),
            notifications_listen=notifications.get("listen", SANDBOX) if notifications is not None else None,
            budgets=tuple(
                Budget(b["alert"], {BUDGET_KINDS[k]: float(v) for k, v in b.items() if k in BUDGET_KINDS})
                for b in ext.get("budgets", [])
            ),
        )


def mlchaos_extension(data: dict[str, Any]) -> dict[str, Any] | None:
    """The experiment's ``extensions`` entry named ``mlchaos``, if any."""
    for ext in data.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == "mlchaos":
            return ext
    return None
