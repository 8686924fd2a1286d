"""Where a traffic generator sends its calls: every live replica of a sandbox service, or servers by URL.

Each :class:`Receiver` names the replica (as stats, record targets and alerts' ``replica`` label
do), the base URL called and its change-record details. Servers by URL are named as
:mod:`drivers.model.endpoints` names them; one generator's record names one environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from drivers.model import sandbox
from drivers.model.endpoints import Endpoint, parse_scope
from drivers.model.endpoints import environment as url_environment
from mlchaos.driver_kit import DriverError, TargetNotFound, local_environment

TARGETS = ("sandbox", "url")


@dataclass(frozen=True)
class Receiver:
    """One replica the traffic goes to: its name (stats, record target), the base URL called, the target's details."""

    name: str
    url: str
    details: dict[str, Any]


def check_where(target: Any, service: Any, via_proxy: bool, urls: Any, names: Any,
                endpoint: str | None = None) -> tuple[list[tuple[str, Endpoint]], str | None]:
    """Check where the traffic goes (touching nothing but the declared endpoint's credentials); with target url:
    (name, server) pairs, names defaulted to host:port, and the declared endpoint the URL is (or None)."""
    if target not in TARGETS:
        raise DriverError(f"target must be one of {', '.join(TARGETS)} (a Docker stack: target url with its "
                          f"published proxy ports), got {target!r}")
    if target != "url" and names is not None:
        raise DriverError(f"names name the urls: give them with target url, not {target}")
    scope = parse_scope(target, service, urls=urls, endpoint=endpoint)  # urls: distinct http(s) base URLs
    if target != "url":
        return [], None
    if not via_proxy:
        raise DriverError("via_proxy false picks a sandbox replica's own URL: with target url the urls are called "
                          "as given (give the replicas' own URLs to bypass a proxy)")
    found = scope.named(None)
    _environment(found)
    if names is None:
        names = [e.instance for e in found]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DriverError(f"names: the urls share host:port {', '.join(twice)}: give each URL a name")
    elif isinstance(names, str) or not isinstance(names, list | tuple) or len(names) != len(found) or not all(
            isinstance(n, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", n) for n in names):
        raise DriverError(f"names must be a list of {len(found)} replica name(s), one per URL of urls "
                          f"(such as 'model-1'), got {names!r}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DriverError(f"names: {', '.join(map(repr, twice))} is given twice")
    return list(zip(names, found, strict=True)), scope.endpoint


def sandbox_receivers(service: str, via_proxy: bool) -> tuple[list[Receiver], str]:
    live = [r for r in sandbox.replicas(service) if sandbox.is_alive(r.pid, r.name)]
    if not live:
        raise TargetNotFound(f"no live replica of service {service!r}")
    return [Receiver(r.name, url, {**sandbox.replica_details(r), "traffic_url": url})
            for r in live for url in [r.client_url if via_proxy else r.url]], local_environment()


def url_receivers(servers: list[tuple[str, Endpoint]]) -> tuple[list[Receiver], str]:
    """The servers by URL (as drivers.model.endpoints names them) and the record's one environment."""
    stack = sandbox.stack_instances()
    receivers = []
    for name, server in servers:
        details: dict[str, Any] = {"url": server.name, "traffic_url": server.name}
        if server.name in stack:  # only when known: how the Prometheus that scrapes the replica labels it
            details["instance"] = stack[server.name]
        receivers.append(Receiver(name, server.name, details))
    return receivers, _environment([e for _, e in servers])


def _environment(found: list[Endpoint]) -> str:
    """The origin of the URLs; several ports of one host: ``scheme://host`` (one generator, one record)."""
    origins = sorted({e.environment for e in found})
    if len(origins) == 1:
        return url_environment(found)
    hosts = sorted({o.rsplit(":", 1)[0] for o in origins})  # an origin always names its port (endpoints)
    if len(hosts) > 1:
        raise DriverError(f"urls: one traffic record names one environment, and these are not on one scheme and "
                          f"host ({', '.join(origins)}): start one generator per host")
    return hosts[0]
