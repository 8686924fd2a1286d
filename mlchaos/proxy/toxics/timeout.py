"""timeout: hold all data, and close the connection after ``timeout`` ms (0: hold until removed).

Unlike Toxiproxy, held data is not dropped: when the toxic is removed before the
connection is closed, what it held goes on, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlchaos.proxy.toxics.base import Stub, Toxic, register


@dataclass
class Timeout(Toxic):
    """Stop the stream; close the connection ``timeout`` ms after the toxic applied (0: never)."""

    timeout: float = 0

    async def pipe(self, data: bytes, stub: Stub) -> bytes:
        """Hold the chunk while the toxic is in place."""
        await stub.wait_removed()
        return data

    async def run(self, stub: Stub) -> None:
        """Close the connection once ``timeout`` ms have passed (if still in place)."""
        if self.timeout > 0 and await stub.sleep_until(stub.started_at + self.timeout / 1000.0):
            stub.close()


register("timeout", Timeout)
