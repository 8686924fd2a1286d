"""The emergency stop: ``mlchaos stop`` engages it, every run on this host aborts, no new run starts.

It is a file in the state directory (``<state_dir>/STOP``) recording who engaged it, when and
why; runs check it before they start and while they run. ``mlchaos stop --clear`` removes it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlchaos.lib.files import atomic_write
from mlchaos.lib.state_dir import private_dir, state_dir

STOP_FILE = "STOP"


def path() -> Path:
    """Where the emergency stop is recorded while it is engaged (``<state_dir>/STOP``)."""
    return state_dir() / STOP_FILE


def engage(reason: str) -> dict[str, Any]:
    """Engage the emergency stop: record who and why; running runs abort, new ones are refused."""
    info = {"engaged_at": datetime.now(UTC).isoformat(), "reason": reason, "pid": os.getpid(),
            "user": os.environ.get("USER") or str(os.getuid())}
    where = path()
    private_dir(where.parent)
    atomic_write(where, json.dumps(info, indent=2) + "\n")
    return info


def engaged() -> dict[str, Any] | None:
    """The emergency stop's record when it is engaged, else None."""
    try:
        text = path().read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def clear() -> bool:
    """Disengage the emergency stop; True when it was engaged."""
    try:
        path().unlink()
        return True
    except FileNotFoundError:
        return False


def describe(info: dict[str, Any]) -> str:
    """One sentence for a refused or aborted run: since when, by whom, why, and how to clear it."""
    return (f"the emergency stop is engaged (since {info.get('engaged_at', '?')}, by {info.get('user', '?')}: "
            f"{info.get('reason') or 'no reason given'}); clear it with `mlchaos stop --clear`")
