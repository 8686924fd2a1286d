"""Docker port block: drop packets to a port inside containers' network namespace, and unblock_port.

The iptables rule is added from the host, inside the container's namespace (``nsenter``).
Part of :mod:`drivers.docker.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from drivers._common import checks
from drivers._common.undo import already, stop_told
from drivers.docker.client import api, docker_errors
from drivers.docker.selection import parse_selector
from drivers.docker.targets import ROLLBACKS, Labels, each, rollback_ids, running_pid, select, stop_watchdogs
from mlchaos.driver_kit import DriverError, TargetNotFound, undo_function

COMMAND_TIMEOUT = 10.0


def block_port(
    port: int,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, protocol: str = "tcp", ttl: float | None = 600.0,
    source_labels: Labels = None,
    *, dry_run: bool = False,
) -> dict[str, Any]:
    """Drop packets to `port` inside the selected containers' network namespace (iptables, via nsenter).

    With `source_labels`, only packets from the containers carrying those labels are dropped
    (e.g. Prometheus' scrapes, while clients still get through: a telemetry outage).
    With `ttl` (seconds) a detached watchdog removes the rule by itself. Undo: unblock_port.
    """
    checks.port("port", port)
    if protocol not in ("tcp", "udp"):
        raise DriverError(f"protocol must be tcp or udp, got {protocol!r}")
    checks.ttl(ttl)
    _require_programs("nsenter", "iptables")
    sources = _source_addresses(source_labels) if source_labels is not None else [None]
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    sel.refuse_host_network()
    undo_args: dict[str, Any] = {"ids": sel.ids, "port": port, "protocol": protocol, "sources": sources}
    record = sel.announce("block-port", ROLLBACKS.undo("unblock_port", **undo_args), dry_run, port=port,
                          protocol=protocol, ttl=ttl, sources=sources)
    if dry_run:
        return record.to_dict()

    def block(cid: str) -> None:
        pid = sel.pid(cid)
        for source in sources:
            _run(_iptables(pid, "-I", port, protocol, source), f"block port {port} (pid {pid})")

    sel.concurrently(block, "block port")
    if ttl is not None:
        ROLLBACKS.start_watchdog(record, ttl, "unblock_port", undo_args)
    return record.to_dict()


@undo_function
def unblock_port(
    port: int, ids: list[str] | None = None, protocol: str = "tcp", watchdog_pid: int | None = None,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    sources: list[str | None] | None = None, source_labels: Labels = None,
) -> dict[str, Any]:
    """Roll back block_port: delete exactly that DROP rule in each container that still runs (idempotent).

    Give the exact ``ids`` of the change record, or a selector: every matching running container.
    """
    stop_told(watchdog_pid)
    if sources is None and source_labels is not None:  # a rollback by selector: the same sources again
        sources = _source_addresses(source_labels)
    client = api()
    ids = rollback_ids(client, ids, labels, name_pattern, project, ("running",))

    def unblock(cid: str) -> str:
        pid = running_pid(client, cid)
        if pid is None:
            return "not running (its network namespace, and the rule, are gone)"
        removed = 0
        for source in sources or [None]:
            if subprocess.run(_iptables(pid, "-C", port, protocol, source), capture_output=True,
                              timeout=COMMAND_TIMEOUT, check=False).returncode != 0:
                continue
            _run(_iptables(pid, "-D", port, protocol, source), f"unblock port {port}")
            removed += 1
        return "removed" if removed else "no such rule"

    results = each(ids, unblock, "unblock port")
    stop_watchdogs("unblock_port", ids, port=port, protocol=protocol, sources=sources or [None])
    return {"port": port, "protocol": protocol, "containers": results, "already": already(results, "removed")}


def _iptables(pid: int, op: str, port: int, protocol: str, source: str | None = None) -> list[str]:
    rule = ["INPUT", "-p", protocol, "--dport", str(port), *(["-s", source] if source else []), "-j", "DROP"]
    return ["nsenter", "-t", str(pid), "-n", "iptables", "-w", "5", op, *rule]


def _source_addresses(source_labels: Labels) -> list[str | None]:
    """The IP addresses of the running containers with ``source_labels`` (TargetNotFound when none)."""
    selector = parse_selector(source_labels)
    with docker_errors("list the source containers"):
        found = api().containers(filters={"label": selector.label_filters(), "status": "running"})
    addresses: list[str | None] = []
    for summary in found:
        for network in (summary.get("NetworkSettings") or {}).get("Networks", {}).values():
            if network.get("IPAddress"):
                addresses.append(network["IPAddress"])
    if not addresses:
        raise TargetNotFound(f"no running container with an IP address matches source_labels {source_labels!r}")
    return sorted(set(addresses))


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise DriverError(f"{what}: {' '.join(argv)} did not finish within {COMMAND_TIMEOUT:g} s") from None
    if result.returncode != 0:
        raise DriverError(f"{what}: {' '.join(argv)} failed: {(result.stderr or result.stdout).strip()}")


def _require_programs(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise DriverError(f"{', '.join(missing)} not installed on this host (Debian: apt-get install iptables "
                          "util-linux); the rule is added from the host inside the container's namespace")
    if os.geteuid() != 0:
        raise DriverError("entering a container's network namespace needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
