"""The sandbox's model-server replicas as drivers see them: the recorded replicas, their processes, a restart.

The one place drivers.process (and drivers.model, which targets the same replicas) reach
``mlchaos.sandbox``: every SandboxError becomes a DriverError here. A pid from the sandbox
state is trusted only while ``/proc/<pid>/cmdline`` shows the sandbox model server (pids are
reused): :func:`is_alive`, :func:`signal_model_server` and :func:`wait_gone` check it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drivers._common.errors import translated
from mlchaos.sandbox.procs import is_alive, is_stopped, reap, signal_model_server, track, wait_gone

if TYPE_CHECKING:  # the sandbox's manager is imported where it is used (see _sandbox): validating an
    # experiment imports the process and model drivers, and never needs it
    from mlchaos.sandbox.manager import Replica, Sandbox

__all__ = ["Replica", "is_alive", "is_stopped", "reap", "recorded", "replica_details", "replica_states", "replicas",
           "restart", "signal_model_server", "track", "wait_gone", "wait_ready"]


def replicas(service: str) -> list[Replica]:
    """The recorded replicas of ``service`` (TargetNotFound when none), in the state's order."""
    with translated():
        return _sandbox().replicas(service)


def recorded() -> list[Replica]:
    """Every recorded replica, of every service."""
    with translated():
        return _sandbox().recorded()


def restart(dead: list[Replica], timeout: float) -> list[Replica]:
    """Restart the replicas, each on its own port, and wait until they are ready; their new records."""
    with translated(f"could not restart {[r.name for r in dead]}"):
        return _sandbox().restart_all(dead, timeout=timeout)


def wait_ready(service: str, ready: list[Replica], timeout: float) -> None:
    """Wait until every replica answers ready (DriverError naming the service after ``timeout`` s)."""
    with translated(f"service {service!r} not ready after rollback"):
        _sandbox().wait_ready(ready, timeout=timeout)


def replica_states(service: str) -> dict[str, str]:
    """Each replica of ``service``: ready, running-not-ready, stopped or dead."""
    sandbox = _sandbox()
    with translated():
        sandbox.replicas(service)  # raises TargetNotFound naming the state file
        return {s.replica.name: s.state for s in sandbox.status() if s.replica.service == service}


def replica_details(r: Replica) -> dict[str, Any]:
    """A replica's change-record details; ``instance`` is the address Prometheus scrapes, so alerts can be
    matched to the replica that was hit."""
    return {"pid": r.pid, "port": r.port, "service": r.service, "url": r.url, "instance": f"{r.host}:{r.port}"}


def _sandbox() -> Sandbox:
    from mlchaos.sandbox.manager import Sandbox

    return Sandbox()


def __getattr__(name: str) -> Any:
    """``Replica`` (the sandbox's replica record), imported on first use."""
    if name == "Replica":
        from mlchaos.sandbox.manager import Replica

        return Replica
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
