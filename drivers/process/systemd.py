"""A systemd unit's processes and its start, through the ``systemctl`` program on PATH.

``systemctl show UNIT -p LoadState -p ActiveState -p MainPID -p ControlGroup`` names the unit's main
process and its control group; ``systemctl start UNIT`` restarts it. Only the ``systemctl`` command line
is used (no D-Bus library), so the driver works wherever ``systemctl`` does. The machine mlchaos is tested
on runs no systemd: the tests put a fake ``systemctl`` (a script answering ``show`` and ``start`` for one
unit) first on PATH; the process side (the MainPID's tree, a real MLServer) is real.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from mlchaos.driver_kit import DriverError, TargetNotFound

UNIT_NAME = re.compile(r"[A-Za-z0-9_.:@\\-]+")
PROPERTIES = ("LoadState", "ActiveState", "MainPID", "ControlGroup")
CGROUP_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd"))
CALL_TIMEOUT = 30.0


def check_unit(unit: object) -> str:
    """A unit name systemctl accepts (``mlserver.service``); never an option (``--...``)."""
    if not isinstance(unit, str) or not UNIT_NAME.fullmatch(unit) or unit.startswith("-"):
        raise DriverError(f"unit must be a systemd unit name such as 'mlserver.service', got {unit!r}")
    return unit


def _systemctl() -> str:
    found = shutil.which("systemctl")
    if found is None:
        raise DriverError("selecting by unit needs the systemctl program, and none is on PATH")
    return found


def _call(*args: str, timeout: float = CALL_TIMEOUT) -> str:
    command = [_systemctl(), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DriverError(f"systemctl {' '.join(args)} did not finish within {timeout:g}s") from None
    if done.returncode != 0:
        raise DriverError(f"systemctl {' '.join(args)} failed (exit {done.returncode}): "
                          f"{(done.stderr or done.stdout).strip()[:300]}")
    return done.stdout


def show(unit: str) -> dict[str, str]:
    """The unit's LoadState, ActiveState, MainPID and ControlGroup (TargetNotFound for an unknown unit)."""
    out = _call("show", unit, *[f"--property={p}" for p in PROPERTIES])
    found = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if found.get("LoadState") == "not-found":
        raise TargetNotFound(f"systemd has no unit {unit!r} (LoadState=not-found)")
    return found


def main_pid(unit: str) -> int:
    """The unit's main process (TargetNotFound when it has none: the unit is not running)."""
    properties = show(unit)
    pid = properties.get("MainPID", "0")
    if not pid.isdigit() or int(pid) <= 0:
        raise TargetNotFound(f"unit {unit!r} has no main process (ActiveState={properties.get('ActiveState', '?')},"
                             f" MainPID={pid})")
    return int(pid)


def is_active(unit: str) -> bool:
    """True when the unit is active with a main process."""
    properties = show(unit)
    return properties.get("ActiveState") == "active" and properties.get("MainPID", "0") not in ("", "0")


def cgroup_pids(unit: str) -> list[int]:
    """Every pid in the unit's control group (``cgroup.procs`` under /sys/fs/cgroup, v2 or hybrid)."""
    group = show(unit).get("ControlGroup", "")
    if not group.startswith("/"):
        raise TargetNotFound(f"unit {unit!r} has no control group (ControlGroup={group!r})")
    for root in CGROUP_ROOTS:
        procs = root / group.lstrip("/") / "cgroup.procs"
        if procs.is_file():
            return [int(line) for line in procs.read_text().split() if line.isdigit()]
    raise TargetNotFound(f"unit {unit!r}: control group {group} not found under {', '.join(map(str, CGROUP_ROOTS))}")


def start(unit: str, timeout: float) -> None:
    """``systemctl start UNIT`` (waits for systemd's job; DriverError when it fails)."""
    _call("start", unit, timeout=timeout)
