"""The one small ctypes layer over the CUDA driver API (libcuda.so.1), behind a narrow protocol.

Only these calls are used: cuInit, cuDeviceGet, cuCtxCreate_v2, cuMemGetInfo_v2,
cuMemAlloc_v2, cuMemFree_v2 and cuCtxDestroy_v2. Everything above this module talks to a
:class:`CudaApi`, so the logic is tested with a fake and no GPU.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from mlchaos.driver_kit import DriverError

LIBRARY = "libcuda.so.1"
_ERRORS = {1: "invalid value", 2: "out of memory", 3: "not initialized", 100: "no CUDA-capable device",
           101: "invalid device ordinal", 999: "unknown error"}


class CudaUnavailable(DriverError):
    """No usable CUDA driver or device on this machine."""


class CudaError(DriverError):
    """A CUDA driver call failed."""

    def __init__(self, call: str, code: int) -> None:
        super().__init__(f"{call} failed: CUresult {code} ({_ERRORS.get(code, 'see cuda.h')})")
        self.code = code


class CudaApi(Protocol):
    """What the GPU driver needs from CUDA: the device's memory, and allocations inside one context."""

    def memory_info(self, device: int) -> tuple[int, int]:
        """(free, total) bytes of ``device``."""
        ...

    def context(self, device: int) -> Iterator[CudaContext]:
        """A context manager: a CUDA context on ``device``, destroyed on exit."""
        ...


class CudaContext(Protocol):
    def memory_info(self) -> tuple[int, int]: ...

    def allocate(self, nbytes: int) -> int: ...

    def free(self, pointer: int) -> None: ...


class _Context:
    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib

    def memory_info(self) -> tuple[int, int]:
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        _check("cuMemGetInfo_v2", self._lib.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)))
        return free.value, total.value

    def allocate(self, nbytes: int) -> int:
        pointer = ctypes.c_uint64()
        _check("cuMemAlloc_v2", self._lib.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(nbytes)))
        return pointer.value

    def free(self, pointer: int) -> None:
        _check("cuMemFree_v2", self._lib.cuMemFree_v2(ctypes.c_uint64(pointer)))


class CudaDriver:
    """The real CUDA driver API; build it with :func:`load`."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib

    @contextmanager
    def context(self, device: int) -> Iterator[_Context]:
        handle, context = ctypes.c_int(), ctypes.c_void_p()
        _check("cuDeviceGet", self._lib.cuDeviceGet(ctypes.byref(handle), ctypes.c_int(device)))
        _check("cuCtxCreate_v2", self._lib.cuCtxCreate_v2(ctypes.byref(context), ctypes.c_uint(0), handle))
        try:
            yield _Context(self._lib)
        finally:
            self._lib.cuCtxDestroy_v2(context)

    def memory_info(self, device: int) -> tuple[int, int]:
        with self.context(device) as ctx:
            return ctx.memory_info()


def _check(call: str, code: int) -> None:
    if code != 0:
        raise CudaError(call, code)


def load() -> CudaDriver:
    """Open libcuda.so.1 and cuInit it; CudaUnavailable (one clear line) where that cannot be done."""
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError as exc:
        raise CudaUnavailable(f"no CUDA driver ({LIBRARY}) on this machine: {exc}") from None
    try:
        _check("cuInit", lib.cuInit(ctypes.c_uint(0)))
    except CudaError as exc:
        raise CudaUnavailable(f"the CUDA driver ({LIBRARY}) is present but cannot start: {exc}") from None
    return CudaDriver(lib)
