"""``mlchaos run``'s Chaos Toolkit habits, so that scripts written for ``chaos run`` keep working: hypothesis
strategies, the settings file (``--settings``) and its loader controls, ``--rollback-strategy`` (accepted; mlchaos
always rolls back, and says so once). ``--journal-path`` is declared with ``--journal``; ``--var`` and
``--var-file`` are mlchaos' own options already (:mod:`mlchaos.cli.options`)."""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from mlchaos.engine.strategies import DEFAULT, STRATEGIES, HypothesisSchedule

T = TypeVar("T")
ROLLBACK_STRATEGIES = ("default", "always", "never", "deviated")  # what chaos run accepts
DEFAULT_SETTINGS = "~/.chaostoolkit/settings.yaml"  # what chaos reads when --settings is not given


def add_chaostoolkit_options(parser: argparse.ArgumentParser) -> None:
    """``--rollback-strategy`` and ``--settings``."""
    parser.add_argument("--rollback-strategy", choices=ROLLBACK_STRATEGIES, default=None,
                        help="accepted for Chaos Toolkit's sake and ignored: mlchaos always rolls back")
    parser.add_argument("--settings", default=None, metavar="PATH",
                        help=f"Chaos Toolkit settings file: its controls apply (default: {DEFAULT_SETTINGS} when "
                             f"it exists)")


def rollback_strategy_note(strategy: str | None) -> str | None:
    """The one line that says a ``--rollback-strategy`` is not followed; None when none was given."""
    if strategy is None:
        return None
    if strategy == "always":
        return "--rollback-strategy always: mlchaos always rolls back (whatever the strategy)"
    return (f"--rollback-strategy {strategy} ignored: mlchaos always rolls back, after a deviation, a failure, "
            f"an abort and every signal (a fault is never left in place)")


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
    from mlchaos.experiment.controls import ControlInterrupted, ControlSet
    from mlchaos.experiment.execution import Waiter

    controls = ControlSet({}, settings, on_problem=lambda p: print(
        f"warning: control {p.control!r} {p.hook}: {p.error}", file=sys.stderr))
    if not controls.globals:
        return load()
    from chaoslib.control import reset_global_controls  # only with controls to call (chaoslib: tens of ms)
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
