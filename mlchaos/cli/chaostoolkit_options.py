"""Chaos Toolkit's ``chaos run`` flags that ``mlchaos run`` accepts, so that scripts written for ``chaos`` keep
working: ``--journal-path`` (an alias of ``--journal``, declared with it), ``--rollback-strategy`` (accepted;
mlchaos always rolls back, and says so once) and ``--settings`` (the Chaos Toolkit settings file).
``--var`` and ``--var-file`` are mlchaos' own options already (:mod:`mlchaos.cli.options`)."""

from __future__ import annotations

import argparse
from pathlib import Path

ROLLBACK_STRATEGIES = ("default", "always", "never", "deviated")  # what chaos run accepts
DEFAULT_SETTINGS = "~/.chaostoolkit/settings.yaml"  # what chaos reads when --settings is not given


def add_chaostoolkit_options(parser: argparse.ArgumentParser) -> None:
    """``--rollback-strategy`` and ``--settings``."""
    parser.add_argument("--rollback-strategy", choices=ROLLBACK_STRATEGIES, default=None,
                        help="accepted for Chaos Toolkit's sake and ignored: mlchaos always rolls back")
    parser.add_argument("--settings", default=None, metavar="PATH",
                        help=f"Chaos Toolkit settings file (default: {DEFAULT_SETTINGS} when it exists)")


def rollback_strategy_note(strategy: str | None) -> str | None:
    """The one line that says a ``--rollback-strategy`` is not followed; None when none was given."""
    if strategy is None:
        return None
    if strategy == "always":
        return "--rollback-strategy always: mlchaos always rolls back (whatever the strategy)"
    return (f"--rollback-strategy {strategy} ignored: mlchaos always rolls back, after a deviation, a failure, "
            f"an abort and every signal (a fault is never left in place)")


def settings_problem(path: str | None) -> str | None:
    """What is wrong with the settings file ``--settings`` names (None when it is fine or not given): it must
    exist and hold a YAML mapping, as ``chaos`` requires."""
    if path is None:
        return None
    import yaml

    file = Path(path).expanduser()
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        return f"--settings {path}: cannot read it: {exc.strerror or exc}"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return f"--settings {path}: malformed YAML{where}: {getattr(exc, 'problem', None) or exc}"
    if data is not None and not isinstance(data, dict):
        return f"--settings {path}: a Chaos Toolkit settings file is a mapping, got {type(data).__name__}"
    return None
