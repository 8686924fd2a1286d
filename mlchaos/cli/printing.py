"""Printing what several commands print the same way."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mlchaos.experiment.problems import ProblemList

T = TypeVar("T")


def print_problems(problems: Sequence[Any]) -> None:
    """Every problem of the input on stderr, then how many, and that nothing was executed."""
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    count = len(problems)
    print(f"{count} problem{'s' if count != 1 else ''} found; nothing was executed.", file=sys.stderr)


def loaded_or_none(load: Callable[..., T], *args: Any) -> T | None:
    """``load(*args)`` (an experiment, a suite), or None once every problem it found is printed."""
    try:
        return load(*args)
    except ProblemList as exc:
        print_problems(exc.problems)
        return None
