"""Docker lifecycle faults: kill, stop and restart containers, and start_containers, the rollback of kill/stop.

Part of :mod:`drivers.docker.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

import os
import signal as signals
from typing import Any

from drivers._common import checks
from drivers._common.undo import already
from drivers.docker.client import api, call
from drivers.docker.targets import ROLLBACKS, Labels, Selection, each, inspect, rollback_ids, select, status
from mlchaos.driver_kit import DriverError, TargetNotFound, undo_function, wait_for

VIAS = ("engine", "process")


def kill_containers(
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, signal: str = "SIGKILL", via: str = "engine", timeout: float = 10.0,
    *, dry_run: bool = False,
) -> dict[str, Any]:
    """Kill the selected containers with `signal` and wait (up to `timeout` s) until their process is gone.

    `via`: ``engine`` (``docker kill``: the engine counts it as a manual stop, so a restart
    policy does not bring the container back) or ``process`` (the signal goes to the
    container's main process from the host, like a crash: a restart policy restarts it).
    """
    sig = checks.signal_name(signal, checks.KILL_SIGNALS)
    checks.positive("timeout", timeout)
    if via not in VIAS:
        raise DriverError(f"via must be one of {', '.join(VIAS)}, got {via!r}")
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    record = sel.announce("kill", ROLLBACKS.undo("start_containers", ids=sel.ids), dry_run, signal=sig, via=via,
                          timeout=timeout)
    if not dry_run:
        sel.concurrently(lambda cid: kill(sel, cid, sig, timeout, via), "kill")
    return record.to_dict()


def stop_containers(
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, timeout: int = 10, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Stop the selected containers (SIGTERM, then SIGKILL after `timeout` s); a restart policy leaves them down."""
    checks.positive("timeout", timeout)
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    record = sel.announce("stop", ROLLBACKS.undo("start_containers", ids=sel.ids), dry_run, timeout=timeout)
    if not dry_run:
        sel.concurrently(lambda cid: call(sel.api.stop, cid, f"stop {cid[:12]}", timeout=int(timeout)), "stop")
    return record.to_dict()


@undo_function
def start_containers(
    ids: list[str] | None = None, labels: Labels = None, name_pattern: str | None = None,
    project: str | None = None, timeout: float = 30.0,
) -> dict[str, Any]:
    """Roll back kill/stop: start each container that is not running, wait until it runs (idempotent).

    Give the exact ``ids`` of the change record, or (in an experiment's rollbacks) a
    selector: every matching container that is exited or paused.
    """
    client = api()
    ids = rollback_ids(client, ids, labels, name_pattern, project, ("exited", "created", "paused"))
    results = each(ids, lambda cid: start(client, cid, timeout), "start")
    return {"containers": results, "already": already(results, "started", "unpaused")}


def restart_containers(
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, timeout: int = 10, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Restart the selected containers (stop with `timeout`, then start); nothing to undo.

    The engine brings each one back itself (``docker restart``): the change record's undo is empty.
    """
    checks.positive("timeout", timeout)
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    record = sel.announce("restart", {}, dry_run, timeout=timeout)
    if not dry_run:
        sel.concurrently(lambda cid: call(sel.api.restart, cid, f"restart {cid[:12]}", timeout=int(timeout)),
                     "restart")
    return record.to_dict()


def start(client: Any, cid: str, timeout: float) -> str:
    """Start (or unpause) one container and wait until it runs: what was done."""
    state = status(client, cid)
    if state is None:
        raise TargetNotFound("the container no longer exists")
    if state == "paused":
        call(client.unpause, cid, f"unpause {cid[:12]}")
        return "unpaused"
    if state == "running":
        return "already running"
    call(client.start, cid, f"start {cid[:12]}")
    if not wait_for(lambda: status(client, cid) == "running", timeout):
        raise DriverError(f"not running {timeout:g} s after start")
    return "started"


def kill(sel: Selection, cid: str, sig: str, timeout: float, via: str) -> None:
    """Signal the container and wait until its process is gone (a restart policy may start a new one)."""
    old_pid = sel.pid(cid)
    if via == "engine":
        call(sel.api.kill, cid, f"send {sig} to {cid[:12]}", signal=sig)
    else:
        try:
            os.kill(old_pid, signals.Signals[sig])
        except ProcessLookupError:
            pass  # already gone
        except PermissionError:
            raise DriverError(f"no permission to signal pid {old_pid} of {cid[:12]} (needs root)") from None

    def gone() -> bool:
        state = inspect(sel.api, cid)["State"]
        return not state.get("Running") or state.get("Pid") != old_pid

    if not wait_for(gone, timeout):
        raise DriverError(f"still running {timeout:g} s after {sig} (does its main process ignore it?)")
