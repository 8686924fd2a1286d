"""Record types: frozen dataclasses that become plain JSON data."""

from __future__ import annotations

import dataclasses
from typing import Any


class JsonRecord:
    """Mixed into a dataclass: :meth:`to_dict` gives its fields as plain, JSON-serialisable data."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (nested dataclasses become dicts too)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]
