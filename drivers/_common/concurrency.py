"""Act on many targets at once: a bounded thread pool, and one DriverError naming every failure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mlchaos.driver_kit import DriverError

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


def each(items: Sequence[str], work: Callable[[str], T], what: str, **options: Any) -> dict[str, T]:
    """:func:`concurrently` (with the same keyword ``options``), as ``{item: result}``."""
    return dict(zip(items, concurrently(items, work, what, **options), strict=True))
