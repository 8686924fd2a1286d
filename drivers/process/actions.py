"""Process fault actions: kill, terminate, pause (SIGSTOP) and the rollbacks that undo them.

Every fault announces a :class:`~mlchaos.changes.ChangeRecord` *before* signalling
and returns ``record.to_dict()``. The undo of a kill is :func:`restart_replicas`, of a
pause :func:`continue_replicas`, each for exactly the replicas the fault hit; both are
idempotent (a second call changes nothing and lists the replicas under ``already``).
A pause carries a time to live: a detached watchdog resumes the replicas by itself.
"""

from __future__ import annotations

import random
import signal as signals
import time
from collections.abc import Callable
from typing import Any

from mlchaos.errors import DriverError, SandboxError, TargetNotFound
from mlchaos.safety.changes import ChangeRecord, Target, announce, local_environment
from mlchaos.safety.watchdog import start_record_watchdog, stop_covered, stop_watchdog
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Replica, Sandbox

UNDO_FUNC = "drivers.process.actions.restart_replicas"
CONTINUE_FUNC = "drivers.process.actions.continue_replicas"
# no SIGHUP: a replica serving TLS reloads its certificate on SIGHUP instead of dying
KILL_SIGNALS = frozenset({"SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT", "SIGABRT"})
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
    name = _signal_name(signal)
    if name not in KILL_SIGNALS:
        raise DriverError(f"signal must be one of {sorted(KILL_SIGNALS)}, got {signal!r}")
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
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
        raise DriverError(f"ttl must be a positive number of seconds or null, got {ttl!r}")
    return _fault("stop", service, count, "SIGSTOP", seed, ttl, dry_run)


def continue_replicas(
    service: str = "model", replicas: list[str] | None = None, watchdog_pid: int | None = None
) -> dict[str, Any]:
    """Resume (SIGCONT) the paused replicas of a service (only `replicas` when given; idempotent)."""
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    chosen = _chosen(_replicas(_sandbox(), service), replicas)
    continued = [r.name for r in chosen if _continue(r)]
    _stop_watchdogs(service, chosen)
    return {"service": service, "continued": continued,
            "already": [r.name for r in chosen if r.name not in continued]}


def restart_replicas(
    service: str = "model", timeout: float = 30, replicas: list[str] | None = None
) -> dict[str, Any]:
    """Roll back process faults: restart dead replicas, resume paused ones, wait until ready (idempotent).

    Only the named `replicas` when given (a change record's undo), else every replica of the service.
    """
    if timeout <= 0:
        raise DriverError(f"timeout must be > 0 seconds, got {timeout}")
    sandbox = _sandbox()
    deadline = time.monotonic() + timeout
    chosen = _chosen(_replicas(sandbox, service), replicas)
    dead = [r for r in chosen if not procs.is_alive(r.pid, r.name)]
    continued = [r.name for r in chosen if r not in dead and _continue(r)]
    restarted: list[Replica] = []
    if dead:
        try:
            restarted = sandbox.restart_all(dead, timeout=max(deadline - time.monotonic(), 1.0))
        except SandboxError as exc:
            raise DriverError(f"could not restart {[r.name for r in dead]}: {exc}") from exc
    final = {r.name: r for r in chosen} | {r.name: r for r in restarted}
    try:
        sandbox.wait_ready(list(final.values()), timeout=max(deadline - time.monotonic(), 0.5))
    except SandboxError as exc:
        raise DriverError(f"service {service!r} not ready after rollback: {exc}") from exc
    changed = {r.name for r in restarted} | set(continued)
    _stop_watchdogs(service, chosen)
    return {
        "service": service,
        "restarted": [r.name for r in restarted],
        "continued": continued,
        "already": [r.name for r in chosen if r.name not in changed],
        "replicas": [_details(r) | {"name": r.name} for r in final.values()],
    }


# -- shared selection and signalling -------------------------------------------------------


