"""reset_peer: reset the connection (TCP RST, SO_LINGER 0) ``timeout`` ms after the toxic applied."""

from __future__ import annotations

from dataclasses import dataclass

from mlchaos.proxy.toxics.base import Stub, Toxic, register


@dataclass
class ResetPeer(Toxic):
    """Data passes until ``timeout`` ms have passed (0: at once), then both sides get a RST."""

    timeout: float = 0

    async def run(self, stub: Stub) -> None:
        """Reset the connection when the time is up (if the toxic is still in place)."""
        if await stub.sleep_until(stub.started_at + self.timeout / 1000.0):
            stub.reset()


register("reset_peer", ResetPeer)
