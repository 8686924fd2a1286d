"""Process fault actions: kill, terminate, pause (SIGSTOP) and the rollbacks that undo them.

Every fault announces a :class:`~mlchaos.changes.ChangeRecord` *before* signalling
and returns ``record.to_dict()``; its undo is :func:`restart_replicas`.
"""

from __future__ import annotations

import random
import signal as signals
import time
from collections.abc import Callable
from typing import Any

from mlchaos.changes import ChangeRecord, Target, announce
from mlchaos.errors import DriverError, SandboxError, TargetNotFound
from mlchaos.sandbox import procs
from mlchaos.sandbox.manager import Replica, Sandbox

UNDO_FUNC = "drivers.process.actions.restart_replicas"
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
    return _fault(action, service, count, name, seed, dry_run)


def terminate_replicas(
    service: str = "model", count: int = 1, seed: int | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Terminate `count` random live replicas of a service with SIGTERM (graceful shutdown)."""
    return _fault("terminate", service, count, "SIGTERM", seed, dry_run)


def stop_replicas(
    service: str = "model", count: int = 1, seed: int | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Pause `count` random running replicas of a service with SIGSTOP (they hang, not die)."""
    return _fault("stop", service, count, "SIGSTOP", seed, dry_run)


def continue_replicas(service: str = "model") -> dict[str, Any]:
    """Resume (SIGCONT) every paused replica of a service; return the names continued."""
    sandbox = _sandbox()
    continued = [r.name for r in _replicas(sandbox, service) if _continue(r)]
    return {"service": service, "continued": continued}


def restart_replicas(service: str = "model", timeout: float = 30) -> dict[str, Any]:
    """Roll back process faults: restart dead replicas, resume paused ones, wait until ready."""
    if timeout <= 0:
        raise DriverError(f"timeout must be > 0 seconds, got {timeout}")
    sandbox = _sandbox()
    deadline = time.monotonic() + timeout
    replicas = _replicas(sandbox, service)
    dead = [r for r in replicas if not procs.is_alive(r.pid, r.name)]
    continued = [r.name for r in replicas if r not in dead and _continue(r)]
    restarted: list[Replica] = []
    if dead:
        try:
            restarted = sandbox.restart_all(dead, timeout=max(deadline - time.monotonic(), 1.0))
        except SandboxError as exc:
            raise DriverError(f"could not restart {[r.name for r in dead]}: {exc}") from exc
    final = {r.name: r for r in replicas} | {r.name: r for r in restarted}
    try:
        sandbox.wait_ready(list(final.values()), timeout=max(deadline - time.monotonic(), 0.5))
    except SandboxError as exc:
        raise DriverError(f"service {service!r} not ready after rollback: {exc}") from exc
    return {
        "service": service,
        "restarted": [r.name for r in restarted],
        "continued": continued,
        "replicas": [_details(r) | {"name": r.name} for r in final.values()],
    }


# -- shared selection and signalling -------------------------------------------------------


def _fault(
    action: str, service: str, count: int, sig_name: str, seed: int | None, dry_run: bool
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
    candidates = [
        r for r in replicas
        if procs.is_alive(r.pid, r.name) and not (pausing and procs.is_stopped(r.pid))
    ]
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
    record = ChangeRecord(
        driver="process",
        action=action,
        targets=[Target(kind="process", name=r.name, details=_details(r)) for r in chosen],
        parameters={"service": service, "count": count, "signal": sig_name, "seed": seed},
        undo={"func": UNDO_FUNC, "arguments": {"service": service}},
        dry_run=dry_run,
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
