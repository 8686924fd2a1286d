"""The helper process that holds the GPU memory: ``python -m drivers.gpu.hog``.

It allocates the planned chunks in its own CUDA context, prints one JSON line (``allocated``
bytes, or ``error``), holds the memory until ``--hold`` seconds pass or it gets SIGTERM, then
frees it. It runs in its own session, so the runner is not the one holding the memory and a
watchdog (or ``release_gpu_memory``) can end exactly this process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from drivers.gpu.cuda import CudaApi
from mlchaos.driver_kit import DriverError

MARKER = "drivers.gpu.hog"


def hold_memory(api: CudaApi, device: int, chunks: list[int], hold: float, report: Callable[[dict[str, Any]], None],
                stopped: Callable[[], bool], clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Allocate ``chunks`` on ``device``, ``report`` the outcome, hold until ``hold`` seconds pass or ``stopped()``.

    All or nothing: if one chunk cannot be allocated, the ones taken are freed and the error reported.
    Returns what was reported.
    """
    pointers: list[int] = []
    with api.context(device) as ctx:
        try:
            try:
                for size in chunks:
                    pointers.append(ctx.allocate(size))
            except DriverError as exc:
                outcome: dict[str, Any] = {"error": f"allocating chunk {len(pointers) + 1} of {len(chunks)}: {exc}"}
                report(outcome)
                return outcome
            free, total = ctx.memory_info()
            outcome = {"allocated": sum(chunks), "chunks": len(chunks), "free": free, "total": total,
                       "pid": os.getpid()}
            report(outcome)
            deadline = clock() + hold
            while not stopped() and clock() < deadline:
                sleep(min(0.2, max(0.0, deadline - clock())))
            return outcome
        finally:
            for pointer in reversed(pointers):
                ctx.free(pointer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MARKER}")
    parser.add_argument("--device", type=int, required=True)
    parser.add_argument("--chunks", required=True, help="JSON list of allocation sizes in bytes")
    parser.add_argument("--hold", type=float, required=True, help="seconds to hold the memory at most")
    parser.add_argument("--token", default="", help="names this hog in its change record")
    args = parser.parse_args(argv)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))

    def report(outcome: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(outcome) + "\n")
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)  # the runner stops reading: never block or SIGPIPE on it
        os.dup2(devnull, 1)
        os.close(devnull)

    from drivers.gpu import cuda

    try:
        api = cuda.load()
        outcome = hold_memory(api, args.device, json.loads(args.chunks), args.hold, report, lambda: stop["now"])
    except DriverError as exc:
        report({"error": str(exc)})
        return 1
    return 1 if "error" in outcome else 0


if __name__ == "__main__":
    raise SystemExit(main())
