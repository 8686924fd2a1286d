"""The proxy core: named TCP proxies with chains of toxics, on asyncio. No HTTP here.

:class:`ProxyRegistry` holds :class:`Proxy` objects by name. Each proxy listens on
its ``listen`` address while enabled and pipes every connection to ``upstream``
through its toxics (see :mod:`mlchaos.proxy.link`). A toxic may carry a ``ttl``
(seconds): an asyncio timer removes it when it expires, whether or not anyone
calls the API again (``expires_at``, epoch seconds, says when).

Every address goes through the registry's :class:`~mlchaos.proxy.addresses.AddressPolicy`
(an upstream or listen address outside it: Forbidden). Changes are all-or-nothing: an update
whose new listen address cannot be opened puts the proxy back as it was (address, upstream,
enabled; its toxics are never touched), and ``reset`` removes every toxic of every proxy
before it re-enables them, going on past a proxy that cannot listen (ResetIncomplete names it).

All methods must be called on the registry's event loop.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import Any

from mlchaos.proxy.addresses import AddressPolicy
from mlchaos.proxy.entry import ToxicEntry
from mlchaos.proxy.errors import (
    AlreadyExists,
    InvalidProxy,
    InvalidToxic,
    ProxyError,
    ProxyNotFound,
    ResetIncomplete,
    ToxicNotFound,
)
from mlchaos.proxy.link import ClientSide, Connection
from mlchaos.proxy.toxics import build

STREAMS = ("upstream", "downstream")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def parse_address(address: Any, what: str) -> tuple[str, int]:
    """Split ``host:port`` (port 0 allowed); raise InvalidProxy naming ``what``."""
    if not isinstance(address, str) or ":" not in address:
        raise InvalidProxy(f"{what} must be HOST:PORT, got {address!r}")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidProxy(f"{what} must be HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


class Proxy:
    """A named TCP proxy ``listen`` -> ``upstream`` with an ordered chain of toxics."""

    def __init__(self, name: str, listen: str, upstream: str, enabled: bool = True) -> None:
        self.name, self.listen, self.upstream, self.enabled = name, listen, upstream, enabled
        self.toxics: list[ToxicEntry] = []
        self.changed = asyncio.Event()  # set (and replaced) whenever the chain changes
        self.version = 0  # bumped whenever the chain changes (links check it on every read)
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    def to_dict(self) -> dict[str, Any]:
        """Toxiproxy's proxy JSON."""
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream, "enabled": self.enabled,
                "toxics": [t.to_dict() for t in self.toxics]}

    def notify(self) -> None:
        """Wake every wait on the chain (a toxic was added, removed or changed).

        Every live connection is unbound from pass-through first, so its next read (from the
        moment this returns) goes through the new chain.
        """
        for connection in self.connections:
            connection.unbind()
        self.version += 1
        old, self.changed = self.changed, asyncio.Event()
        old.set()

    async def start(self) -> None:
        """Listen (the actual port replaces a 0 in ``listen``); raise AlreadyExists when the address is taken."""
        host, port = parse_address(self.listen, "listen")
        try:
            self._server = await asyncio.get_running_loop().create_server(lambda: ClientSide(self), host, port,
                                                                          backlog=256)
        except OSError as exc:
            raise AlreadyExists(f"proxy {self.name}: cannot listen on {self.listen}: {exc.strerror or exc}") from exc
        actual = self._server.sockets[0].getsockname()[1]
        self.listen = f"{host}:{actual}"
        self.enabled = True

    async def stop(self) -> None:
        """Stop listening (connections are refused) and drop every live connection."""
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.close()


