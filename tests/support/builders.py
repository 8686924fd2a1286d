"""Building experiment mappings in tests: activities that call the test drivers of tests/support."""

from __future__ import annotations

from typing import Any


def py(name: str, func: str, kind: str = "action", **arguments: Any) -> dict[str, Any]:
    """An activity calling ``testdrivers.<func>`` with ``arguments``."""
    return {"type": kind, "name": name,
            "provider": {"type": "python", "module": "testdrivers", "func": func, "arguments": arguments}}


def probe(name: str, func: str, tolerance: Any, **arguments: Any) -> dict[str, Any]:
    """A probe with a tolerance calling ``testdrivers.<func>``."""
    return {**py(name, func, kind="probe", **arguments), "tolerance": tolerance}
