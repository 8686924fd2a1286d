"""Detached TTL watchdog: after N seconds, remove a netem qdisc that no rollback removed.

Started by drivers.netem.actions.add_latency in its own session, so it outlives a runner
that crashed; it only ever deletes a qdisc that is netem.
"""

from __future__ import annotations

import argparse
import time

from drivers.netem.actions import remove_latency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drivers.netem.watchdog")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--after", type=float, required=True)
    args = parser.parse_args(argv)
    time.sleep(args.after)
    remove_latency(args.pid, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
