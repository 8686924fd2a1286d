"""Typed core models of an experiment, built from a validated document.

Dicts stay at the edges: ``Activity.spec`` is the activity mapping handed to
chaostoolkit-lib's providers, from the experiment's own deep copy of the document, so the
caller's experiment is never mutated (and code that changes a spec works on
``Activity.private_spec()``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlchaos.experiment.loader import Document
from mlchaos.experiment.settings import Settings

_IMMUTABLE = (str, int, float, bool, type(None))
_SCALARS = frozenset(_IMMUTABLE)  # exact types: a value of one is shared as it is, without a call


def deep_copy(value: Any) -> Any:
    """A deep copy of parsed document data: mappings and lists copied, scalars shared (several times faster
    than :func:`copy.deepcopy` on thousands of activities); anything else goes through ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {key: item if type(item) in _SCALARS else deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [item if type(item) in _SCALARS else deep_copy(item) for item in value]
    if isinstance(value, _IMMUTABLE):
        return value
    return copy.deepcopy(value)


NO_TOLERANCE = object()


@dataclass(frozen=True)
class Activity:
    """One probe or action, as declared (references already resolved)."""

    kind: str
    name: str
    spec: dict[str, Any]
    pointer: str
    timeout: float | str | None = None
    provider_timeout: float | str | None = None  # the provider's own timeout (seconds or ${name}); the smaller wins
    background: bool = False
    pause_before: float | str | None = None
    pause_after: float | str | None = None
    tolerance: Any = NO_TOLERANCE

    @property
    def has_tolerance(self) -> bool:
        return self.tolerance is not NO_TOLERANCE

    @property
    def target(self) -> str:
        """A short label of what the activity calls (module.func, program or URL)."""
        provider = self.spec.get("provider", {})
        kind = provider.get("type")
        if kind == "python":
            return f"{provider.get('module')}.{provider.get('func')}"
        if kind == "process":
            return str(provider.get("path"))
        return f"{provider.get('method', 'GET')} {provider.get('url')}"

    def private_spec(self) -> dict[str, Any]:
        """A copy of the spec that code may mutate: top level, provider and arguments are private."""
        spec = dict(self.spec)
        provider = dict(spec.get("provider") or {})
        if "arguments" in provider:
            provider["arguments"] = deep_copy(provider["arguments"])
        spec["provider"] = provider
        return spec


@dataclass(frozen=True)
class Experiment:
    """A validated experiment."""

    source: Path
    title: str
    description: str
    tags: tuple[str, ...]
    configuration: dict[str, Any]
    secrets: dict[str, Any]
    hypothesis_title: str | None
    hypothesis: tuple[Activity, ...]
    method: tuple[Activity, ...]
    rollbacks: tuple[Activity, ...]
    recovery: tuple[Activity, ...]
    guards: tuple[Activity, ...]
    settings: Settings
    raw: dict[str, Any] = field(repr=False)
    dry_run: bool = False  # the file's top-level ``dry_run: true``: every run of it is a plan
    warnings: tuple[str, ...] = ()  # what validation advised (filled in by the pipeline)

    @property
    def actions(self) -> tuple[Activity, ...]:
        return tuple(a for a in self.method if a.kind == "action")


def build_experiment(doc: Document) -> Experiment:
    """Build the typed experiment from a document that passed validation."""
    data = deep_copy(doc.data)
    named = _named_activities(data)
    hypothesis = data.get("steady-state-hypothesis") or {}
    return Experiment(
        source=doc.path,
        title=data["title"],
        description=data.get("description", ""),
        tags=tuple(data.get("tags", [])),
        configuration=data.get("configuration") or {},
        secrets=data.get("secrets") or {},
        hypothesis_title=hypothesis.get("title") if hypothesis else None,
        hypothesis=_activities(hypothesis.get("probes", []), "/steady-state-hypothesis/probes", named),
        method=_activities(data.get("method", []), "/method", named),
        rollbacks=_activities(data.get("rollbacks", []), "/rollbacks", named),
        recovery=_extension_probes(data, named, "recovery"),
        guards=_extension_probes(data, named, "guards"),
        settings=Settings.from_experiment(data),
        raw=data,
        dry_run=data.get("dry_run") is True,
    )


def _extension_probes(data: dict[str, Any], named: dict[str, dict[str, Any]], key: str) -> tuple[Activity, ...]:
    """The probes listed under ``key`` (recovery, guards) in the mlchaos extension."""
    for index, ext in enumerate(data.get("extensions") or []):
        if isinstance(ext, dict) and ext.get("name") == "mlchaos" and key in ext:
            return _activities(ext[key], f"/extensions/{index}/{key}", named)
    return ()


def _named_activities(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    named: dict[str, dict[str, Any]] = {}
    hypothesis = data.get("steady-state-hypothesis") or {}
    for activity in [*hypothesis.get("probes", []), *data.get("method", []), *data.get("rollbacks", [])]:
        if "ref" not in activity:
            named.setdefault(activity["name"], activity)
    return named


def _activities(items: list[dict[str, Any]], base: str, named: dict[str, dict[str, Any]]) -> tuple[Activity, ...]:
    result = []
    for index, item in enumerate(items):
        # ``items`` are in the experiment's own copy of the document (build_experiment), which nothing changes: an
        # activity's spec is that mapping; a reference gets a copy of the activity it names (each its own)
        spec = deep_copy(named[item["ref"]]) if "ref" in item else item
        pauses = spec.get("pauses") or {}
        result.append(
            Activity(
                kind=spec["type"],
                name=spec["name"],
                spec=spec,
                pointer=f"{base}/{index}",
                timeout=spec.get("timeout"),
                provider_timeout=_provider_timeout(spec),
                background=bool(spec.get("background", False)),
                pause_before=pauses.get("before"),
                pause_after=pauses.get("after"),
                tolerance=spec.get("tolerance", NO_TOLERANCE),
            )
        )
    return tuple(result)


def _provider_timeout(spec: dict[str, Any]) -> float | str | None:
    """The provider's own ``timeout`` when it is seconds (or ``${name}``); an http ``[connect, read]`` pair
    bounds each phase of the request, not the whole activity, so it is left to the provider."""
    timeout = (spec.get("provider") or {}).get("timeout")
    return timeout if isinstance(timeout, (int, float, str)) and not isinstance(timeout, bool) else None
