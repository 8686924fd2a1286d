"""Docker pause: freeze containers (cgroup freezer), and unpause_containers, its rollback.

Part of :mod:`drivers.docker.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

from typing import Any

from drivers._common import checks
from drivers._common.undo import already, stop_told
from drivers.docker.client import api, call
from drivers.docker.targets import GONE, ROLLBACKS, Labels, each, rollback_ids, select, status, stop_watchdogs
from mlchaos.driver_kit import undo_function


def pause_containers(
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, ttl: float | None = 600.0, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Freeze the selected running containers (cgroup freezer): they keep their sockets but answer nothing.

    With `ttl` (seconds) a detached watchdog unpauses them by itself, even if the runner died.
    Undo: unpause_containers.
    """
    checks.ttl(ttl)
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    record = sel.announce("pause", ROLLBACKS.undo("unpause_containers", ids=sel.ids), dry_run, ttl=ttl)
    if dry_run:
        return record.to_dict()
    try:
        sel.concurrently(lambda cid: call(sel.api.pause, cid, f"pause {cid[:12]}"), "pause")
    finally:  # some may be paused even when others failed: the watchdog covers them
        if ttl is not None:
            ROLLBACKS.start_watchdog(record, ttl, "unpause_containers", {"ids": sel.ids})
    return record.to_dict()


@undo_function
def unpause_containers(
    ids: list[str] | None = None, labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back pause_containers: unpause each container that is still paused (idempotent).

    Give the exact ``ids`` of the change record, or a selector: every matching paused container.
    """
    stop_told(watchdog_pid)
    client = api()
    ids = rollback_ids(client, ids, labels, name_pattern, project, ("paused",))

    def unpause(cid: str) -> str:
        state = status(client, cid)
        if state is None:
            return GONE  # nothing left paused
        if state != "paused":
            return f"not paused ({state})"
        call(client.unpause, cid, f"unpause {cid[:12]}")
        return "unpaused"

    results = each(ids, unpause, "unpause")
    stop_watchdogs("unpause_containers", ids)
    return {"containers": results, "already": already(results, "unpaused")}
