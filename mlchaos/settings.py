"""mlchaos' own settings, read from the experiment's ``extensions`` entry named ``mlchaos``.

Keeping them in an extension keeps the file a valid Chaos Toolkit experiment.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

DEFAULT_ACTIVITY_TIMEOUT = 60.0
DEFAULT_ROLLBACK_TIMEOUT = 120.0
DEFAULT_BACKGROUND_JOIN_TIMEOUT = 300.0


@dataclass(frozen=True)
class SettingField:
    """How one setting is checked."""

    requirement: str
    kind: str = "positive-number"

    def accepts(self, value: Any) -> bool:
        if self.kind == "positive-number":
            return isinstance(value, numbers.Number) and not isinstance(value, bool) and value > 0
        if self.kind == "probes":
            return isinstance(value, list)
        return False


SETTINGS_FIELDS: dict[str, SettingField] = {
    "activity_timeout": SettingField("must be a positive number of seconds"),
    "rollback_timeout": SettingField("must be a positive number of seconds"),
    "recovery": SettingField("must be a list of probes with tolerances", kind="probes"),
}


@dataclass(frozen=True)
class Settings:
    """Run settings with their defaults filled in."""

    activity_timeout: float = DEFAULT_ACTIVITY_TIMEOUT
    rollback_timeout: float = DEFAULT_ROLLBACK_TIMEOUT

    @classmethod
    def from_experiment(cls, data: dict[str, Any]) -> Settings:
        """Read the (already validated) mlchaos extension of an experiment."""
        for ext in data.get("extensions") or []:
            if isinstance(ext, dict) and ext.get("name") == "mlchaos":
                values = {
                    k: float(v) for k, v in ext.items()
                    if k in SETTINGS_FIELDS and SETTINGS_FIELDS[k].kind == "positive-number"
                }
                return cls(**values)
        return cls()
