"""Stop the sandbox training pipeline's pushes, and resume them.

``stop_pushes`` pauses (SIGSTOP) the pusher of :mod:`mlchaos.sandbox.pipeline` (reached through
:mod:`drivers.pipeline.sandbox`): the Pushgateway keeps serving the last ``push_time_seconds``
of job ``training``, which grows older until ModelPipelineNotPushing fires. A TTL watchdog
resumes the pusher by itself if no rollback did, even when the runner died; ``resume_pushes``
is idempotent (``already`` when nothing was paused).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from drivers._common import checks
from drivers._common.undo import Rollbacks, stop_told
from drivers.pipeline.sandbox import JOB, PUSHGATEWAY, is_pusher, pusher_pid, pushgateway_binary
from mlchaos.driver_kit import ChangeRecord, Target, TargetNotFound, announce, local_environment, procfs, undo_function

ROLLBACKS = Rollbacks("drivers.pipeline.actions")
RESUME_FUNC = ROLLBACKS.path("resume_pushes")


def stop_pushes(ttl: float | None = 600.0, *, dry_run: bool = False) -> dict[str, Any]:
    """Pause the sandbox training pipeline's pusher (SIGSTOP): job "training" stops pushing to the Pushgateway.

    With `ttl` (seconds) a detached watchdog resumes it by itself. Undo: resume_pushes.
    """
    checks.ttl(ttl)
    pid = pusher_pid()
    record = ChangeRecord(
        driver="pipeline", action="stop-pushes",
        targets=[Target(kind="process", name=f"training pipeline (job {JOB})", details={"pid": pid, "job": JOB})],
        parameters={"ttl": ttl},
        undo=ROLLBACKS.undo("resume_pushes", pid=pid),
        dry_run=dry_run, environment=local_environment(),  # the one pipeline: no population to choose from
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    os.kill(pid, signal.SIGSTOP)
    if ttl is not None:
        ROLLBACKS.start_watchdog(record, ttl, "resume_pushes", {"pid": pid})
    return record.to_dict()


@undo_function
def resume_pushes(pid: int | None = None, watchdog_pid: int | None = None) -> dict[str, Any]:
    """Roll back stop_pushes: SIGCONT the pusher (idempotent; a pusher that runs or is gone is reported)."""
    stop_told(watchdog_pid)
    if pid is None:
        try:
            pid = pusher_pid()
        except TargetNotFound:
            return {"resumed": [], "already": [], "gone": ["training pipeline"]}
    result: dict[str, Any] = {"resumed": [], "already": [], "gone": []}
    state = procfs.state(pid)
    if state is None or state in "ZX" or not is_pusher(pid):
        result["gone"].append(pid)  # never a signal to a pid that is no longer our pusher
    elif state not in "Tt":
        result["already"].append(pid)
    else:
        try:
            os.kill(pid, signal.SIGCONT)
            result["resumed"].append(pid)
        except ProcessLookupError:
            result["gone"].append(pid)
    ROLLBACKS.stop_watchdogs("resume_pushes", lambda a: a.get("pid") == pid)
    return result


def preflight(func: str, arguments: dict[str, Any]) -> list[str]:
    """Validation hook: the pipeline faults need the sandbox's Pushgateway."""
    if func == "stop_pushes" and pushgateway_binary() is None:
        return [f"needs the sandbox training pipeline, but {PUSHGATEWAY[0]} is not installed:"
                f" apt-get install {PUSHGATEWAY[1]}"]
    return []