class ProxyRegistry:
    """Every proxy of one process, by name, and the addresses they may use (default: loopback only)."""

    def __init__(self, policy: AddressPolicy | None = None) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.policy = AddressPolicy() if policy is None else policy

    def get(self, name: str) -> Proxy:
        """The proxy ``name``; raise ProxyNotFound."""
        try:
            return self.proxies[name]
        except KeyError:
            raise ProxyNotFound(f"proxy {name!r} not found (known: {', '.join(sorted(self.proxies)) or 'none'})") \
                from None

    async def create(self, name: str, listen: str, upstream: str, enabled: bool = True) -> Proxy:
        """Create (and, when enabled, start) a proxy; raise AlreadyExists, InvalidProxy or Forbidden."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidProxy(f"proxy name must match {_NAME.pattern}, got {name!r}")
        if name in self.proxies:
            raise AlreadyExists(f"proxy {name!r} already exists")
        parse_address(listen, "listen")
        parse_address(upstream, "upstream")
        if not isinstance(enabled, bool):
            raise InvalidProxy(f"enabled must be true or false, got {enabled!r}")
        self.policy.listen.check(listen)
        self.policy.upstream.check(upstream)
        proxy = Proxy(name, listen, upstream, enabled=False)
        if enabled:
            await proxy.start()
        self.proxies[name] = proxy
        return proxy

    async def update(self, name: str, enabled: bool | None = None, listen: str | None = None,
                     upstream: str | None = None) -> Proxy:
        """Change a proxy's upstream or listen address, enable or disable it: all of it, or nothing.

        Everything is checked before anything changes; when the new listen address cannot be
        opened (AlreadyExists), the previous address, upstream and enabled flag come back.
        """
        proxy = self.get(name)
        if enabled is not None and not isinstance(enabled, bool):
            raise InvalidProxy(f"enabled must be true or false, got {enabled!r}")
        if upstream is not None:
            parse_address(upstream, "upstream")
            self.policy.upstream.check(upstream)
        moving = listen is not None and listen != proxy.listen
        if moving:
            parse_address(listen, "listen")
            self.policy.listen.check(listen)
        before = (proxy.listen, proxy.upstream, proxy.enabled)
        try:
            if upstream is not None:
                proxy.upstream = upstream  # new connections go there
            if moving:
                await proxy.stop()
                proxy.listen = listen
                if before[2]:
                    await proxy.start()
            if enabled is True and not proxy.enabled:
                await proxy.start()
            elif enabled is False and proxy.enabled:
                await proxy.stop()
        except ProxyError as exc:
            await self._restore(proxy, before, exc)
            raise type(exc)(f"{exc} (nothing changed: proxy {name} is back on {proxy.listen} -> {proxy.upstream},"
                            f" {'enabled' if proxy.enabled else 'disabled'})") from exc
        return proxy

    async def _restore(self, proxy: Proxy, before: tuple[str, str, bool], cause: ProxyError) -> None:
        """Put ``proxy`` back to ``before`` (listen, upstream, enabled) after a failed update; toxics stay."""
        listen, upstream, enabled = before
        if proxy.listen != listen and proxy.enabled:
            await proxy.stop()
        proxy.listen, proxy.upstream = listen, upstream
        if enabled and not proxy.enabled:
            try:
                await proxy.start()
            except ProxyError as again:
                raise AlreadyExists(f"{cause}; and its previous address {listen} cannot be opened again either "
                                    f"({again}): the proxy is disabled") from cause
        elif not enabled and proxy.enabled:
            await proxy.stop()

    async def delete(self, name: str) -> None:
        """Stop and forget a proxy (its toxics and their timers too)."""
        proxy = self.get(name)
        for entry in proxy.toxics:
            _cancel(entry)
        await proxy.stop()
        del self.proxies[name]

    def add_toxic(self, proxy_name: str, type: str, attributes: dict[str, Any] | None = None,
                  stream: str = "downstream", toxicity: float = 1.0, name: str | None = None,
                  ttl: float | None = None) -> ToxicEntry:
        """Append a toxic to a proxy's chain; it acts on live connections at once."""
        proxy = self.get(proxy_name)
        entry = _entry(type, attributes, stream, toxicity, name, ttl)
        if any(t.name == entry.name for t in proxy.toxics):
            raise AlreadyExists(f"toxic {entry.name!r} already exists on proxy {proxy_name!r}")
        self._arm(proxy, entry)
        proxy.toxics.append(entry)
        proxy.notify()
        return entry

    def update_toxic(self, proxy_name: str, toxic_name: str, attributes: dict[str, Any] | None = None,
                     toxicity: float | None = None, ttl: float | None = None) -> ToxicEntry:
        """Change a toxic's attributes (merged), toxicity or ttl, keeping its place in the chain."""
        proxy = self.get(proxy_name)
        old = self.get_toxic(proxy_name, toxic_name)
        if attributes is not None and not isinstance(attributes, dict):
            raise InvalidToxic(f"attributes must be an object, got {attributes!r}")
        merged = {**old.toxic.attributes(), **(attributes or {})}
        new = _entry(old.type, merged, old.stream, old.toxicity if toxicity is None else toxicity, old.name,
                     old.ttl if ttl is None else ttl)
        if ttl is None and old.expires_at is not None:
            new.expires_at = old.expires_at
        _cancel(old)
        self._arm(proxy, new, keep_expiry=ttl is None)
        proxy.toxics[proxy.toxics.index(old)] = new
        proxy.notify()
        return new

    def get_toxic(self, proxy_name: str, toxic_name: str) -> ToxicEntry:
        """The toxic ``toxic_name`` of a proxy; raise ToxicNotFound."""
        proxy = self.get(proxy_name)
        for entry in proxy.toxics:
            if entry.name == toxic_name:
                return entry
        raise ToxicNotFound(f"toxic {toxic_name!r} not found on proxy {proxy_name!r}")

    def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        """Remove a toxic; whatever it holds goes on at once, in order."""
        proxy = self.get(proxy_name)
        entry = self.get_toxic(proxy_name, toxic_name)
        _cancel(entry)
        proxy.toxics.remove(entry)
        proxy.notify()

    async def reset(self) -> None:
        """Remove every toxic, then enable every proxy (Toxiproxy's POST /reset).

        Every toxic goes first, all at once; a proxy that cannot listen again does not stop the
        others: ResetIncomplete names each one that stayed disabled, and why.
        """
        proxies = list(self.proxies.values())
        for proxy in proxies:
            for entry in proxy.toxics:
                _cancel(entry)
            proxy.toxics.clear()
            proxy.notify()
        failed: dict[str, str] = {}
        for proxy in proxies:
            if not proxy.enabled:
                try:
                    await proxy.start()
                except ProxyError as exc:
                    failed[proxy.name] = str(exc)
        if failed:
            raise ResetIncomplete(failed)

    async def close(self) -> None:
        """Stop every proxy."""
        for name in list(self.proxies):
            await self.delete(name)

    def _arm(self, proxy: Proxy, entry: ToxicEntry, keep_expiry: bool = False) -> None:
        if entry.ttl is None:
            return
        if not keep_expiry or entry.expires_at is None:
            entry.expires_at = time.time() + entry.ttl
        delay = max(entry.expires_at - time.time(), 0.0)
        entry.timer = asyncio.get_running_loop().call_later(delay, self._expire, proxy, entry)

    def _expire(self, proxy: Proxy, entry: ToxicEntry) -> None:
        if entry in proxy.toxics:
            proxy.toxics.remove(entry)
            proxy.notify()


