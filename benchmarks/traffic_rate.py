"""What request rate one traffic generator (drivers.model.traffic) sustains against one sandbox replica.

Run from anywhere:

    .venv/bin/python benchmarks/traffic_rate.py [--rates 50,100,...] [--seconds S] [--direct] [--no-feedback]

It starts a one-replica sandbox (no monitoring) in a temporary state directory and, for each asked
rate, one generator for S seconds (default 10) through the replica's proxy (``--direct``: to the
replica itself), with feedback after every infer unless ``--no-feedback``. It prints, per rate, the
infer calls answered 200 per second, the calls sent, those skipped (due while every worker was
busy), the non-200 answers and the generator's CPU time per second of wall time. The rate is
sustained when every call due was sent and answered 200. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from drivers.model import traffic  # noqa: E402
from mlchaos.sandbox.manager import Sandbox  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def measure(rate: float, seconds: float, feedback: bool, via_proxy: bool) -> dict[str, float]:
    record = traffic.start_traffic(rate=rate, duration=seconds + 30, feedback=feedback, via_proxy=via_proxy, seed=1)
    arguments = record["undo"]["arguments"]
    first = traffic.traffic_stats(arguments["stats_path"])
    cpu_before = cpu_seconds(arguments["pid"])
    time.sleep(seconds)
    cpu = cpu_seconds(arguments["pid"]) - cpu_before
    stats = traffic.stop_traffic(**arguments)["stats"]
    elapsed = stats["elapsed"] - first["elapsed"]
    answers = stats["answers"]["model-0"]
    ok = answers["infer"].get("200", 0)
    return {"rate": rate, "ok_per_s": ok / stats["elapsed"], "sent": stats["sent"], "skipped": stats["skipped"],
            "due": int(rate * stats["elapsed"]), "not_200": sum(n for s, n in answers["infer"].items() if s != "200"),
            "feedback_ok": answers["feedback"].get("200", 0), "cpu_share": cpu / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="50,100,200,300,400,500")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--direct", action="store_true", help="to the replica itself, not through its proxy")
    parser.add_argument("--no-feedback", action="store_true")
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; "
          f"{'direct' if args.direct else 'through the proxy'}, feedback {'off' if args.no_feedback else 'on'}")
    with tempfile.TemporaryDirectory() as state:
        os.environ["MLCHAOS_STATE_DIR"] = state
        sandbox = Sandbox(Path(state))
        sandbox.up(replicas=1, monitoring=False)
        try:
            print(f"{'rate':>6} {'200/s':>8} {'due':>6} {'sent':>6} {'skipped':>8} {'not 200':>8} "
                  f"{'feedback 200':>13} {'gen cpu':>8}")
            for rate in (float(r) for r in args.rates.split(",")):
                m = measure(rate, args.seconds, not args.no_feedback, not args.direct)
                print(f"{m['rate']:>6g} {m['ok_per_s']:>8.1f} {m['due']:>6} {m['sent']:>6} {m['skipped']:>8} "
                      f"{m['not_200']:>8} {m['feedback_ok']:>13} {m['cpu_share']:>8.2f}")
        finally:
            sandbox.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
