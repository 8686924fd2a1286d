"""Results as metrics against the real components: a Pushgateway, node_exporter's textfile collector, promtool."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from mlchaos.reports.metrics import MetricsError, MetricsState, push, update_textfile
from mlchaos.reports.reader import read_run
from mlchaos.reports.types import RunReport
from tests.support.builders import probe, py
from tests.support.components import require_component
from tests.support.paths import ROOT
from tests.support.report_helpers import HELD, journal, serve

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
INSTALL = "run scripts/install-system-packages.sh (Debian packages prometheus-pushgateway, prometheus-node-exporter)"
KILL = "kill-one-replica-alerts"


def run(name: str) -> RunReport:
    return read_run(journal(name))


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def pushed(found, name: str, **labels: str) -> float:
    """A sample of the job "mlchaos" as the Pushgateway exposes it (with its job and empty instance labels)."""
    return found[(name, tuple(sorted({"job": "mlchaos", "instance": "", **labels}.items())))]


@pytest.fixture
def pushgateway(tmp_path):
    require_component("Pushgateway", os.access(PUSHGATEWAY, os.X_OK), INSTALL)
    # memory only: Debian's build persists to /var/lib/prometheus/pushgateway.data by default
    with serve(lambda port: [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="], "/-/ready",
               tmp_path / "pushgateway.log") as url:
        yield url


def test_pushes_carry_counters_and_last_success_forward(pushgateway):
    assert [r.run_id for r in push([run(HELD[0]), run(HELD[1])], pushgateway)] == [run(HELD[0]).run_id,
                                                                                    run(HELD[1]).run_id]
    found = scrape(pushgateway)
    assert pushed(found, "mlchaos_experiment_runs_total", experiment=KILL, verdict="held") == 2
    assert pushed(found, "mlchaos_time_to_detect_seconds_count", experiment=KILL, alert="ModelServerDown") == 2
    success = pushed(found, "mlchaos_experiment_last_success_timestamp_seconds", experiment=KILL)
    assert success == pytest.approx(run(HELD[1]).end.timestamp())
    assert pushed(found, "push_time_seconds", experiment=KILL) > 0  # the group is job/experiment

    push([run("kill-alerts-interrupted")], pushgateway)  # a run that did not hold: last success stays
    push([run("latency-held")], pushgateway)  # another experiment: another group, the first one untouched
    assert push([run(HELD[1])], pushgateway) == []  # already counted
    found = scrape(pushgateway)
    assert pushed(found, "mlchaos_experiment_runs_total", experiment=KILL, verdict="held") == 2
    assert pushed(found, "mlchaos_experiment_runs_total", experiment=KILL, verdict="interrupted") == 1
    assert pushed(found, "mlchaos_experiment_last_success_timestamp_seconds", experiment=KILL) == success
    assert pushed(found, "mlchaos_experiment_last_verdict", experiment=KILL, verdict="interrupted") == 1
    assert pushed(found, "mlchaos_experiment_runs_total", experiment="latency-one-replica", verdict="held") == 1
    groups = requests.get(f"{pushgateway}/api/v1/metrics", timeout=5).json()["data"]
    assert sorted(g["labels"]["experiment"] for g in groups) == [KILL, "latency-one-replica"]


def test_a_pushgateway_behind_basic_auth(tmp_path):
    require_component("Pushgateway", os.access(PUSHGATEWAY, os.X_OK), INSTALL)
    config = tmp_path / "web.yml"  # bcrypt of "drill-secret" (cost 4), made once with crypt.crypt
    config.write_text('basic_auth_users:\n  drill: "$2b$04$zx3Rxv2Cl7O3n0Sws61lO.Y.Vg6sK3RG1qrRnemYptG79MGt0IZKW"\n')
    argv = lambda port: [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=",  # noqa: E731
                         f"--web.config.file={config}"]
    with serve(argv, "/-/ready", tmp_path / "pushgateway.log") as url:
        assert requests.get(f"{url}/metrics", timeout=5).status_code == 401
        with pytest.raises(MetricsError, match="401") as refused:
            push([run(HELD[0])], url.replace("http://", "http://drill:wrong@"))
        assert "wrong" not in str(refused.value)
        push([run(HELD[0])], url.replace("http://", "http://drill:drill-secret@"))
        text = requests.get(f"{url}/metrics", timeout=5, auth=("drill", "drill-secret")).text
    assert f'mlchaos_experiment_runs_total{{experiment="{KILL}",instance="",job="mlchaos",verdict="held"}} 1' in text


def test_mlchaos_run_pushes_its_result(pushgateway, tmp_path, subprocess_env):
    experiment = tmp_path / "pushed-drill.json"
    experiment.write_text(json.dumps({
        "title": "pushed drill", "description": "d",
        "steady-state-hypothesis": {"title": "s", "probes": [probe("steady", "echo", True, value=True)]},
        "method": [py("detected", "measured", kind="probe", what="time_to_detect", alert="TestAlert", seconds=3.0)],
    }))
    env = subprocess_env
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(experiment), "--journal",
                           str(tmp_path / "j.json"), "--pushgateway", pushgateway], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"metrics: pushed to {pushgateway}" in proc.stdout
    found = scrape(pushgateway)
    assert pushed(found, "mlchaos_experiment_runs_total", experiment="pushed-drill", verdict="held") == 1
    assert pushed(found, "mlchaos_time_to_detect_seconds_sum", experiment="pushed-drill", alert="TestAlert") == 3.0


def test_node_exporter_reads_the_textfile(tmp_path):
    require_component("node_exporter", os.access(NODE_EXPORTER, os.X_OK), INSTALL)
    directory = tmp_path / "textfiles"
    update_textfile([run(n) for n in [*HELD, "kill-alerts-interrupted", "latency-held"]], directory / "mlchaos.prom")
    argv = lambda port: [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",  # noqa: E731
                         "--collector.disable-defaults", "--collector.textfile",
                         f"--collector.textfile.directory={directory}"]
    with serve(argv, "/metrics", tmp_path / "node_exporter.log") as url:
        found = scrape(url)
    assert found[("node_textfile_scrape_error", ())] == 0
    assert found[("mlchaos_experiment_runs_total", (("experiment", KILL), ("verdict", "held")))] == 3
    assert found[("mlchaos_experiment_last_verdict", (("experiment", KILL), ("verdict", "interrupted")))] == 1
    assert found[("mlchaos_time_to_recover_seconds_count", (("alert", "ModelEndpointLatencyHigh"),
                                                            ("experiment", "latency-one-replica")))] == 1


def test_the_documented_alert_rules_pass_promtool_and_name_metrics_mlchaos_writes():
    promtool = shutil.which("promtool")
    require_component("promtool", promtool is not None, INSTALL)
    docs = ROOT / "docs"
    for command in (["check", "rules", "mlchaos-drill-rules.yml"], ["test", "rules", "mlchaos-drill-rules.test.yml"]):
        proc = subprocess.run([promtool, *command], cwd=docs, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    state = MetricsState()
    state.record(run(HELD[0]))
    exposed = {f.name for f in text_string_to_metric_families(state.render())}
    used = set(re.findall(r"\bmlchaos_[a-z_]+", (docs / "mlchaos-drill-rules.yml").read_text()))
    assert used and used <= exposed, used - exposed
