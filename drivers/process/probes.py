"""Process probes over the sandbox state: how many replicas run, and in which state."""

from __future__ import annotations

from mlchaos.errors import DriverError, SandboxError
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Sandbox


def replicas_running(service: str = "model") -> int:
    """Count the replicas of a service whose process is alive and not paused."""
    try:
        replicas = Sandbox().replicas(service)
    except SandboxError as exc:
        raise DriverError(str(exc)) from exc
    return sum(
        1 for r in replicas if procs.is_alive(r.pid, r.name) and not procs.is_stopped(r.pid)
    )


def replica_states(service: str = "model") -> dict[str, str]:
    """Map each replica of a service to ready, running-not-ready, stopped or dead."""
    sandbox = Sandbox()
    try:
        sandbox.replicas(service)  # raises TargetNotFound naming the state file
        return {s.replica.name: s.state for s in sandbox.status() if s.replica.service == service}
    except SandboxError as exc:
        raise DriverError(str(exc)) from exc
