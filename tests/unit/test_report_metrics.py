"""Results as metrics: the textfile parses with prometheus_client's parser and carries values forward."""

from __future__ import annotations

import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlchaos.reports.metrics import BUCKETS, MetricsError, MetricsState, split_credentials, update_textfile
from mlchaos.reports.reader import read_run
from mlchaos.reports.types import RunReport
from tests.support.report_helpers import HELD, journal


def run(name: str, **extra) -> RunReport:
    data = journal(name)
    data["mlchaos"].update(extra)
    return read_run(data)


def samples(path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


KILL = "kill-one-replica-alerts"


def test_a_textfile_of_real_runs_parses_with_every_metric_and_type(tmp_path):
    path = tmp_path / "mlchaos.prom"
    counted = update_textfile([run(n) for n in HELD], path)
    assert len(counted) == 3
    families = {f.name: f.type for f in text_string_to_metric_families(path.read_text())}
    assert families == {
        "mlchaos_experiment_runs": "counter",
        "mlchaos_experiment_last_verdict": "gauge",
        "mlchaos_experiment_last_run_timestamp_seconds": "gauge",
        "mlchaos_experiment_last_success_timestamp_seconds": "gauge",
        "mlchaos_experiment_last_duration_seconds": "gauge",
        "mlchaos_time_to_detect_seconds": "histogram",
        "mlchaos_time_to_notify_seconds": "histogram",
        "mlchaos_time_to_recover_seconds": "histogram",
    }
    found = samples(path)
    assert value(found, "mlchaos_experiment_runs_total", experiment=KILL, verdict="held") == 3
    assert value(found, "mlchaos_experiment_runs_total", experiment=KILL, verdict="deviated") == 0  # present at 0
    last = run(HELD[-1])
    assert value(found, "mlchaos_experiment_last_success_timestamp_seconds", experiment=KILL) == \
        pytest.approx(last.end.timestamp())
    assert value(found, "mlchaos_experiment_last_verdict", experiment=KILL, verdict="held") == 1
    assert value(found, "mlchaos_experiment_last_verdict", experiment=KILL, verdict="aborted") == 0
    detect = [run(n).measured("time_to_detect") for n in HELD]
    assert value(found, "mlchaos_time_to_detect_seconds_count", experiment=KILL, alert="ModelServerDown") == 3
    assert value(found, "mlchaos_time_to_detect_seconds_sum", experiment=KILL, alert="ModelServerDown") == \
        pytest.approx(sum(detect))
    assert value(found, "mlchaos_time_to_detect_seconds_bucket", experiment=KILL, alert="ModelServerDown",
                 le="2.0") == 0
    assert value(found, "mlchaos_time_to_detect_seconds_bucket", experiment=KILL, alert="ModelServerDown",
                 le="5.0") == 3
    assert value(found, "mlchaos_time_to_detect_seconds_bucket", experiment=KILL, alert="ModelServerDown",
                 le="+Inf") == 3


def test_a_failed_run_keeps_the_last_success_and_counts_its_verdict(tmp_path):
    path = tmp_path / "mlchaos.prom"
    update_textfile([run(HELD[0])], path)
    success = value(samples(path), "mlchaos_experiment_last_success_timestamp_seconds", experiment=KILL)
    # a deviated run of the same experiment (the miswritten-rule drill's real journal, counted under its name)
    failed = run("miswritten-alert-rule-deviated", source="experiments/kill-one-replica-alerts.yaml")
    assert failed.verdict == "deviated" and failed.end.timestamp() > success
    update_textfile([failed], path)
    interrupted = run("kill-alerts-interrupted")
    update_textfile([interrupted], path)
    found = samples(path)
    assert value(found, "mlchaos_experiment_last_success_timestamp_seconds", experiment=KILL) == success
    assert value(found, "mlchaos_experiment_last_run_timestamp_seconds", experiment=KILL) == \
        pytest.approx(interrupted.end.timestamp())
    assert value(found, "mlchaos_experiment_last_verdict", experiment=KILL, verdict="interrupted") == 1
    assert value(found, "mlchaos_experiment_last_verdict", experiment=KILL, verdict="held") == 0
    counts = {v: value(found, "mlchaos_experiment_runs_total", experiment=KILL, verdict=v)
              for v in ("held", "deviated", "interrupted")}
    assert counts == {"held": 1, "deviated": 1, "interrupted": 1}
    assert value(found, "mlchaos_time_to_detect_seconds_count", experiment=KILL, alert="ModelServerDown") == 1


def test_an_experiment_that_never_held_has_last_success_zero(tmp_path):
    path = tmp_path / "mlchaos.prom"
    update_textfile([run("latency-bounded-refused")], path)
    found = samples(path)
    assert value(found, "mlchaos_experiment_last_success_timestamp_seconds",
                 experiment="latency-one-replica-bounded") == 0
    assert value(found, "mlchaos_experiment_runs_total", experiment="latency-one-replica-bounded",
                 verdict="refused") == 1


def test_the_same_journal_is_counted_once_and_other_experiments_are_kept(tmp_path):
    path = tmp_path / "mlchaos.prom"
    update_textfile([run("latency-held")], path)
    update_textfile([run(HELD[0])], path)
    before = path.read_text()
    assert update_textfile([run(HELD[0]), run("latency-held")], path) == []
    assert path.read_text() == before
    found = samples(path)
    assert value(found, "mlchaos_experiment_runs_total", experiment="latency-one-replica", verdict="held") == 1
    assert value(found, "mlchaos_experiment_runs_total", experiment=KILL, verdict="held") == 1


def test_runs_are_counted_in_the_order_they_ended(tmp_path):
    path = tmp_path / "mlchaos.prom"
    update_textfile([run(HELD[2]), run(HELD[0]), run(HELD[1])], path)
    found = samples(path)
    assert value(found, "mlchaos_experiment_runs_total", experiment=KILL, verdict="held") == 3
    assert value(found, "mlchaos_experiment_last_run_timestamp_seconds", experiment=KILL) == \
        pytest.approx(run(HELD[2]).end.timestamp())


def test_a_plan_is_not_a_run(tmp_path):
    path = tmp_path / "mlchaos.prom"
    assert update_textfile([run(HELD[0], verdict="planned")], path) == []
    assert "mlchaos_experiment_runs_total{" not in path.read_text()


def test_a_corrupt_textfile_is_refused_not_overwritten(tmp_path):
    path = tmp_path / "mlchaos.prom"
    path.write_text("this is { not metrics\n")
    with pytest.raises(MetricsError, match="fix or delete the file"):
        update_textfile([run(HELD[0])], path)
    assert path.read_text() == "this is { not metrics\n"


def test_histograms_with_other_buckets_start_again():
    text = (
        "# TYPE mlchaos_time_to_detect_seconds histogram\n"
        'mlchaos_time_to_detect_seconds_bucket{experiment="e",alert="A",le="1.0"} 1\n'
        'mlchaos_time_to_detect_seconds_bucket{experiment="e",alert="A",le="+Inf"} 2\n'
        'mlchaos_time_to_detect_seconds_sum{experiment="e",alert="A"} 9\n'
        'mlchaos_time_to_detect_seconds_count{experiment="e",alert="A"} 2\n'
    )
    assert MetricsState.parse(text).experiments["e"].histograms == {}
    state = MetricsState()
    state.record(run(HELD[0]))
    again = MetricsState.parse(state.render())
    histogram = again.experiments[KILL].histograms[("time_to_detect", "ModelServerDown")]
    assert histogram.count == 1 and len(histogram.counts) == len(BUCKETS) + 1


def test_concurrent_writers_lose_no_run(tmp_path):
    path = tmp_path / "mlchaos.prom"
    runs = [run(name, source=f"experiments/drill-{index}.yaml") for index, name in enumerate(HELD * 2)]
    threads = [threading.Thread(target=update_textfile, args=([r], path)) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = samples(path)  # every writer read what the one before it wrote: no update lost, no torn file
    for index in range(len(runs)):
        assert value(found, "mlchaos_experiment_runs_total", experiment=f"drill-{index}", verdict="held") == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_pushgateway_credentials_are_split_from_the_url():
    assert split_credentials("127.0.0.1:9091") == ("http://127.0.0.1:9091", None)
    assert split_credentials("https://ci:p%40ss@gateway:9091/prefix") == ("https://gateway:9091/prefix", ("ci", "p@ss"))
    assert split_credentials("http://ci@[::1]:9091") == ("http://[::1]:9091", ("ci", ""))
