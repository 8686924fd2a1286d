"""GPU memory probes through the CUDA driver API (cuMemGetInfo)."""

from __future__ import annotations

from typing import Any

from drivers.gpu import actions


def gpu_memory_free_bytes(device: int = 0) -> int:
    """The free memory of GPU `device`, in bytes."""
    return actions._cuda().memory_info(device)[0]


def gpu_memory_used_fraction(device: int = 0) -> float:
    """The fraction (0..1) of GPU `device`'s total memory in use, by every process."""
    free, total = actions._cuda().memory_info(device)
    return round(1 - free / total, 4)


def preflight(func: str, arguments: dict[str, Any]) -> list[str]:
    """Validation hook: the probes need a CUDA driver."""
    try:
        actions._cuda()
    except actions.DriverError as exc:
        return [str(exc)]
    return []
