"""Toxics: one small module each, registered in one line (``register("latency", Latency)``).

A toxic needs one method, ``pipe(data, stub) -> bytes``; the abilities a toxic may
add are opt-in, detected by ``hasattr``: ``run(stub)`` (a task started when the toxic
becomes active on a connection, e.g. to close it after a timeout) and
``before_close(stub)`` (awaited when the stream ends, before it is closed) and
``release(stub) -> bytes`` (the data it holds, handed on when it leaves the chain or the
stream ends: a toxic that buffers, such as the request-level ones, never loses bytes) and
``pipe_now(data, stub) -> bytes`` (``pipe`` for a toxic that never waits: the proxy then runs it
in the read's callback instead of handing the chunk to the link's pump task).
See :mod:`mlchaos.proxy.toxics.base` for the contract.
"""

from __future__ import annotations

# importing the modules registers them
from mlchaos.proxy.toxics import bandwidth, http_requests, latency, reset_peer, slow_close, timeout  # noqa: E402,F401,I001
from mlchaos.proxy.toxics.base import TOXICS, Stub, Toxic, build, register

__all__ = ["TOXICS", "Stub", "Toxic", "build", "register"]
