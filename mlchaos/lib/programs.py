"""Finding the programs mlchaos runs (Prometheus, Alertmanager, promtool, the Pushgateway...)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def find_program(path: str) -> str | None:
    """``path`` when it is an executable file, else its name looked up on PATH; None when neither exists."""
    if os.access(path, os.X_OK) and Path(path).is_file():
        return path
    return shutil.which(Path(path).name)
