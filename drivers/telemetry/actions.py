"""Stop telemetry without stopping the service.

Mechanisms: pause (SIGSTOP) a telemetry exporter process. (Blocking the scrape port at the
fault proxy is ``drivers.proxy``; more mechanisms arrive with the sandbox's metrics proxy.)
Every fault carries a time to live: a detached watchdog resumes the exporter by itself if
no rollback did, even when the runner died.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

from mlchaos.changes import ChangeRecord, Target, announce
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.watchdog import start_watchdog, stop_watchdog


def stop_exporter(
    pid: int | None = None,
    name_pattern: str | None = None,
    count: int = 1,
    ttl: float | None = 600.0,
) -> dict[str, Any]:
    """Pause (SIGSTOP) a telemetry exporter process, by `pid` or by a regex on its command line.

    The process keeps its sockets but answers nothing, so every scrape of it times out.
    With `ttl` (seconds) a detached watchdog resumes it by itself.
    """
    if (pid is None) == (name_pattern is None):
        raise DriverError("give exactly one of pid or name_pattern")
    if ttl is not None and ttl <= 0:
        raise DriverError(f"ttl must be a positive number of seconds or null, got {ttl}")
    chosen = [_describe(pid)] if pid is not None else _select(name_pattern, count)
    pids = [p["pid"] for p in chosen]
    record = ChangeRecord(
        driver="telemetry", action="stop-exporter",
        targets=[Target(kind="process", name=p["command"], details=p) for p in chosen],
        parameters={"pid": pid, "name_pattern": name_pattern, "count": count, "ttl": ttl},
        undo={"func": "drivers.telemetry.actions.resume_exporter", "arguments": {"pids": pids}},
    )
    announce(record)
    for target in pids:
        os.kill(target, signal.SIGSTOP)
    if ttl is not None:
        watchdog = start_watchdog(ttl, "drivers.telemetry.actions.resume_exporter", {"pids": pids})
        record.parameters["watchdog_pid"] = watchdog
        record.undo["arguments"]["watchdog_pid"] = watchdog
    return record.to_dict()


def resume_exporter(pids: list[int], watchdog_pid: int | None = None) -> dict[str, Any]:
    """Roll back stop_exporter: SIGCONT the paused exporters (gone ones are reported, not errors)."""
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    resumed, gone = [], []
    for target in pids:
        try:
            os.kill(target, signal.SIGCONT)
            resumed.append(target)
        except ProcessLookupError:
            gone.append(target)
    return {"resumed": resumed, "gone": gone}


def _describe(pid: int) -> dict[str, Any]:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except FileNotFoundError:
        raise TargetNotFound(f"no process with pid {pid}") from None
    if pid in (os.getpid(), os.getppid(), 1):
        raise DriverError(f"refusing to stop pid {pid}: it is mlchaos itself, its parent or init")
    return {"pid": pid, "command": command}


def _select(pattern: str, count: int) -> list[dict[str, Any]]:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise DriverError(f"name_pattern {pattern!r} is not a valid regular expression: {exc}") from None
    if count < 1:
        raise DriverError(f"count must be at least 1, got {count}")
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
    replica: str, mode: str = "hang", ttl: float | None = 600.0, url: str | None = None
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
                     name=f"{SCRAPE_FAULT_PREFIX}{mode}", ttl=ttl, url=url)


def restore_scrapes(replica: str, url: str | None = None) -> dict[str, Any]:
    """Roll back block_scrapes: remove every telemetry fault from the replica's metrics proxy."""
    from drivers.proxy.actions import remove_toxic
    from drivers.proxy.probes import list_toxics
    from mlchaos.sandbox.manager import METRICS_PROXY_SUFFIX

    proxy = f"{replica}{METRICS_PROXY_SUFFIX}"
    names = [t["name"] for t in list_toxics(proxy, url=url) if t.get("name", "").startswith(SCRAPE_FAULT_PREFIX)]
    for name in names:
        remove_toxic(proxy, name, url=url)
    return {"replica": replica, "removed": names}
