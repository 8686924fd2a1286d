"""One proxied TCP connection: two links (upstream = client->server, downstream =
server->client), each passing its bytes through the proxy's current toxics.

The sockets are asyncio protocols (:class:`Side`), not streams: a read lands in
:meth:`Link.feed` straight from the event loop.

* **Pass-through** (no toxic acts on the link, nothing queued or held): the bytes are written
  to the other socket at once, in the same callback; when that socket's buffer fills up, the
  source stops reading until it drains (asyncio's flow control), so memory stays bounded. The
  link is then *bound*: the source's ``data_received`` is the sink transport's ``write`` itself,
  so a read runs no Python code of the proxy at all. Every change of the chain unbinds every
  link of the proxy before the change returns (:meth:`Link.unbind`, from the proxy's
  ``notify``), so the next read comes back through :meth:`Link.feed` and sees the new chain.
* **Toxic path** (the pump): as soon as a toxic that may wait acts on the link, each read is timestamped into a bounded
  queue, and ONE pump task per link takes the chunks out one at a time and passes each through
  the toxics of its stream, in chain order, before writing it. The chain is looked up afresh
  for every chunk, and a toxic that is removed while it holds a chunk returns it at once (the
  stub's waits watch the proxy's change event). The link goes back to pass-through only once
  the queue is empty, the pump holds nothing and no toxic holds bytes, so switching either way
  never drops or reorders bytes, and never drops the connection.

* **Inline** (every toxic acting on the link has ``pipe_now``, a ``pipe`` that never waits, such
  as the request-level toxics, and no toxic that left the chain holds bytes): the chain runs in
  the read's callback, as in pass-through, without a hop through the queue and the pump.

The mode is worked out again only when the proxy's ``version`` changes (every change of the
chain bumps it) or the pump goes idle. While the
pump holds or has queued anything, every read goes to it, whatever the mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import deque
from typing import Any, Protocol, cast

from mlchaos.proxy.entry import ToxicEntry

CHUNK = 64 * 1024  # the most a toxic sees at once
QUEUE_CHUNKS = 64  # chunks a link queues before it stops reading its source
CONNECT_TIMEOUT = 5.0
WRITE_HIGH_WATER = 256 * 1024  # bytes buffered for a socket before its source stops reading
CLEAR, INLINE, PUMP = "clear", "inline", "pump"  # a link's modes (see the module doc)


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
        self.link.connection.client.write(data)


class Side(asyncio.Protocol):
    """One socket of a connection: what it reads goes to ``link``; what is written to it, to the peer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.link: Link | None = None  # the link that reads from this socket
        self.feeder: Link | None = None  # the link that writes to this socket
        self.connection: Connection | None = None
        self.closed = False
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._early: list[bytes | None] = []  # read before the links exist (a client, while connecting)

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.transport.set_write_buffer_limits(WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        if self.link is None:
            self._early.append(data)
        else:
            self.link.feed(data)

    def eof_received(self) -> bool:  # noqa: D102
        if self.link is None:
            self._early.append(None)
        else:
            self.link.feed_eof()
        return True  # half-close: the other direction goes on

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self.closed = True
        self._wake_writer()
        if self.connection is not None:
            self.connection.lost(self)

    def pause_writing(self) -> None:  # noqa: D102
        self._write_paused = True
        if self.feeder is not None:
            self.feeder.pause("sink")

    def resume_writing(self) -> None:  # noqa: D102
        self._write_paused = False
        self._wake_writer()
        if self.feeder is not None:
            self.feeder.resume("sink")

    # used by the links
    def attach(self, link: Link) -> None:
        """Hand what was read before the links existed to ``link``, then feed it directly."""
        self.link = link
        if isinstance(self, ClientSide) and self.transport is not None and not self.closed:
            self.transport.resume_reading()  # paused from accept until the upstream answered
        early, self._early = self._early, []
        for data in early:
            if data is None:
                link.feed_eof()
            else:
                link.feed(data)

    def write(self, data: bytes) -> None:
        """Queue ``data`` on the socket (nothing once it is closed)."""
        if not self.closed and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the socket's buffer is below its high-water mark (or the socket is gone)."""
        if not self._write_paused or self.closed:
            return
        if self._drained is None or self._drained.done():
            self._drained = asyncio.get_running_loop().create_future()
        await self._drained

    def write_eof(self) -> None:
        """Half-close the socket (FIN) once its buffer is sent."""
        if not self.closed and self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                if self.transport.can_write_eof():
                    self.transport.write_eof()

    def _wake_writer(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)


class ClientSide(Side):
    """A client's socket, accepted by a proxy: it opens a :class:`Connection` (not read until it is connected)."""

    def __init__(self, proxy: ToxicChain) -> None:
        super().__init__()
        self.proxy = proxy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()
        connection = Connection(self.proxy, self)
        self.proxy.connections.add(connection)
        connection.start()


class Link:
    """One direction of a connection: bytes read from ``source`` go to ``sink`` through the toxics."""

    def __init__(self, connection: Connection, stream: str, source: Side, sink: Side) -> None:
        self.connection, self.proxy, self.stream = connection, connection.proxy, stream
        self.source, self.sink = source, sink
        self._decided: dict[ToxicEntry, bool] = {}
        self._stubs: dict[ToxicEntry, LinkStub] = {}
        self._version = -1  # the proxy version ``_mode`` was computed for
        self._mode = PUMP  # how a read goes on while the pump is idle (see the module doc)
        self._chain: list[tuple[ToxicEntry, LinkStub]] = []  # the chain ``_mode`` was computed for
        self._queue: deque[tuple[float, bytes] | None] = deque()
        self._busy = False  # the pump holds a chunk, or has some queued: every read goes to it
        self._pump: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._paused: set[str] = set()
        self._bound = False  # the source's reads go straight to the sink's transport (see the module doc)
        self.done = False

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

    # reading (called by the source's protocol)
    def feed(self, data: bytes) -> None:
        """Bytes read from the source: straight on when nothing acts on the link, else through the toxics."""
        if not self._busy:
            if self._version != self.proxy.version:
                self._refresh()
            if self._mode is CLEAR:
                self.sink.write(data)
                self._bind()
                return
            if self._mode is INLINE:
                self._inline(data)
                return
        read_at = time.monotonic()
        for start in range(0, len(data), CHUNK):
            self._queue.append((read_at, data[start:start + CHUNK]))
        self._kick()
        if len(self._queue) >= QUEUE_CHUNKS:
            self.pause("queue")

    def feed_eof(self) -> None:
        """The source sent EOF: half-close the sink once everything before it is through."""
        if not self._busy:
            if self._version != self.proxy.version:
                self._refresh()
            if self._mode is CLEAR:
                self._finish()
                return
        self._queue.append(None)
        self._kick()

    def changed(self) -> None:
        """The chain changed: let the pump hand on what a removed toxic held, even with no new read."""
        if self._stubs or self._pump is not None:
            self._kick()

    # binding (pass-through with no Python code a read)
    @property
    def bound(self) -> bool:
        """True while the source's reads go straight to the sink's transport."""
        return self._bound

    def _bind(self) -> None:
        """Hand the source's reads straight to the sink transport's ``write`` (the link is in pass-through)."""
        source, sink = self.source, self.sink
        if (self._bound or source.closed or sink.closed or source.transport is None
                or sink.transport is None or source.transport.is_closing() or sink.transport.is_closing()):
            return
        source.data_received = sink.transport.write  # type: ignore[method-assign]
        source.transport.set_protocol(source)  # uvloop keeps data_received from set_protocol on
        self._bound = True

    def unbind(self) -> None:
        """Reads go through :meth:`feed` again (the chain changed, or the connection ends)."""
        if self._bound:
            self._bound = False
            del self.source.data_received
            if self.source.transport is not None:
                self.source.transport.set_protocol(self.source)

    # flow control
    def pause(self, reason: str) -> None:
        """Stop reading the source (``reason``: the sink is full, or the queue is)."""
        if not self._paused and self.source.transport is not None:
            with contextlib.suppress(RuntimeError):
                self.source.transport.pause_reading()
        self._paused.add(reason)

    def resume(self, reason: str) -> None:
        """Read the source again once no reason to pause is left."""
        if reason not in self._paused:
            return
        self._paused.discard(reason)
        if not self._paused and self.source.transport is not None and not self.source.closed:
            with contextlib.suppress(RuntimeError):
                self.source.transport.resume_reading()

    # the toxic path
    def _refresh(self) -> None:
        """Work out the mode for the chain as it is now (the pump is idle)."""
        self._version = self.proxy.version
        self._chain = chain = self.chain()
        if not self._stubs:
            self._mode = CLEAR
        elif len(self._stubs) == len(chain) and all(hasattr(entry.toxic, "pipe_now") for entry, _ in chain):
            self._mode = INLINE  # no toxic that left the chain holds bytes, and none in it waits
        else:
            self._mode = PUMP

    def _inline(self, data: bytes) -> None:
        """Pass ``data`` through toxics that never wait (``pipe_now``), in this callback, and write it."""
        read_at = time.monotonic()
        try:
            for entry, stub in self._chain:
                stub.read_at = read_at
                data = entry.toxic.pipe_now(data, stub)  # type: ignore[attr-defined]
                if not data:
                    return
            self.sink.write(data)
        except (ConnectionError, OSError):
            self.connection.close()

    def _kick(self) -> None:
        self._busy = True
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run_pump())
        elif self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _run_pump(self) -> None:
        """Take queued chunks one at a time through the chain; idle (pass-through again) when all is out."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._queue:
                    if held := self._released():
                        await self._write(held)
                        continue
                    self._refresh()
                    self._busy = self._mode is PUMP
                    if self._mode is CLEAR:
                        self._bind()
                    self._wake = loop.create_future()
                    await self._wake
                    self._wake = None
                    continue
                item = self._queue.popleft()
                if len(self._queue) < QUEUE_CHUNKS // 2:
                    self.resume("queue")
                if item is None:
                    await self._end()
                    return
                read_at, data = item
                data = self._released() + data  # what toxics that left the chain held goes first
                for entry, stub in self.chain():
                    stub.read_at = read_at
                    data = await entry.toxic.pipe(data, stub)
                    if not data:
                        break
                if data:
                    await self._write(data)
        except (ConnectionError, OSError):
            self.connection.close()
        except Exception:
            self.connection.close()  # a toxic failed: the connection ends rather than stalls (the task logs it)
            raise

    async def _write(self, data: bytes) -> None:
        self.sink.write(data)
        await self.sink.drain()

    async def _end(self) -> None:
        for entry, stub in self.chain():
            hook = getattr(entry.toxic, "before_close", None)
            if hook is not None:
                await hook(stub)
        if held := self._released(everything=True):
            await self._write(held)
        self._finish()

    def _finish(self) -> None:
        self.sink.write_eof()
        self.done = True
        self.connection.link_done()

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

    def stop(self) -> None:
        """Cancel the pump and unbind (the connection is closing)."""
        self.unbind()
        if self._pump is not None and self._pump is not asyncio.current_task():
            self._pump.cancel()


class ToxicChain(Protocol):
    """What a connection needs of its proxy: where to connect, the toxics in order, change signals."""

    upstream: str
    toxics: list[ToxicEntry]
    changed: asyncio.Event
    version: int
    connections: set[Connection]


class Connection:
    """A client connection and its upstream connection, piped both ways."""

    def __init__(self, proxy: ToxicChain, client: Side) -> None:
        self.proxy, self.client = proxy, client
        self.upstream: Side | None = None
        self.links: list[Link] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        client.connection = self

    def start(self) -> None:
        """Connect upstream, then pipe both ways (in a task)."""
        self._tasks.append(asyncio.get_running_loop().create_task(self._connect()))

    async def _connect(self) -> None:
        host, port = self.proxy.upstream.rsplit(":", 1)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, upstream = await loop.create_connection(Side, host.strip("[]"), int(port))
        except (OSError, TimeoutError):
            self.reset()  # the upstream is gone: the client sees its connection reset
            return
        if self._closed:
            upstream.transport.abort()  # type: ignore[union-attr]
            return
        self.upstream = upstream
        upstream.connection = self
        for side in (self.client, upstream):
            sock = side.transport.get_extra_info("socket") if side.transport is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.links = [Link(self, "upstream", self.client, upstream), Link(self, "downstream", upstream, self.client)]
        self.client.feeder, upstream.feeder = self.links[1], self.links[0]
        self._tasks.append(loop.create_task(self._watch_hooks()))
        upstream.attach(self.links[1])
        self.client.attach(self.links[0])
        if upstream.closed:
            self.close()

    async def _watch_hooks(self) -> None:
        """Start a toxic's ``run`` task when it becomes active here, cancel it when removed."""
        running: dict[Any, asyncio.Task[None]] = {}
        try:
            while True:
                changed = self.proxy.changed
                for link in self.links:
                    link.changed()
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

    def unbind(self) -> None:
        """Send both links' reads through the proxy's code again (the chain is changing)."""
        for link in self.links:
            link.unbind()

    def link_done(self) -> None:
        """A link forwarded its EOF; once both have, close both sockets."""
        if self.links and all(link.done for link in self.links):
            self.close()

    def lost(self, side: Side) -> None:
        """A socket closed under us (error or reset): nothing more can pass either way."""
        if not self._closed:
            self.close()

    def _sides(self) -> list[Side]:
        return [s for s in (self.client, self.upstream) if s is not None]

    def close(self) -> None:
        """Close both sides (FIN, after what is buffered) and stop piping."""
        if self._closed:
            return
        self._closed = True
        for side in self._sides():
            if side.transport is not None:
                side.transport.close()
        self._stop()

    def reset(self) -> None:
        """Reset both sides (SO_LINGER 0 + abort: the peers see ECONNRESET)."""
        self._closed = True
        for side in self._sides():
            if side.transport is None:
                continue
            sock = side.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            side.transport.abort()
        self._stop()

    def _stop(self) -> None:
        self.proxy.connections.discard(self)
        for link in self.links:
            link.stop()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
