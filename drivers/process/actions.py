"""Process fault actions: kill, terminate, pause (SIGSTOP) and the rollbacks that undo them.

Every fault announces a :class:`~mlchaos.driver_kit.ChangeRecord` *before* signalling
and returns ``record.to_dict()``. The undo of a kill is :func:`restart_replicas`, of a
pause :func:`continue_replicas`, each for exactly the replicas the fault hit; both are
idempotent (a second call changes nothing and lists the replicas under ``already``).
A pause carries a time to live: a detached watchdog resumes the replicas by itself.

The same faults on any host process (a model server run as a plain process or a systemd unit, selected by
pid file, command pattern or unit) live in :mod:`drivers.process.host` and are reached here, as experiments
and change records name them: ``kill_processes``, ``stop_processes`` and their undos ``restart_processes``
and ``continue_processes``.
"""

from __future__ import annotations

import signal as signals
import time
from typing import TYPE_CHECKING, Any

from drivers._common import checks, selection
from drivers._common.undo import Rollbacks, covers, stop_told
from drivers.process import sandbox
from drivers.process.host import continue_processes, kill_processes, restart_processes, stop_processes
from drivers.process.sandbox import replica_details
from mlchaos.driver_kit import (
    ChangeRecord,
    DriverError,
    Target,
    TargetNotFound,
    announce,
    local_environment,
    undo_function,
    wait_for,
)

if TYPE_CHECKING:
    from drivers.process.sandbox import Replica

__all__ = [
    "continue_processes", "continue_replicas", "kill_processes", "kill_replicas", "restart_processes",
    "restart_replicas", "stop_processes", "stop_replicas", "terminate_replicas",
]

ROLLBACKS = Rollbacks("drivers.process.actions")
UNDO_FUNC = ROLLBACKS.path("restart_replicas")
CONTINUE_FUNC = ROLLBACKS.path("continue_replicas")
KILL_SIGNALS = checks.KILL_SIGNALS
GONE_TIMEOUT = 5.0


