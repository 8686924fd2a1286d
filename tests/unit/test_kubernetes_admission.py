"""The ValidatingAdmissionPolicies of deploy/kubernetes/admission-policy.yaml, evaluated with cel-python.

No API server runs on this machine. The driver's writes come from the API emulator
(tests/support/kubernetes_emulator.py), which runs every action of the tour
(tests/support/kubernetes_tour.py) on the reference stack as a server holds it, with the
policies enforced (tests/support/admission_policy.py). Each create, patch and delete is kept
with the object before and after. The tests here check that every one of those writes is
admitted. They then turn each kind of write into an escalation (a new image,
serviceAccountName or hostPath volume, externalIPs, a LoadBalancer, a foreign NetworkPolicy
deleted, a Secret created...) and check that the policy denies it, for the right reason.

Untested here, because it needs a real API server: cel-go's compilation and type checking of
these expressions against the OpenAPI schemas, CEL library differences between celpy and
Kubernetes' cel-go, the admission chain (defaulting, the Scale object of the scale
subresource), and the user name a real authenticator gives matchConditions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from drivers.kubernetes import client
from mlchaos.errors import DriverError
from tests.support.admission_policy import RUNNER, Policies, Request
from tests.support.kubernetes_emulator import DEPLOYMENTS, EmulatedCluster, Write
from tests.support.kubernetes_tour import NS, TourLog, tour

POLICIES = Policies()
HOST_PATH = {"name": "host", "hostPath": {"path": "/", "type": "Directory"}}


@pytest.fixture(scope="module")
def enforced(tmp_path_factory) -> tuple[EmulatedCluster, TourLog]:
    """The tour, with the emulator refusing every write the policies deny (as a real server would)."""
    with EmulatedCluster(tmp_path_factory.mktemp("k8s"), admission=POLICIES.admission()) as cluster:
        yield cluster, tour(cluster)


@pytest.fixture(scope="module")
def log(enforced) -> TourLog:
    return enforced[1]


def request(write: Write, username: str = RUNNER) -> Request:
    operation = {"create": "CREATE", "patch": "UPDATE", "delete": "DELETE"}[write.call.verb]
    name = write.call.name or (write.new or {}).get("metadata", {}).get("name")
    return Request(operation, write.call.group, write.call.resource, write.call.namespace, name,
                   copy.deepcopy(write.new), copy.deepcopy(write.old), username)


def written(log: TourLog, step: str, verb: str, resource: str) -> Write:
    """The first write of a kind the tour's step made."""
    return next(w for w in log.writes[step] if (w.call.verb, w.call.resource) == (verb, resource))


def changed(write: Write, change: Callable[[dict[str, Any]], object], username: str = RUNNER) -> list[str]:
    """The denials of the write's request with ``change`` applied to the object it asks for."""
    asked = request(write, username)
    target = asked.object if asked.object is not None else asked.old_object
    change(target)
    return POLICIES.denials(asked)


