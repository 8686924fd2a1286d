"""Killing 10 of 30 labelled containers: mlchaos' concurrent kill versus one after another with the Docker SDK.

Run from anywhere (needs a Docker engine and the offline image ``mlchaos/base:bookworm``):

    .venv/bin/python benchmarks/docker_kill.py [--containers 30] [--kill 10] [--rounds 3]

It starts N containers (``sleep 3600``, at most 60) labelled with a run-specific label,
then, R times, alternately:

1. **mlchaos**: ``drivers.docker.actions.kill_containers(labels=..., count=K, seed=round)``:
   selection (one list call, K inspects), the change record, K concurrent
   ``docker kill`` calls and a check that each process is gone;
2. **sequential SDK**: ``container.kill()`` on K pre-fetched ``Container`` objects, one after
   another (the engine answers a SIGKILL once the container has exited).

Between measurements the killed containers are started again (not timed). It prints the
median, min and max wall time of each and the ratio sequential/mlchaos, and removes every
container it created (also on Ctrl-C). Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from drivers.docker import actions  # noqa: E402

IMAGE = os.environ.get("MLCHAOS_BASE_IMAGE", "mlchaos/base:bookworm")
MAX_CONTAINERS = 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=30)
    parser.add_argument("--kill", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.kill <= args.containers <= MAX_CONTAINERS:
        parser.error(f"need 1 <= --kill <= --containers <= {MAX_CONTAINERS}")
    import docker

    cli = docker.from_env(timeout=60)
    run = uuid.uuid4().hex[:8]
    labels = {"mlchaos.bench": run}
    created: list = []
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            created.extend(pool.map(lambda i: cli.containers.run(
                IMAGE, ["sleep", "3600"], detach=True, name=f"mlbench-{run}-{i:02d}", labels=labels,
                stop_signal="SIGKILL"), range(args.containers)))
        print(f"started {len(created)} containers in {time.perf_counter() - started:.1f} s "
              f"(docker engine {cli.version()['Version']})")
        ours, theirs = [], []
        for round_no in range(args.rounds):
            t0 = time.perf_counter()
            record = actions.kill_containers(labels=labels, count=args.kill, seed=round_no)
            ours.append(time.perf_counter() - t0)
            actions.start_containers(record["undo"]["arguments"]["ids"])
            victims = random.Random(round_no).sample(created, args.kill)
            t0 = time.perf_counter()
            for container in victims:
                container.kill()
            theirs.append(time.perf_counter() - t0)
            actions.start_containers([c.id for c in victims])
        print(f"kill {args.kill} of {args.containers}, {args.rounds} rounds (median [min-max]):")
        print(f"  mlchaos kill_containers (concurrent): {_fmt(ours)}")
        print(f"  Docker SDK, one after another:        {_fmt(theirs)}")
        print(f"  ratio sequential/mlchaos: {statistics.median(theirs) / statistics.median(ours):.2f}x")
    finally:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda c: c.remove(force=True), created))
        left = cli.containers.list(all=True, filters={"label": f"mlchaos.bench={run}"})
        print(f"removed {len(created)} containers; left: {len(left)}")
    return 0


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f} ms [{min(values) * 1000:.0f}-{max(values) * 1000:.0f}]"


if __name__ == "__main__":
    raise SystemExit(main())
