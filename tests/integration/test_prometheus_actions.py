"""drivers.prometheus.actions against a real Prometheus: a rule file is checked by promtool, announced
before it is written, loaded by a reload (and its alert fires), and removed again by the rollback."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.prometheus import actions
from mlchaos.errors import DriverError
from mlchaos.safety import changes
from mlchaos.sandbox import monitoring_stack
from mlchaos.sandbox.monitoring_stack import Monitoring, MonitoringEndpoints
from tests.support.components import require_component

ALWAYS_FIRING = """\
groups:
  - name: injected-canary
    rules:
      - alert: InjectedCanary
        expr: vector(1)
        labels: {severity: info}
"""
BROKEN = """\
groups:
  - name: broken
    rules:
      - alert: ModelServerDown
        expr: up{job="model"} == = 0
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Monitoring, MonitoringEndpoints]]:
    """The monitoring stack alone (no replicas), its state dir exported in the env."""
    missing = monitoring_stack.missing_binaries()
    require_component("monitoring binaries", not missing,
                      monitoring_stack.install_hint(missing or [("", "prometheus")]))
    path = tmp_path_factory.mktemp("prom-actions-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCHAOS_STATE_DIR", str(path))
        stack = Monitoring(path)
        try:
            yield stack, stack.up([], timeout=30)
        finally:
            stack.down()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def groups_of(ep: MonitoringEndpoints) -> set[str]:
    return {g["name"] for g in get(f"{ep.prometheus_url}/api/v1/rules")["data"]["groups"]}


def test_add_rule_file_announces_loads_and_fires_then_remove_rolls_back(prometheus) -> None:
    stack, ep = prometheus
    target = stack.rules_dir / "canary.yml"
    announced: list[tuple[changes.ChangeRecord, bool]] = []
    token = changes.set_sink(lambda record: announced.append((record, target.exists())))
    try:
        record = actions.add_rule_file("canary", rules_yaml=ALWAYS_FIRING)
    finally:
        changes.reset_sink(token)
    assert [(r.action, existed) for r, existed in announced] == [("add-rule-file", False)]  # announced before writing
    assert changes.is_change_record(record) and record["driver"] == "prometheus"
    assert record["undo"] == {"func": "drivers.prometheus.actions.remove_rule_file", "arguments": {"name": "canary"}}
    assert record["targets"][0]["details"]["groups"] == ["injected-canary"]
    assert (record["environment"], record["population"]) == (ep.prometheus_url.rstrip("/"), [])
    assert target.read_text() == ALWAYS_FIRING and "injected-canary" in groups_of(ep)  # loaded by the time it returns
    deadline = time.monotonic() + 10
    while not any(a["labels"]["alertname"] == "InjectedCanary" and a["state"] == "firing"
                  for a in get(f"{ep.prometheus_url}/api/v1/alerts")["data"]["alerts"]):
        assert time.monotonic() < deadline, "the injected rule never fired"
        time.sleep(0.2)

    undone = actions.remove_rule_file(**record["undo"]["arguments"])
    assert undone == {"name": "canary", "path": str(target), "removed": True, "already": []}
    assert not target.exists() and "injected-canary" not in groups_of(ep) and "ml-serving" in groups_of(ep)
    for _ in range(2):  # a rollback may run twice (`mlchaos recover` after the declared rollback)
        again = actions.remove_rule_file(**record["undo"]["arguments"])
        assert again == {"name": "canary", "path": str(target), "removed": False, "already": ["canary"]}
        assert not target.exists() and "injected-canary" not in groups_of(ep) and "ml-serving" in groups_of(ep)


def test_rule_file_from_a_path_with_an_explicit_url(prometheus, tmp_path: Path) -> None:
    _stack, ep = prometheus
    source = tmp_path / "mine.yml"
    source.write_text(ALWAYS_FIRING.replace("injected-canary", "from-path"))
    record = actions.add_rule_file("from-path", path=str(source), url=ep.prometheus_url + "/")
    assert record["parameters"]["source"] == str(source)
    assert record["undo"]["arguments"] == {"name": "from-path", "url": ep.prometheus_url + "/"}
    assert "from-path" in groups_of(ep)
    actions.remove_rule_file("from-path", url=ep.prometheus_url)
    assert "from-path" not in groups_of(ep)


def test_an_invalid_rule_file_is_refused_before_anything_changes(prometheus) -> None:
    stack, ep = prometheus
    announced: list[changes.ChangeRecord] = []
    token = changes.set_sink(announced.append)
    try:
        with pytest.raises(DriverError, match=r"invalid rule file 'broken' \(promtool check rules\)") as info:
            actions.add_rule_file("broken", rules_yaml=BROKEN)
    finally:
        changes.reset_sink(token)
    assert "broken.yml" in str(info.value) and "parse error" in str(info.value)
    assert announced == [] and not (stack.rules_dir / "broken.yml").exists()
    assert "broken" not in groups_of(ep)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "x"}, "exactly one of rules_yaml"),
    ({"name": "x", "rules_yaml": ALWAYS_FIRING, "path": "/tmp/x.yml"}, "exactly one of rules_yaml"),
    ({"name": "../escape", "rules_yaml": ALWAYS_FIRING}, "rule file name must match"),
    ({"name": "x", "path": "/nonexistent/rules.yml"}, "cannot read rule file"),
    ({"name": "x", "rules_yaml": ALWAYS_FIRING, "url": "ftp://host"}, "url must be an http"),
])
def test_bad_arguments(prometheus, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DriverError, match=message):
        actions.add_rule_file(**kwargs)


def test_without_a_running_stack_the_driver_says_how_to_start_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(tmp_path))
    with pytest.raises(DriverError, match="monitoring stack is not running.*mlchaos sandbox up"):
        actions.add_rule_file("canary", rules_yaml=ALWAYS_FIRING)


def test_dry_run_checks_the_rules_and_prometheus_and_writes_nothing(prometheus, tmp_path: Path) -> None:
    stack, ep = prometheus
    before = groups_of(ep)
    files = sorted(p.name for p in stack.rules_dir.iterdir())
    announced: list[changes.ChangeRecord] = []
    token = changes.set_sink(announced.append)
    try:
        dry = actions.add_rule_file("canary-dry", rules_yaml=ALWAYS_FIRING, dry_run=True)
        with pytest.raises(DriverError, match="invalid rule file"):  # promtool still checks it
            actions.add_rule_file("broken", rules_yaml=BROKEN, dry_run=True)
        with pytest.raises(DriverError, match="cannot read rules from Prometheus"):  # and Prometheus must answer
            actions.add_rule_file("canary-dry", rules_yaml=ALWAYS_FIRING, url="http://127.0.0.1:9", dry_run=True)
    finally:
        changes.reset_sink(token)
    assert [r.dry_run for r in announced] == [True]
    assert dry["dry_run"] is True and dry["targets"][0]["details"]["groups"] == ["injected-canary"]
    assert dry["targets"][0]["details"]["path"] == str(stack.rules_dir / "canary-dry.yml")
    assert sorted(p.name for p in stack.rules_dir.iterdir()) == files and groups_of(ep) == before
    real = actions.add_rule_file("canary-dry", rules_yaml=ALWAYS_FIRING)
    try:
        assert set(real) == set(dry) and real["targets"] == dry["targets"] and real["undo"] == dry["undo"]
        assert (real["environment"], real["population"]) == (dry["environment"], dry["population"])
    finally:
        actions.remove_rule_file("canary-dry")