def _fault(
    action: str, service: str, count: int, sig_name: str, seed: int | None, ttl: float | None, dry_run: bool
) -> dict[str, Any]:
    sandbox = _sandbox()
    replicas = _replicas(sandbox, service)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DriverError(f"count must be an integer >= 1, got {count!r}")
    if count > len(replicas):
        raise DriverError(
            f"count={count} but service {service!r} has only {len(replicas)} replica(s)"
        )
    pausing = sig_name == "SIGSTOP"
    live = [r for r in replicas if procs.is_alive(r.pid, r.name)]
    candidates = [r for r in live if not (pausing and procs.is_stopped(r.pid))]
    if not candidates:
        what = "running" if pausing else "live"
        raise TargetNotFound(f"no {what} replica of service {service!r} to {action}")
    if count > len(candidates):
        raise DriverError(
            f"count={count} but only {len(candidates)} of {len(replicas)} replica(s) of"
            f" {service!r} are {'running' if pausing else 'alive'}"
        )
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    chosen = sorted(random.Random(seed).sample(candidates, count), key=lambda r: r.index)
    names = [r.name for r in chosen]
    undo_args: dict[str, Any] = {"service": service, "replicas": names}
    parameters: dict[str, Any] = {"service": service, "count": count, "signal": sig_name, "seed": seed}
    if pausing:
        parameters["ttl"] = ttl
    record = ChangeRecord(
        driver="process",
        action=action,
        targets=[Target(kind="process", name=r.name, details=_details(r)) for r in chosen],
        parameters=parameters,
        undo={"func": CONTINUE_FUNC if pausing else UNDO_FUNC, "arguments": undo_args},
        dry_run=dry_run,
        environment=local_environment(),
        population=[r.name for r in live],
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    signum = signals.Signals[sig_name]
    sent = [r for r in chosen if procs.signal_model_server(r.pid, signum, r.name)]
    if signum not in (signals.SIGKILL, signals.SIGSTOP):
        for r in sent:  # a paused process only acts on a catchable signal once continued
            _continue(r)
    if pausing:
        _wait_until(lambda: all(procs.is_stopped(r.pid) for r in sent), GONE_TIMEOUT)
        if ttl is not None:
            start_record_watchdog(record, ttl, CONTINUE_FUNC, dict(undo_args))
    else:
        left = procs.wait_gone([r.pid for r in sent], GONE_TIMEOUT)
        if left:
            raise DriverError(f"pid(s) {left} still alive {GONE_TIMEOUT} s after {sig_name}")
    return record.to_dict()


def _signal_name(signal: str) -> str:
    name = str(signal).upper()
    return name if name.startswith("SIG") else f"SIG{name}"


def _sandbox() -> Sandbox:
    return Sandbox()


def _replicas(sandbox: Sandbox, service: str) -> list[Replica]:
    try:
        return sandbox.replicas(service)  # TargetNotFound (a DriverError) passes through
    except SandboxError as exc:
        raise DriverError(str(exc)) from exc


def _stop_watchdogs(service: str, resumed: list[Replica]) -> None:
    """Stop the TTL watchdogs of pauses of these replicas (a rollback by service is not told their pids)."""
    names = {r.name for r in resumed}
    stop_covered(CONTINUE_FUNC, lambda a: a.get("service") == service and bool(a.get("replicas"))
                 and set(a["replicas"]) <= names,
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


def _details(r: Replica) -> dict[str, Any]:
    # instance: the address Prometheus scrapes, so alerts can be matched to the target that was hit
    return {"pid": r.pid, "port": r.port, "service": r.service, "url": r.url, "instance": f"{r.host}:{r.port}"}


def _continue(r: Replica) -> bool:
    if procs.is_alive(r.pid, r.name) and procs.is_stopped(r.pid):
        return procs.signal_model_server(r.pid, signals.SIGCONT, r.name)
    return False


def _wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
