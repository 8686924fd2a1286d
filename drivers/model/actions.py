"""Model faults on model-server replicas, through the reference server's own hooks (see docs/ml-faults.md).

Each fault picks ``count`` random live replicas (``seed`` makes the pick repeatable), announces a
:class:`~mlchaos.driver_kit.ChangeRecord` *before* acting and returns ``record.to_dict()``;
``dry_run`` returns the same record without acting. Where the replicas are is ``target``
(:mod:`drivers.model.endpoints`): ``sandbox`` (default: the replicas of the sandbox ``service``,
called on their direct loopback URL), ``docker`` (containers chosen by ``labels``, default
``{"mlchaos.target": "model"}``, ``name_pattern`` and ``project``, called through ``docker exec``
inside each: the admin hooks answer loopback clients only) or ``url`` (any server speaking the
protocol at ``urls``: the public API only, so the admin faults are refused). Calls never go
through a fault proxy, each with a ``timeout`` (seconds). Undos: :func:`clear_model_faults` for
``emit_nan_outputs`` and ``make_not_ready``, :func:`restore_model_version` for
``pin_model_version``, ``unload_model`` and ``roll_out_model``, :func:`restore_pushed_model` for
``push_bad_model``; all are idempotent
(a second call lists the replicas under ``already``) and the recorded undo carries the target
arguments, so ``mlchaos recover`` finds the replicas again. ``send_invalid_inputs`` leaves
nothing to undo: its record has an empty undo.

This module is the driver's face: each fault family lives in a module of its own
(:mod:`~drivers.model.admin_faults`, :mod:`~drivers.model.versions`,
:mod:`~drivers.model.invalid_inputs`), and every function is reached here, as experiments,
change records (undo) and ``mlchaos recover`` name it: ``drivers.model.actions.clear_model_faults``.
"""

from __future__ import annotations

from drivers.model.admin_faults import clear_model_faults, emit_nan_outputs, fail_model_loads, make_not_ready
from drivers.model.faults import CLEAR_FUNC, RESTORE_FUNC, RESTORE_PUSHED_FUNC
from drivers.model.invalid_inputs import INVALID_KINDS, send_invalid_inputs
from drivers.model.versions import (
    pin_model_version,
    push_bad_model,
    restore_model_version,
    restore_pushed_model,
    roll_out_model,
    unload_model,
)

DEFAULT_ENDPOINT = "serving"  # with target url, the faults take a declared endpoint (``endpoint``) instead of urls

__all__ = [
    "CLEAR_FUNC", "INVALID_KINDS", "RESTORE_FUNC", "RESTORE_PUSHED_FUNC", "clear_model_faults", "emit_nan_outputs",
    "fail_model_loads", "make_not_ready", "pin_model_version", "push_bad_model", "restore_model_version",
    "restore_pushed_model", "roll_out_model", "send_invalid_inputs", "unload_model",
]
