"""How fast a fault is undone when its runner dies, and what bounds cost a run.

1. guardian: start `mlchaos run` on a fake fault (tests/drivers/testdrivers.py: a marker
   file whose undo removes it), SIGKILL the runner once the fault is in place, and time
   until the guardian has undone it. Repeated; prints median / min / max.
2. bounds: the wall time of the same short run without bounds and with a blast radius
   (which adds a dry-run resolution of every action before the run).

Usage: python benchmarks/crash_recovery.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_DRIVERS = ROOT / "tests" / "drivers"  # the `testdrivers` module


def _experiment(directory: Path, hold: float, bounds: bool) -> Path:
    marker = directory / "fault"
    action = {"type": "action", "name": "inject", "provider": {
        "type": "python", "module": "testdrivers", "func": "hit_targets",
        "arguments": {"names": ["m0"], "marker": str(marker), "population": ["m0", "m1", "m2"], "hold": hold}}}
    data = {"title": "benchmark", "description": "d", "method": [action], "rollbacks": [],
            "extensions": [{"name": "mlchaos"}]}
    if bounds:
        data["extensions"][0].update(blast_radius={"max_targets": 1, "max_fraction": 0.34,
                                                   "scopes": [{"kind": "replica"}]},
                                     allowed_environments=["local:*"])
    path = directory / f"experiment-{hold}-{bounds}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _env(state: Path) -> dict[str, str]:
    env = dict(os.environ, MLCHAOS_STATE_DIR=str(state))
    env["PYTHONPATH"] = os.pathsep.join([str(TEST_DRIVERS), str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("MLCHAOS_ALLOWED_ENVIRONMENTS", None)
    return env


def _wait(check, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise SystemExit("timed out")
        time.sleep(0.005)
    return time.monotonic() - started


def guardian_recovery(directory: Path, runs: int) -> list[float]:
    seconds = []
    marker = directory / "fault"
    for index in range(runs):
        marker.unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-m", "mlchaos", "run", str(_experiment(directory, 60, False)),
                                 "--journal", str(directory / f"j{index}.json"), "--quiet"],
                                env=_env(directory / "state"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(marker.exists)
        time.sleep(0.3)  # the guardian is up and watching
        proc.kill()
        proc.wait()
        seconds.append(_wait(lambda: not marker.exists()))
    return seconds


def run_time(directory: Path, runs: int, bounds: bool) -> list[float]:
    seconds = []
    for index in range(runs):
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "mlchaos", "run", str(_experiment(directory, 0, bounds)),
                        "--journal", str(directory / f"b{index}.json"), "--quiet"], env=_env(directory / "state"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        seconds.append(time.monotonic() - started)
    return seconds


def _row(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{label:<44} median {statistics.median(ms):8.1f} ms   min {min(ms):8.1f}   max {max(ms):8.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: nproc={os.cpu_count()}  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="mlchaos-bench-") as tmp:
        directory = Path(tmp)
        print(_row("SIGKILL -> fault undone by the guardian", guardian_recovery(directory, args.runs)))
        print(_row("run with one fault, no bounds", run_time(directory, args.runs, False)))
        print(_row("run with one fault, blast radius + allow-list", run_time(directory, args.runs, True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
