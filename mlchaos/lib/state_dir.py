"""Where mlchaos keeps its state on this host (sandbox, registered runs, the emergency stop)."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """Return the state directory (MLCHAOS_STATE_DIR, XDG_STATE_HOME or ~/.local/state)."""
    explicit = os.environ.get("MLCHAOS_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "mlchaos"
