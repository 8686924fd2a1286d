"""Order does not matter: every bundled sandbox drill holds in any order on one long-lived sandbox.

The drills `make demo` runs (the Makefile's EXPERIMENTS and EXPECTED_TO_FAIL) run one after another, in a
shuffled order, through the real CLI against one monitored sandbox (real Prometheus, Alertmanager and
blackbox exporter), the way a person runs them: nothing is healed or waited for between two drills. A drill
that leaves state behind (a toxic, a rule, a replica down, an alert that a later drill's probes raise, such as
ModelFeedbackAbsent after a feedback drill) makes a later drill see an unrelated alert and deviate.

The order comes from a seed, printed; rerun one with ``MLCHAOS_DRILL_ORDER_SEED=<seed>``.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from mlchaos.engine import exit_codes
from mlchaos.sandbox.manager import Sandbox
from tests.support.environment import child_env
from tests.support.paths import ROOT


def makefile_list(name: str) -> list[str]:
    """The experiments a Makefile variable (``NAME ?= a.yaml \\`` continued over lines) names."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(rf"^{name} \?=((?:.*\\\n)*.*)$", text, re.MULTILINE)
    assert match, f"no {name} in the Makefile"
    return match.group(1).replace("\\\n", " ").split()


# drill -> the exit code it must end with: the demo's drills hold (0), its self-test must fail (1)
DRILLS = {**dict.fromkeys(makefile_list("EXPERIMENTS"), exit_codes.OK),
          **dict.fromkeys(makefile_list("EXPECTED_TO_FAIL"), exit_codes.DEVIATED)}


def test_the_makefile_names_the_bundled_sandbox_drills() -> None:
    assert len(DRILLS) >= 10 and all((ROOT / path).is_file() for path in DRILLS), DRILLS


def active_alerts(sandbox: Sandbox) -> list[str]:
    """``Name{replica} state`` of every pending or firing alert of the sandbox's Prometheus (for a failure)."""
    url = sandbox.monitoring().endpoints().prometheus_url + "/api/v1/alerts"
    with urllib.request.urlopen(url, timeout=10) as answer:
        alerts = json.load(answer)["data"]["alerts"]
    return [f"{a['labels']['alertname']}{{{a['labels'].get('replica', '')}}} {a['state']}" for a in alerts]


@pytest.mark.slow  # every drill once: about 6 minutes on a 2-core machine
def test_every_sandbox_drill_holds_in_a_shuffled_order_on_one_sandbox(monitored: Sandbox, tmp_path) -> None:
    seed = int(os.environ.get("MLCHAOS_DRILL_ORDER_SEED") or random.SystemRandom().randrange(2**32))
    order = sorted(DRILLS)
    random.Random(seed).shuffle(order)
    print(f"drill order seed {seed} (rerun: MLCHAOS_DRILL_ORDER_SEED={seed}): {' '.join(order)}")
    env = child_env(monitored.state_dir)
    for index, drill in enumerate(order):
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(ROOT / drill), "--journal",
                               str(tmp_path / f"{index:02d}-{os.path.basename(drill)}.json")],
                              env=env, capture_output=True, text=True, timeout=300)
        print(f"{index + 1:2d}. {drill}: exit {proc.returncode} in {time.monotonic() - started:.1f}s")
        assert proc.returncode == DRILLS[drill], (
            f"seed {seed}, drill {index + 1} of {len(order)} ({drill}, after {order[:index]}) ended with exit "
            f"{proc.returncode}, expected {DRILLS[drill]}; alerts now: {active_alerts(monitored)}:\n"
            f"{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
    assert all(row.state == "ready" for row in monitored.status())
