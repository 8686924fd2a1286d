"""One configured toxic on a proxy: its name, kind, stream, toxicity, the toxic itself and its time to live."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from mlchaos.proxy.toxics import Toxic


@dataclass(eq=False)
class ToxicEntry:
    """One configured toxic on a proxy (identity matters: a change replaces the entry)."""

    name: str
    type: str
    stream: str
    toxicity: float
    toxic: Toxic
    ttl: float | None = None
    expires_at: float | None = None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Toxiproxy's toxic JSON, plus ``ttl`` and ``expires_at`` (epoch seconds, or null)."""
        data = {"name": self.name, "type": self.type, "stream": self.stream, "toxicity": self.toxicity,
                "attributes": self.toxic.attributes(), "ttl": self.ttl, "expires_at": self.expires_at}
        stats = getattr(self.toxic, "stats", None)
        if stats is not None:
            data["stats"] = stats()
        return data
