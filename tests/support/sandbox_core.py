"""The reference model server's core without HTTP (``mlchaos.sandbox.routes`` on a model and its signals),
for the unit tests that call its routes and read its metrics directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import generate_latest

from mlchaos.sandbox import dataset, routes
from mlchaos.sandbox.model import ServedModel
from mlchaos.sandbox.signals import Signals

THIRDS = (1 / 3, 1 / 3, 1 / 3)  # a uniform reference distribution of iris' three classes


@dataclass
class Core:
    """What the routes need, without a server."""

    model: ServedModel = field(default_factory=ServedModel)
    signals: Signals = field(default_factory=lambda: Signals("iris", dataset.CLASS_NAMES, THIRDS))
    published: int = 0

    def publish(self) -> None:
        self.published += 1


def call_route(core: Core, method: str, path: str, body: Any = None, client: str = "127.0.0.1") -> Any:
    """The answer of the route for ``method path`` (from ``client``) to ``body``; raises its ``routes.HttpError``."""
    found = routes.find(method, path, client)
    assert found is not None, path
    _, handler, groups = found
    return routes.call(handler, core, routes.Request(method, client, groups, lambda: body))


def exported(signals: Signals) -> dict[str, float]:
    """Every sample the signals' registry exports now: ``name{labels}`` -> value."""
    out = {}
    for line in generate_latest(signals.metrics.registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out
