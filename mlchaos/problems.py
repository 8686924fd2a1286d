"""Problems found in user input: where they are and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

from mlchaos.errors import InvalidInput


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
        return f"{place}: {where}: {self.message}"


class ProblemList(InvalidInput):
    """Raised with every problem found, never just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
