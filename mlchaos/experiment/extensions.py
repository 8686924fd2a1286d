"""Chaos Toolkit extensions (chaostoolkit-prometheus, chaostoolkit-kubernetes...): loaded as ``chaos`` loads them,
listed by their own ``discover`` function.

* **Logging.** Extensions written for Chaos Toolkit log through ``from logzero import logger`` without declaring
  logzero (chaostoolkit-prometheus 0.6 does). They work under ``chaos`` because its CLI replaces the ``logzero``
  module with chaoslib's stand-in whose ``logger`` is the ``chaostoolkit`` logger
  (``chaoslib.log.override_logzero_module``, installed by ``configure_logger``). mlchaos installs the same
  stand-in before it imports a driver module, so an extension loads and logs as it does under ``chaos``; no
  dependency on logzero is added (``chaos`` has none either, and a real logzero would log differently).
* **Discovery.** An extension is a distribution named ``chaostoolkit-*`` (but ``chaostoolkit`` and
  ``chaostoolkit-lib``) whose top-level package has a ``discover(discover_system=True)`` function, the convention
  ``chaos discover`` relies on. mlchaos calls it with ``discover_system=False`` (no call to the target system)
  and never installs anything (``chaos discover`` runs ``pip install -U``).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

NOT_EXTENSIONS = frozenset({"chaostoolkit", "chaostoolkit-lib"})  # the CLI and the library themselves
_STAND_IN_LOGGER = "chaostoolkit"


@dataclass(frozen=True)
class Extension:
    """An installed Chaos Toolkit extension: its distribution, version and top-level module."""

    distribution: str
    version: str
    module: str


def use_chaostoolkit_logging() -> None:
    """Put the ``logzero`` stand-in in place, as the ``chaos`` CLI does at start (idempotent).

    The same module as ``chaoslib.log.override_logzero_module`` makes (a package with no path whose ``logger``
    is the ``chaostoolkit`` logger), built here so that validation does not import chaoslib (about 90 ms). Its
    ``logger`` is looked up when a module first reads it, so that importing drivers that never log through
    logzero does not import :mod:`logging` either.
    """
    current = sys.modules.get("logzero")
    if current is not None and (current.__dict__.get("__getattr__") is _stand_in_attribute
                                or getattr(getattr(current, "logger", None), "name", None) == _STAND_IN_LOGGER):
        return
    stand_in = types.ModuleType("logzero")
    stand_in.__path__ = []
    stand_in.__getattr__ = _stand_in_attribute  # type: ignore[attr-defined]
    sys.modules["logzero"] = stand_in


def _stand_in_attribute(name: str) -> Any:
    """The stand-in's ``logger`` (the ``chaostoolkit`` logger), on first use; then a plain attribute."""
    if name != "logger":
        raise AttributeError(f"module 'logzero' has no attribute {name!r}")
    import logging

    logger = logging.getLogger(_STAND_IN_LOGGER)
    stand_in = sys.modules.get("logzero")
    if stand_in is not None and stand_in.__dict__.get("__getattr__") is _stand_in_attribute:
        stand_in.logger = logger  # type: ignore[attr-defined]
    return logger


def installed_extensions() -> list[Extension]:
    """Every installed ``chaostoolkit-*`` distribution's top-level modules, sorted by module name."""
    import importlib.metadata  # not at module level: validation imports this module, and this costs ~30 ms

    found = []
    for module, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            name = _normalise(distribution)
            if name.startswith("chaostoolkit-") and name not in NOT_EXTENSIONS and not module.startswith("_"):
                found.append(Extension(name, importlib.metadata.version(distribution), module))
    return sorted(set(found), key=lambda e: e.module)


def find_extension(name: str) -> Extension | None:
    """The installed extension named by its distribution (``chaostoolkit-prometheus``) or module
    (``chaosprometheus``); None when there is none."""
    wanted = _normalise(name)
    for extension in installed_extensions():
        if wanted in (extension.distribution, _normalise(extension.module)):
            return extension
    return None


def discoverable(extension: Extension) -> bool:
    """True when the extension's package imports and has a ``discover`` function (a controls-only extension or a
    CLI plugin, such as chaostoolkit-addons or chaostoolkit-reporting, has none: it has no activities to list)."""
    use_chaostoolkit_logging()
    try:
        package = importlib.import_module(extension.module)
    except Exception:  # listed, then reported, by discovered_activities
        return True
    return callable(getattr(package, "discover", None))


def discovered_activities(extension: Extension) -> list[dict[str, Any]]:
    """The activities the extension's own ``discover(discover_system=False)`` reports (Chaos Toolkit's discovery
    format: ``type``, ``name``, ``mod``, ``doc``, ``arguments``). Raises LookupError when the extension has no
    ``discover`` function, and whatever importing or discovering raises."""
    use_chaostoolkit_logging()
    package = importlib.import_module(extension.module)
    discover = getattr(package, "discover", None)
    if not callable(discover):
        raise LookupError(f"{extension.module} ({extension.distribution}) has no discover() function: not an "
                          f"extension Chaos Toolkit can discover")
    discovery = discover(discover_system=False)
    activities = discovery.get("activities", []) if isinstance(discovery, dict) else []
    return [a for a in activities if isinstance(a, dict) and a.get("mod") and a.get("name")]


def extension_activities(extension: Extension) -> Iterator[tuple[str, str, str, Any]]:
    """(module, name, kind, function) of each discovered activity whose function imports."""
    for activity in discovered_activities(extension):
        module = importlib.import_module(activity["mod"])
        func = getattr(module, activity["name"], None)
        if callable(func):
            yield activity["mod"], activity["name"], str(activity.get("type") or "activity"), func


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
