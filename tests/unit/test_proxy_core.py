"""The proxy core without HTTP: a registry, real loopback sockets, an echo server."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mlchaos.proxy import AlreadyExists, InvalidProxy, InvalidToxic, ProxyNotFound, ProxyRegistry, ToxicNotFound
from mlchaos.proxy.__main__ import loop_factory
from mlchaos.proxy.errors import Forbidden, ResetIncomplete

Scenario = Callable[[ProxyRegistry, str], Awaitable[Any]]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


LOOP = {"name": "asyncio"}


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest) -> Any:
    """Every scenario runs on asyncio's loop and on uvloop (the proxy process runs on uvloop when installed)."""
    LOOP["name"] = request.param
    yield request.param
    LOOP["name"] = "asyncio"


def run(scenario: Scenario, timeout: float = 30.0) -> Any:
    """Start an echo server and a registry with proxy 'echo' in front of it; run ``scenario`` (on each loop)."""

    async def main() -> Any:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        upstream = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        registry = ProxyRegistry()
        proxy = await registry.create("echo", "127.0.0.1:0", upstream)
        try:
            async with asyncio.timeout(timeout):  # a deadlock fails the test instead of hanging it
                return await scenario(registry, proxy.listen)
        finally:
            await registry.close()
            server.close()

    with asyncio.Runner(loop_factory=loop_factory(LOOP["name"])) as runner:
        return runner.run(main())