def container(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    return spec["containers"][0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


# -- what the driver really sends ---------------------------------------------------------------------


def test_the_policy_file_parses_and_every_policy_is_bound():
    assert sorted(p.name for p in POLICIES.policies) == [
        "mlchaos-deployments", "mlchaos-networkpolicies", "mlchaos-pods", "mlchaos-prometheusrules", "mlchaos-secrets",
        "mlchaos-services", "mlchaos-statefulsets"]
    for policy in POLICIES.policies:  # each holds the runner's ServiceAccount, nobody else
        assert [e for e, _ in policy.conditions] == [f"request.userInfo.username == '{RUNNER}'"], policy.name
    assert len(POLICIES.expressions()) > 40  # each compiled by celpy when the file was read


def test_every_write_of_every_action_is_admitted(log):
    """The tour ran with the policies enforced; here each write is decided again, and each policy held some."""
    held: set[str] = set()
    for step, writes in log.writes.items():
        for write in writes:
            assert POLICIES.denials(request(write)) == [], f"{step}: {write.call.verb} {write.call.resource}"
            held.update(p.name for p in POLICIES.policies if p.matches(request(write)))
    assert held == {p.name for p in POLICIES.policies}
    faults = [s for s in log.writes if not s.startswith(("pods_ready", "ready_", "deployment_", "events_",
                                                         "service proxy"))]
    assert all(log.writes[s] for s in faults)  # every fault and rollback wrote something the policies saw


def test_the_policies_hold_only_the_runner(log):
    """matchConditions: the same image change by another user (a deploy pipeline) is none of these policies'
    business; by the runner it is denied."""
    write = written(log, "swap_tls_certificate", "patch", "deployments")
    new_image = lambda d: container(d).__setitem__("image", "evil/miner:latest")  # noqa: E731
    assert changed(write, new_image, "system:serviceaccount:ci:deployer") == []
    assert changed(write, new_image) != []


def test_an_escalation_sent_through_the_api_is_refused_with_the_policys_reason(enforced):
    """End to end through the emulator: the driver's own connection patches an image, the write is refused (403)
    before it is stored, and the driver's error names the admission policy, not RBAC."""
    cluster, _ = enforced
    conn = client.connect(**cluster.connection())
    before = cluster.get(DEPLOYMENTS, NS, "model-server")
    patch = {"spec": {"template": {"spec": {"containers": [{**container(before), "image": "evil/miner:latest"}]}}}}
    with pytest.raises(DriverError, match="denied by an admission policy .*mlchaos-deployments.*pod template spec"):
        conn.call("patch", "apps", "patch_namespaced_deployment", "model-server", NS, body=patch)
    assert cluster.get(DEPLOYMENTS, NS, "model-server") == before


# -- escalations ------------------------------------------------------------------------------------


WORKLOAD_ESCALATIONS: dict[str, Callable[[dict[str, Any]], object]] = {
    "a new image": lambda o: container(o).__setitem__("image", "evil/miner:latest"),
    "a new serviceAccountName": lambda o: pod_spec(o).__setitem__("serviceAccountName", "cluster-admin"),
    "a hostPath volume": lambda o: pod_spec(o).setdefault("volumes", []).append(HOST_PATH),
    "a privileged securityContext": lambda o: container(o).__setitem__("securityContext", {"privileged": True}),
    "an env variable": lambda o: container(o).setdefault("env", []).append({"name": "LD_PRELOAD", "value": "/x"}),
    "a second container": lambda o: pod_spec(o)["containers"].append({"name": "side", "image": "evil/sidecar"}),
    "hostNetwork": lambda o: pod_spec(o).__setitem__("hostNetwork", True),
    "another label": lambda o: o["metadata"].setdefault("labels", {}).__setitem__("app.kubernetes.io/name", "x"),
    "another annotation": lambda o: o["metadata"].setdefault("annotations", {}).__setitem__("sidecar.istio.io/x", "y"),
    "no ownerReferences": lambda o: o["metadata"].__setitem__("ownerReferences", []),
    "a finalizer": lambda o: o["metadata"].__setitem__("finalizers", ["example.com/hold"]),
}


@pytest.mark.parametrize("escalation", sorted(set(WORKLOAD_ESCALATIONS) - {"no ownerReferences"}))
@pytest.mark.parametrize(("step", "resource", "policy"), [
    ("swap_tls_certificate", "deployments", "mlchaos-deployments"),
    ("delete_pods(keep_down, statefulset)", "statefulsets", "mlchaos-statefulsets"),
])
def test_workload_escalations_are_denied(log, step, resource, policy, escalation):
    denials = changed(written(log, step, "patch", resource), WORKLOAD_ESCALATIONS[escalation])
    assert denials and all(f"'{policy}'" in d for d in denials)


@pytest.mark.parametrize("escalation", sorted(WORKLOAD_ESCALATIONS))
@pytest.mark.parametrize("step", ["block_metrics_port", "remove_scrape_annotation", "delete_pods(keep_down)"])
def test_pod_escalations_are_denied(log, step, escalation):
    denials = changed(written(log, step, "patch", "pods"), WORKLOAD_ESCALATIONS[escalation])
    assert denials and all("'mlchaos-pods'" in d for d in denials)


@pytest.mark.parametrize(("escalation", "change", "reason"), [
    ("replicas through the Deployment", lambda d: d["spec"].__setitem__("replicas", 50), "replicas"),
    ("paused", lambda d: d["spec"].__setitem__("paused", True), "paused"),
    ("a strategy", lambda d: d["spec"].__setitem__("strategy", {"type": "Recreate"}), "strategy"),
])
def test_deployment_fields_beyond_the_actions_are_denied(log, escalation, change, reason):
    denials = changed(written(log, "swap_tls_certificate", "patch", "deployments"), change)
    assert denials and all(reason in d for d in denials)


@pytest.mark.parametrize(("escalation", "change", "reason"), [
    ("a template label", lambda d: d["spec"]["template"]["metadata"]["labels"].__setitem__("tier", "x"),
     "labels of a"),
    ("a template annotation", lambda d: d["spec"]["template"]["metadata"].setdefault("annotations", {}).__setitem__(
        "container.apparmor.security.beta.kubernetes.io/model-server", "unconfined"), "restartedAt"),
])
@pytest.mark.parametrize(("step", "resource"), [("swap_tls_certificate", "deployments"),
                                                ("scale_workload(statefulset)", "statefulsets")])
def test_pod_template_metadata_beyond_the_restart_is_denied(log, step, resource, escalation, change, reason):
    denials = changed(written(log, step, "patch", resource), change)
    assert denials and all(reason in d for d in denials)


@pytest.mark.parametrize(("escalation", "change"), [
    ("a volumeClaimTemplate", lambda s: s["spec"]["volumeClaimTemplates"].append({"metadata": {"name": "more"}})),
    ("PVCs deleted on scale-down", lambda s: s["spec"]["persistentVolumeClaimRetentionPolicy"].__setitem__(
        "whenScaled", "Delete")),
    ("serviceName", lambda s: s["spec"].__setitem__("serviceName", "other")),
])
def test_statefulset_fields_beyond_the_actions_are_denied(log, escalation, change):
    denials = changed(written(log, "scale_workload(statefulset)", "patch", "statefulsets"), change)
    assert denials and all("volumeClaimTemplates" in d for d in denials)


@pytest.mark.parametrize(("escalation", "change", "reason"), [
    ("externalIPs", lambda s: s["spec"].__setitem__("externalIPs", ["203.0.113.7"]), "may not expose"),
    ("type LoadBalancer", lambda s: s["spec"].__setitem__("type", "LoadBalancer"), "may not expose"),
    ("type NodePort", lambda s: s["spec"].__setitem__("type", "NodePort"), "may not expose"),
    ("loadBalancerSourceRanges", lambda s: s["spec"].__setitem__("loadBalancerSourceRanges", ["0.0.0.0/0"]),
     "may not expose"),
    ("externalTrafficPolicy", lambda s: s["spec"].__setitem__("externalTrafficPolicy", "Local"), "may not expose"),
    ("a new port", lambda s: s["spec"]["ports"].append({"name": "admin", "port": 9000, "targetPort": 9000}),
     "targetPort"),
    ("another port number", lambda s: s["spec"]["ports"][0].__setitem__("port", 443), "targetPort"),
    ("a nodePort", lambda s: s["spec"]["ports"][0].__setitem__("nodePort", 30080), "targetPort"),
    ("no selector", lambda s: s["spec"].__setitem__("selector", {}), "without a pod selector"),
    ("clusterIP", lambda s: s["spec"].__setitem__("clusterIP", "10.96.0.99"), "clusterIP"),
    ("sessionAffinity", lambda s: s["spec"].__setitem__("sessionAffinity", "ClientIP"), "session affinity"),
    ("a label", lambda s: s["metadata"]["labels"].__setitem__("exposed", "true"), "labels"),
    ("an annotation", lambda s: s["metadata"].setdefault("annotations", {}).__setitem__(
        "service.beta.kubernetes.io/aws-load-balancer-internal", "false"), "mlchaos.io/service-backup"),
    ("a finalizer", lambda s: s["metadata"].__setitem__("finalizers", ["example.com/hold"]), "finalizers"),
    ("an owner", lambda s: s["metadata"].__setitem__("ownerReferences", [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u"}]), "ownerReferences"),
])
@pytest.mark.parametrize("step", ["route_through_proxy", "restore_service"])
def test_service_escalations_are_denied(log, step, escalation, change, reason):
    denials = changed(written(log, step, "patch", "services"), change)
    assert denials and all("'mlchaos-services'" in d and reason in d for d in denials)


def test_the_service_change_the_proxy_needs_is_admitted(log):
    """What route_through_proxy does: the selector to the proxy pods and the port's targetPort to the proxy's."""
    write = written(log, "route_through_proxy", "patch", "services")
    assert write.new["spec"]["selector"] != write.old["spec"]["selector"]
    assert write.new["spec"]["ports"][0]["targetPort"] == 18000 != write.old["spec"]["ports"][0]["targetPort"]
    assert POLICIES.denials(request(write)) == []


def _add(key: str, value: str) -> Callable[[dict[str, Any]], object]:
    return lambda s: s.setdefault("data", {}).__setitem__(key, value)


@pytest.mark.parametrize(("escalation", "step", "name", "change", "reason"), [
    ("another key", "swap_tls_certificate", "model-server-tls", _add("ca.key", "eA=="), "tls.crt and tls.key"),
    ("ca.crt changed", "swap_tls_certificate", "model-server-tls", _add("ca.crt", "eA=="), "tls.crt and tls.key"),
    ("tls.key removed", "swap_tls_certificate", "model-server-tls", lambda s: s["data"].pop("tls.key"),
     "tls.crt and tls.key"),
    ("its type", "swap_tls_certificate", "model-server-tls",
     lambda s: s.__setitem__("type", "kubernetes.io/service-account-token"), "type"),
    ("immutable", "swap_tls_certificate", "model-server-tls", lambda s: s.__setitem__("immutable", True), "immutable"),
    ("a label", "swap_tls_certificate", "model-server-tls",
     lambda s: s["metadata"].setdefault("labels", {}).__setitem__("x", "y"), "labels"),
    ("a backup annotation that describe prints", "swap_tls_certificate", "model-server-tls",
     lambda s: s["metadata"].setdefault("annotations", {}).__setitem__("mlchaos.io/secret-backup", "{...}"),
     "annotations"),
    ("a key of the backup Secret not its own", "swap_tls_certificate", "mlchaos-backups", _add("token", "eA=="),
     "secret.* keys"),
])
def test_secret_escalations_are_denied(log, escalation, step, name, change, reason):
    write = next(w for w in log.writes[step] if w.call.resource == "secrets" and w.call.name == name)
    denials = changed(write, change)
    assert denials and all("'mlchaos-secrets'" in d and reason in d for d in denials)


def test_no_other_secret_is_patched_created_or_deleted(log):
    write = written(log, "swap_tls_certificate", "patch", "secrets")
    other = request(write)
    other = Request("UPDATE", "", "secrets", NS, "model-serving-ca", other.object, other.old_object)
    token = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
             "metadata": {"name": "mlchaos-backups", "namespace": NS,
                          "annotations": {"kubernetes.io/service-account.name": "default"}}}
    create = Request("CREATE", "", "secrets", NS, "mlchaos-backups", token, None)
    delete = Request("DELETE", "", "secrets", NS, "mlchaos-backups", None, write.new)
    for asked in (other, create, delete):
        denials = POLICIES.denials(asked)
        assert any("only patch the Secrets model-server-tls, mlchaos-backups and mlchaos-receiver-token" in d
                   for d in denials), asked


def test_an_old_backup_annotation_may_be_removed_but_nothing_else(log):
    """restore_secret undoing a swap of an mlchaos before issue 15 removes the annotation it left."""
    write = written(log, "restore_secret", "patch", "secrets")
    assert write.call.name == "model-server-tls"
    legacy = request(write)
    legacy.old_object["metadata"]["annotations"] = {"mlchaos.io/secret-backup": "{...}", "owner": "platform"}
    legacy.object["metadata"]["annotations"] = {"owner": "platform"}
    assert POLICIES.denials(legacy) == []
    legacy.object["metadata"]["annotations"] = {}
    assert any("annotations" in d for d in POLICIES.denials(legacy))


def _own_policy_created(log: TourLog) -> Write:
    return written(log, "block_metrics_port", "create", "networkpolicies")


@pytest.mark.parametrize(("escalation", "change", "reason"), [
    ("another name", lambda p: p["metadata"].__setitem__("name", "allow-all"), "its own"),
    ("no managed-by label", lambda p: p["metadata"]["labels"].pop("app.kubernetes.io/managed-by"), "its own"),
    ("every pod selected", lambda p: p["spec"].__setitem__("podSelector", {}), "selects only"),
    ("other pods selected", lambda p: p["spec"]["podSelector"]["matchLabels"].__setitem__("app", "db"),
     "selects only"),
    ("pods of another change", lambda p: p["spec"]["podSelector"]["matchLabels"].__setitem__(
        "mlchaos.io/blocked", "other"), "selects only"),
    ("matchExpressions", lambda p: p["spec"]["podSelector"].__setitem__("matchExpressions", [
        {"key": "app", "operator": "Exists"}]), "selects only"),
    ("egress", lambda p: p["spec"].__setitem__("policyTypes", ["Ingress", "Egress"]), "ingress rules only"),
])
def test_network_policy_creations_beyond_its_own_are_denied(log, escalation, change, reason):
    denials = changed(_own_policy_created(log), change)
    assert denials and all("'mlchaos-networkpolicies'" in d for d in denials) and any(reason in d for d in denials)


def test_only_its_own_network_policies_are_deleted_and_none_updated(log):
    own = written(log, "unblock_metrics_port", "delete", "networkpolicies")
    assert POLICIES.denials(request(own)) == []
    foreign = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "default-deny", "namespace": NS, "labels": {"team": "platform"}},
               "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    denials = POLICIES.denials(Request("DELETE", "networking.k8s.io", "networkpolicies", NS, "default-deny", None,
                                       foreign))
    assert any("only its own" in d for d in denials)
    disguised = copy.deepcopy(own.old)  # an mlchaos-block-* name, but not mlchaos' labels
    disguised["metadata"]["labels"] = {}
    assert POLICIES.denials(Request("DELETE", "networking.k8s.io", "networkpolicies", NS,
                                    disguised["metadata"]["name"], None, disguised)) != []
    created = _own_policy_created(log).new
    update = Request("UPDATE", "networking.k8s.io", "networkpolicies", NS, created["metadata"]["name"], created,
                     created)
    assert any("never changes a NetworkPolicy in place" in d for d in POLICIES.denials(update))


# -- drill PrometheusRules ------------------------------------------------------------------------------


def _drill_rule_created(log: TourLog) -> Write:
    return written(log, "add_rule_file(prometheusrule)", "create", "prometheusrules")


@pytest.mark.parametrize(("escalation", "change", "reason"), [
    ("another name", lambda r: r["metadata"].__setitem__("name", "ml-serving-alerts"), "only its own"),
    ("no managed-by label", lambda r: r["metadata"]["labels"].pop("app.kubernetes.io/managed-by"), "only its own"),
    ("no drill label", lambda r: r["metadata"]["labels"].pop("mlchaos.io/drill"), "only its own"),
    ("no change label", lambda r: r["metadata"]["labels"].pop("mlchaos.io/change"), "only its own"),
    ("a recording rule", lambda r: r["spec"]["groups"][0]["rules"].append({"record": "up", "expr": "vector(0)"}),
     "alert rules only"),
    ("a rule both alert and record", lambda r: r["spec"]["groups"][0]["rules"][0].__setitem__("record", "up"),
     "alert rules only"),
])
def test_drill_rule_creations_beyond_its_own_are_denied(log, escalation, change, reason):
    denials = changed(_drill_rule_created(log), change)
    assert denials and all("'mlchaos-prometheusrules'" in d for d in denials) and any(reason in d for d in denials)


def test_only_its_own_drill_rules_are_deleted_and_none_updated(log):
    own = written(log, "remove_rule_file(prometheusrule)", "delete", "prometheusrules")
    assert POLICIES.denials(request(own)) == []
    foreign = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
               "metadata": {"name": "ml-serving-alerts", "namespace": NS,
                            "labels": {"app.kubernetes.io/managed-by": "mlchaos", "role": "alert-rules"}},
               "spec": {"groups": [{"name": "ml-serving", "rules": []}]}}
    denials = POLICIES.denials(Request("DELETE", "monitoring.coreos.com", "prometheusrules", NS, "ml-serving-alerts",
                                       None, foreign))
    assert any("only its own drill PrometheusRules" in d for d in denials)
    created = _drill_rule_created(log).new
    update = Request("UPDATE", "monitoring.coreos.com", "prometheusrules", NS, created["metadata"]["name"], created,
                     created)
    assert any("never changes a PrometheusRule in place" in d for d in POLICIES.denials(update))
