"""Stop telemetry without stopping the service.

Mechanisms: pause (SIGSTOP) a telemetry exporter process, or make the scrapes of one
sandbox replica hang at its metrics proxy (``<replica>-metrics``, through ``drivers.proxy``).
Every fault carries a time to live: a detached watchdog resumes the exporter (the proxy
removes the toxic) by itself if no rollback did, even when the runner died. The rollbacks
are idempotent: ``already`` lists what needed nothing. Exporters chosen by a pattern are
picked like every driver's targets (:mod:`drivers._common.selection`): ``count`` of them,
with a ``seed`` the change record keeps.
"""

from __future__ import annotations

import os
import re
import signal
from typing import Any

from drivers._common import checks, selection
from drivers._common.undo import Rollbacks, covers, stop_told
from drivers.proxy.sandbox import metrics_proxy
from mlchaos.driver_kit import (
    ChangeRecord,
    DriverError,
    Target,
    TargetNotFound,
    announce,
    local_environment,
    procfs,
    undo_function,
    wait_for,
)

ROLLBACKS = Rollbacks("drivers.telemetry.actions")
RESUME_FUNC = ROLLBACKS.path("resume_exporter")
STOP_TIMEOUT = 5.0  # seconds for a paused exporter to show as stopped
DEFAULT_ENDPOINT = "proxy"  # block_scrapes/restore_scrapes take a declared endpoint: the fault proxy's API


def stop_exporter(
    pid: int | None = None,
    name_pattern: str | None = None,
    count: int = 1,
    ttl: float | None = 600.0,
    seed: int | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Pause (SIGSTOP) a telemetry exporter process, by `pid` or by a regex on its command line.

    The process keeps its sockets but answers nothing, so every scrape of it times out.
    By `name_pattern`, `count` of the matching processes are picked with `seed` (recorded).
    With `ttl` (seconds) a detached watchdog resumes it by itself. Undo: resume_exporter.
    """
    if (pid is None) == (name_pattern is None):
        raise DriverError("give exactly one of pid or name_pattern")
    checks.ttl(ttl)
    if pid is not None:
        chosen, population = [_describe(pid)], []  # named exactly: no choice was made
        seed = None if seed is None else selection.check_seed(seed)
    else:
        population = _matching(name_pattern)
        mode, seed = selection.count_mode(count), selection.check_seed(seed)
        chosen = selection.choose(population, mode, seed, noun="process(es)", scope=f"match {name_pattern!r}",
                                  nothing=f"no process matches name_pattern {name_pattern!r}")
    pids = [p["pid"] for p in chosen]
    record = ChangeRecord(
        driver="telemetry", action="stop-exporter",
        targets=[Target(kind="process", name=p["command"], details=p) for p in chosen],
        parameters={"pid": pid, "name_pattern": name_pattern, "count": count, "seed": seed, "ttl": ttl},
        undo=ROLLBACKS.undo("resume_exporter", pids=pids),
        dry_run=dry_run, environment=local_environment(), population=[p["command"] for p in population],
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    for target in pids:
        os.kill(target, signal.SIGSTOP)
    # a stop is delivered asynchronously: return once every exporter is stopped (a scrape now times out)
    wait_for(lambda: all(procfs.state(p) in ("T", "t", None) for p in pids), STOP_TIMEOUT, interval=0.01)
    if ttl is not None:
        ROLLBACKS.start_watchdog(record, ttl, "resume_exporter", {"pids": pids})
    return record.to_dict()


@undo_function
def resume_exporter(pids: list[int], watchdog_pid: int | None = None) -> dict[str, Any]:
    """Roll back stop_exporter: SIGCONT the paused exporters (idempotent; gone ones are reported, not errors)."""
    stop_told(watchdog_pid)
    resumed: list[int] = []
    already: list[int] = []
    gone: list[int] = []
    for target in pids:
        state = procfs.state(target)
        if state is None or state in "ZX":
            gone.append(target)
        elif state not in "Tt":
            already.append(target)  # running: nothing to resume (and no signal to a process we did not stop)
        else:
            try:
                os.kill(target, signal.SIGCONT)
                resumed.append(target)
            except ProcessLookupError:
                gone.append(target)
    ROLLBACKS.stop_watchdogs("resume_exporter", covers("pids", pids))
    return {"resumed": resumed, "already": already, "gone": gone}


def _describe(pid: int) -> dict[str, Any]:
    argv = procfs.cmdline(pid)
    if argv is None:
        raise TargetNotFound(f"no process with pid {pid}")
    if pid in (os.getpid(), os.getppid(), 1):
        raise DriverError(f"refusing to stop pid {pid}: it is mlchaos itself, its parent or init")
    return {"pid": pid, "command": " ".join(argv)}


def _matching(pattern: str) -> list[dict[str, Any]]:
    """Every process (but mlchaos, its parent and init) whose command line matches ``pattern``, by pid."""
    checks.name_pattern(pattern)
    regex = re.compile(pattern)
    found = []
    for pid in sorted(procfs.pids()):
        if pid in (os.getpid(), os.getppid(), 1):
            continue
        command = " ".join(procfs.cmdline(pid) or [])
        if command and regex.search(command):
            found.append({"pid": pid, "command": command})
    return found


SCRAPE_FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "hang": ("timeout", {"timeout": 0}),  # the scrape connection is held open, never answered
    "reset": ("reset_peer", {"timeout": 0}),  # the scrape connection is reset at once
    "slow": ("latency", {"latency": 5000}),  # /metrics answers, later than any scrape timeout
}
SCRAPE_FAULT_PREFIX = "telemetry-"


def block_scrapes(
    replica: str, mode: str = "hang", ttl: float | None = 600.0, url: str | None = None,
    endpoint: str | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Stop Prometheus scraping one sandbox replica while it keeps serving clients (mode hang, reset or slow).

    Acts on the replica's metrics proxy (``<replica>-metrics``), which carries only the scrapes;
    the toxic expires by itself after `ttl` seconds. Undo: restore_scrapes.
    """
    from drivers.proxy.actions import add_toxic

    if mode not in SCRAPE_FAULTS:
        raise DriverError(f"mode must be one of {', '.join(SCRAPE_FAULTS)}, got {mode!r}")
    kind, attributes = SCRAPE_FAULTS[mode]
    return add_toxic(metrics_proxy(replica), kind, attributes, stream="downstream",
                     name=f"{SCRAPE_FAULT_PREFIX}{mode}", ttl=ttl, url=url, endpoint=endpoint, dry_run=dry_run)


@undo_function
def restore_scrapes(replica: str, url: str | None = None, endpoint: str | None = None) -> dict[str, Any]:
    """Roll back block_scrapes: remove every telemetry fault from the replica's metrics proxy."""
    from drivers.proxy.actions import remove_toxic
    from drivers.proxy.probes import list_toxics

    proxy = metrics_proxy(replica)
    names = [t["name"] for t in list_toxics(proxy, url=url, endpoint=endpoint)
             if t.get("name", "").startswith(SCRAPE_FAULT_PREFIX)]
    # one may expire meanwhile
    removed = [name for name in names if remove_toxic(proxy, name, url=url, endpoint=endpoint)["removed"]]
    return {"replica": replica, "removed": removed, "already": [] if removed else [proxy]}
