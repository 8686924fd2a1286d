"""Stop telemetry without stopping the service.

Mechanisms: pause (SIGSTOP) a telemetry exporter process, or make the scrapes of one
sandbox replica hang at its metrics proxy (``<replica>-metrics``, through ``drivers.proxy``).
Every fault carries a time to live: a detached watchdog resumes the exporter (the proxy
removes the toxic) by itself if no rollback did, even when the runner died. The rollbacks
are idempotent: ``already`` lists what needed nothing.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.safety.changes import ChangeRecord, Target, announce, local_environment
from mlchaos.safety.watchdog import start_record_watchdog, stop_covered, stop_watchdog

RESUME_FUNC = "drivers.telemetry.actions.resume_exporter"


def stop_exporter(
    pid: int | None = None,
    name_pattern: str | None = None,
    count: int = 1,
    ttl: float | None = 600.0,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Pause (SIGSTOP) a telemetry exporter process, by `pid` or by a regex on its command line.

    The process keeps its sockets but answers nothing, so every scrape of it times out.
    With `ttl` (seconds) a detached watchdog resumes it by itself. Undo: resume_exporter.
    """
    if (pid is None) == (name_pattern is None):
        raise DriverError("give exactly one of pid or name_pattern")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
        raise DriverError(f"ttl must be a positive number of seconds or null, got {ttl!r}")
    if pid is not None:
        chosen, population = [_describe(pid)], []  # named exactly: no choice was made
    else:
        population = _matching(name_pattern)
        chosen = _choose(population, name_pattern, count)
    pids = [p["pid"] for p in chosen]
    record = ChangeRecord(
        driver="telemetry", action="stop-exporter",
        targets=[Target(kind="process", name=p["command"], details=p) for p in chosen],
        parameters={"pid": pid, "name_pattern": name_pattern, "count": count, "ttl": ttl},
        undo={"func": RESUME_FUNC, "arguments": {"pids": pids}},
        dry_run=dry_run, environment=local_environment(), population=[p["command"] for p in population],
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    for target in pids:
        os.kill(target, signal.SIGSTOP)
    if ttl is not None:
        start_record_watchdog(record, ttl, RESUME_FUNC, {"pids": pids})
    return record.to_dict()


def resume_exporter(pids: list[int], watchdog_pid: int | None = None) -> dict[str, Any]:
    """Roll back stop_exporter: SIGCONT the paused exporters (idempotent; gone ones are reported, not errors)."""
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    resumed: list[int] = []
    already: list[int] = []
    gone: list[int] = []
    for target in pids:
        state = _state(target)
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
    handled = set(pids)
    stop_covered(RESUME_FUNC, lambda a: bool(a.get("pids")) and set(a["pids"]) <= handled)
    return {"resumed": resumed, "already": already, "gone": gone}


def _state(pid: int) -> str | None:
    """The one-letter kernel state of ``pid`` (R, S, T, Z...), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _describe(pid: int) -> dict[str, Any]:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except FileNotFoundError:
        raise TargetNotFound(f"no process with pid {pid}") from None
    if pid in (os.getpid(), os.getppid(), 1):
        raise DriverError(f"refusing to stop pid {pid}: it is mlchaos itself, its parent or init")
    return {"pid": pid, "command": command}


def _matching(pattern: str) -> list[dict[str, Any]]:
    """Every process (but mlchaos, its parent and init) whose command line matches ``pattern``, by pid."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise DriverError(f"name_pattern {pattern!r} is not a valid regular expression: {exc}") from None
    found = []
    for entry in sorted(Path("/proc").iterdir(), key=lambda p: p.name):
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), os.getppid(), 1):
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        if command and regex.search(command):
            found.append({"pid": int(entry.name), "command": command})
    return found


def _choose(found: list[dict[str, Any]], pattern: str, count: int) -> list[dict[str, Any]]:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DriverError(f"count must be an integer >= 1, got {count!r}")
    if not found:
        raise TargetNotFound(f"no process matches name_pattern {pattern!r}")
    if count > len(found):
        raise DriverError(f"count {count} is more than the {len(found)} processes matching {pattern!r}")
    return found[:count]


SCRAPE_FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "hang": ("timeout", {"timeout": 0}),  # the scrape connection is held open, never answered
    "reset": ("reset_peer", {"timeout": 0}),  # the scrape connection is reset at once
    "slow": ("latency", {"latency": 5000}),  # /metrics answers, later than any scrape timeout
}
SCRAPE_FAULT_PREFIX = "telemetry-"


def block_scrapes(
    replica: str, mode: str = "hang", ttl: float | None = 600.0, url: str | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Stop Prometheus scraping one sandbox replica while it keeps serving clients (mode hang, reset or slow).

    Acts on the replica's metrics proxy (``<replica>-metrics``), which carries only the scrapes;
    the toxic expires by itself after `ttl` seconds. Undo: restore_scrapes.
    """
    from drivers.proxy.actions import add_toxic
    from mlchaos.sandbox.manager import METRICS_PROXY_SUFFIX

    if mode not in SCRAPE_FAULTS:
        raise DriverError(f"mode must be one of {', '.join(SCRAPE_FAULTS)}, got {mode!r}")
    kind, attributes = SCRAPE_FAULTS[mode]
    return add_toxic(f"{replica}{METRICS_PROXY_SUFFIX}", kind, attributes, stream="downstream",
                     name=f"{SCRAPE_FAULT_PREFIX}{mode}", ttl=ttl, url=url, dry_run=dry_run)


def restore_scrapes(replica: str, url: str | None = None) -> dict[str, Any]:
    """Roll back block_scrapes: remove every telemetry fault from the replica's metrics proxy."""
    from drivers.proxy.actions import remove_toxic
    from drivers.proxy.probes import list_toxics
    from mlchaos.sandbox.manager import METRICS_PROXY_SUFFIX

    proxy = f"{replica}{METRICS_PROXY_SUFFIX}"
    names = [t["name"] for t in list_toxics(proxy, url=url) if t.get("name", "").startswith(SCRAPE_FAULT_PREFIX)]
    removed = [name for name in names if remove_toxic(proxy, name, url=url)["removed"]]  # one may expire meanwhile
    return {"replica": replica, "removed": removed, "already": [] if removed else [proxy]}
