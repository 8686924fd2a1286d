"""Where a proxy may forward to and listen on: the address allow-lists (no I/O, no DNS).

Without them, anyone who can steer the API turns the proxy into a relay: a proxy from a
public port to ``127.0.0.1:22``, or the model server's proxy repointed at the attacker (a
man in the middle of every inference). So creating or changing a proxy is refused
(:class:`~mlchaos.proxy.errors.Forbidden`, HTTP 403) unless both of its addresses are allowed:

* an **upstream** when it is a loopback address on an unprivileged port (1024-65535: the
  sandbox's replicas; never ssh, smtp... on the host), one of the upstreams configured at
  start (``--config``), or matches an ``--allow-upstream`` rule;
* a **listen** address when it is a loopback address (any port, 0 included), one of the listen
  addresses configured at start, or matches an ``--allow-listen`` rule.

A rule is ``HOST:PORT``, where either part may be ``*`` (any); ``*:*`` allows everything
(a deliberate opt-out). Hosts are compared as written (case-insensitively), never resolved:
``localhost``, ``127.0.0.0/8`` and ``::1`` are the loopback hosts; ``0.0.0.0`` is not one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from mlchaos.proxy.errors import Forbidden, InvalidProxy

UNPRIVILEGED = range(1024, 65536)
ANY = "*"


def split(address: str, what: str) -> tuple[str, str]:
    """``HOST:PORT`` -> (host without brackets, lower-cased; port text); InvalidProxy naming ``what``."""
    if not isinstance(address, str) or ":" not in address:
        raise InvalidProxy(f"{what} must be HOST:PORT, got {address!r}")
    host, _, port = address.rpartition(":")
    host = host.strip().removeprefix("[").removesuffix("]").lower()
    if not host:
        raise InvalidProxy(f"{what} must be HOST:PORT, got {address!r}")
    return host, port.strip()


def is_loopback(host: str) -> bool:
    """``localhost`` (or a ``*.localhost`` name), or a loopback IP literal; never resolves a name."""
    host = host.strip().removeprefix("[").removesuffix("]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Rule:
    """``HOST:PORT`` with ``*`` for any host or any port."""

    host: str
    port: int | None  # None: any port

    @classmethod
    def parse(cls, text: str) -> Rule:
        """A rule from ``HOST:PORT`` / ``HOST:*`` / ``*:*``; InvalidProxy when it is none of them."""
        host, port = split(text, "an allow-list rule")
        if port == ANY:
            return cls(host, None)
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise InvalidProxy(f"an allow-list rule must be HOST:PORT (either may be *), got {text!r}")
        return cls(host, int(port))

    def matches(self, host: str, port: int) -> bool:
        """Does ``host:port`` fall under this rule?"""
        return (self.host == ANY or self.host == host) and (self.port is None or self.port == port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{ANY if self.port is None else self.port}"


@dataclass
class AllowList:
    """Loopback hosts on ``loopback_ports``, plus explicit rules."""

    what: str  # "upstream" or "listen address", for messages
    flag: str  # the command-line option that adds a rule
    loopback_ports: range | None
    rules: list[Rule] = field(default_factory=list)

    def allow(self, rules: Iterable[str | Rule]) -> None:
        """Add rules (``HOST:PORT`` text or :class:`Rule`)."""
        self.rules.extend(r if isinstance(r, Rule) else Rule.parse(r) for r in rules)

    def allows(self, address: str) -> bool:
        """Is ``address`` (``HOST:PORT``) allowed?"""
        host, port = split(address, self.what)
        if not port.isdigit():
            return False
        number = int(port)
        if self.loopback_ports is not None and is_loopback(host) and number in self.loopback_ports:
            return True
        return any(rule.matches(host, number) for rule in self.rules)

    def check(self, address: str) -> None:
        """Raise Forbidden, naming what is allowed, unless ``address`` is."""
        if not self.allows(address):
            raise Forbidden(f"{self.what} {address} is not allowed; allowed: {self.describe()}"
                            f" (the proxy's operator adds more with {self.flag} HOST:PORT)")

    def describe(self) -> str:
        """What is allowed, in words."""
        parts = []
        if self.loopback_ports is not None:
            ports = "any port" if self.loopback_ports == range(0, 65536) else \
                f"ports {self.loopback_ports.start}-{self.loopback_ports.stop - 1}"
            parts.append(f"loopback ({ports})")
        parts += [str(rule) for rule in self.rules]
        return ", ".join(parts) or "nothing"


@dataclass
class AddressPolicy:
    """The upstream and listen allow-lists of one registry."""

    upstream: AllowList = field(default_factory=lambda: AllowList("upstream", "--allow-upstream", UNPRIVILEGED))
    listen: AllowList = field(default_factory=lambda: AllowList("listen address", "--allow-listen", range(0, 65536)))

    @classmethod
    def unrestricted(cls) -> AddressPolicy:
        """Everything allowed (``*:*`` both ways): for a caller that checks addresses itself."""
        policy = cls()
        policy.upstream.allow(["*:*"])
        policy.listen.allow(["*:*"])
        return policy

    def configured(self, listen: str, upstream: str) -> None:
        """Allow one proxy from the start-up configuration (exactly its two addresses)."""
        self.listen.allow([listen])
        self.upstream.allow([upstream])
