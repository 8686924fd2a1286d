"""Process probes over the sandbox state: how many replicas run, and in which state."""

from __future__ import annotations

from drivers.process import sandbox


def replicas_running(service: str = "model") -> int:
    """Count the replicas of a service whose process is alive and not paused."""
    replicas = sandbox.replicas(service)
    return sum(1 for r in replicas if sandbox.is_alive(r.pid, r.name) and not sandbox.is_stopped(r.pid))


def replica_states(service: str = "model") -> dict[str, str]:
    """Map each replica of a service to ready, running-not-ready, stopped or dead."""
    return sandbox.replica_states(service)
