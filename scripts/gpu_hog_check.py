"""One short check of drivers.gpu on a machine with an NVIDIA GPU (about 20 s; no benchmark).

    python scripts/gpu_hog_check.py [--device 0] [--fraction 0.5] [--hold 5]

1. hog `fraction` of the device's memory for `hold` seconds (TTL watchdog 60 s), read the free
   memory during the hog, release it (release_gpu_memory), read it after;
2. hog a quarter for 2 s and let the helper free it by itself, then check it did.
Prints the numbers as JSON lines; exit status 0 when every check held, 1 otherwise, 2 when it could
not run (no CUDA driver: one line says so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from drivers.gpu import actions, planning, probes  # noqa: E402
from mlchaos.errors import DriverError  # noqa: E402

GiB = 1 << 30


def say(**numbers: object) -> None:
    print(json.dumps(numbers), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--hold", type=float, default=5.0)
    args = parser.parse_args()
    failures = []
    free, total = actions._cuda().memory_info(args.device)
    say(step="before", free_gib=round(free / GiB, 2), total_gib=round(total / GiB, 2),
        used_fraction=probes.gpu_memory_used_fraction(args.device))

    started = time.monotonic()
    record = actions.hog_gpu_memory(fraction=args.fraction, device=args.device, hold=args.hold, ttl=60)
    undo = record["undo"]["arguments"]
    during = probes.gpu_memory_free_bytes(args.device)
    taken = free - during
    say(step="during", seconds_to_start=round(time.monotonic() - started, 2), helper_pid=undo["pid"],
        planned_gib=round(record["parameters"]["planned_bytes"] / GiB, 2), free_gib=round(during / GiB, 2),
        taken_gib=round(taken / GiB, 2), used_fraction=probes.gpu_memory_used_fraction(args.device))
    if abs(taken - record["parameters"]["planned_bytes"]) > planning.margin(total):
        failures.append("the free memory did not drop by the planned amount")
    time.sleep(max(0.0, args.hold / 2))
    released = actions.release_gpu_memory(**undo)
    after = probes.gpu_memory_free_bytes(args.device)
    say(step="after-release", ended=released["ended"], memory_free_again=released.get("memory_free_again"),
        free_gib=round(after / GiB, 2))
    if not released["ended"] or not released.get("memory_free_again"):
        failures.append("release_gpu_memory did not end the helper or the memory is not free again")
    if actions.release_gpu_memory(**undo)["already"] == []:
        failures.append("a second release was not idempotent")

    record = actions.hog_gpu_memory(fraction=0.25, device=args.device, hold=2, ttl=60)
    undo = record["undo"]["arguments"]
    time.sleep(4)
    gone = actions._find_helpers(undo["pid"], undo["token"], undo["start_time"]) == []
    after = probes.gpu_memory_free_bytes(args.device)
    say(step="after-hold-expired", helper_gone=gone, free_gib=round(after / GiB, 2))
    cleanup = actions.release_gpu_memory(**undo)  # stops the TTL watchdog too
    if not gone or after < free - planning.margin(total) or cleanup["ended"]:
        failures.append("the helper did not free the memory by itself after its hold")
    say(step="result", ok=not failures, failures=failures)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except DriverError as exc:  # no CUDA driver, a refused plan...: one line, no traceback
        say(step="result", ok=False, failures=[str(exc)])
        raise SystemExit(2) from None