async def _connect(listen: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = listen.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def _round_trip(listen: str, payload: bytes = b"ping") -> float:
    reader, writer = await _connect(listen)
    started = time.monotonic()
    writer.write(payload)
    await writer.drain()
    got = await reader.readexactly(len(payload))
    elapsed = time.monotonic() - started
    writer.close()
    assert got == payload
    return elapsed


def test_no_toxic_passes_bytes_both_ways():
    async def scenario(registry: ProxyRegistry, listen: str) -> None:
        assert await _round_trip(listen, b"x" * 200_000) < 1.0

    run(scenario)


def test_no_byte_lost_or_reordered_while_toxics_change():
    """Pass-through and the toxic path take turns on a live connection (the proxy process runs on uvloop).

    The client sends at least 50,000 numbers and goes on until the chain has changed 10 times while
    they flowed (so a fast pass-through cannot finish before the churn has done anything)."""
    count, wanted_changes = 50_000, 10

    async def scenario(registry: ProxyRegistry, listen: str) -> tuple[int, int]:
        reader, writer = await _connect(listen)
        done = asyncio.Event()
        changes = 0

        async def churn() -> None:
            nonlocal changes
            while not done.is_set():
                for stream in ("upstream", "downstream"):
                    registry.add_toxic("echo", "latency", {"latency": 3, "jitter": 2}, stream=stream)
                await asyncio.sleep(0.002)
                for stream in ("upstream", "downstream"):
                    registry.remove_toxic("echo", f"latency_{stream}")
                changes += 1
                await asyncio.sleep(0.001)

        async def send() -> tuple[int, int]:
            start = 0
            while start < count or changes < wanted_changes:  # many small chunks, spread over the churn
                writer.write(b"".join(struct.pack(">I", i) for i in range(start, start + 100)))
                start += 100
                await writer.drain()
                await asyncio.sleep(0.0005)
            seen = changes  # the chain changed this often while numbers were still being sent
            writer.write_eof()
            return start, seen

        churner = asyncio.create_task(churn())
        sender = asyncio.create_task(send())
        data = await reader.read(-1)  # until EOF: the proxy forwarded the echo's EOF
        done.set()
        await churner
        sent, seen = await sender
        writer.close()
        assert len(data) == 4 * sent, f"{len(data) // 4} of {sent} numbers came back"
        numbers = struct.unpack(f">{sent}I", data)
        assert numbers == tuple(range(sent)), "bytes were reordered"
        return sent, seen

    sent, seen = run(scenario)
    assert sent >= count and seen >= wanted_changes, "the chain changed while data flowed"


def test_a_large_transfer_under_back_pressure_keeps_every_byte_while_a_toxic_comes_and_goes():
    """8 MB each way with a reader that lags: the sockets fill up, the proxy stops reading its sources
    (flow control) in pass-through and on the toxic path, and switches between them mid-transfer."""
    count = 2_000_000  # numbers of 4 bytes

    async def scenario(registry: ProxyRegistry, listen: str) -> int:
        reader, writer = await _connect(listen)
        payload = struct.pack(f">{count}I", *range(count))
        switches = 0

        async def send() -> None:
            for start in range(0, len(payload), 1 << 20):
                writer.write(payload[start:start + (1 << 20)])
                await writer.drain()
            writer.write_eof()

        async def toggle() -> None:
            nonlocal switches
            for _ in range(6):
                await asyncio.sleep(0.05)
                registry.add_toxic("echo", "latency", {"latency": 1}, stream="upstream", name="lag")
                await asyncio.sleep(0.05)
                registry.remove_toxic("echo", "lag")
                switches += 1

        sender, toggler = asyncio.create_task(send()), asyncio.create_task(toggle())
        received = bytearray()
        while chunk := await reader.read(1 << 16):
            received += chunk
            if len(received) < len(payload) // 2:
                await asyncio.sleep(0)  # lag behind the sender for the first half
        await asyncio.gather(sender, toggler)
        writer.close()
        assert len(received) == len(payload), f"{len(received)} of {len(payload)} bytes came back"
        assert received == payload, "bytes were reordered or changed"
        return switches

    assert run(scenario) == 6


class _GatedSink:
    """The writing end of a link whose buffer is 'full' until the test opens the gate (no sockets: the state
    this needs, a pump blocked on a full socket with reads queued behind it, is not reproducible on loopback,
    whose kernel buffers take megabytes)."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.data.append(data)

    async def drain(self) -> None:
        self.waiting.set()
        await self.gate.wait()
        self.gate.clear()
        self.waiting.clear()

    def write_eof(self) -> None:
        self.data.append(b"<eof>")


def test_a_link_stays_on_its_queue_until_it_is_empty_whatever_else_changes():
    """Reads queued behind a blocked write go out before later ones, even when the chain empties and changes
    again meanwhile: the link goes back to pass-through only once its queue is empty."""
    from types import SimpleNamespace

    from mlchaos.proxy import ToxicEntry
    from mlchaos.proxy.link import Link, Side
    from mlchaos.proxy.toxics import build

    async def main() -> list[bytes]:
        proxy = SimpleNamespace(toxics=[], version=0, changed=asyncio.Event(), connections=set(), upstream="")

        def change(add: ToxicEntry | None = None, remove: ToxicEntry | None = None) -> None:
            if add is not None:
                proxy.toxics.append(add)
            if remove is not None:
                proxy.toxics.remove(remove)
            proxy.version += 1
            old, proxy.changed = proxy.changed, asyncio.Event()
            old.set()

        connection = SimpleNamespace(proxy=proxy, close=lambda: None, link_done=lambda: None)
        sink = _GatedSink()
        link = Link(connection, "upstream", Side(), sink)  # type: ignore[arg-type]
        lag = ToxicEntry("lag", "latency", "upstream", 1.0, build("latency", {"latency": 1}))
        change(add=lag)
        link.feed(b"A")  # through the pump: delayed, written, then the write blocks
        await sink.waiting.wait()
        link.feed(b"B")
        link.feed(b"C")
        change(remove=lag)  # the chain is empty now, but B and C are queued
        sink.gate.set()  # A's write completes; B goes (the pump forgets the removed toxic), its write blocks
        await asyncio.sleep(0)
        await sink.waiting.wait()
        other = ToxicEntry("other", "latency", "downstream", 1.0, build("latency", {"latency": 1}))
        change(add=other)  # the proxy changes again, on the other stream only
        change(remove=other)
        link.feed(b"D")  # must queue behind C, not overtake it
        link.feed_eof()
        while sink.data[-1:] != [b"<eof>"]:
            sink.gate.set()
            await asyncio.sleep(0.001)
        return sink.data

    assert asyncio.run(main()) == [b"A", b"B", b"C", b"D", b"<eof>"]


def test_the_proxy_process_runs_on_uvloop_when_installed_and_on_asyncio_when_asked():
    import uvloop

    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None


def test_latency_delays_every_round_trip():
    async def scenario(registry: ProxyRegistry, listen: str) -> tuple[float, float]:
        before = await _round_trip(listen)
        registry.add_toxic("echo", "latency", {"latency": 150})
        slow = await _round_trip(listen)
        registry.add_toxic("echo", "latency", {"latency": 100}, stream="upstream")  # toxics stack
        slower = await _round_trip(listen)
        return before, slow, slower

    before, slow, slower = run(scenario)
    assert before < 0.05
    assert 0.14 <= slow < 0.3
    assert 0.24 <= slower < 0.4


def test_removing_a_latency_toxic_releases_the_chunk_it_holds():
    async def scenario(registry: ProxyRegistry, listen: str) -> float:
        registry.add_toxic("echo", "latency", {"latency": 10_000})
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, registry.remove_toxic, "echo", "latency_downstream")
        return await _round_trip(listen)

    assert 0.15 <= run(scenario) < 1.0


def test_toxicity_zero_affects_no_connection_and_one_every_connection():
    async def scenario(registry: ProxyRegistry, listen: str) -> list[float]:
        registry.add_toxic("echo", "latency", {"latency": 200}, toxicity=0.0, name="never")
        fast = [await _round_trip(listen) for _ in range(3)]
        registry.update_toxic("echo", "never", toxicity=1.0)
        return fast + [await _round_trip(listen)]

    *fast, slow = run(scenario)
    assert max(fast) < 0.1 and slow >= 0.19


def test_ttl_removes_the_toxic_by_itself():
    async def scenario(registry: ProxyRegistry, listen: str) -> tuple[dict, list, float]:
        entry = registry.add_toxic("echo", "latency", {"latency": 100}, ttl=0.3)
        shown = entry.to_dict()
        await asyncio.sleep(0.5)  # nobody calls the registry meanwhile
        return shown, registry.get("echo").toxics, await _round_trip(listen)

    shown, left, elapsed = run(scenario)
    assert shown["ttl"] == 0.3 and abs(shown["expires_at"] - (time.time() - 0.5 + 0.3)) < 0.3
    assert left == [] and elapsed < 0.09


def test_timeout_closes_the_connection_after_its_time():
    async def scenario(registry: ProxyRegistry, listen: str) -> tuple[bytes, float]:
        registry.add_toxic("echo", "timeout", {"timeout": 200})
        reader, writer = await _connect(listen)
        started = time.monotonic()
        writer.write(b"held")
        data = await reader.read(100)
        return data, time.monotonic() - started

    data, elapsed = run(scenario)
    assert data == b"" and 0.15 <= elapsed < 1.0


def test_timeout_zero_holds_data_until_removed_then_delivers_it():
    async def scenario(registry: ProxyRegistry, listen: str) -> float:
        registry.add_toxic("echo", "timeout", {"timeout": 0})
        asyncio.get_running_loop().call_later(0.3, registry.remove_toxic, "echo", "timeout_downstream")
        return await _round_trip(listen, b"kept")

    assert 0.25 <= run(scenario) < 1.5


def test_reset_peer_sends_a_tcp_reset():
    async def scenario(registry: ProxyRegistry, listen: str) -> BaseException | bytes:
        registry.add_toxic("echo", "reset_peer", {"timeout": 100})
        reader, writer = await _connect(listen)
        try:
            return await reader.read(100)
        except ConnectionResetError as exc:
            return exc

    assert isinstance(run(scenario), ConnectionResetError)


def test_slow_close_delays_the_eof():
    async def scenario(registry: ProxyRegistry, listen: str) -> float:
        registry.add_toxic("echo", "slow_close", {"delay": 300})
        reader, writer = await _connect(listen)
        writer.write(b"bye")
        writer.write_eof()
        started = time.monotonic()
        data = await reader.read(-1)
        assert data == b"bye"
        return time.monotonic() - started

    assert 0.28 <= run(scenario) < 1.5


def test_bandwidth_limits_the_rate():
    async def scenario(registry: ProxyRegistry, listen: str) -> float:
        registry.add_toxic("echo", "bandwidth", {"rate": 200})  # 200 KB/s
        return await _round_trip(listen, b"x" * 100_000)

    assert 0.4 <= run(scenario) < 1.5


def test_a_disabled_proxy_refuses_connections_and_comes_back_on_its_port():
    async def scenario(registry: ProxyRegistry, listen: str) -> str:
        await registry.update("echo", enabled=False)
        with pytest.raises(ConnectionRefusedError):
            await _connect(listen)
        await registry.update("echo", enabled=True)
        assert registry.get("echo").listen == listen
        await _round_trip(listen)
        await registry.update("echo", enabled=False)
        registry.add_toxic("echo", "latency", {"latency": 1000})
        await registry.reset()  # re-enables every proxy, removes every toxic
        assert await _round_trip(listen) < 0.5
        return "ok"

    assert run(scenario) == "ok"


def test_disabling_drops_live_connections():
    async def scenario(registry: ProxyRegistry, listen: str) -> bytes:
        reader, writer = await _connect(listen)
        await _round_trip(listen)
        await registry.update("echo", enabled=False)
        return await reader.read(10)

    assert run(scenario) == b""


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda r: r.add_toxic("echo", "latencyy", {}), InvalidToxic, "unknown toxic type 'latencyy'"),
        (lambda r: r.add_toxic("echo", "latency", {"latency": -5}), InvalidToxic, "latency must be a number >= 0"),
        (lambda r: r.add_toxic("echo", "latency", {"latncy": 5}), InvalidToxic, "unknown attribute(s) latncy"),
        (lambda r: r.add_toxic("echo", "latency", {"latency": 5, "jitter": 9}), InvalidToxic, "must not exceed"),
        (lambda r: r.add_toxic("echo", "latency", {}, toxicity=1.5), InvalidToxic, "toxicity must be"),
        (lambda r: r.add_toxic("echo", "latency", {}, stream="sideways"), InvalidToxic, "stream must be"),
        (lambda r: r.add_toxic("echo", "latency", {}, ttl=0), InvalidToxic, "ttl must be"),
        (lambda r: r.add_toxic("nope", "latency", {}), ProxyNotFound, "proxy 'nope' not found"),
        (lambda r: r.remove_toxic("echo", "nope"), ToxicNotFound, "toxic 'nope' not found"),
    ],
)
def test_core_errors_are_plain_exceptions(call, error, message):
    async def scenario(registry: ProxyRegistry, listen: str) -> None:
        with pytest.raises(error) as caught:
            call(registry)
        assert message in str(caught.value)
        assert registry.get("echo").toxics == [], "a refused toxic changed nothing"

    run(scenario)


def test_duplicates_and_bad_proxies_are_refused():
    async def scenario(registry: ProxyRegistry, listen: str) -> None:
        registry.add_toxic("echo", "latency", {"latency": 1})
        with pytest.raises(AlreadyExists):
            registry.add_toxic("echo", "latency", {"latency": 2})
        with pytest.raises(AlreadyExists):
            await registry.create("echo", "127.0.0.1:0", "127.0.0.1:65000")
        with pytest.raises(AlreadyExists, match="cannot listen"):
            await registry.create("twin", listen, "127.0.0.1:65000")  # the address is taken
        with pytest.raises(InvalidProxy):
            await registry.create("bad", "nowhere", "127.0.0.1:65000")
        assert sorted(registry.proxies) == ["echo"]

    run(scenario)


def test_an_unreachable_upstream_resets_the_client():
    async def main() -> BaseException | bytes:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            dead = probe.getsockname()[1]
        registry = ProxyRegistry()
        proxy = await registry.create("dead", "127.0.0.1:0", f"127.0.0.1:{dead}")
        try:
            reader, _ = await _connect(proxy.listen)
            try:
                return await reader.read(10)
            except ConnectionResetError as exc:
                return exc
        finally:
            await registry.close()

    with asyncio.Runner(loop_factory=loop_factory(LOOP["name"])) as runner:
        assert isinstance(runner.run(main()), ConnectionResetError)


def test_reset_removes_every_toxic_and_goes_on_past_a_proxy_that_cannot_listen():
    async def scenario(registry: ProxyRegistry, listen: str) -> None:
        upstream = registry.get("echo").upstream
        for name in ("a", "b"):
            await registry.create(name, "127.0.0.1:0", upstream)
        for name in ("echo", "a", "b"):
            registry.add_toxic(name, "latency", {"latency": 5000}, ttl=60)
        await registry.update("a", enabled=False)
        squatter = await asyncio.start_server(lambda r, w: w.close(), *registry.get("a").listen.rsplit(":", 1))
        try:
            with pytest.raises(ResetIncomplete) as caught:
                await registry.reset()
        finally:
            squatter.close()
        assert list(caught.value.failed) == ["a"] and "cannot listen" in caught.value.failed["a"]
        assert {name: p.toxics for name, p in registry.proxies.items()} == {"echo": [], "a": [], "b": []}
        assert {name: p.enabled for name, p in registry.proxies.items()} == {"echo": True, "a": False, "b": True}
        assert await _round_trip(registry.get("b").listen) < 1.0, "b's 5000 ms toxic is gone"
        await registry.reset()  # the address is free again: this time everything comes back
        assert registry.get("a").enabled

    run(scenario)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_failed_update_puts_the_proxy_back_as_it_was(enabled):
    async def scenario(registry: ProxyRegistry, listen: str) -> None:
        proxy = registry.get("echo")
        toxic = registry.add_toxic("echo", "latency", {"latency": 1})
        if not enabled:
            await registry.update("echo", enabled=False)
        before = (proxy.listen, proxy.upstream, proxy.enabled)
        taken = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        elsewhere = f"127.0.0.1:{taken.sockets[0].getsockname()[1]}"
        try:
            with pytest.raises(AlreadyExists, match="nothing changed"):
                # a new upstream, then a listen address that is taken: none of it may stay
                await registry.update("echo", enabled=True, listen=elsewhere, upstream="127.0.0.1:65000")
        finally:
            taken.close()
        assert (proxy.listen, proxy.upstream, proxy.enabled) == before
        assert proxy.toxics == [toxic]
        if enabled:
            assert await _round_trip(proxy.listen) < 1.0, "still serving on its old address"

    run(scenario)


def test_addresses_outside_the_allow_list_are_refused_before_anything_changes():
    async def scenario(registry: ProxyRegistry, listen: str) -> None:
        proxy = registry.get("echo")
        before = (proxy.listen, proxy.upstream, proxy.enabled)
        with pytest.raises(Forbidden, match="upstream 127.0.0.1:22 is not allowed"):
            await registry.create("ssh", "127.0.0.1:0", "127.0.0.1:22")
        with pytest.raises(Forbidden, match="listen address 0.0.0.0:0 is not allowed"):
            await registry.update("echo", listen="0.0.0.0:0", upstream="127.0.0.1:65000")
        with pytest.raises(Forbidden):
            await registry.update("echo", enabled=False, upstream="10.0.0.1:8000")
        assert sorted(registry.proxies) == ["echo"] and (proxy.listen, proxy.upstream, proxy.enabled) == before

    run(scenario)
