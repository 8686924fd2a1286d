"""How every driver picks its targets out of the eligible candidates: a mode, a seed, one seeded sample.

A driver keeps its own candidate type and its own selector (Docker labels, Kubernetes label
selectors, sandbox replicas, a command-line pattern...) and hands the eligible candidates, in
a stable order, to :func:`choose`. Modes: a fixed ``count``, a ``percentage`` of the
candidates (rounded down; ``at_least_one`` rounds 0 up to 1) or ``all``. The pick is
``random.Random(seed).sample`` over the candidates' positions, with a ``seed`` drawn when none
is given; the driver records the seed in its change record, so the same seed over the same
candidates picks the same targets. No candidate is an error (TargetNotFound), never "nothing
to do", and so is a mode that wants more than there are (DriverError). A candidate labelled
``mlchaos.skip=true`` opted out (:func:`is_skipped`) and is never eligible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mlchaos.driver_kit import DriverError, TargetNotFound

T = TypeVar("T")
SKIP_LABEL = "mlchaos.skip"
TRUE_VALUES = frozenset({"true", "1", "yes", "on"})


@dataclass(frozen=True)
class Mode:
    """How many of the eligible candidates: ``count``, ``percentage`` (with ``at_least_one``) or ``all``."""

    count: int | None = None
    percentage: float | None = None
    all: bool = False
    at_least_one: bool = False

    def how_many(self, matches: int) -> int:
        """The number of candidates to pick out of ``matches``."""
        if self.all:
            return matches
        if self.percentage is not None:
            wanted = math.floor(matches * self.percentage / 100 + 1e-9)
            return max(wanted, 1) if self.at_least_one and matches else wanted
        return self.count or 0

    def describe(self) -> dict[str, Any]:
        """JSON-ready form, for change records."""
        return {"count": self.count, "percentage": self.percentage, "all": self.all, "at_least_one": self.at_least_one}


def parse_mode(
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False
) -> Mode:
    """Validate the mode; with none given, one candidate (``count=1``). Exactly one mode at most."""
    given = [name for name, value in (("count", count), ("percentage", percentage)) if value is not None]
    if all is True:
        given.append("all")
    elif all is not False:
        raise DriverError(f"all must be true or false, got {all!r}")
    if len(given) > 1:
        raise DriverError(f"give only one of count, percentage or all (got {', '.join(given)})")
    if not isinstance(at_least_one, bool):
        raise DriverError(f"at_least_one must be true or false, got {at_least_one!r}")
    if percentage is not None:
        if isinstance(percentage, bool) or not isinstance(percentage, int | float) or not 0 < percentage <= 100:
            raise DriverError(f"percentage must be a number in (0, 100], got {percentage!r}")
        return Mode(percentage=float(percentage), at_least_one=at_least_one)
    if all:
        return Mode(all=True)
    return count_mode(1 if count is None else count)


def count_mode(count: Any) -> Mode:
    """A fixed ``count`` of candidates (an integer >= 1; DriverError otherwise)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DriverError(f"count must be an integer >= 1, got {count!r}")
    return Mode(count=count)


def check_seed(seed: Any) -> int:
    """The seed to use: the one given (an integer), or a fresh random one (record it: it repeats the pick)."""
    if seed is None:
        return random.SystemRandom().randrange(2**31)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DriverError(f"seed must be an integer or null, got {seed!r}")
    return seed


def is_skipped(labels: Mapping[str, Any]) -> bool:
    """True for a candidate that opted out of chaos (label ``mlchaos.skip=true``)."""
    return str(labels.get(SKIP_LABEL, "")).strip().lower() in TRUE_VALUES


def choose(
    pool: Sequence[T], mode: Mode, seed: int, *, noun: str, scope: str, nothing: str,
    name: Callable[[T], str] | None = None, shown: int | None = None, order: Callable[[T], Any] | None = None,
) -> list[T]:
    """Pick the targets out of the eligible ``pool`` (a stable order), in pool order (or sorted by ``order``).

    TargetNotFound(``nothing``) when the pool is empty or a percentage rounds down to 0;
    DriverError ``count=N but only M <noun> <scope>: <names>`` when more are wanted than there
    are (the first ``shown`` names, all when None; none without ``name``).
    """
    if not pool:
        raise TargetNotFound(nothing)
    wanted = mode.how_many(len(pool))
    check_available(wanted, len(pool), noun, scope, [name(c) for c in pool[:shown]] if name else [])
    if wanted == 0:
        raise TargetNotFound(f"{mode.percentage:g}% of {len(pool)} matching {noun} rounds down to 0 "
                             "(pass at_least_one: true to take one)")
    return sample(pool, wanted, seed, order)


def check_available(wanted: int, available: int, noun: str, scope: str, names: Sequence[str] = ()) -> None:
    """DriverError when ``wanted`` is more than the ``available`` candidates (``names`` listed in the message)."""
    if wanted > available:
        listed = ": " + ", ".join(names) if names else ""
        raise DriverError(f"count={wanted} but only {available} {noun} {scope}{listed}")


def sample(pool: Sequence[T], wanted: int, seed: int, order: Callable[[T], Any] | None = None) -> list[T]:
    """``random.Random(seed).sample`` of ``wanted`` candidates, returned in pool order (or sorted by ``order``).

    The positions a sample picks depend only on the seed and the pool's size, so the same seed
    over the same pool always picks the same candidates.
    """
    positions = sorted(random.Random(seed).sample(range(len(pool)), wanted))
    picked = [pool[i] for i in positions]
    return sorted(picked, key=order) if order is not None else picked
