"""The training pipeline's pieces that need no process: the Prometheus job, the fault's refusals and undo."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.pipeline import actions
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.monitoring.alert_rules import SANDBOX, STAGING, parse_duration
from mlchaos.sandbox import pipeline
from mlchaos.sandbox.monitoring_stack import Monitoring


def test_prometheus_scrapes_the_pushgateway_keeping_the_pushed_job(tmp_path: Path):
    monitoring = Monitoring(tmp_path)
    config = monitoring.prometheus_config(SANDBOX, blackbox="b:1", alertmanager="a:2", pushgateway=True)
    job = config["scrape_configs"][-1]
    assert job == {"job_name": "pushgateway", "honor_labels": True,
                   "file_sd_configs": [{"files": [str(monitoring.targets_dir / pipeline.TARGETS_FILE)]}]}
    plain = monitoring.prometheus_config(SANDBOX, blackbox="b:1", alertmanager="a:2")  # the container stack's
    assert "pushgateway" not in [j["job_name"] for j in plain["scrape_configs"]]


def test_the_sandbox_rule_sees_a_stopped_pipeline_in_seconds_staging_in_a_day():
    assert parse_duration(SANDBOX.pipeline_max_age) == 5 and parse_duration(STAGING.pipeline_max_age) == 86400


def test_without_a_pipeline_the_fault_says_so_and_the_undo_has_nothing_to_do(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(tmp_path))
    with pytest.raises(TargetNotFound, match="training pipeline is not running.*mlchaos sandbox up"):
        actions.stop_pushes(ttl=60, dry_run=True)
    with pytest.raises(DriverError, match="ttl must be a positive number"):
        actions.stop_pushes(ttl=0)
    assert actions.resume_pushes() == {"resumed": [], "already": [], "gone": ["training pipeline"]}
    assert actions.resume_pushes(pid=1) == {"resumed": [], "already": [], "gone": [1]}  # never signals a stranger


def test_validation_names_the_missing_pushgateway(monkeypatch):
    monkeypatch.setattr(pipeline, "PUSHGATEWAY", ("/nonexistent/prometheus-pushgateway", "prometheus-pushgateway"))
    monkeypatch.setattr(actions, "pushgateway_binary", pipeline.pushgateway_binary)
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert actions.preflight("stop_pushes", {}) == [
        "needs the sandbox training pipeline, but /usr/bin/prometheus-pushgateway is not installed:"
        " apt-get install prometheus-pushgateway"]
    assert actions.preflight("resume_pushes", {}) == []
