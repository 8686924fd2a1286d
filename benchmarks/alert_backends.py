"""The kill drill against two monitoring backends watching the same replicas: the sandbox's Prometheus and
VictoriaMetrics (victoria-metrics + vmalert + an Alertmanager of its own, tests/support/victoriametrics.py),
the latter both by plain URL and through vmauth with a bearer token (the experiment's declared endpoint).

Starts a sandbox (3 replicas, its monitoring) in a temporary state directory and the VictoriaMetrics stack
over it, then runs ``experiments/kill-one-replica-alerts.yaml`` with the real CLI N times per backend,
alternating, healing the sandbox and waiting until both backends are quiet before each run. Prints per run
and as medians: the drill's wall time and the time to detect, notify, recover and notify resolved (the
exact times where the ruler's timestamps give them, see docs/drivers/monitoring.md), the alerts notified
besides ModelServerDown, and each VictoriaMetrics form / Prometheus. It prints figures only and asserts nothing.

Usage: python benchmarks/alert_backends.py [--runs N]  (needs the monitoring and victoria-metrics packages)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlchaos.sandbox.manager import Sandbox  # noqa: E402
from tests.support import victoriametrics  # noqa: E402
from tests.support.environment import child_env  # noqa: E402
from tests.support.settling import wait_until_quiet  # noqa: E402

KINDS = ("time_to_detect", "time_to_notify", "time_to_recover", "time_to_notify_resolved")
LABELS = {"wall": "wall", "time_to_detect": "detect", "time_to_notify": "notify", "time_to_recover": "recover",
          "time_to_notify_resolved": "notify resolved"}


def run_drill(sandbox: Sandbox, experiment: dict[str, Any], folder: Path) -> dict[str, Any]:
    """One drill through the CLI: its exit code, wall time, measurements and the other alerts notified."""
    path, journal_path = folder / "drill.json", folder / "journal.json"
    path.write_text(json.dumps(experiment), encoding="utf-8")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal_path)],
                          env=child_env(sandbox.state_dir), capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - started
    journal = json.loads(journal_path.read_text())
    row: dict[str, Any] = {"rc": proc.returncode, "wall": round(wall, 2)}
    for m in journal["mlchaos"]["measurements"]:
        row[m["kind"]] = m["seconds"]
        if m.get("resolution"):
            row[f"{m['kind']}_resolution"] = m["resolution"]
    notes = journal["mlchaos"].get("notifications", {}).get("notifications", [])
    row["other_alerts"] = sorted({n["alertname"] for n in notes if n["alertname"] != "ModelServerDown"})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="drills per backend (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlchaos-alert-backends-") as tmp:
        folder = Path(tmp)
        sandbox = Sandbox(folder / "state")
        stack = None
        try:
            sandbox.up(replicas=3, timeout=120)
            prometheus = sandbox.monitoring().endpoints().prometheus_url
            stack = victoriametrics.start(folder / "victoria", sandbox.state_dir)
            experiments = {
                "prometheus": yaml.safe_load(victoriametrics.DRILL.read_text()),
                "victoriametrics": victoriametrics.drill(stack, stack.victoria_url),
                "vmauth": victoriametrics.drill(stack),  # endpoints: vmauth + bearer_token_file
            }
            rows: dict[str, list[dict[str, Any]]] = {name: [] for name in experiments}
            for index in range(args.runs):
                for name, experiment in experiments.items():
                    sandbox.up(replicas=3, timeout=120)  # heal the replica the last drill restarted
                    wait_until_quiet(prometheus)
                    wait_until_quiet(stack.victoria_url)
                    run_folder = folder / f"{name}-{index}"
                    run_folder.mkdir()
                    row = run_drill(sandbox, experiment, run_folder)
                    rows[name].append(row)
                    print(f"{name:16} run {index + 1}: " + json.dumps(row), flush=True)
        finally:
            if stack is not None:
                stack.stop()
            sandbox.down()
    print()
    print(f"medians over {args.runs} drills per backend (seconds; exit code 0 in "
          + ", ".join(f"{n}: {sum(r['rc'] == 0 for r in rs)}/{len(rs)}" for n, rs in rows.items()) + ")")
    names = list(rows)
    print(f"{'':16}" + "".join(f"{name:>17}" for name in names)
          + "".join(f"{name + ' / prom':>24}" for name in names[1:]))
    for key in ("wall", *KINDS):
        values = [[r[key] for r in rows[name] if key in r] for name in names]
        if not all(values):
            continue
        medians = [statistics.median(v) for v in values]
        print(f"{LABELS[key]:16}" + "".join(f"{m:17.2f}" for m in medians)
              + "".join(f"{m / medians[0] if medians[0] else float('nan'):24.2f}" for m in medians[1:]))

if __name__ == "__main__":
    main()
