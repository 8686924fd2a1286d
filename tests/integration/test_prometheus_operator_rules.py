"""add_rule_file / remove_rule_file's PrometheusRule form: the API emulator, an emulated operator, a real Prometheus.

No API server and no Prometheus Operator run on this machine. The emulator
(tests/support/kubernetes_emulator.py) stores the PrometheusRule objects the driver creates and
deletes, with the admission policy of deploy/kubernetes/admission-policy.yaml enforced. A small
thread plays the operator: every PrometheusRule whose labels match its ``ruleSelector``
(``release: kube-prometheus-stack``) is written, as the operator writes it, to
``<namespace>-<name>-<uid>.yaml`` in a directory a real Prometheus 2.x loads (``rule_files``), and
Prometheus is reloaded (the operator's config-reloader does that). Everything else is real:
promtool checks the rules, Prometheus loads and evaluates them, the alert fires, and the driver
waits for Prometheus through the emulated API server's service proxy (``k8s://`` URL).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from drivers.kubernetes.prometheus_rules import PREFIX
from drivers.prometheus import actions
from mlchaos.errors import DriverError
from mlchaos.lib import endpoints
from mlchaos.lib.files import free_ports
from mlchaos.safety import changes
from mlchaos.sandbox import monitoring_stack
from tests.support.admission_policy import Policies
from tests.support.components import require_component
from tests.support.kubernetes_emulator import PROMETHEUSRULES, EmulatedCluster
from tests.support.kubernetes_tour import DRILL_RULE
from tests.support.polling import wait_until

NS = "ml-serving"
SELECTOR = {"release": "kube-prometheus-stack"}  # kube-prometheus-stack's default ruleSelector
PROM_URL = "k8s://monitoring/prometheus-operated:9090"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A real Prometheus that loads ``<dir>/*.yaml`` (what the operator writes), evaluating every second."""
    missing = monitoring_stack.missing_binaries()
    require_component("monitoring binaries", not missing, monitoring_stack.install_hint(missing or [("", "x")]))
    folder = tmp_path_factory.mktemp("operator-prometheus")
    rules = folder / "rules"
    rules.mkdir()
    (folder / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [f"{rules}/*.yaml"]}))
    (port,) = free_ports(1)
    proc = subprocess.Popen(["/usr/bin/prometheus", f"--config.file={folder / 'prometheus.yml'}",
                             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--web.enable-lifecycle"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/-/ready", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        wait_until(ready, timeout=60, what="Prometheus ready")
        yield url, rules
    finally:
        proc.terminate()
        proc.wait(10)


class EmulatedOperator:
    """Plays the Prometheus Operator: selected PrometheusRules become rule files, and Prometheus is reloaded."""

    def __init__(self, cluster: EmulatedCluster, prometheus: str, rules: Path) -> None:
        self.cluster, self.prometheus, self.rules = cluster, prometheus, rules
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> EmulatedOperator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            wanted = {}
            for obj in self.cluster.list(PROMETHEUSRULES):
                meta = obj["metadata"]
                if all((meta.get("labels") or {}).get(k) == v for k, v in SELECTOR.items()):
                    wanted[f"{meta['namespace']}-{meta['name']}-{meta['uid']}.yaml"] = yaml.safe_dump(obj["spec"])
            present = {p.name: p.read_text() for p in self.rules.glob("*.yaml")}
            if present == wanted:
                continue
            for name in set(present) - set(wanted):
                (self.rules / name).unlink()
            for name, text in wanted.items():
                (self.rules / name).write_text(text)
            requests.post(f"{self.prometheus}/-/reload", timeout=5)


@pytest.fixture(scope="module")
def cluster(prometheus, tmp_path_factory) -> Iterator[EmulatedCluster]:
    url, rules = prometheus
    with EmulatedCluster(tmp_path_factory.mktemp("k8s"), admission=Policies().admission()) as found, \
            EmulatedOperator(found, url, rules):
        found.expose("monitoring", "prometheus-operated", 9090, url, port_name="web")
        yield found


def loaded_groups(prometheus: str) -> dict[str, str]:
    groups = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    return {Path(g["file"]).name: g["name"] for g in groups}


def test_a_drill_rule_is_created_loaded_fires_and_is_deleted_exactly(cluster, prometheus):
    url, _ = prometheus
    announced: list[bool] = []
    token = changes.set_sink(lambda record: announced.append(bool(cluster.list(PROMETHEUSRULES, NS))))
    try:
        record = actions.add_rule_file("canary", DRILL_RULE, url=PROM_URL, namespace=NS, labels=SELECTOR,
                                       **cluster.connection())
    finally:
        changes.reset_sink(token)
    assert announced == [False]  # announced before the object existed
    (obj,) = cluster.list(PROMETHEUSRULES, NS)
    meta = obj["metadata"]
    assert meta["name"] == f"{PREFIX}canary" and meta["labels"]["release"] == "kube-prometheus-stack"
    assert meta["labels"]["mlchaos.io/change"] == record["undo"]["arguments"]["change"]
    assert record["undo"]["arguments"]["uid"] == meta["uid"] and record["environment"] == "kubernetes:staging-emulator"
    assert record["targets"][0]["details"]["alerts"] == ["DrillCanary"]
    assert loaded_groups(url) == {f"{NS}-{PREFIX}canary-{meta['uid']}.yaml": "drill-canary"}  # loaded on return
    wait_until(lambda: any(a["labels"]["alertname"] == "DrillCanary" and a["state"] == "firing"
                           for a in requests.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]),
               what="DrillCanary firing")

    undone = actions.remove_rule_file(**record["undo"]["arguments"])
    assert undone["result"] == "deleted" and cluster.list(PROMETHEUSRULES, NS) == []
    assert loaded_groups(url) == {}  # the rollback waited until Prometheus dropped it
    again = actions.remove_rule_file(**record["undo"]["arguments"])
    assert again["result"] == "already deleted" and again["already"] == [f"{PREFIX}canary"]


def test_an_unselected_rule_times_out_and_is_removed(cluster, prometheus):
    """Labels the operator's ruleSelector does not match: Prometheus never loads it; the action fails, naming the
    labels, and leaves nothing behind."""
    with pytest.raises(DriverError, match="did not load PrometheusRule .* ruleSelector match its labels"):
        actions.add_rule_file("unselected", DRILL_RULE, url=PROM_URL, namespace=NS, labels={"release": "other"},
                              timeout=2, **cluster.connection())
    assert cluster.list(PROMETHEUSRULES, NS) == []


def test_bad_rules_and_a_leftover_are_refused(cluster):
    conn = cluster.connection()
    with pytest.raises(DriverError, match="promtool check rules"):
        actions.add_rule_file("broken", DRILL_RULE.replace("vector(1)", "vector(1) == = 0"), namespace=NS, **conn)
    recording = DRILL_RULE + "      - record: up\n        expr: vector(0)\n"
    with pytest.raises(DriverError, match="alert rules only"):
        actions.add_rule_file("recording", recording, namespace=NS, **conn)
    with pytest.raises(DriverError, match="set by mlchaos"):
        actions.add_rule_file("clash", DRILL_RULE, namespace=NS, labels={"mlchaos.io/change": "x"}, **conn)
    with pytest.raises(DriverError, match="DNS label"):
        actions.add_rule_file("Upper_Case", DRILL_RULE, namespace=NS, **conn)
    assert cluster.list(PROMETHEUSRULES, NS) == []
    first = actions.add_rule_file("leftover", DRILL_RULE, namespace=NS, labels=SELECTOR, **conn)  # no url: no wait
    try:
        assert first["targets"][0]["details"]["loaded"] == "not checked (no Prometheus url or endpoint)"
        with pytest.raises(DriverError, match="already exists .* earlier run"):
            actions.add_rule_file("leftover", DRILL_RULE, namespace=NS, labels=SELECTOR, **conn)
    finally:
        actions.remove_rule_file("leftover", namespace=NS, **conn)  # the static form: by name and labels
    assert cluster.list(PROMETHEUSRULES, NS) == []


def test_a_dry_run_announces_the_same_record_and_creates_nothing(cluster):
    record = actions.add_rule_file("dry", DRILL_RULE, namespace=NS, labels=SELECTOR, dry_run=True,
                                   **cluster.connection())
    assert record["dry_run"] and record["targets"][0]["name"] == f"{NS}/{PREFIX}dry"
    assert cluster.list(PROMETHEUSRULES, NS) == []


def test_a_replaced_or_foreign_object_is_left_alone(cluster):
    conn = cluster.connection()
    record = actions.add_rule_file("replaced", DRILL_RULE, namespace=NS, labels=SELECTOR, **conn)
    obj = cluster.get(PROMETHEUSRULES, NS, f"{PREFIX}replaced")
    cluster.delete(PROMETHEUSRULES, NS, f"{PREFIX}replaced")
    obj["metadata"].pop("uid")
    cluster.put(PROMETHEUSRULES, obj)  # someone re-created it: another uid
    try:
        result = actions.remove_rule_file(**record["undo"]["arguments"])
        assert "left alone" in result["result"] and cluster.get(PROMETHEUSRULES, NS, f"{PREFIX}replaced")
    finally:
        cluster.delete(PROMETHEUSRULES, NS, f"{PREFIX}replaced")
    assert actions.remove_rule_file("replaced", namespace=NS, **conn)["result"] == "already deleted"


def test_the_declared_prometheus_endpoint_is_waited_on_through_the_api_server(cluster, prometheus, monkeypatch):
    """No url: the experiment's declared ``prometheus`` endpoint (a ``k8s://`` one, as in the staging drill) is the
    Prometheus the action and its undo wait on."""
    url, _ = prometheus
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    table = endpoints.EndpointTable({"prometheus": endpoints.Endpoint.from_dict("prometheus", {"url": PROM_URL})})
    previous = endpoints.activate(table)
    try:
        record = actions.add_rule_file("declared", DRILL_RULE, namespace=NS, labels=SELECTOR, **cluster.connection())
        (obj,) = cluster.list(PROMETHEUSRULES, NS)
        assert record["targets"][0]["details"]["prometheus_url"] == "endpoint prometheus"
        assert loaded_groups(url) == {f"{NS}-{PREFIX}declared-{obj['metadata']['uid']}.yaml": "drill-canary"}
        assert actions.remove_rule_file(**record["undo"]["arguments"])["result"] == "deleted"
        assert loaded_groups(url) == {} and cluster.list(PROMETHEUSRULES, NS) == []
    finally:
        endpoints.activate(previous)
        table.close()
