"""Docker hold-down: kill containers and keep them down despite their restart policy, and release_hold.

Part of :mod:`drivers.docker.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

import time
from typing import Any

from drivers._common import checks
from drivers._common.undo import already, stop_told
from drivers.docker.client import api, call
from drivers.docker.lifecycle import kill, start
from drivers.docker.targets import ROLLBACKS, Labels, check_ids, each, select, stop_watchdogs
from mlchaos.driver_kit import undo_function

HOLD_GRACE = 30.0  # the hold's watchdog releases the containers this long after the hold should have ended


def hold_down(
    seconds: float,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, signal: str = "SIGKILL", *, dry_run: bool = False,
) -> dict[str, Any]:
    """Kill the selected containers and keep them down for `seconds`, even with a restart policy, then restore.

    The restart policy is set to ``no``, then the main process is signalled like a crash,
    and after `seconds` the policy is put back and the container started; the wait runs
    inside the action; a detached watchdog releases them if the runner dies meanwhile.
    Undo: release_hold.
    """
    sig = checks.signal_name(signal, checks.KILL_SIGNALS)
    checks.positive("seconds", seconds)
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    policies = {c["Id"]: (c.get("HostConfig") or {}).get("RestartPolicy") or {"Name": "no"} for c in sel.containers}
    record = sel.announce("hold-down", ROLLBACKS.undo("release_hold", ids=sel.ids, restart_policies=policies),
                          dry_run, seconds=seconds, signal=sig)
    if dry_run:
        return record.to_dict()
    started = time.monotonic()
    # if this process dies during the hold (runner SIGKILLed), a detached watchdog still releases it
    watchdog = ROLLBACKS.start_watchdog(record, seconds + HOLD_GRACE, "release_hold",
                                        {"ids": sel.ids, "restart_policies": policies})

    def down(cid: str) -> None:
        call(sel.api.update_container, cid, f"set the restart policy of {cid[:12]}", restart_policy={"Name": "no"})
        kill(sel, cid, sig, 10.0, "process")

    try:
        sel.concurrently(down, "hold down")
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    finally:
        release_hold(sel.ids, policies, watchdog_pid=watchdog)
    return record.to_dict()


@undo_function
def release_hold(
    ids: list[str], restart_policies: dict[str, Any], timeout: float = 30.0, watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back hold_down: restore each container's restart policy and start it (idempotent)."""
    ids = check_ids(ids)
    stop_told(watchdog_pid)
    client = api()

    def release(cid: str) -> str:
        policy = dict(restart_policies.get(cid) or {"Name": "no"})
        if not policy.get("Name"):
            policy["Name"] = "no"
        call(client.update_container, cid, f"restore the restart policy of {cid[:12]}", restart_policy=policy)
        return start(client, cid, timeout)

    results = each(ids, release, "release hold")
    stop_watchdogs("release_hold", ids)
    return {"containers": results, "already": already(results, "started", "unpaused")}
