"""One proxied TCP connection: two links (upstream = client->server, downstream =
server->client), each piping its chunks through the proxy's current toxics.

Order and completeness: a reader task timestamps chunks into a bounded queue, and
ONE pump task per link takes them out one at a time and passes each through the
toxics of its stream, in chain order, before writing it. The chain is looked up
afresh for every chunk, and a toxic that is removed while it holds a chunk returns
it at once (the stub's waits watch the proxy's change event), so adding and
removing toxics never drops or reorders bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from typing import Any, Protocol

from mlchaos.proxy.entry import ToxicEntry

CHUNK = 64 * 1024
QUEUE_CHUNKS = 64
CONNECT_TIMEOUT = 5.0


class LinkStub:
    """The per-connection view of one toxic (see :class:`mlchaos.proxy.toxics.base.Stub`)."""

    def __init__(self, link: Link, entry: ToxicEntry) -> None:
        self.link, self.entry, self.stream = link, entry, link.stream
        self.read_at = self.started_at = time.monotonic()
        self.state: dict[str, Any] = {}

    def active(self) -> bool:
        """True while the toxic is in the chain (and applies to this connection)."""
        return self.link.applies(self.entry)

    async def sleep_until(self, deadline: float) -> bool:
        """Sleep until ``deadline`` (monotonic); False as soon as the toxic is removed."""
        while True:
            if not self.active():
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            changed = self.link.proxy.changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await changed.wait()

    async def wait_removed(self) -> None:
        """Return once the toxic is no longer in the chain."""
        while self.active():
            await self.link.proxy.changed.wait()

    def close(self) -> None:
        """Close the whole connection gracefully."""
        self.link.connection.close()

    def reset(self) -> None:
        """Reset the whole connection (RST)."""
        self.link.connection.reset()

    def reply(self, data: bytes) -> None:
        """Write ``data`` to the client of this connection."""
        self.link.connection.client_writer.write(data)


class Link:
    """One direction of a connection."""

    def __init__(self, connection: Connection, stream: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.connection, self.proxy, self.stream = connection, connection.proxy, stream
        self.reader, self.writer = reader, writer
        self._decided: dict[ToxicEntry, bool] = {}
        self._stubs: dict[ToxicEntry, LinkStub] = {}

    def applies(self, entry: ToxicEntry) -> bool:
        """Is ``entry`` in the chain and, by its toxicity (drawn once per connection), on this connection?"""
        if entry.stream != self.stream or entry not in self.proxy.toxics:
            return False
        decided = self._decided.get(entry)
        if decided is None:
            decided = self._decided[entry] = entry.toxicity >= 1.0 or random.random() < entry.toxicity
        return decided

    def chain(self) -> list[tuple[ToxicEntry, LinkStub]]:
        """The toxics acting on this link now, in order, with their stubs."""
        out = []
        for entry in list(self.proxy.toxics):
            if self.applies(entry):
                stub = self._stubs.get(entry)
                if stub is None:
                    stub = self._stubs[entry] = LinkStub(self, entry)
                out.append((entry, stub))
        return out

    async def run(self) -> None:
        """Pump chunks from reader to writer through the chain until EOF or an error."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)
        reading = asyncio.create_task(self._read(queue))
        try:
            while (item := await queue.get()) is not None:
                read_at, data = item
                data = self._released() + data  # what toxics that left the chain held goes first
                for entry, stub in self.chain():
                    stub.read_at = read_at
                    data = await entry.toxic.pipe(data, stub)
                    if not data:
                        break
                if data:
                    self.writer.write(data)
                    await self.writer.drain()
            for entry, stub in self.chain():
                hook = getattr(entry.toxic, "before_close", None)
                if hook is not None:
                    await hook(stub)
            if held := self._released(everything=True):
                self.writer.write(held)
                await self.writer.drain()
            if self.writer.can_write_eof():
                self.writer.write_eof()
        except (ConnectionError, OSError):
            self.connection.close()
        finally:
            reading.cancel()

    def _released(self, everything: bool = False) -> bytes:
        """Bytes held by toxics that left the chain (``everything``: by every toxic, at the end of the stream)."""
        held = b""
        for entry, stub in list(self._stubs.items()):
            gone = not self.applies(entry)
            release = getattr(entry.toxic, "release", None)
            if release is not None and (everything or gone):
                held += release(stub)
            if gone:
                del self._stubs[entry]
        return held

    async def _read(self, queue: asyncio.Queue[tuple[float, bytes] | None]) -> None:
        try:
            while data := await self.reader.read(CHUNK):
                await queue.put((time.monotonic(), data))
        except (ConnectionError, OSError):
            pass
        await queue.put(None)


class ToxicChain(Protocol):
    """What a connection needs of its proxy: where to connect, the toxics in order, an event set on every change."""

    upstream: str
    toxics: list[ToxicEntry]
    changed: asyncio.Event


class Connection:
    """A client connection and its upstream connection, piped both ways."""

    def __init__(self, proxy: ToxicChain, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.proxy, self.client_reader, self.client_writer = proxy, reader, writer
        self.links: list[Link] = []
        self.writers: list[asyncio.StreamWriter] = [writer]
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Connect upstream and pipe both directions until both end (or a toxic/disable closes it)."""
        self._task = asyncio.current_task()
        host, port = self.proxy.upstream.rsplit(":", 1)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except (OSError, TimeoutError):
            self.reset()  # the upstream is gone: the client sees its connection reset
            return
        self.writers.append(up_writer)
        for w in self.writers:
            with contextlib.suppress(OSError):
                w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.links = [Link(self, "upstream", self.client_reader, up_writer),
                      Link(self, "downstream", up_reader, self.client_writer)]
        hooks = asyncio.create_task(self._watch_hooks())
        try:
            await asyncio.gather(*(link.run() for link in self.links))
        except asyncio.CancelledError:
            pass
        finally:
            hooks.cancel()
            for w in self.writers:
                w.close()

    async def _watch_hooks(self) -> None:
        """Start a toxic's ``run`` task when it becomes active here, cancel it when removed."""
        running: dict[Any, asyncio.Task[None]] = {}
        try:
            while True:
                changed = self.proxy.changed
                wanted = {entry: stub for link in self.links for entry, stub in link.chain()
                          if hasattr(entry.toxic, "run")}
                for entry, stub in wanted.items():
                    if entry not in running:
                        running[entry] = asyncio.create_task(entry.toxic.run(stub))
                for entry in [e for e in running if e not in wanted]:
                    running.pop(entry).cancel()
                await changed.wait()
        finally:
            for task in running.values():
                task.cancel()

    def close(self) -> None:
        """Close both sides (FIN) and stop piping."""
        for w in self.writers:
            w.close()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    def reset(self) -> None:
        """Reset both sides (SO_LINGER 0 + abort: the peers see ECONNRESET)."""
        for w in self.writers:
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
