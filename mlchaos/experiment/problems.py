"""Problems found in user input: where they are and what is wrong."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mlchaos.errors import InvalidInput

MAX_SHOWN = 1000  # characters of one problem, as printed


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located by JSON pointer and line."""

    file: str
    pointer: str
    line: int | None
    message: str

    def __str__(self) -> str:
        place = self.file if self.line is None else f"{self.file}:{self.line}"
        where = self.pointer or "/"
        text = f"{place}: {where}: {self.message}"
        if len(text) > MAX_SHOWN:  # a huge key or value from the input
            text = f"{text[:MAX_SHOWN]}... ({len(text) - MAX_SHOWN} more characters)"
        return printable(text)


class ProblemList(InvalidInput):
    """Raised with every problem found, never just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def printable(text: str) -> str:
    """Control characters from the input (terminal escape sequences) shown escaped, never sent raw."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def printable_lines(text: str) -> str:
    """:func:`printable`, line by line: newlines and tabs are kept, every other control character is escaped."""
    return "\n".join("\t".join(printable(part) for part in line.split("\t")) for line in str(text).split("\n"))


def suggest(word: str, candidates: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` naming the close matches of ``word`` among ``candidates``, or ''."""
    import difflib  # only for a problem: a valid file never needs it

    matches = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=3, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"