def _cancel(entry: ToxicEntry) -> None:
    if entry.timer is not None:
        entry.timer.cancel()
        entry.timer = None


def _entry(type: str, attributes: dict[str, Any] | None, stream: str, toxicity: float, name: str | None,
           ttl: float | None) -> ToxicEntry:
    toxic = build(type, attributes)
    if stream not in STREAMS:
        raise InvalidToxic(f"stream must be upstream or downstream, got {stream!r}")
    if stream not in toxic.streams:
        raise InvalidToxic(f"toxic {type} acts on the {' or '.join(toxic.streams)} stream only, not {stream}")
    if isinstance(toxicity, bool) or not isinstance(toxicity, int | float) or not 0 <= toxicity <= 1:
        raise InvalidToxic(f"toxicity must be a number in [0, 1], got {toxicity!r}")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)
                            or not math.isfinite(ttl) or ttl <= 0):
        raise InvalidToxic(f"ttl must be a number of seconds > 0 (or null), got {ttl!r}")
    name = f"{type}_{stream}" if name is None else name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidToxic(f"toxic name must match {_NAME.pattern}, got {name!r}")
    return ToxicEntry(name=name, type=type, stream=stream, toxicity=float(toxicity), toxic=toxic,
                      ttl=None if ttl is None else float(ttl))
