"""The Role in deploy/kubernetes/rbac.yaml grants exactly what the Kubernetes driver calls.

Every driver function runs once (a happy path, the rollbacks both from their record and from
an experiment's static arguments) against kmock's emulator, which logs each request as
(verb, API group, resource[/subresource], name). The test then checks: every request is
granted by the Role (resourceNames included), every rule of the Role was needed by some
request, and each function made exactly the calls the table below (and docs/kubernetes.md)
documents for it. The emulated controller is not needed: no test here waits for pods.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
import yaml

from drivers.kubernetes import actions, probes
from mlchaos.lib import certificates as certs
from tests.support.kubernetes_emulator import NETWORKPOLICIES, SECRETS, SERVICES, ApiCall, EmulatedCluster
from tests.support.paths import ROOT

RBAC = ROOT / "deploy" / "kubernetes" / "rbac.yaml"
NS = "ml-serving"  # the namespace the Role is for
APP = {"app.kubernetes.io/name": "model-server"}
SELECTOR = "app.kubernetes.io/name=model-server"

# function -> the "verb group/resource" calls it makes (core group written as "")
EXPECTED: dict[str, set[str]] = {
    "delete_pods": {"list /pods", "get apps/replicasets", "delete /pods"},
    "delete_pods(keep_down)": {"list /pods", "get apps/replicasets", "get apps/deployments", "patch /pods",
                               "patch apps/deployments", "patch apps/deployments/scale", "delete /pods"},
    "delete_pods(keep_down, statefulset)": {"list /pods", "get apps/statefulsets", "patch apps/statefulsets",
                                            "patch apps/statefulsets/scale", "delete /pods"},
    "restore_scale": {"get apps/deployments", "patch apps/deployments/scale", "patch apps/deployments"},
    "restore_scale(statefulset)": {"get apps/statefulsets", "patch apps/statefulsets/scale",
                                   "patch apps/statefulsets"},
    "scale_workload": {"get apps/deployments", "list apps/deployments", "patch apps/deployments",
                       "patch apps/deployments/scale"},
    "scale_workload(statefulset)": {"get apps/statefulsets", "list apps/statefulsets", "patch apps/statefulsets",
                                    "patch apps/statefulsets/scale"},
    "swap_tls_certificate": {"get /secrets", "list /pods", "patch /secrets", "patch apps/deployments"},
    "restore_secret": {"get /secrets", "patch /secrets", "patch apps/deployments"},
    "block_metrics_port": {"list /pods", "list networking.k8s.io/networkpolicies",
                           "create networking.k8s.io/networkpolicies", "patch /pods"},
    "unblock_metrics_port": {"get networking.k8s.io/networkpolicies", "delete networking.k8s.io/networkpolicies",
                             "list /pods", "patch /pods"},
    "unblock_metrics_port(static)": {"list networking.k8s.io/networkpolicies",
                                     "get networking.k8s.io/networkpolicies",
                                     "delete networking.k8s.io/networkpolicies", "list /pods", "patch /pods"},
    "remove_scrape_annotation": {"list /pods", "patch /pods"},
    "restore_scrape_annotation": {"list /pods", "patch /pods"},
    "route_through_proxy": {"get /services", "list /pods", "list /services", "patch /services"},
    "restore_service": {"get /services", "patch /services"},
    "pods_ready / ready_pod_count / restart_counts / total_restarts": {"list /pods"},
    "ready_replicas": {"get apps/deployments"},
    "ready_replicas(statefulset)": {"get apps/statefulsets"},
    "deployment_available": {"get apps/deployments"},
    "events_since_fault / event_count": {"list /events"},
}


def allowed(rules: list[dict], call: ApiCall) -> bool:
    """True when one rule grants the call (a rule with resourceNames only grants requests naming one of them)."""
    for rule in rules:
        if call.group not in rule.get("apiGroups", []) or call.resource not in rule.get("resources", []):
            continue
        if call.verb not in rule.get("verbs", []):
            continue
        names = rule.get("resourceNames")
        if names and call.name not in names:
            continue
        return True
    return False


def role_rules() -> list[dict]:
    documents = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    (role,) = [d for d in documents if d["kind"] == "Role"]
    assert role["metadata"]["namespace"] == NS
    return role["rules"]


def tour(cluster: EmulatedCluster) -> dict[str, list[ApiCall]]:
    """Run every driver function once; the calls each made."""
    conn = cluster.connection()
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    ca = certs.CertificateAuthority.create("staging CA")
    cert, key, _ = certs.issue_certificate("valid", ["model-server.ml-serving.svc"], ca)
    cluster.put(SECRETS, {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                          "metadata": {"name": "model-server-tls", "namespace": NS},
                          "data": {"tls.crt": b64(certs.cert_pem(cert)), "tls.key": b64(certs.key_pem(key))}})
    cluster.put(SECRETS, {"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": "model-serving-ca", "namespace": NS},
                          "data": {"ca.crt": b64(certs.cert_pem(ca.certificate)),
                                   "ca.key": b64(certs.key_pem(ca.key))}})
    cluster.add_deployment(NS, "model-server", replicas=3, labels=APP, annotations={"prometheus.io/scrape": "true"},
                           volumes=[{"name": "tls", "secret": {"secretName": "model-server-tls"}}])
    cluster.add_deployment(NS, "fault-proxy", replicas=1, labels={"app.kubernetes.io/name": "fault-proxy"})
    cluster.add_statefulset(NS, "feature-store", replicas=2, labels={"app": "feature-store"})
    cluster.put(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "model-server", "namespace": NS},
                           "spec": {"selector": dict(APP), "ports": [{"name": "http", "port": 8000,
                                                                      "targetPort": "http"}]}})
    steps: list[tuple[str, Callable[[], object]]] = []
    state: dict[str, dict] = {}

    def step(name: str, run: Callable[[], object], keep: str | None = None) -> None:
        steps.append((name, lambda: state.__setitem__(keep, run()) if keep else run()))

    step("delete_pods", lambda: actions.delete_pods(NS, SELECTOR, count=1, **conn))
    step("delete_pods(keep_down)", lambda: actions.delete_pods(NS, SELECTOR, count=1, keep_down=60, **conn),
         keep="hold")
    step("restore_scale", lambda: actions.restore_scale(**{**state["hold"]["undo"]["arguments"]}))
    step("delete_pods(keep_down, statefulset)", lambda: actions.delete_pods(
        NS, "app=feature-store", name_pattern="-1$", keep_down=60, **conn), keep="sts")
    step("restore_scale(statefulset)", lambda: actions.restore_scale(NS, ["statefulset/feature-store"], **conn))
    step("scale_workload", lambda: actions.scale_workload("model-server", NS, 1, ttl=None, **conn), keep="scale")
    step("restore_scale", lambda: actions.restore_scale(NS, ["model-server"], **conn))
    step("scale_workload(statefulset)", lambda: actions.scale_workload("feature-store", NS, 0, kind="StatefulSet",
                                                                       ttl=None, **conn))
    step("restore_scale(statefulset)", lambda: actions.restore_scale(NS, ["statefulset/feature-store"], **conn))
    step("swap_tls_certificate", lambda: actions.swap_tls_certificate(
        "model-server-tls", NS, "expired", ca_secret="model-serving-ca", restart=["model-server"], ttl=None, **conn),
        keep="tls")
    step("restore_secret", lambda: actions.restore_secret(**state["tls"]["undo"]["arguments"]))
    step("block_metrics_port", lambda: actions.block_metrics_port(8000, NS, SELECTOR, ttl=None, **conn),
         keep="block")
    step("unblock_metrics_port", lambda: actions.unblock_metrics_port(**state["block"]["undo"]["arguments"]))
    step("block_metrics_port", lambda: actions.block_metrics_port(8000, NS, SELECTOR, ttl=None, **conn))
    step("unblock_metrics_port(static)", lambda: actions.unblock_metrics_port(NS, **conn))
    step("remove_scrape_annotation", lambda: actions.remove_scrape_annotation(NS, SELECTOR, ttl=None, **conn),
         keep="scrape")
    step("restore_scrape_annotation", lambda: actions.restore_scrape_annotation(
        **state["scrape"]["undo"]["arguments"]))
    step("route_through_proxy", lambda: actions.route_through_proxy(
        "model-server", NS, {"app.kubernetes.io/name": "fault-proxy"}, 18000, ttl=None, **conn), keep="route")
    step("restore_service", lambda: actions.restore_service(**state["route"]["undo"]["arguments"]))
    step("pods_ready / ready_pod_count / restart_counts / total_restarts", lambda: (
        probes.pods_ready(NS, SELECTOR, **conn), probes.ready_pod_count(NS, SELECTOR, **conn),
        probes.restart_counts(NS, SELECTOR, **conn), probes.total_restarts(NS, SELECTOR, **conn)))
    step("ready_replicas", lambda: probes.ready_replicas("model-server", NS, **conn))
    step("ready_replicas(statefulset)", lambda: probes.ready_replicas("feature-store", NS, "StatefulSet", **conn))
    step("deployment_available", lambda: probes.deployment_available("model-server", NS, **conn))
    step("events_since_fault / event_count", lambda: (probes.events_since_fault(NS, since_seconds=60, **conn),
                                                     probes.event_count(NS, **conn)))
    calls: dict[str, list[ApiCall]] = {}
    for name, run in steps:
        cluster.clear_calls()
        run()
        calls.setdefault(name, []).extend(cluster.calls)
    assert cluster.list(NETWORKPOLICIES, NS) == []
    return calls


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> dict[str, list[ApiCall]]:
    with EmulatedCluster(tmp_path_factory.mktemp("k8s")) as cluster:
        return tour(cluster)


def test_every_call_the_driver_makes_is_granted_by_the_role(calls):
    rules = role_rules()
    refused = sorted({f"{name}: {c.verb} {c.group}/{c.resource} {c.name or ''}" for name, made in calls.items()
                      for c in made if not allowed(rules, c)})
    assert refused == []


def test_the_role_grants_nothing_the_driver_does_not_use(calls):
    used = [c for made in calls.values() for c in made]
    unused = []
    for rule in role_rules():
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    names = rule.get("resourceNames") or [None]
                    for name in names:
                        if not any((c.group, c.resource, c.verb) == (group, resource, verb)
                                   and (name is None or c.name == name) for c in used):
                            unused.append(f"{verb} {group}/{resource} {name or ''}".strip())
    assert unused == []


def test_each_function_makes_exactly_the_documented_calls(calls):
    found = {name: {f"{c.verb} {c.group}/{c.resource}" for c in made} for name, made in calls.items()}
    assert found == EXPECTED


def test_the_documentation_lists_the_same_calls():
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    for name, needed in EXPECTED.items():
        for call in needed:
            verb, _, resource = call.partition(" ")
            assert f"{verb} {resource.lstrip('/')}" in text, f"docs/kubernetes.md misses {call!r} ({name})"
