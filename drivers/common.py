"""What every driver shares: act on many targets at once, poll until a condition holds, check a name pattern."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mlchaos.driver_kit import DriverError, wait_for

__all__ = ["MAX_WORKERS", "check_name_pattern", "concurrently", "wait_for"]

T = TypeVar("T")
MAX_WORKERS = 16


def concurrently(items: Sequence[str], work: Callable[[str], T], what: str, *, noun: str = "",
                 label: Callable[[str], str] = str, thread_prefix: str = "mlchaos-driver") -> list[T]:
    """Run ``work(item)`` for every item at once (a thread pool); one DriverError naming every failure."""
    if not items:
        return []
    results: list[Any] = [None] * len(items)
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items)), thread_name_prefix=thread_prefix) as pool:
        futures = [pool.submit(work, item) for item in items]
        for index, future in enumerate(futures):
            try:
                results[index] = future.result()
            except Exception as exc:
                failures.append(f"{label(items[index])}: {exc}")
    if failures:
        of = f"{len(items)} {noun}".rstrip()
        raise DriverError(f"{what} failed for {len(failures)} of {of}: " + "; ".join(failures))
    return results


def check_name_pattern(name_pattern: Any) -> None:
    """A selector's ``name_pattern`` must be a non-empty, valid regular expression (DriverError otherwise)."""
    if not isinstance(name_pattern, str) or not name_pattern:
        raise DriverError(f"name_pattern must be a non-empty regular expression, got {name_pattern!r}")
    try:
        re.compile(name_pattern)
    except re.error as exc:
        raise DriverError(f"name_pattern {name_pattern!r} is not a valid regular expression: {exc}") from None
