"""Docker latency: tc netem on containers' network device (drivers.netem in their namespace), and remove_netem.

Part of :mod:`drivers.docker.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

from typing import Any

from drivers._common import checks
from drivers._common.undo import stop_told
from drivers.docker.client import api
from drivers.docker.targets import ROLLBACKS, Labels, each, rollback_ids, running_pid, select, stop_watchdogs
from drivers.netem.actions import remove_latency
from drivers.netem.commands import NetemSpec, add_command, netem_support, run
from mlchaos.driver_kit import DriverError, undo_function


def netem_latency(
    delay_ms: float,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, jitter_ms: float = 0.0, device: str = "eth0",
    ttl: float | None = 600.0, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Delay the egress of `device` in the selected containers' network namespace with tc netem (ms).

    Refuses, before changing anything, on a kernel without netem. With `ttl` a detached
    watchdog removes the qdisc by itself. Undo: remove_netem.
    """
    spec = NetemSpec(delay_ms, jitter_ms)
    checks.ttl(ttl)
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    sel.refuse_host_network()
    available, reason = netem_support()
    if not available:
        raise DriverError(reason)
    undo_args: dict[str, Any] = {"ids": sel.ids, "device": device}
    record = sel.announce("netem-latency", ROLLBACKS.undo("remove_netem", **undo_args), dry_run, delay_ms=delay_ms,
                          jitter_ms=jitter_ms, device=device, ttl=ttl)
    if dry_run:
        return record.to_dict()

    def add(cid: str) -> None:
        result = run(add_command(sel.pid(cid), device, spec))
        if result.returncode != 0:
            raise DriverError(f"tc netem failed: {result.stderr.strip()}")

    sel.concurrently(add, "netem latency")
    if ttl is not None:
        ROLLBACKS.start_watchdog(record, ttl, "remove_netem", undo_args)
    return record.to_dict()


@undo_function
def remove_netem(
    ids: list[str] | None = None, device: str = "eth0", watchdog_pid: int | None = None,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
) -> dict[str, Any]:
    """Roll back netem_latency: delete the netem root qdisc of `device` in each container that still runs."""
    stop_told(watchdog_pid)
    client = api()
    ids = rollback_ids(client, ids, labels, name_pattern, project, ("running",))

    def remove(cid: str) -> Any:
        pid = running_pid(client, cid)
        return remove_latency(pid, device) if pid is not None else {"removed": False, "reason": "not running"}

    results = each(ids, remove, "remove netem")
    stop_watchdogs("remove_netem", ids, device=device)
    return {"device": device, "containers": results, "already": [cid for cid, r in results.items() if not r["removed"]]}
