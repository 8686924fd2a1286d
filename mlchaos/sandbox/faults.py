"""Fault hooks of the reference model server, set through its loopback-only admin endpoint.

``nan_outputs``: every prediction comes out as NaN (counted in ``model_non_finite_outputs_total``);
``not_ready``: the model reports not ready (``/v2/health/ready`` 503, ``model_ready`` 0);
``fail_load``: every ``POST /v2/repository/models/{m}/load`` fails and the served version stays.
Setting a fault that is already set, or clearing one that is not, changes nothing (idempotent).
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any


class BadFaults(ValueError):
    """A request to set faults that names an unknown fault or a non-boolean value."""


@dataclass
class FaultFlags:
    """Which faults are set."""

    nan_outputs: bool = False
    not_ready: bool = False
    fail_load: bool = False


class Faults:
    """The server's fault flags, changed atomically under a lock."""

    NAMES = tuple(f.name for f in fields(FaultFlags))

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flags = FaultFlags()

    @property
    def flags(self) -> FaultFlags:
        with self._lock:
            return FaultFlags(**asdict(self._flags))

    def update(self, changes: Any) -> FaultFlags:
        """Apply ``{"name": bool, ...}`` (validated first: a bad body changes nothing); return the new flags."""
        if not isinstance(changes, dict) or not changes:
            raise BadFaults(f"expected a JSON object of faults, e.g. {{\"nan_outputs\": true}};"
                            f" known: {', '.join(self.NAMES)}")
        for name, value in changes.items():
            if name not in self.NAMES:
                raise BadFaults(f"unknown fault {name!r}; known: {', '.join(self.NAMES)}")
            if not isinstance(value, bool):
                raise BadFaults(f"fault {name!r} must be true or false, got {value!r}")
        with self._lock:
            for name, value in changes.items():
                setattr(self._flags, name, value)
            return FaultFlags(**asdict(self._flags))

    def clear(self) -> FaultFlags:
        with self._lock:
            self._flags = FaultFlags()
            return FaultFlags()


def is_loopback(host: str) -> bool:
    """True for a loopback client address (127.0.0.0/8, ::1, ::ffff:127.x.y.z); False for anything else."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
