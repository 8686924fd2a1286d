"""`mlchaos report` and `mlchaos run --report-dir/--metrics-textfile/--pushgateway`, as real child processes
(integration tests: each test starts the CLI)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.builders import probe, py
from tests.support.report_helpers import ALL, journal_path, parse_html

pytestmark = pytest.mark.usefixtures("isolated_state")  # each test's own MLCHAOS_STATE_DIR, as in tests/unit


def mlchaos(*args, env, cwd=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "mlchaos", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def drill(tmp_path, held: bool = True) -> dict:
    """A small drill of the test drivers: a fault on a named target, a measured detection, a budget."""
    return {
        "title": "Test drill <with markup>", "description": "d",
        "tags": ["ml-test-score:monitoring-6"],
        "steady-state-hypothesis": {"title": "steady", "probes": [probe("steady", "echo", True, value=held)]},
        "method": [py("hit", "hit_targets", names=["replica-1"], marker=str(tmp_path / "marker"),
                      population=["replica-1", "replica-2"]),
                   py("detected", "measured", kind="probe", what="time_to_detect", alert="TestAlert", seconds=2.5)],
        "rollbacks": [py("undo", "remove_marker", path=str(tmp_path / "marker"))],
        "extensions": [{"name": "mlchaos", "budgets": [{"alert": "TestAlert", "detect": 10}]}],
    }


def metrics(path) -> dict:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_report_writes_every_format_into_a_directory(tmp_path, subprocess_env):
    out = tmp_path / "out"
    proc = mlchaos("report", *(str(journal_path(n)) for n in ALL), "--out", str(out), env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"html: {out / 'report.html'}", f"junit: {out / 'junit.xml'}",
                                        f"markdown: {out / 'report.md'}"]
    dom = parse_html((out / "report.html").read_text())
    assert len(dom.find_all("section", class_="experiment")) == 5
    assert len(ET.parse(out / "junit.xml").getroot().findall("testsuite")) == 5
    assert (out / "report.md").read_text().startswith("# mlchaos drill report")


def test_report_writes_single_formats_where_asked_and_markdown_to_stdout_by_default(tmp_path, subprocess_env):
    html, junit = tmp_path / "a" / "r.html", tmp_path / "j.xml"
    proc = mlchaos("report", str(journal_path("latency-held")), "--html", str(html), "--junit", str(junit),
                   env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert html.is_file() and junit.is_file() and not (tmp_path / "report.md").exists()
    proc = mlchaos("report", str(journal_path("latency-held")), env=subprocess_env)
    assert proc.returncode == 0 and "| Network latency to one replica" in proc.stdout


def test_report_refuses_a_file_that_is_not_a_journal(tmp_path, subprocess_env):
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a journal"}')
    proc = mlchaos("report", str(journal_path("latency-held")), str(bad), "--out", str(tmp_path / "out"),
                   env=subprocess_env)
    assert proc.returncode == 2
    assert f"error: {bad}: not an mlchaos or Chaos Toolkit journal" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing is written when one journal is bad


def test_run_writes_its_reports_and_metrics(tmp_path, subprocess_env, write_experiment):
    experiment = write_experiment(drill(tmp_path), "test-drill.yaml")
    journal, reports, textfile = tmp_path / "j.json", tmp_path / "reports", tmp_path / "prom" / "mlchaos.prom"
    proc = mlchaos("run", str(experiment), "--journal", str(journal), "--report-dir", str(reports),
                   "--metrics-textfile", str(textfile), env=subprocess_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"  report (html): {reports / 'report.html'}" in proc.stdout
    assert f"  metrics: {textfile}" in proc.stdout
    dom = parse_html((reports / "report.html").read_text())
    exp = dom.find("section", class_="experiment", data_experiment="test-drill")
    assert exp.attrs["data-verdict"] == "held"
    assert exp.find("h2").text().startswith("Test drill <with markup>")
    assert dom.find("tr", data_test="monitoring-6").attrs["data-status"] == "passing"
    found = metrics(textfile)
    assert found[("mlchaos_experiment_runs_total", (("experiment", "test-drill"), ("verdict", "held")))] == 1
    assert found[("mlchaos_time_to_detect_seconds_sum", (("alert", "TestAlert"), ("experiment", "test-drill")))] \
        == 2.5
    success = found[("mlchaos_experiment_last_success_timestamp_seconds", (("experiment", "test-drill"),))]
    assert success == pytest.approx(datetime.fromisoformat(json.loads(journal.read_text())["end"]).timestamp())

    write_experiment(drill(tmp_path, held=False), "test-drill.yaml")  # the same drill, now deviating
    proc = mlchaos("run", str(experiment), "--journal", str(journal), "--metrics-textfile", str(textfile),
                   env=subprocess_env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = metrics(textfile)
    assert found[("mlchaos_experiment_last_success_timestamp_seconds", (("experiment", "test-drill"),))] == success
    assert found[("mlchaos_experiment_runs_total", (("experiment", "test-drill"), ("verdict", "deviated")))] == 1
    assert found[("mlchaos_experiment_last_verdict", (("experiment", "test-drill"), ("verdict", "deviated")))] == 1


def test_bad_report_options_are_refused_before_the_drill_runs(tmp_path, subprocess_env, write_experiment):
    experiment = write_experiment(drill(tmp_path))
    corrupt = tmp_path / "corrupt.prom"
    corrupt.write_text("garbage {\n")
    (tmp_path / "file").write_text("")
    for options, words in (
        (["--metrics-textfile", str(corrupt)], "fix or delete it"),
        (["--report-dir", str(tmp_path / "file" / "sub")], "is not a directory"),
        (["--pushgateway", "ftp://host"], "not an http(s) URL"),
        (["--journal", "", "--report-dir", str(tmp_path / "r")], "give --journal"),
    ):
        args = ["run", str(experiment), *(["--journal", str(tmp_path / "j.json")] if "--journal" not in options
                                          else []), *options]
        proc = mlchaos(*args, env=subprocess_env)
        assert proc.returncode == 2, (options, proc.stdout, proc.stderr)
        assert words in proc.stderr and "nothing was executed" in proc.stderr
        assert not (tmp_path / "marker").exists() and not (tmp_path / "j.json").exists()


def test_a_pushgateway_that_does_not_answer_is_an_error_but_the_verdict_stands(tmp_path, subprocess_env,
                                                                              write_experiment):
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    experiment = write_experiment(drill(tmp_path))
    proc = mlchaos("run", str(experiment), "--journal", str(tmp_path / "j.json"), "--pushgateway",
                   f"http://drill:s3cret@127.0.0.1:{port}", env=subprocess_env)
    assert proc.returncode == 0
    assert f"error: cannot read the Pushgateway's metrics at http://127.0.0.1:{port}/metrics" in proc.stderr
    assert "s3cret" not in proc.stdout + proc.stderr + (tmp_path / "j.json").read_text()


def test_a_plan_gets_reports_but_no_metrics(tmp_path, subprocess_env, write_experiment):
    experiment = write_experiment(drill(tmp_path))
    textfile = tmp_path / "m.prom"
    proc = mlchaos("run", str(experiment), "--dry-run", "--journal", str(tmp_path / "j.json"), "--report-dir",
                   str(tmp_path / "r"), "--metrics-textfile", str(textfile), env=subprocess_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "metrics: not recorded for a plan" in proc.stdout and not textfile.exists()
    dom = parse_html((tmp_path / "r" / "report.html").read_text())
    assert dom.find("section", class_="experiment").attrs["data-verdict"] == "planned"
