"""latency: delay every chunk by ``latency`` ms +/- ``jitter`` ms (counted from when it was read)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from mlchaos.proxy.errors import InvalidToxic
from mlchaos.proxy.toxics.base import Stub, Toxic, register


@dataclass
class Latency(Toxic):
    """Add ``latency`` ms (uniform ``jitter`` ms either way) to every chunk."""

    latency: float = 0
    jitter: float = 0

    def check(self) -> None:
        """Jitter may not exceed the latency (a chunk is never sent before it was read)."""
        if self.jitter > self.latency:
            raise InvalidToxic(f"latency: jitter ({self.jitter:g} ms) must not exceed latency ({self.latency:g} ms)")

    async def pipe(self, data: bytes, stub: Stub) -> bytes:
        """Hold the chunk until read time + delay (less when the toxic is removed meanwhile)."""
        delay = self.latency + (random.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)
        await stub.sleep_until(stub.read_at + delay / 1000.0)
        return data


register("latency", Latency)
