"""How much GPU memory a hog takes, and in which chunks: pure arithmetic, no CUDA."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlchaos.driver_kit import DriverError

MiB = 1 << 20
MAX_FRACTION = 0.98  # above this the device (and the driver's own context) has no room left at all
DEFAULT_FRACTION = 0.9
CHUNK_BYTES = 256 * MiB  # many moderate allocations: one huge one can fail on a fragmented device
MIN_MARGIN_BYTES = 256 * MiB
MARGIN_FRACTION = 0.02


@dataclass(frozen=True)
class Plan:
    """What to allocate: ``chunks`` sum to ``planned_bytes``; ``capped`` when the free memory bounded it."""

    requested_bytes: int
    planned_bytes: int
    margin_bytes: int
    capped: bool
    chunks: list[int] = field(default_factory=list)


def margin(total: int) -> int:
    """Bytes always left free on a device of ``total`` bytes (2 %, at least 256 MiB)."""
    return max(MIN_MARGIN_BYTES, int(total * MARGIN_FRACTION))


def check_request(fraction: float | None, nbytes: int | None) -> None:
    """Reject a bad request before any CUDA call (so a dry run and validation say the same)."""
    if fraction is not None and nbytes is not None:
        raise DriverError("give fraction or bytes, not both")
    if nbytes is not None:
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
            raise DriverError(f"bytes must be a positive integer, got {nbytes!r}")
        return
    if fraction is None:
        return
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= MAX_FRACTION:
        raise DriverError(f"fraction must be a number in (0, {MAX_FRACTION}], got {fraction!r}")


def plan(free: int, total: int, fraction: float | None = None, nbytes: int | None = None,
         chunk: int = CHUNK_BYTES) -> Plan:
    """Plan a hog of ``fraction`` of the device's total memory (default 0.9), or of ``nbytes``.

    Never more than ``free`` minus the safety margin; refuses when that leaves nothing to take.
    """
    check_request(fraction, nbytes)
    if total <= 0 or not 0 <= free <= total:
        raise DriverError(f"the device reports impossible memory figures: free {free}, total {total}")
    if chunk <= 0:
        raise DriverError(f"chunk must be positive, got {chunk}")
    requested = nbytes if nbytes is not None else int(total * (DEFAULT_FRACTION if fraction is None else fraction))
    keep = margin(total)
    ceiling = free - keep
    if ceiling <= 0:
        raise DriverError(f"only {free // MiB} MiB free of {total // MiB} MiB: nothing to take above the "
                          f"{keep // MiB} MiB safety margin")
    planned = min(requested, ceiling)
    full, rest = divmod(planned, chunk)
    return Plan(requested_bytes=requested, planned_bytes=planned, margin_bytes=keep,
                capped=planned < requested, chunks=[chunk] * full + ([rest] if rest else []))
