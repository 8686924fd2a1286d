"""slow_close: delay the close of a stream by ``delay`` ms after its source closed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from mlchaos.proxy.toxics.base import Stub, Toxic, register


@dataclass
class SlowClose(Toxic):
    """Keep the stream open ``delay`` ms after its source sent EOF."""

    delay: float = 0

    async def before_close(self, stub: Stub) -> None:
        """Wait ``delay`` ms (less when the toxic is removed meanwhile)."""
        await stub.sleep_until(time.monotonic() + self.delay / 1000.0)


register("slow_close", SlowClose)
