"""Exact (Prometheus' timestamps) vs polled time to detect and recover, on real kill drills of the sandbox.

Runs ``experiments/kill-one-replica-alerts.yaml`` N times with the real CLI against a running sandbox
(``MLCHAOS_STATE_DIR``; ``mlchaos sandbox up`` with monitoring), or reads journals already written
(``--journals``), and prints per run: the exact time, the polled time, polled - exact and polled / exact,
the floor (scrape + evaluation + ``for``) and the excess over it, and the notification's receive time
(the receiver's clock, independent of both: a firing notification cannot precede the firing).
It prints figures only and asserts nothing.

Usage::

    MLCHAOS_STATE_DIR=/tmp/s mlchaos sandbox up
    MLCHAOS_STATE_DIR=/tmp/s python benchmarks/exact_detection.py --runs 5
    python benchmarks/exact_detection.py --journals /tmp/runs/*.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DRILL = ROOT / "experiments" / "kill-one-replica-alerts.yaml"


def run_drills(runs: int, folder: Path) -> list[Path]:
    """Run the kill drill ``runs`` times; the journals of the runs that held."""
    journals = []
    for number in range(1, runs + 1):
        journal = folder / f"kill-{number}.json"
        proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(DRILL), "--journal", str(journal),
                               "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        print(f"run {number}: exit {proc.returncode}", file=sys.stderr)
        if proc.returncode == 0:
            journals.append(journal)
    return journals


def measurements(journal: Path) -> dict[str, dict[str, Any]]:
    """The journal's measurements by kind."""
    data = json.loads(journal.read_text(encoding="utf-8"))
    return {m["kind"]: m for m in (data.get("mlchaos") or {}).get("measurements") or []}


def _cell(value: float | None, sign: bool = False) -> str:
    return "-" if value is None else (f"{value:+7.3f}" if sign else f"{value:7.3f}")


def report(journals: list[Path]) -> None:
    """Print the table and the agreement figures."""
    print(f"{'run':<14} {'kind':<16} {'exact':>7} {'polled':>7} {'p-e':>7} {'p/e':>6} {'floor':>6} {'excess':>7}"
          f" {'notified':>8} {'method'}")
    gaps: dict[str, list[float]] = {"time_to_detect": [], "time_to_recover": []}
    lead: dict[str, list[float]] = {"time_to_detect": [], "time_to_recover": []}
    for journal in journals:
        found = measurements(journal)
        for kind, notify in (("time_to_detect", "time_to_notify"), ("time_to_recover", "time_to_notify_resolved")):
            m = found.get(kind)
            if m is None:
                continue
            exact, polled, floor = m["seconds"], m.get("polled"), m.get("floor")
            notified = (found.get(notify) or {}).get("seconds")
            gap = None if polled is None else polled - exact
            ratio = f"{polled / exact:6.2f}" if polled is not None and exact > 0 else "     -"
            if m.get("method") == "prometheus timestamps" and gap is not None:
                gaps[kind].append(gap)
                if notified is not None:
                    lead[kind].append(notified - exact)
            print(f"{journal.stem:<14} {kind:<16} {_cell(exact)} {_cell(polled)} {_cell(gap, True)} {ratio}"
                  f" {_cell(floor)[1:]} {_cell(m.get('excess'), True)} {_cell(notified):>8} "
                  f"{m.get('method') or 'old journal'}{': ' + m['note'] if m.get('note') else ''}")
    print()
    for kind, values in gaps.items():
        if values:
            print(f"{kind}: polled - exact over {len(values)} runs: median {statistics.median(values):.3f}s, "
                  f"min {min(values):.3f}s, max {max(values):.3f}s")
    for kind, values in lead.items():
        if values:
            what = "firing notification - exact detection" if kind == "time_to_detect" else \
                "resolved notification - exact recovery"
            print(f"{what} (receiver's clock): median {statistics.median(values):.3f}s, "
                  f"min {min(values):.3f}s, max {max(values):.3f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="kill drills to run (default 5)")
    parser.add_argument("--journals", nargs="*", type=Path, help="report on these journals instead of running")
    args = parser.parse_args()
    if args.journals:
        report(args.journals)
        return
    with tempfile.TemporaryDirectory(prefix="mlchaos-exact-") as folder:
        report(run_drills(args.runs, Path(folder)))


if __name__ == "__main__":
    main()
