"""The toxic contract and registry.

Contract (as in Toxiproxy's CREATING_TOXICS.md): every wait a toxic makes goes
through the stub (``sleep_until``, ``wait_removed``), which returns early when the
toxic is removed from the chain, and ``pipe`` then returns the data it holds: a
toxic never drops bytes on the floor. Chunks of one stream pass the chain one at a
time, in order, so adding or removing toxics never reorders bytes. State for one
connection lives on the stub (``stub.state``), so one configured toxic serves every
connection.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Protocol

from mlchaos.proxy.errors import InvalidToxic


class Stub(Protocol):
    """What a toxic may use on one connection (implemented by mlchaos.proxy.link)."""

    stream: str
    read_at: float  # monotonic time the current chunk was read from its source
    started_at: float  # monotonic time the toxic became active on this connection
    state: dict[str, Any]

    def active(self) -> bool:
        """True while the toxic is still in the chain."""

    async def sleep_until(self, deadline: float) -> bool:
        """Sleep until the monotonic ``deadline``; False when the toxic was removed first."""

    async def wait_removed(self) -> None:
        """Return once the toxic is no longer in the chain."""

    def close(self) -> None:
        """Close the connection (both sides) gracefully."""

    def reset(self) -> None:
        """Reset the connection (both sides) with a TCP RST (SO_LINGER 0)."""

    def reply(self, data: bytes) -> None:
        """Write ``data`` to the client (request-level toxics answer in the proxy's name)."""


class Toxic:
    """Base class: a dataclass of non-negative numeric attributes plus ``pipe``."""

    type: ClassVar[str] = ""
    streams: ClassVar[tuple[str, ...]] = ("upstream", "downstream")  # the streams it may be added to

    async def pipe(self, data: bytes, stub: Stub) -> bytes:
        """Pass one chunk (possibly after a wait); return what goes on."""
        return data

    @classmethod
    def from_attributes(cls, attributes: dict[str, Any]) -> Toxic:
        """Build the toxic from its JSON attributes; raise InvalidToxic naming the bad one."""
        if not isinstance(attributes, dict):
            raise InvalidToxic(f"attributes must be an object, got {attributes!r}")
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(attributes) - fields)
        if unknown:
            known = ", ".join(sorted(fields))
            raise InvalidToxic(f"{cls.type}: unknown attribute(s) {', '.join(unknown)}; known: {known}")
        for key, value in attributes.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidToxic(f"{cls.type}: attribute {key} must be a number >= 0, got {value!r}")
        toxic = cls(**attributes)
        toxic.check()
        return toxic

    def check(self) -> None:
        """Cross-attribute checks (override); raise InvalidToxic."""

    def attributes(self) -> dict[str, Any]:
        """The attributes as JSON."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


TOXICS: dict[str, type[Toxic]] = {}


def register(name: str, cls: type[Toxic]) -> None:
    """Make toxic class ``cls`` available as type ``name``."""
    cls.type = name
    TOXICS[name] = cls


def build(type_name: str, attributes: dict[str, Any] | None) -> Toxic:
    """A configured toxic of ``type_name``; raise InvalidToxic for an unknown type or bad attributes."""
    cls = TOXICS.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise InvalidToxic(f"unknown toxic type {type_name!r}; known: {', '.join(sorted(TOXICS))}")
    return cls.from_attributes(dict(attributes or {}))
