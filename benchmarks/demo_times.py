"""The times of one `make demo` run, read from the journals it leaves (journal-<drill>.json).

    make demo && .venv/bin/python benchmarks/demo_times.py [DIR]

Prints one Markdown row per drill, in the order they ran: the alert, time to detect, notify and
recover (mlchaos' exact figures, from Prometheus' timestamps and the receiver's receive time), the
drill's own run time, and the sum. `make demo`'s wall time (install, sandbox up and down, each
`mlchaos run`'s start-up) is what `time make demo` prints; the sum here is the drills alone.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


def _seconds(journal: dict[str, Any]) -> float:
    return (datetime.fromisoformat(journal["end"]) - datetime.fromisoformat(journal["start"])).total_seconds()


def _measured(journal: dict[str, Any], kind: str) -> str:
    values = [m for m in journal.get("mlchaos", {}).get("measurements", []) if m.get("kind") == kind]
    return f"{values[0]['seconds']:.1f} s" if values else "-"


def rows(folder: Path) -> list[tuple[str, str, str, str, str, float]]:
    """(experiment, alert, detect, notify, recover, run seconds) per journal, in the order the drills ran."""
    journals = []
    for path in folder.glob("journal-*.json"):
        journal = json.loads(path.read_text())
        journals.append((journal["start"], path.name.removeprefix("journal-").removesuffix(".json"), journal))
    result = []
    for _, name, journal in sorted(journals, key=lambda item: item[0]):
        alerts = {m["alert"] for m in journal.get("mlchaos", {}).get("measurements", []) if m.get("alert")}
        budgets = {b.get("alert") for b in journal.get("mlchaos", {}).get("budgets", []) if b.get("alert")}
        alert = ", ".join(sorted(alerts or budgets)) or "-"
        result.append((f"`{name}.yaml`", alert, _measured(journal, "time_to_detect"),
                       _measured(journal, "time_to_notify"), _measured(journal, "time_to_recover"), _seconds(journal)))
    return result


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else Path.cwd()
    table = rows(folder)
    if not table:
        print(f"no journal-*.json in {folder}: run `make demo` there first", file=sys.stderr)
        return 1
    print("| experiment | alert | detect | notify | recover | run |")
    print("|---|---|---|---|---|---|")
    for name, alert, detect, notify, recover, seconds in table:
        print(f"| {name} | {alert} | {detect} | {notify} | {recover} | {seconds:.1f} s |")
    print(f"\n{len(table)} drills, {sum(row[5] for row in table):.1f} s of drill runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
