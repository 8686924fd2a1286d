"""experiments/k8s-delete-pod.yaml run by mlchaos' runner (in process) against kmock's API emulator.

The emulated controller runs throughout (the emulator alone would never replace the deleted
pod, update the Deployment's status or make pods ready). Shows the allow-lists refusing a
production context before anything is touched, the blast-radius bounds, a plan that deletes
nothing, and the runner's safety net undoing a Kubernetes change from its record.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from mlchaos.engine import exit_codes
from mlchaos.journal.reader import is_automatic
from tests.support.kubernetes_emulator import DEPLOYMENTS, PODS, EmulatedCluster
from tests.support.paths import ROOT

NS = "ml-serving"
APP = {"app.kubernetes.io/name": "model-server"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with EmulatedCluster(tmp_path_factory.mktemp("k8s"), contexts=("staging", "production")) as found:
        found.add_deployment(NS, "model-server", replicas=3, labels=APP)
        with found.controller():
            yield found


@pytest.fixture(autouse=True)
def kubeconfig(cluster, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.delenv("MLCHAOS_ALLOWED_ENVIRONMENTS", raising=False)
    assert cluster.wait_until(lambda: _ready(cluster) == 3)


@pytest.fixture
def experiment() -> dict:
    data = yaml.safe_load((ROOT / "experiments" / "k8s-delete-pod.yaml").read_text())
    data["method"][0]["pauses"] = {"after": 0.2}  # the emulated controller replaces a pod in milliseconds
    return data


def _ready(cluster: EmulatedCluster) -> int:
    return sum(1 for p in cluster.list(PODS, NS) if not p["metadata"].get("deletionTimestamp")
               and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"]))


def _pods(cluster: EmulatedCluster) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.list(PODS, NS)}


def test_the_staging_drill_holds_and_the_pod_is_replaced(cluster, run_experiment, experiment):
    before = _pods(cluster)
    result, journal, out = run_experiment(experiment)
    assert result.exit_code == exit_codes.OK, (result.failures, out)
    (change,) = journal["mlchaos"]["changes"]
    assert change["environment"] == "kubernetes:staging" and change["driver"] == "kubernetes"
    killed = change["targets"][0]["name"]
    assert killed in before and killed not in _pods(cluster) and len(_pods(cluster)) == 3
    assert journal["mlchaos"]["blast_radius"]["by_kind"]["pod"]["eligible"] == 3
    events = next(r for r in journal["run"] if r["activity"]["name"] == "events-about-the-deleted-pod")["output"]
    assert any(e["reason"] == "Killing" and e["object"] == f"Pod/{killed}" for e in events)


def test_a_production_context_is_refused_before_anything_is_touched(cluster, run_experiment, experiment):
    experiment["configuration"]["kube_context"] = "production"
    before = _pods(cluster)
    cluster.clear_calls()
    result, journal, out = run_experiment(experiment)
    assert result.exit_code == exit_codes.REFUSED
    assert "environment 'kubernetes:production' is not allowed by the experiment's allowed_environments" in \
        " ".join(result.refusals)
    assert _pods(cluster) == before and not [c for c in cluster.calls if c.verb not in ("get", "list")]


def test_the_hosts_allow_list_refuses_too(cluster, run_experiment, experiment, monkeypatch):
    monkeypatch.setenv("MLCHAOS_ALLOWED_ENVIRONMENTS", "kubernetes:staging-eu*,docker:*")
    before = _pods(cluster)
    result, _, _ = run_experiment(experiment)
    assert result.exit_code == exit_codes.REFUSED and "MLCHAOS_ALLOWED_ENVIRONMENTS" in " ".join(result.refusals)
    assert _pods(cluster) == before


def test_a_plan_over_the_blast_radius_is_refused(cluster, run_experiment, experiment):
    experiment["method"][0]["provider"]["arguments"]["count"] = 2
    before = _pods(cluster)
    result, _, _ = run_experiment(experiment)
    assert result.exit_code == exit_codes.REFUSED
    assert "more than max_targets 1" in " ".join(result.refusals)
    assert _pods(cluster) == before


def test_a_scope_in_another_namespace_refuses(cluster, run_experiment, experiment):
    experiment["extensions"][0]["blast_radius"]["scopes"] = [{"kind": "pod", "namespace": "elsewhere"}]
    result, _, _ = run_experiment(experiment)
    assert result.exit_code == exit_codes.REFUSED and "outside every allowed scope" in " ".join(result.refusals)


def test_a_plan_names_the_pod_and_deletes_nothing(cluster, run_experiment, experiment):
    before = _pods(cluster)
    result, journal, out = run_experiment(experiment, dry_run=True)
    assert result.exit_code == exit_codes.OK, out
    assert _pods(cluster) == before
    (change,) = journal["mlchaos"]["changes"]
    assert change["dry_run"] and change["targets"][0]["name"] in before


def test_the_safety_net_undoes_a_scale_the_experiment_forgot_to_roll_back(cluster, run_experiment, experiment):
    data = copy.deepcopy(experiment)
    data["steady-state-hypothesis"]["probes"] = data["steady-state-hypothesis"]["probes"][:1]
    data["method"] = [{"type": "action", "name": "scale-to-one", "provider": {
        "type": "python", "module": "drivers.kubernetes.actions", "func": "scale_workload",
        "arguments": {"name": "model-server", "namespace": NS, "replicas": 1, "ttl": None}}}]
    data["extensions"][0]["blast_radius"] = {"max_targets": 1}
    result, journal, out = run_experiment(data)
    automatic = [r for r in journal["rollbacks"] if is_automatic(r)]
    assert automatic and automatic[0]["status"] == "succeeded", out
    assert automatic[0]["output"]["workloads"] == {"Deployment/model-server": "restored 3 replicas (was 1)"}
    assert cluster.get(DEPLOYMENTS, NS, "model-server")["spec"]["replicas"] == 3
    assert cluster.wait_until(lambda: _ready(cluster) == 3)
