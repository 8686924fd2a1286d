"""``mlchaos run``'s Chaos Toolkit habits: hypothesis strategies, and the settings file's loader controls."""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from mlchaos.engine.strategies import DEFAULT, STRATEGIES, HypothesisSchedule

T = TypeVar("T")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds (at most 7 days), got {text}")
    return value


def add_strategy_options(parser: argparse.ArgumentParser) -> None:
    """``--hypothesis-strategy``, ``--hypothesis-frequency`` and ``--fail-fast``, as ``chaos run`` has them."""
    parser.add_argument("--hypothesis-strategy", choices=STRATEGIES, default=DEFAULT,
                        help="when the steady-state hypothesis is checked: before and after the method (default), "
                             "only before, only after, only during the method, or before, during and after "
                             "(continuously)")
    parser.add_argument("--hypothesis-frequency", type=_seconds, default=1.0, metavar="SECONDS",
                        help="seconds between two checks during the method (default 1)")
    parser.add_argument("--fail-fast", action="store_true",
                        help="with during-method-only or continuously: the first deviation during the method "
                             "stops it, and the run rolls back")


def schedule_from(args: argparse.Namespace) -> HypothesisSchedule:
    """The hypothesis schedule the options ask for; says once when ``--fail-fast`` cannot apply."""
    schedule = HypothesisSchedule(getattr(args, "hypothesis_strategy", DEFAULT),
                                  getattr(args, "hypothesis_frequency", 1.0), getattr(args, "fail_fast", False))
    if schedule.fail_fast and not schedule.during:
        print(f"warning: --fail-fast applies only to the during-method-only and continuously strategies "
              f"(not {schedule.strategy}): ignored", file=sys.stderr)
    return schedule


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """Chaos Toolkit's settings: ``--settings FILE`` when the command has it, else ``~/.chaostoolkit/settings.yaml``."""
    from mlchaos.experiment.control_declarations import read_settings

    return read_settings(getattr(args, "settings", None))


def load_with_controls(settings: dict[str, Any], source: str, load: Callable[[], T | None]) -> T | None:
    """``load()`` surrounded by the settings' loader controls (``before/after_loading_experiment_control``),
    as ``chaos run`` calls them; a control that interrupts makes it None (nothing runs)."""
    from chaoslib.control import reset_global_controls

    from mlchaos.experiment.controls import ControlInterrupted, ControlSet
    from mlchaos.experiment.execution import Waiter

    controls = ControlSet({}, settings, on_problem=lambda p: print(
        f"warning: control {p.control!r} {p.hook}: {p.error}", file=sys.stderr))
    if not controls.globals:
        return load()
    try:
        controls.apply("loader", "before", source, Waiter())
        loaded = load()
        if loaded is not None:
            raw = getattr(loaded[0] if isinstance(loaded, tuple) else loaded, "raw", None)
            controls.apply("loader", "after", source, Waiter(), state=copy.deepcopy(raw))
        return loaded
    except ControlInterrupted as exc:
        print(f"error: {exc}\nnothing was executed.", file=sys.stderr)
        return None
    finally:
        controls.thread.close()
        reset_global_controls()
