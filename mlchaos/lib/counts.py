"""A count that names what it counted: a probe's output that tolerances compare as the number it is."""

from __future__ import annotations

from collections.abc import Iterable


class NamedCount(int):
    """``len(names)`` as an ``int`` (``tolerance: 0`` compares the number, the journal's JSON holds the number);
    ``str()`` adds the names, so the console and a tolerance's explanation say what was counted:
    ``2 (ModelNotReady, ModelServerDown)``."""

    names: tuple[str, ...]

    def __new__(cls, names: Iterable[str]) -> NamedCount:
        listed = tuple(names)
        count = super().__new__(cls, len(listed))
        count.names = listed
        return count

    def __getnewargs__(self) -> tuple[tuple[str, ...]]:  # type: ignore[override]  # copies and pickles keep the names
        return (self.names,)

    def __str__(self) -> str:
        return f"{int(self)} ({', '.join(self.names)})" if self.names else "0"

    __repr__ = __str__
