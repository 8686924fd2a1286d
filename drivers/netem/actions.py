"""Add and remove network latency with ``tc netem`` in a target process's network namespace.

This is the production path on Linux hosts (as Pumba, Litmus and Chaos Mesh do): the
target is a process (a container's init, a pod's pause process) whose network namespace
gets a netem qdisc on one device. The driver checks, before changing anything, that the
kernel has netem and that the target is not in the host's own network namespace.
"""

from __future__ import annotations

import os
from typing import Any

from drivers._common import checks
from drivers._common.undo import Rollbacks, stop_told
from drivers.netem.commands import NetemSpec, add_command, delete_command, netem_support, run, show_command
from mlchaos.driver_kit import ChangeRecord, DriverError, Target, announce, local_environment, undo_function

ROLLBACKS = Rollbacks("drivers.netem.actions")
UNDO_FUNC = ROLLBACKS.path("remove_latency")


def add_latency(
    pid: int,
    delay_ms: float,
    jitter_ms: float = 0.0,
    correlation_percent: float = 0.0,
    loss_percent: float = 0.0,
    device: str = "eth0",
    ttl: float | None = 600.0,
    allow_host_namespace: bool = False,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Delay the egress of `device` in the network namespace of process `pid` with tc netem (ms).

    With `ttl` (seconds), a detached watchdog removes the qdisc by itself if no rollback did,
    even when the runner died. Refuses the host's own namespace unless `allow_host_namespace`.
    A dry run checks all of that (netem support, the device) and changes nothing. Undo: remove_latency.
    """
    spec = NetemSpec(delay_ms, jitter_ms, correlation_percent, loss_percent)
    checks.ttl(ttl)
    _check_target(pid, allow_host_namespace)
    available, reason = netem_support()
    if not available:
        raise DriverError(reason)
    existing = run(show_command(pid, device))
    if existing.returncode != 0:
        raise DriverError(f"device {device!r} in the namespace of pid {pid}: {existing.stderr.strip()}")
    # `tc qdisc add ... root` itself refuses to replace a root qdisc someone else configured
    record = ChangeRecord(
        driver="netem", action="add-latency",
        targets=[Target(kind="netns", name=f"pid {pid} dev {device}", details={"pid": pid, "device": device})],
        parameters={"delay_ms": delay_ms, "jitter_ms": jitter_ms, "correlation_percent": correlation_percent,
                    "loss_percent": loss_percent, "ttl": ttl},
        undo=ROLLBACKS.undo("remove_latency", pid=pid, device=device),
        dry_run=dry_run, environment=local_environment(),  # one named pid: no population to choose from
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    result = run(add_command(pid, device, spec))
    if result.returncode != 0:
        raise DriverError(f"tc netem failed in the namespace of pid {pid}: {result.stderr.strip()}")
    if ttl is not None:
        ROLLBACKS.start_watchdog(record, ttl, "remove_latency", {"pid": pid, "device": device})
    return record.to_dict()


@undo_function
def remove_latency(pid: int, device: str = "eth0", watchdog_pid: int | None = None) -> dict[str, Any]:
    """Roll back add_latency: delete the netem root qdisc of `device` in the namespace of `pid` (idempotent)."""
    stop_told(watchdog_pid)
    ROLLBACKS.stop_watchdogs("remove_latency", lambda a: (a.get("pid"), a.get("device")) == (pid, device))
    target = f"pid {pid} dev {device}"
    if not os.path.exists(f"/proc/{pid}"):
        return {"pid": pid, "device": device, "removed": False, "reason": "the process (and its namespace) is gone",
                "already": [target]}
    current = run(show_command(pid, device))
    if "netem" not in current.stdout:
        return {"pid": pid, "device": device, "removed": False, "reason": "no netem qdisc", "already": [target]}
    result = run(delete_command(pid, device))
    if result.returncode != 0:
        raise DriverError(f"could not remove netem from {device} of pid {pid}: {result.stderr.strip()}")
    return {"pid": pid, "device": device, "removed": True, "already": []}


def _check_target(pid: int, allow_host_namespace: bool) -> None:
    try:
        target_ns = os.readlink(f"/proc/{pid}/ns/net")
    except FileNotFoundError:
        raise DriverError(f"no process with pid {pid}") from None
    except PermissionError:
        raise DriverError(f"cannot read the network namespace of pid {pid}: it needs root (CAP_SYS_ADMIN)") from None
    if not allow_host_namespace and target_ns == os.readlink("/proc/self/ns/net"):
        raise DriverError(f"pid {pid} shares this host's network namespace: netem there would slow every "
                          "connection of the host; pass allow_host_namespace: true if that is really meant")
