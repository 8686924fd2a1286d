"""Published Chaos Toolkit extensions run under ``mlchaos run`` as under ``chaos run`` (both real CLIs, the same
file): chaostoolkit-prometheus against the sandbox's real Prometheus, and chaostoolkit-kubernetes against the
Kubernetes emulator (tests/support/kubernetes_emulator.py: a real HTTP API server in memory; no real Kubernetes
API server runs on this machine). Each activity's status and output, and the run's status, are compared; what the
extensions changed (the pods left) is checked after each run. ``mlchaos validate`` checks the extensions'
arguments against their signatures, as it checks mlchaos' drivers'."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from tests.support.differential import differences, run_both

pytestmark = pytest.mark.usefixtures("isolated_state")


def probe(name: str, module: str, func: str, tolerance: Any = None, **arguments: Any) -> dict[str, Any]:
    spec = {"type": "probe", "name": name,
            "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}}
    if tolerance is not None:
        spec["tolerance"] = tolerance
    return spec


def outputs(journal: dict[str, Any]) -> list[Any]:
    states = journal["steady_states"]
    return [e.get("output") for e in [*states["before"]["probes"], *journal["run"], *states["after"]["probes"]]]


# --- chaostoolkit-prometheus -------------------------------------------------------------------------
SERVING = 'count(up{job="model"} == 1)'


def prometheus_experiment(url: str) -> dict[str, Any]:
    query = "chaosprometheus.probes"
    return {
        "title": "chaostoolkit-prometheus against the sandbox", "description": "instant queries, one malformed",
        "configuration": {"prometheus_base_url": url},
        "steady-state-hypothesis": {"title": "three replicas are up", "probes": [
            probe("three-up", query, "query", {"type": "jsonpath", "path": "$.data.result[0].value[1]", "expect": "3"},
                  query=SERVING)]},
        "method": [probe("replicas-up", query, "query", query=SERVING),
                   probe("malformed-query", query, "query", query="up{")],
    }


@pytest.mark.slow
def test_chaostoolkit_prometheus_runs_as_under_chaos(monitored, tmp_path, write_experiment, subprocess_env):
    url = monitored.monitoring().endpoints().prometheus_url
    runs = run_both(write_experiment(prometheus_experiment(url)), tmp_path, subprocess_env)
    assert runs.mlchaos["run"][0]["status"] == runs.chaos["run"][0]["status"] == "succeeded"
    assert runs.mlchaos["run"][0]["output"]["data"]["result"][0]["value"][1] == "3"
    assert runs.chaos["run"][0]["output"]["data"]["result"][0]["value"][1] == "3"
    # Prometheus refuses the malformed query (400): the extension raises, both tools record the probe as failed
    assert runs.mlchaos["run"][1]["status"] == runs.chaos["run"][1]["status"] == "failed"
    assert "bad_data" in runs.mlchaos["run"][1]["exception"][-1] or "400" in runs.mlchaos["run"][1]["exception"][-1]
    # the one documented difference: a failed method activity fails the run under mlchaos
    assert differences(runs) == {"status": ("completed", "failed")}
    assert runs.mlchaos["mlchaos"]["chaostoolkit_status"] == runs.chaos["status"] == "completed"
    assert runs.mlchaos["steady_states"]["after"]["steady_state_met"] is True


def test_mlchaos_validate_checks_the_extensions_arguments(write_experiment, subprocess_env):
    data = prometheus_experiment("http://127.0.0.1:9")
    data["method"][0]["provider"]["arguments"] = {"qurey": SERVING, "timeout": "soon"}
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "validate", str(write_experiment(data))],
                          env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "chaosprometheus.probes.query() has no argument 'qurey' (did you mean 'query'?)" in proc.stderr
    assert "chaosprometheus.probes.query() needs argument 'query'" in proc.stderr
    assert "argument 'timeout' must be float or int or null, got 'soon'" in proc.stderr
    assert "logzero" not in proc.stderr  # the extension imports, as under chaos


def test_mlchaos_discover_lists_an_extensions_activities(subprocess_env):
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "discover", "chaostoolkit-prometheus"],
                          env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "chaosprometheus.probes" in proc.stdout
    assert "probe  query(query: str, when: str = None" in proc.stdout
    assert "drivers.process.actions" not in proc.stdout  # only the package asked for
    by_module = subprocess.run([sys.executable, "-m", "mlchaos", "discover", "chaosk8s"], env=subprocess_env,
                               capture_output=True, text=True, timeout=60)
    assert by_module.returncode == 0, by_module.stderr
    assert "chaosk8s.pod.actions" in by_module.stdout and "action terminate_pods(" in by_module.stdout
    everything = subprocess.run([sys.executable, "-m", "mlchaos", "discover"], env=subprocess_env,
                                capture_output=True, text=True, timeout=60)
    assert "drivers.process.actions" in everything.stdout and "chaosk8s.pod.probes" in everything.stdout
    unknown = subprocess.run([sys.executable, "-m", "mlchaos", "discover", "chaostoolkit-nothing"],
                             env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no installed Chaos Toolkit extension 'chaostoolkit-nothing'" in unknown.stderr


# --- chaostoolkit-kubernetes ---------------------------------------------------------------------------
NS, LABELS = "ml", {"app": "model"}


def kubernetes_experiment() -> dict[str, Any]:
    pods = "chaosk8s.pod.probes"
    return {
        "title": "chaostoolkit-kubernetes against the emulator", "description": "terminate one pod of three",
        "steady-state-hypothesis": {"title": "at least two model pods run", "probes": [
            probe("model-pods", pods, "count_pods", [2, 3], label_selector="app=model", ns=NS),
            probe("all-running", pods, "pods_in_phase", True, label_selector="app=model", ns=NS)]},
        "method": [
            {"type": "action", "name": "terminate-one", "provider": {
                "type": "python", "module": "chaosk8s.pod.actions", "func": "terminate_pods",
                "arguments": {"label_selector": "app=model", "ns": NS, "qty": 1, "order": "alphabetic"}}},
            probe("pods-left", pods, "count_pods", label_selector="app=model", ns=NS)],
    }


def test_chaostoolkit_kubernetes_runs_as_under_chaos(tmp_path, write_experiment, subprocess_env):
    from tests.support.kubernetes_emulator import PODS, EmulatedCluster

    with EmulatedCluster(tmp_path / "cluster") as cluster:
        left: list[list[str]] = []

        def three_pods() -> None:
            if left or cluster.list(PODS, NS):
                left.append(sorted(p["metadata"]["name"] for p in cluster.list(PODS, NS)))
            for pod in cluster.list(PODS, NS):
                cluster.delete(PODS, NS, pod["metadata"]["name"])
            for index in range(3):
                cluster.add_pod(NS, f"model-{index}", dict(LABELS))

        env = {**subprocess_env, "KUBECONFIG": str(cluster.kubeconfig)}
        runs = run_both(write_experiment(kubernetes_experiment()), tmp_path, env, prepare=three_pods)
        left.append(sorted(p["metadata"]["name"] for p in cluster.list(PODS, NS)))
    assert differences(runs) == {}, runs.mlchaos_output
    assert runs.mlchaos["status"] == runs.chaos["status"] == "completed"
    assert outputs(runs.mlchaos) == outputs(runs.chaos)
    assert outputs(runs.mlchaos)[0] == 3 and outputs(runs.mlchaos)[3] == 2
    assert left == [["model-1", "model-2"], ["model-1", "model-2"]]  # each run terminated model-0, and only it
