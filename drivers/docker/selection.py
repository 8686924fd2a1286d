"""Which containers a Docker fault hits: a selector (labels, name pattern, compose project) and a mode.

The selector and the mode are validated before the engine is asked anything. An empty
selector is an error, never "every container"; a container labelled ``mlchaos.skip=true``
(and the container mlchaos itself runs in) is never a candidate. Modes and seeds are every
driver's (:mod:`drivers._common.selection`): a fixed ``count``, a ``percentage`` of the
matches (rounded down; ``at_least_one`` rounds 0 up to 1) or ``all``, picked with a ``seed``
(generated when None) that the change record keeps, so a drill can be replayed: the same
seed over the same candidates picks the same containers.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drivers._common import checks
from drivers._common import selection as common
from drivers._common.selection import SKIP_LABEL, Mode, check_seed, is_skipped, parse_mode
from mlchaos.driver_kit import DriverError

__all__ = ["PROJECT_LABEL", "SKIP_LABEL", "Candidate", "Mode", "Selector", "candidates_from_api", "check_seed",
           "choose", "eligible", "is_skipped", "own_container_ids", "parse_mode", "parse_selector"]
PROJECT_LABEL = "com.docker.compose.project"


@dataclass(frozen=True)
class Candidate:
    """A container as the selection sees it (plain data: id, name, labels, state)."""

    id: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    state: str = "running"


@dataclass(frozen=True)
class Selector:
    """Labels (``key=value``, or ``key`` for "has the label"), a name regex and a compose project."""

    labels: tuple[tuple[str, str | None], ...] = ()
    name_pattern: str | None = None
    project: str | None = None

    def regex(self) -> re.Pattern[str] | None:
        return re.compile(self.name_pattern) if self.name_pattern is not None else None

    def matches(self, candidate: Candidate) -> bool:
        """True when the candidate has every label, its name matches and it is in the project."""
        for key, value in self.labels:
            if key not in candidate.labels or (value is not None and candidate.labels[key] != value):
                return False
        if self.project is not None and candidate.labels.get(PROJECT_LABEL) != self.project:
            return False
        regex = self.regex()
        return regex is None or regex.search(candidate.name) is not None

    def label_filters(self) -> list[str]:
        """The ``label`` filters the engine can apply itself (``key`` or ``key=value``)."""
        found = [key if value is None else f"{key}={value}" for key, value in self.labels]
        if self.project is not None:
            found.append(f"{PROJECT_LABEL}={self.project}")
        return found

    def describe(self) -> dict[str, Any]:
        """JSON-ready form, for change records and error messages."""
        return {"labels": {k: v for k, v in self.labels}, "name_pattern": self.name_pattern, "project": self.project}


def parse_selector(
    labels: Mapping[str, Any] | Sequence[str] | None = None,
    name_pattern: str | None = None,
    project: str | None = None,
) -> Selector:
    """Validate a selector; DriverError for an empty one, a bad label or an invalid regex."""
    pairs = _label_pairs(labels)
    if name_pattern is not None:
        checks.name_pattern(name_pattern)
    if project is not None and (not isinstance(project, str) or not project):
        raise DriverError(f"project must be a non-empty compose project name, got {project!r}")
    if not pairs and name_pattern is None:
        raise DriverError("an empty selector would target every container: give labels and/or name_pattern")
    return Selector(pairs, name_pattern, project)


def eligible(candidates: Iterable[Candidate], selector: Selector, states: Iterable[str] | None = None,
             exclude_ids: Iterable[str] = ()) -> list[Candidate]:
    """Matching candidates in ``states`` (any when None), skipped ones and ``exclude_ids`` left out, by name."""
    wanted = set(states) if states is not None else None
    excluded = tuple(exclude_ids)
    found = [c for c in candidates
             if selector.matches(c) and not is_skipped(c.labels)
             and (wanted is None or c.state in wanted)
             and not any(c.id.startswith(prefix) for prefix in excluded)]
    return sorted(found, key=lambda c: (c.name, c.id))


def choose(candidates: Sequence[Candidate], selector: Selector, mode: Mode, seed: int,
           states: Iterable[str] | None = ("running",), exclude_ids: Iterable[str] = ()) -> list[Candidate]:
    """Pick the targets: TargetNotFound when nothing matches, DriverError when the count is too large."""
    pool = eligible(candidates, selector, states, exclude_ids)
    where = f" in state {'/'.join(states)}" if states is not None else ""
    return common.choose(pool, mode, seed, noun="container(s)", scope=f"match {selector.describe()}",
                         nothing=f"no container{where} matches {selector.describe()} (containers labelled "
                                 f"{SKIP_LABEL}=true are never targeted)", name=lambda c: c.name)


def own_container_ids() -> list[str]:
    """The id (prefix) of the container mlchaos itself runs in, if it runs in one: never a target."""
    if not os.path.exists("/.dockerenv"):
        return []
    hostname = socket.gethostname()
    return [hostname] if re.fullmatch(r"[0-9a-f]{12,64}", hostname) else []


def candidates_from_api(entries: Iterable[Mapping[str, Any]]) -> list[Candidate]:
    """Candidates from the engine's container list (``GET /containers/json`` entries)."""
    found = []
    for entry in entries:
        names = entry.get("Names") or [entry["Id"][:12]]
        found.append(Candidate(id=entry["Id"], name=str(names[0]).lstrip("/"),
                               labels=dict(entry.get("Labels") or {}), state=str(entry.get("State", ""))))
    return found


def _label_pairs(labels: Mapping[str, Any] | Sequence[str] | None) -> tuple[tuple[str, str | None], ...]:
    if labels is None:
        return ()
    pairs: list[tuple[str, str | None]] = []
    if isinstance(labels, Mapping):
        for key, value in labels.items():
            if value is not None and not isinstance(value, str | int | float | bool):
                raise DriverError(f"label {key!r}: the value must be a string, got {value!r}")
            text = None if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
            pairs.append((str(key), text))
    elif isinstance(labels, Sequence) and not isinstance(labels, str | bytes):
        for item in labels:
            if not isinstance(item, str) or not item:
                raise DriverError(f"labels must be 'key=value' (or 'key') strings, got {item!r}")
            key, sep, value = item.partition("=")
            pairs.append((key, value if sep else None))
    else:
        raise DriverError(f"labels must be a mapping or a list of 'key=value' strings, got {labels!r}")
    for key, _ in pairs:
        if not key or any(ch.isspace() for ch in key):
            raise DriverError(f"invalid label key {key!r}")
    return tuple(pairs)
