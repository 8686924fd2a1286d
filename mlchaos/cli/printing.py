"""Printing what several commands print the same way."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def print_problems(problems: Sequence[Any]) -> None:
    """Every problem of the input on stderr, then how many, and that nothing was executed."""
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    count = len(problems)
    print(f"{count} problem{'s' if count != 1 else ''} found; nothing was executed.", file=sys.stderr)