def kill_replicas(
    service: str = "model",
    count: int = 1,
    signal: str = "SIGKILL",
    seed: int | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Kill `count` random live replicas of a service with `signal` and wait until they are gone."""
    name = checks.signal_name(signal, KILL_SIGNALS)
    action = "terminate" if name == "SIGTERM" else "kill"
    return _fault(action, service, count, name, seed, None, dry_run)


def terminate_replicas(
    service: str = "model", count: int = 1, seed: int | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Terminate `count` random live replicas of a service with SIGTERM (graceful shutdown)."""
    return _fault("terminate", service, count, "SIGTERM", seed, None, dry_run)


def stop_replicas(
    service: str = "model", count: int = 1, seed: int | None = None, ttl: float | None = 600.0,
    *, dry_run: bool = False,
) -> dict[str, Any]:
    """Pause `count` random running replicas of a service with SIGSTOP (they hang, not die).

    With `ttl` (seconds) a detached watchdog resumes them by itself, even if the runner died.
    Undo: continue_replicas.
    """
    checks.ttl(ttl)
    return _fault("stop", service, count, "SIGSTOP", seed, ttl, dry_run)


@undo_function
def continue_replicas(
    service: str = "model", replicas: list[str] | None = None, watchdog_pid: int | None = None
) -> dict[str, Any]:
    """Resume (SIGCONT) the paused replicas of a service (only `replicas` when given; idempotent)."""
    stop_told(watchdog_pid)
    chosen = _chosen(sandbox.replicas(service), replicas)
    continued = [r.name for r in chosen if _continue(r)]
    _stop_watchdogs(service, chosen)
    return {"service": service, "continued": continued,
            "already": [r.name for r in chosen if r.name not in continued]}


@undo_function
def restart_replicas(
    service: str = "model", timeout: float = 30, replicas: list[str] | None = None
) -> dict[str, Any]:
    """Roll back process faults: restart dead replicas, resume paused ones, wait until ready (idempotent).

    Only the named `replicas` when given (a change record's undo), else every replica of the service.
    """
    checks.positive("timeout", timeout)
    deadline = time.monotonic() + timeout
    chosen = _chosen(sandbox.replicas(service), replicas)
    dead = [r for r in chosen if not sandbox.is_alive(r.pid, r.name)]
    continued = [r.name for r in chosen if r not in dead and _continue(r)]
    restarted = sandbox.restart(dead, max(deadline - time.monotonic(), 1.0)) if dead else []
    final = {r.name: r for r in chosen} | {r.name: r for r in restarted}
    sandbox.wait_ready(service, list(final.values()), max(deadline - time.monotonic(), 0.5))
    changed = {r.name for r in restarted} | set(continued)
    _stop_watchdogs(service, chosen)
    return {
        "service": service,
        "restarted": [r.name for r in restarted],
        "continued": continued,
        "already": [r.name for r in chosen if r.name not in changed],
        "replicas": [replica_details(r) | {"name": r.name} for r in final.values()],
    }


# -- shared selection and signalling -------------------------------------------------------


def _fault(
    action: str, service: str, count: int, sig_name: str, seed: int | None, ttl: float | None, dry_run: bool
) -> dict[str, Any]:
    replicas = sandbox.replicas(service)
    mode = selection.count_mode(count)
    selection.check_available(count, len(replicas), "replica(s)", f"in service {service!r}")
    pausing = sig_name == "SIGSTOP"
    live = [r for r in replicas if sandbox.is_alive(r.pid, r.name)]
    candidates = [r for r in live if not (pausing and sandbox.is_stopped(r.pid))]
    seed = selection.check_seed(seed)
    state = "running" if pausing else "alive"
    chosen = selection.choose(
        candidates, mode, seed, noun=f"of {len(replicas)} replica(s)", scope=f"of {service!r} are {state}",
        nothing=f"no {'running' if pausing else 'live'} replica of service {service!r} to {action}",
        order=lambda r: r.index)
    undo_args: dict[str, Any] = {"service": service, "replicas": [r.name for r in chosen]}
    parameters: dict[str, Any] = {"service": service, "count": count, "signal": sig_name, "seed": seed}
    if pausing:
        parameters["ttl"] = ttl
    record = ChangeRecord(
        driver="process",
        action=action,
        targets=[Target(kind="process", name=r.name, details=replica_details(r)) for r in chosen],
        parameters=parameters,
        undo=ROLLBACKS.undo("continue_replicas" if pausing else "restart_replicas", **undo_args),
        dry_run=dry_run,
        environment=local_environment(),
        population=[r.name for r in live],
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    signum = signals.Signals[sig_name]
    sent = [r for r in chosen if sandbox.signal_model_server(r.pid, signum, r.name)]
    if signum not in (signals.SIGKILL, signals.SIGSTOP):
        for r in sent:  # a paused process only acts on a catchable signal once continued
            _continue(r)
    if pausing:
        wait_for(lambda: all(sandbox.is_stopped(r.pid) for r in sent), GONE_TIMEOUT, interval=0.02)
        if ttl is not None:
            ROLLBACKS.start_watchdog(record, ttl, "continue_replicas", dict(undo_args))
    else:
        left = sandbox.wait_gone([r.pid for r in sent], GONE_TIMEOUT)
        if left:
            raise DriverError(f"pid(s) {left} still alive {GONE_TIMEOUT} s after {sig_name}")
    return record.to_dict()


def _stop_watchdogs(service: str, resumed: list[Replica]) -> None:
    """Stop the TTL watchdogs of pauses of these replicas (a rollback by service is not told their pids)."""
    ROLLBACKS.stop_watchdogs("continue_replicas", covers("replicas", {r.name for r in resumed}, service=service),
                             same_environment="MLCHAOS_STATE_DIR")


def _chosen(replicas: list[Replica], names: list[str] | None) -> list[Replica]:
    """The replicas named in ``names`` (all when None); an unknown name is an error."""
    if names is None:
        return replicas
    if isinstance(names, str) or not isinstance(names, list | tuple):
        raise DriverError(f"replicas must be a list of replica names, got {names!r}")
    known = {r.name for r in replicas}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise TargetNotFound(f"no replica(s) {unknown} in the sandbox (known: {', '.join(sorted(known))})")
    return [r for r in replicas if r.name in names]


def _continue(r: Replica) -> bool:
    if sandbox.is_alive(r.pid, r.name) and sandbox.is_stopped(r.pid):
        return sandbox.signal_model_server(r.pid, signals.SIGCONT, r.name)
    return False
