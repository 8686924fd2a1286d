"""The sandbox's training pipeline as the pipeline driver sees it: its pusher process and the Pushgateway binary.

The only module of drivers.pipeline that imports ``mlchaos.sandbox``.
"""

from __future__ import annotations

from drivers._common.errors import translated
from mlchaos.sandbox.pipeline import JOB, PUSHGATEWAY, TrainingPipeline, pushgateway_binary

__all__ = ["JOB", "PUSHGATEWAY", "is_pusher", "pushgateway_binary", "pusher_pid"]


def pusher_pid() -> int:
    """The pid of the running pusher of job ``training``; TargetNotFound when the pipeline is not running."""
    with translated():
        return TrainingPipeline().pusher_pid()


def is_pusher(pid: int) -> bool:
    """True while ``pid`` is the pipeline's pusher (a pid is reused: never signal one that is not)."""
    with translated():
        return TrainingPipeline().is_pusher(pid)
