"""Stop the sandbox training pipeline's pushes, and resume them.

``stop_pushes`` pauses (SIGSTOP) the pusher of :mod:`mlchaos.sandbox.pipeline`: the Pushgateway
keeps serving the last ``push_time_seconds`` of job ``training``, which grows older until
ModelPipelineNotPushing fires. A TTL watchdog resumes the pusher by itself if no rollback did,
even when the runner died; ``resume_pushes`` is idempotent (``already`` when nothing was paused).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.safety.changes import ChangeRecord, Target, announce, local_environment
from mlchaos.safety.watchdog import start_record_watchdog, stop_covered, stop_watchdog
from mlchaos.sandbox import procs
from mlchaos.sandbox.pipeline import JOB, PUSHGATEWAY, TrainingPipeline, pushgateway_binary

RESUME_FUNC = "drivers.pipeline.actions.resume_pushes"


def stop_pushes(ttl: float | None = 600.0, *, dry_run: bool = False) -> dict[str, Any]:
    """Pause the sandbox training pipeline's pusher (SIGSTOP): job "training" stops pushing to the Pushgateway.

    With `ttl` (seconds) a detached watchdog resumes it by itself. Undo: resume_pushes.
    """
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
        raise DriverError(f"ttl must be a positive number of seconds or null, got {ttl!r}")
    pipeline = TrainingPipeline()
    pid = pipeline.pusher_pid()
    record = ChangeRecord(
        driver="pipeline", action="stop-pushes",
        targets=[Target(kind="process", name=f"training pipeline (job {JOB})", details={"pid": pid, "job": JOB})],
        parameters={"ttl": ttl},
        undo={"func": RESUME_FUNC, "arguments": {"pid": pid}},
        dry_run=dry_run, environment=local_environment(),  # the one pipeline: no population to choose from
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    os.kill(pid, signal.SIGSTOP)
    if ttl is not None:
        start_record_watchdog(record, ttl, RESUME_FUNC, {"pid": pid})
    return record.to_dict()


def resume_pushes(pid: int | None = None, watchdog_pid: int | None = None) -> dict[str, Any]:
    """Roll back stop_pushes: SIGCONT the pusher (idempotent; a pusher that runs or is gone is reported)."""
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    pipeline = TrainingPipeline()
    if pid is None:
        try:
            pid = pipeline.pusher_pid()
        except TargetNotFound:
            return {"resumed": [], "already": [], "gone": ["training pipeline"]}
    result: dict[str, Any] = {"resumed": [], "already": [], "gone": []}
    state = procs.proc_state(pid)
    if state is None or state in "ZX" or not pipeline.is_pusher(pid):
        result["gone"].append(pid)  # never a signal to a pid that is no longer our pusher
    elif state not in "Tt":
        result["already"].append(pid)
    else:
        try:
            os.kill(pid, signal.SIGCONT)
            result["resumed"].append(pid)
        except ProcessLookupError:
            result["gone"].append(pid)
    stop_covered(RESUME_FUNC, lambda a: a.get("pid") == pid)
    return result


def preflight(func: str, arguments: dict[str, Any]) -> list[str]:
    """Validation hook: the pipeline faults need the sandbox's Pushgateway."""
    if func == "stop_pushes" and pushgateway_binary() is None:
        return [f"needs the sandbox training pipeline, but {PUSHGATEWAY[0]} is not installed:"
                f" apt-get install {PUSHGATEWAY[1]}"]
    return []
