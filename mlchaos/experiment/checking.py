"""What every checker of a document shares: problems located in it, and lists checked item by item.

The experiment's validation and the game-day file's checker both build on :class:`DocumentChecker`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mlchaos.experiment.loader import Document, pointer_join
from mlchaos.experiment.problems import Problem

ItemCheck = Callable[[Any, str], Iterable[Problem]]  # (item, its pointer) -> its problems
EntryCheck = Callable[[Any, Any, str], Iterable[Problem]]  # (key, item, its pointer) -> its problems


class DocumentChecker:
    """Finds the problems of one document, each located by JSON pointer (and line)."""

    def __init__(self, doc: Document):
        self.doc = doc

    def problem(self, pointer: str, message: str) -> Problem:
        """A problem at ``pointer`` of the document."""
        return self.doc.problem(pointer, message)

    def each(self, value: Any, pointer: str, not_a_list: str, check: ItemCheck) -> Iterator[Problem]:
        """``check(item, pointer/index)`` for every item of ``value``; one problem (``not_a_list``) when it is not
        a list."""
        if not isinstance(value, list):
            yield self.problem(pointer, not_a_list)
            return
        for index, item in enumerate(value):
            yield from check(item, f"{pointer}/{index}")

    def each_entry(self, value: Any, pointer: str, not_a_mapping: str, check: EntryCheck) -> Iterator[Problem]:
        """``check(key, item, pointer/key)`` for every entry of ``value``; one problem (``not_a_mapping``) when it
        is not a mapping."""
        if not isinstance(value, dict):
            yield self.problem(pointer, not_a_mapping)
            return
        for key, item in value.items():
            yield from check(key, item, pointer_join(pointer, key))
