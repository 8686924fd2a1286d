"""Exhaust a GPU's memory with a bounded hog, and release it.

``hog_gpu_memory`` plans the allocation (a fraction of the device's total memory, or a
number of bytes, never more than the free memory minus a safety margin), announces the
change record, then starts a detached helper (``python -m drivers.gpu.hog``) that holds the
memory; the record carries the helper's pid, its start time and a token on its command line,
so ``release_gpu_memory`` (or ``mlchaos recover`` from the record announced before the start)
ends exactly that process. The helper frees the memory by itself after ``hold`` (default:
``ttl``) seconds, and a TTL watchdog releases it even when the runner died.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

from drivers._common import checks
from drivers._common.undo import Rollbacks, stop_told
from drivers.gpu import cuda, planning
from drivers.gpu.hog import MARKER
from mlchaos.driver_kit import ChangeRecord, DriverError, Target, announce, local_environment, procfs, undo_function

ROLLBACKS = Rollbacks("drivers.gpu.actions")
RELEASE_FUNC = ROLLBACKS.path("release_gpu_memory")
START_TIMEOUT = 60.0  # seconds for the helper to allocate and report
EXIT_TIMEOUT = 10.0
log = logging.getLogger(__name__)

_cuda = cuda.load  # the CUDA API factory (tests put a fake here)


def hog_gpu_memory(
    fraction: float | None = None,
    bytes: int | None = None,  # noqa: A002 - the name experiments use
    device: int = 0,
    hold: float | None = None,
    ttl: float | None = 600.0,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Take `fraction` (default 0.9, at most 0.98) of GPU `device`'s total memory, or `bytes`, in a helper process.

    Never more than the free memory minus a safety margin (2 %, at least 256 MiB). The helper
    frees it after `hold` seconds (default `ttl`); a watchdog releases it after `ttl`. A dry run
    checks the CUDA driver and plans the allocation. Undo: release_gpu_memory.
    """
    planning.check_request(fraction, bytes)
    checks.ttl(ttl)
    if hold is not None:
        checks.positive("hold", hold)
    if hold is None and ttl is None:
        raise DriverError("a GPU memory hog must be bounded: give hold or ttl")
    held_for = min(v for v in (hold, ttl) if v is not None)
    free, total = _cuda().memory_info(device)
    plan = planning.plan(free, total, fraction, bytes)
    token = uuid.uuid4().hex
    release = {"pid": None, "token": token, "start_time": None, "device": device, "free_before": free}
    record = ChangeRecord(
        driver="gpu", action="hog-memory",
        targets=[Target(kind="gpu", name=f"gpu{device}", details={"device": device, "total": total, "free": free})],
        parameters={"fraction": fraction, "bytes": bytes, "device": device, "hold": held_for, "ttl": ttl,
                    "requested_bytes": plan.requested_bytes, "planned_bytes": plan.planned_bytes,
                    "margin_bytes": plan.margin_bytes, "capped": plan.capped, "chunks": len(plan.chunks)},
        undo={"func": RELEASE_FUNC, "arguments": release},
        dry_run=dry_run, environment=local_environment(),  # one named device: no population to choose from
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    helper = _start_helper(device, plan.chunks, held_for, token)
    release.update(pid=helper["pid"], start_time=helper["start_time"])
    record.parameters.update(pid=helper["pid"], free_during=helper.get("free"))
    if ttl is not None:
        ROLLBACKS.start_watchdog(record, ttl, "release_gpu_memory", dict(release))
    return record.to_dict()


@undo_function
def release_gpu_memory(
    pid: int | None = None,
    token: str | None = None,
    start_time: int | None = None,
    device: int = 0,
    free_before: int | None = None,
    watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back hog_gpu_memory: end exactly its helper process (idempotent), then check the memory is free again."""
    if pid is None and token is None:
        raise DriverError("give the helper's pid or its token")
    stop_told(watchdog_pid)
    helpers = _find_helpers(pid, token, start_time)
    for found in helpers:
        _end(found)
    ROLLBACKS.stop_watchdogs("release_gpu_memory", lambda a: (token is not None and a.get("token") == token)
                             or (pid is not None and a.get("pid") == pid))
    result: dict[str, Any] = {"ended": helpers, "already": [] if helpers else [pid or token], "device": device}
    if free_before is not None:
        result.update(_check_free_again(device, free_before))
    return result


def preflight(func: str, arguments: dict[str, Any]) -> list[str]:
    """Validation hook: a GPU hog needs a CUDA driver and a sound request (said before anything runs)."""
    if func != "hog_gpu_memory":
        return []
    try:
        planning.check_request(arguments.get("fraction"), arguments.get("bytes"))
        _cuda()
    except DriverError as exc:
        return [str(exc)]
    return []


def _start_helper(device: int, chunks: list[int], hold: float, token: str) -> dict[str, Any]:
    command = [sys.executable, "-m", MARKER, "--device", str(device), "--chunks", json.dumps(chunks),
               "--hold", str(hold), "--token", token]
    process = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    with process.stdout:
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline() if ready else b""
    try:
        outcome = json.loads(line) if line else {"error": f"no answer within {START_TIMEOUT:.0f} s"}
    except ValueError:
        outcome = {"error": f"unreadable answer {line[:200]!r}"}
    if "error" in outcome:
        process.kill()
        process.wait(EXIT_TIMEOUT)
        raise DriverError(f"the GPU memory hog did not start: {outcome['error']}")
    return {**outcome, "pid": process.pid, "start_time": procfs.start_time(process.pid)}


def _find_helpers(pid: int | None, token: str | None, start_time: int | None) -> list[int]:
    candidates = [pid] if pid is not None else list(procfs.pids())
    found = []
    for candidate in candidates:
        argv = procfs.cmdline(candidate)
        if argv is None or MARKER not in argv or (token is not None and token not in argv):
            continue
        started = procfs.start_time(candidate)
        if started is None or (start_time is not None and started != start_time):
            continue  # a zombie, or a reused pid
        found.append(candidate)
    return found


def _end(pid: int) -> None:
    """SIGTERM (the helper frees its memory), SIGKILL after EXIT_TIMEOUT; wait until it is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + EXIT_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reaps it when this process started it
            if procfs.start_time(pid) is None:
                return
            time.sleep(0.05)
    raise DriverError(f"the GPU memory hog (pid {pid}) did not end")


def _check_free_again(device: int, free_before: int) -> dict[str, Any]:
    """Poll the device until its free memory is back near ``free_before`` (the slack: the safety margin)."""
    try:
        api = _cuda()
        deadline = time.monotonic() + EXIT_TIMEOUT
        while True:
            free, total = api.memory_info(device)
            again = free >= free_before - planning.margin(total)
            if again or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    except DriverError as exc:
        log.warning("cannot check the GPU memory after the release: %s", exc)
        return {"memory_free_again": None, "check": str(exc)}
    if not again:
        log.warning("GPU %s: %d bytes free after the release, %d before the hog", device, free, free_before)
    return {"memory_free_again": again, "free_bytes": free, "free_before": free_before}
