"""The Role in deploy/kubernetes/rbac.yaml grants exactly what the Kubernetes driver calls.

Every driver function runs once (a happy path, the rollbacks both from their record and from
an experiment's static arguments; tests/support/kubernetes_tour.py) against kmock's emulator,
a stand-in for an API server (none runs on this machine), which logs each request as (verb,
API group, resource[/subresource], name). The test then checks: every request is granted by
the Role (resourceNames included), every rule of the Role was needed by some request, and
each function made exactly the calls the table below (and docs/kubernetes.md) documents for
it. And the Role grants no read of a CA, and every write verb it grants that could escalate
is held by the admission policy (test_kubernetes_admission.py tests what the policy allows).
The emulated controller is not needed: no test here waits for pods.
"""

from __future__ import annotations

import pytest
import yaml

from tests.support.admission_policy import Policies
from tests.support.kubernetes_emulator import ApiCall, EmulatedCluster
from tests.support.kubernetes_tour import NS, tour
from tests.support.paths import ROOT

RBAC = ROOT / "deploy" / "kubernetes" / "rbac.yaml"
# write grants no admission policy holds, because they cannot escalate: a deleted pod is recreated by its
# controller from the same template; the scale subresource changes nothing but a replica count
# a request forwarded through the service proxy to one named Service port changes no object (the fault proxy's API
# checks its own token)
NOT_ESCALATING = {("", "pods", "delete"), ("apps", "deployments/scale", "patch"),
                  ("apps", "statefulsets/scale", "patch"), ("", "services/proxy", "create"),
                  ("", "services/proxy", "delete")}
WRITE_VERBS = {"create": "CREATE", "update": "UPDATE", "patch": "UPDATE", "delete": "DELETE",
               "deletecollection": "DELETE"}

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
    "add_rule_file(prometheusrule)": {"create monitoring.coreos.com/prometheusrules"},
    "remove_rule_file(prometheusrule)": {"get monitoring.coreos.com/prometheusrules",
                                         "delete monitoring.coreos.com/prometheusrules"},
    "service proxy: model-server": {"get /services/proxy", "create /services/proxy"},
    "service proxy: fault-proxy": {"get /services/proxy", "create /services/proxy", "delete /services/proxy"},
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


def role_rules(namespace: str = NS) -> list[dict]:
    documents = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    (role,) = [d for d in documents if d["kind"] == "Role" and d["metadata"]["namespace"] == namespace]
    return role["rules"]


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> dict[str, list[ApiCall]]:
    with EmulatedCluster(tmp_path_factory.mktemp("k8s")) as cluster:
        return tour(cluster).calls


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


def test_the_role_reads_no_certificate_authority():
    """The bad certificates come from a throw-away CA: the runner needs no CA Secret, and none is granted."""
    secrets = [r for r in role_rules() if "secrets" in r["resources"]]
    assert [sorted(r["resourceNames"]) for r in secrets] == [["mlchaos-backups", "model-server-tls"]]


def test_every_write_the_role_grants_is_held_by_the_admission_policy():
    """RBAC cannot limit a patch to fields nor a create or delete to mlchaos' own objects: each such grant must be
    matched by a ValidatingAdmissionPolicy for the runner, or be one of the few that cannot escalate."""
    policies = Policies()
    unheld = []
    for rule in role_rules():
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    if verb in WRITE_VERBS and (group, resource, verb) not in NOT_ESCALATING \
                            and not policies.matched_by(group, resource, WRITE_VERBS[verb]):
                        unheld.append(f"{verb} {group}/{resource}")
    assert unheld == []
    assert policies.matched_by("", "pods", "DELETE") == []  # the exemptions are what they say


def test_the_monitoring_role_only_reads_prometheus_and_alertmanager_through_the_service_proxy():
    """Namespace monitoring: GET through the service proxy to the two kube-prometheus-stack ports, nothing else
    (tests/integration/test_kubernetes_service_proxy.py makes those requests through the emulator)."""
    assert role_rules("monitoring") == [{"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"],
                                         "resourceNames": ["http:prometheus-operated:9090",
                                                           "http:alertmanager-operated:9093"]}]
    documents = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    bindings = {(d["metadata"]["namespace"], d["roleRef"]["name"]): d["subjects"] for d in documents
                if d["kind"] == "RoleBinding"}
    runner = [{"kind": "ServiceAccount", "name": "mlchaos", "namespace": "mlchaos"}]
    assert bindings == {(NS, "mlchaos-drills"): runner, ("monitoring", "mlchaos-monitoring"): runner}
