"""bandwidth: limit a stream to ``rate`` KB/s (1 KB = 1000 bytes; 0 = unlimited)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from mlchaos.proxy.toxics.base import Stub, Toxic, register


@dataclass
class Bandwidth(Toxic):
    """Pace the stream so that it carries at most ``rate`` KB per second."""

    rate: float = 0

    async def pipe(self, data: bytes, stub: Stub) -> bytes:
        """Wait until the stream's budget allows this chunk, then pass it."""
        if self.rate <= 0:
            return data
        start = max(time.monotonic(), stub.state.get("next_free", 0.0))
        stub.state["next_free"] = start + len(data) / (self.rate * 1000.0)
        await stub.sleep_until(stub.state["next_free"])
        return data


register("bandwidth", Bandwidth)
