"""Blast-radius accounting: admit a change only when the run stays within its bounds.

Every change record a driver announces passes through :meth:`Ledger.admit` *before* the
fault is applied. The ledger keeps the distinct targets the run has affected so far and
refuses (``BoundExceeded``) a change that would take the run past ``max_targets`` or
``max_fraction``, that touches a target outside every declared scope, or whose
environment is not on the allow-list. Configuration artefacts (rule files, a drill's
PrometheusRule, certificate files) are not workload targets and are not counted; the process that serves a swapped
certificate is. Nor is client traffic a drill sends (kind ``traffic``): a load, not a fault;
its environment is still checked against the allow-list.

The fraction is counted per target kind: the distinct targets of that kind affected, over
every eligible target of that kind the selections chose from (``ChangeRecord.population``).
A driver that cannot tell its population makes the fraction of that kind 100 %.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlchaos.errors import DriverError
from mlchaos.experiment.settings import BlastRadius, Scope
from mlchaos.safety.changes import ChangeRecord, Target

UNCOUNTED_KINDS = frozenset({"file", "prometheus-rule-file", "prometheus-rule", "traffic"})
HOST_ALLOW_LIST_VARIABLE = "MLCHAOS_ALLOWED_ENVIRONMENTS"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class BoundExceeded(DriverError):
    """A change was refused before it was applied: it would break a bound of the run."""


def host_allow_list() -> tuple[str, ...]:
    """The host-wide allow-list (``MLCHAOS_ALLOWED_ENVIRONMENTS``: comma-separated patterns)."""
    raw = os.environ.get(HOST_ALLOW_LIST_VARIABLE, "")
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def environment_allowed(environment: str, patterns: Iterable[str]) -> bool:
    """True when ``environment`` matches one of the shell-style ``patterns``."""
    return any(fnmatch.fnmatchcase(environment, pattern) for pattern in patterns)


def scope_matches(scope: Scope, target: Target, environment: str) -> bool:
    """True when the target satisfies every key the scope gives."""
    details = target.details or {}
    labels = details.get("labels") if isinstance(details.get("labels"), dict) else {}
    if scope.kind is not None and scope.kind != target.kind:
        return False
    for key, value in scope.labels:
        if key not in labels or (value is not None and str(labels[key]) != value):
            return False
    if scope.project is not None and (details.get("project") or labels.get(PROJECT_LABEL)) != scope.project:
        return False
    if scope.namespace is not None and details.get("namespace") != scope.namespace:
        return False
    if scope.service is not None and (details.get("service") or labels.get(SERVICE_LABEL)) != scope.service:
        return False
    if scope.name_pattern is not None and re.search(scope.name_pattern, target.name) is None:
        return False
    return scope.environment is None or fnmatch.fnmatchcase(environment, scope.environment)


@dataclass
class KindCount:
    """The targets of one kind affected so far, and the eligible ones they were chosen from."""

    affected: set[str] = field(default_factory=set)
    population: set[str] = field(default_factory=set)
    population_unknown: bool = False

    def fraction(self) -> float:
        if self.population_unknown or not self.population:
            return 1.0 if self.affected else 0.0
        return len(self.affected) / len(self.population | self.affected)

    def describe(self, kind: str) -> str:
        if self.population_unknown:
            return f"{len(self.affected)} {kind}(s) of an unknown population (counted as 100 %)"
        total = len(self.population | self.affected)
        return f"{len(self.affected)} of {total} {kind}(s) ({self.fraction():.0%})"


class Ledger:
    """The targets a run has affected, checked against its bounds and allow-lists."""

    def __init__(self, bounds: BlastRadius, allowed_environments: Iterable[str] = (),
                 host_allowed: Iterable[str] | None = None):
        self.bounds = bounds
        self.allowed = tuple(allowed_environments)
        self.host_allowed = tuple(host_allow_list() if host_allowed is None else host_allowed)
        self.kinds: dict[str, KindCount] = {}
        self.environments: set[str] = set()

    @property
    def active(self) -> bool:
        """True when there is anything to enforce."""
        return self.bounds.bounded or bool(self.allowed) or bool(self.host_allowed)

    def admit(self, record: ChangeRecord) -> None:
        """Count the record's targets, or raise BoundExceeded (and count nothing)."""
        problems = list(self.problems(record))
        if problems:
            raise BoundExceeded(f"refused {record.driver} {record.action}: " + "; ".join(problems))
        self._count(record, self.kinds)
        if record.environment:
            self.environments.add(record.environment)

    def problems(self, record: ChangeRecord) -> Iterable[str]:
        """Why the record may not be applied (nothing when it may)."""
        yield from self._environment_problems(record)
        counted = [t for t in record.targets if t.kind not in UNCOUNTED_KINDS]
        if self.bounds.scopes:
            for target in counted:
                if not any(scope_matches(s, target, record.environment) for s in self.bounds.scopes):
                    yield (f"{target.kind} {target.name!r} is outside every allowed scope "
                           f"({' | '.join(s.describe() for s in self.bounds.scopes)})")
        after = self._count(record, {k: _copy(v) for k, v in self.kinds.items()})
        if self.bounds.max_targets is not None:
            total = sum(len(c.affected) for c in after.values())
            if total > self.bounds.max_targets:
                yield (f"it would affect {total} target(s) in this run, more than max_targets "
                       f"{self.bounds.max_targets} ({_names(after)})")
        if self.bounds.max_fraction is not None:
            for kind, count in sorted(after.items()):
                if count.affected and count.fraction() > self.bounds.max_fraction + 1e-9:
                    yield (f"it would affect {count.describe(kind)}, more than max_fraction "
                           f"{self.bounds.max_fraction:g}")

    def _environment_problems(self, record: ChangeRecord) -> Iterable[str]:
        for source, patterns in (("the experiment's allowed_environments", self.allowed),
                                 (HOST_ALLOW_LIST_VARIABLE, self.host_allowed)):
            if not patterns:
                continue
            if not record.environment:
                yield f"the {record.driver} driver does not say which environment it acts on, so {source} refuses it"
            elif not environment_allowed(record.environment, patterns):
                yield f"environment {record.environment!r} is not allowed by {source} ({', '.join(patterns)})"

    @staticmethod
    def _count(record: ChangeRecord, kinds: dict[str, KindCount]) -> dict[str, KindCount]:
        population = set(record.population)
        for target in record.targets:
            if target.kind in UNCOUNTED_KINDS:
                continue
            count = kinds.setdefault(target.kind, KindCount())
            count.affected.add(target.name)
            if population:
                count.population |= population
            else:
                count.population_unknown = True
        return kinds

    def summary(self) -> dict[str, Any]:
        """What the run affected, for the journal and the plan."""
        return {
            "targets": sum(len(c.affected) for c in self.kinds.values()),
            "by_kind": {k: {"affected": sorted(c.affected), "eligible": len(c.population | c.affected),
                            "population_unknown": c.population_unknown, "fraction": round(c.fraction(), 4)}
                        for k, c in sorted(self.kinds.items())},
            "environments": sorted(self.environments),
        }

    def describe_bounds(self) -> list[str]:
        """One line per declared bound, with where the run stands against it."""
        lines = []
        total = sum(len(c.affected) for c in self.kinds.values())
        if self.bounds.max_targets is not None:
            lines.append(f"max_targets {self.bounds.max_targets}: {total} target(s) planned")
        if self.bounds.max_fraction is not None:
            parts = [c.describe(k) for k, c in sorted(self.kinds.items())] or ["nothing"]
            lines.append(f"max_fraction {self.bounds.max_fraction:g}: {'; '.join(parts)}")
        if self.bounds.scopes:
            lines.append("scopes: " + " | ".join(s.describe() for s in self.bounds.scopes))
        if self.bounds.max_duration is not None:
            lines.append(f"max_duration {self.bounds.max_duration:g}s for the whole run")
        if self.allowed:
            lines.append(f"allowed_environments: {', '.join(self.allowed)}")
        if self.host_allowed:
            lines.append(f"{HOST_ALLOW_LIST_VARIABLE}: {', '.join(self.host_allowed)}")
        return lines


def _copy(count: KindCount) -> KindCount:
    return KindCount(set(count.affected), set(count.population), count.population_unknown)


def _names(kinds: dict[str, KindCount], limit: int = 10) -> str:
    names = [f"{kind} {name}" for kind, count in sorted(kinds.items()) for name in sorted(count.affected)]
    more = f", ... {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
