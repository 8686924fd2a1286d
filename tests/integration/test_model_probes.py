"""drivers.model probes over real HTTP against a 3-replica sandbox, healthy and degraded."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from drivers.model import probes
from drivers.process import actions
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.sandbox import dataset
from mlchaos.sandbox.manager import Sandbox


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_healthy_sandbox(sandbox: Sandbox) -> None:
    assert probes.all_replicas_healthy() is True
    assert probes.healthy_replica_count() == 3
    assert probes.prediction_accuracy() > 0.9
    assert probes.error_rate(requests=30) == 0.0
    p95 = probes.latency_percentile(percentile=95, requests=30)
    assert isinstance(p95, float) and 0 < p95 < 2000  # milliseconds; the calls' timeout is 2 s
    # a second sample's median (independent calls: on a loaded host it may exceed the first sample's p95;
    # the percentile's arithmetic on one sample is tests/unit/test_model_percentile.py's)
    assert 0 < probes.latency_percentile(percentile=50, requests=30) < 2000


def test_one_replica_killed(sandbox: Sandbox) -> None:
    actions.kill_replicas(count=1, seed=11)
    assert probes.all_replicas_healthy() is False
    assert probes.healthy_replica_count() == 2
    assert probes.prediction_accuracy(only_healthy=True) > 0.9
    assert probes.prediction_accuracy(only_healthy=False) > 0.9  # the dead one is unreachable
    rate = probes.error_rate(requests=30)
    assert 0 < rate < 1
    assert rate == pytest.approx(1 / 3, abs=0.01)  # round-robin: every third call hits the dead one
    assert probes.latency_percentile(requests=10) > 0


def test_explicit_urls_and_golden_set(sandbox: Sandbox, tmp_path: Path) -> None:
    urls = [r.url for r in sandbox.replicas("model")][:2]
    assert probes.healthy_replica_count(urls=urls) == 2
    x, y = dataset.holdout_split()
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps({"inputs": x, "labels": y}))
    bundled = probes.prediction_accuracy(urls=urls)
    assert probes.prediction_accuracy(urls=urls, golden_set=str(golden)) == bundled > 0.9
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"inputs": x, "labels": [(c + 1) % 3 for c in y]}))
    assert probes.prediction_accuracy(urls=urls, golden_set=str(wrong)) < 0.2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"inputs": x[:2], "labels": [0]}))
    with pytest.raises(DriverError, match="2 inputs but 1 labels"):
        probes.prediction_accuracy(urls=urls, golden_set=str(bad))


def test_unreachable_and_unknown_targets(sandbox: Sandbox) -> None:
    dead = [_closed_port_url()]
    assert probes.all_replicas_healthy(urls=dead, timeout=0.5) is False
    assert probes.error_rate(urls=dead, requests=5, timeout=0.5) == 1.0
    with pytest.raises(DriverError, match="could be reached"):
        probes.prediction_accuracy(urls=dead, only_healthy=False, timeout=0.5)
    with pytest.raises(DriverError, match="no healthy replica"):
        probes.latency_percentile(urls=dead, timeout=0.5)
    with pytest.raises(TargetNotFound, match="'ghost'"):
        probes.healthy_replica_count(service="ghost")
    with pytest.raises(DriverError, match="percentile"):
        probes.latency_percentile(percentile=0)
    with pytest.raises(DriverError, match="requests"):
        probes.error_rate(requests=0)


def test_unknown_model_scores_zero_accuracy(sandbox: Sandbox) -> None:
    urls = [sandbox.replicas("model")[0].url]
    assert probes.all_replicas_healthy(urls=urls, model="nope") is False
    assert probes.prediction_accuracy(urls=urls, model="nope", only_healthy=False) == 0.0
