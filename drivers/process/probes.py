"""Process probes: the sandbox's replicas (how many run, in which state) and host processes by selector."""

from __future__ import annotations

from drivers.process import sandbox, selectors
from mlchaos.driver_kit import TargetNotFound


def replicas_running(service: str = "model") -> int:
    """Count the replicas of a service whose process is alive and not paused."""
    replicas = sandbox.replicas(service)
    return sum(1 for r in replicas if sandbox.is_alive(r.pid, r.name) and not sandbox.is_stopped(r.pid))


def replica_states(service: str = "model") -> dict[str, str]:
    """Map each replica of a service to ready, running-not-ready, stopped or dead."""
    return sandbox.replica_states(service)


def processes_running(
    pid_file: str | None = None, pattern: str | None = None, unit: str | None = None, max_matches: int = 1
) -> int:
    """Count the host processes selected by pid_file, pattern or unit that run and are not stopped (0: none)."""
    selector = selectors.parse(pid_file, pattern, unit, max_matches)
    try:
        return sum(1 for m in selectors.roots(selector) if not m.stopped())
    except TargetNotFound:
        return 0
