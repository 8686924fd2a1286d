"""Argument checks every driver shares: seconds, time to live, ports, signals, name patterns.

Each raises one DriverError line naming the argument and the value it got, before anything
is selected or changed. Booleans are never numbers here (``True`` is not one second).
"""

from __future__ import annotations

import math
import re
import signal as signals
from typing import Any

from mlchaos.driver_kit import DriverError

# no SIGHUP: a server serving TLS reloads its certificate on SIGHUP instead of dying
KILL_SIGNALS = frozenset({"SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT", "SIGABRT"})
RELOAD_SIGNALS = frozenset({"SIGHUP", "SIGUSR1", "SIGUSR2"})


def is_number(value: Any) -> bool:
    """True for an int or a float (a bool is not a number here)."""
    return not isinstance(value, bool) and isinstance(value, int | float)


def positive(name: str, value: Any) -> None:
    """``value`` must be a finite number of seconds > 0."""
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise DriverError(f"{name} must be a positive number of seconds, got {value!r}")


def non_negative(name: str, value: Any) -> None:
    """``value`` must be a finite number of seconds >= 0 (0: do not wait)."""
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise DriverError(f"{name} must be a non-negative number of seconds, got {value!r}")


def ttl(value: Any) -> None:
    """A time to live: a finite number of seconds > 0, or None (no watchdog, or the driver's default)."""
    if value is not None and (not is_number(value) or not math.isfinite(value) or value <= 0):
        raise DriverError(f"ttl must be a positive number of seconds or null, got {value!r}")


def port(name: str, value: Any) -> None:
    """A TCP/UDP port number, 1..65535."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise DriverError(f"{name} must be a port number in 1..65535, got {value!r}")


def signal_name(value: Any, allowed: frozenset[str], what: str = "signal") -> str:
    """The signal's name (``kill`` -> ``SIGKILL``), which must be one of ``allowed``."""
    name = str(value).upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    if name not in allowed or not hasattr(signals, name):
        raise DriverError(f"{what} must be one of {sorted(allowed)}, got {value!r}")
    return name


def name_pattern(value: Any) -> None:
    """A selector's ``name_pattern``: a non-empty, valid regular expression."""
    if not isinstance(value, str) or not value:
        raise DriverError(f"name_pattern must be a non-empty regular expression, got {value!r}")
    try:
        re.compile(value)
    except re.error as exc:
        raise DriverError(f"name_pattern {value!r} is not a valid regular expression: {exc}") from None
