"""deploy/kubernetes/ and experiments/k8s-*.yaml: they parse, carry what the API requires, refer to one another
correctly, the PrometheusRule is the current rendering of mlchaos.alert_rules, and every experiment validates.

(kubectl's client-side dry run needs an API server's discovery even offline, so the shapes are
checked here; the Role is checked against the driver's real calls in test_kubernetes_rbac.py.)
"""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from drivers.kubernetes import actions, manifests
from drivers.kubernetes.selection import selector_from_object
from mlchaos.experiment.loader import load_document
from mlchaos.experiment.validation import validate
from mlchaos.monitoring.alert_rules import ALERT_NAMES, STAGING, alert_rules
from tests.support.paths import ROOT

DEPLOY = ROOT / "deploy" / "kubernetes"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
API_VERSIONS = {
    "Namespace": "v1", "ServiceAccount": "v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1",
    "Deployment": "apps/v1", "CronJob": "batch/v1", "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1", "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1", "NetworkPolicy": "networking.k8s.io/v1",
    "ValidatingAdmissionPolicy": "admissionregistration.k8s.io/v1",
    "ValidatingAdmissionPolicyBinding": "admissionregistration.k8s.io/v1",
    "AlertmanagerConfig": "monitoring.coreos.com/v1alpha1",
}
NAMESPACED = set(API_VERSIONS) - {"Namespace", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
EXTERNAL_NAMESPACES = {"monitoring"}  # kube-prometheus-stack's, which the manifests read from but do not create


def objects() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path.name, document))
    return found


def by_kind(kind: str) -> list[dict]:
    return [o for _, o in objects() if o["kind"] == kind]


def pod_specs() -> list[tuple[dict, dict]]:
    """(pod template metadata, pod spec) of every workload."""
    found = [(d["spec"]["template"]["metadata"], d["spec"]["template"]["spec"]) for d in by_kind("Deployment")]
    found += [(c["spec"]["jobTemplate"]["spec"]["template"]["metadata"],
               c["spec"]["jobTemplate"]["spec"]["template"]["spec"]) for c in by_kind("CronJob")]
    return found


def test_the_manifests_parse_and_every_object_has_the_basics():
    found = objects()
    assert {name for name, _ in found} >= {"model-serving.yaml", "monitoring.yaml", "prometheus-rule.yaml",
                                           "fault-proxy.yaml", "rbac.yaml", "gameday-cronjob.yaml",
                                           "admission-policy.yaml", "notification-receiver.yaml"}
    declared_namespaces = {o["metadata"]["name"] for _, o in found if o["kind"] == "Namespace"} | EXTERNAL_NAMESPACES
    for name, obj in found:
        where = f"{name}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        assert obj.get("apiVersion") == API_VERSIONS[obj["kind"]], where
        assert DNS_SUBDOMAIN.match(obj["metadata"]["name"]), where
        if obj["kind"] in NAMESPACED:
            assert obj["metadata"].get("namespace") in declared_namespaces, where
        for key, value in (obj["metadata"].get("labels") or {}).items():
            assert isinstance(value, str) and len(value) <= 63, f"{where}: label {key}"


def test_workloads_have_what_the_api_requires():
    for deployment in by_kind("Deployment"):
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert selector_from_object(spec["selector"]).matches(labels), deployment["metadata"]["name"]
    for _, spec in pod_specs():
        ports = set()
        for container in spec["containers"]:
            assert DNS_LABEL.match(container["name"]) and container["image"]
            for port in container.get("ports") or []:
                assert len(port["name"]) <= 15 and 0 < port["containerPort"] < 65536
                ports.add(port["name"])
            for probe in ("readinessProbe", "livenessProbe"):
                target = (container.get(probe) or {}).get("httpGet")
                if target:
                    assert target["port"] in ports, f"{container['name']}: {probe} port {target['port']}"
            mounts = {m["name"] for m in container.get("volumeMounts") or []}
            assert mounts <= {v["name"] for v in spec.get("volumes") or []}
    for cronjob in by_kind("CronJob"):
        spec = cronjob["spec"]
        assert len(spec["schedule"].split()) == 5
        template = spec["jobTemplate"]["spec"]["template"]
        assert template["spec"]["restartPolicy"] in ("Never", "OnFailure")
        assert template["metadata"]["labels"].get("mlchaos.skip") == "true"  # the runner never targets itself


def test_services_select_pods_and_name_ports_the_pods_have():
    templates = pod_specs()
    for service in by_kind("Service"):
        chooser = selector_from_object({"matchLabels": service["spec"]["selector"]})
        selected = [spec for metadata, spec in templates if chooser.matches(metadata["labels"])]
        assert selected, f"service {service['metadata']['name']} selects no pod template"
        names = {p["name"] for spec in selected for c in spec["containers"] for p in c.get("ports") or []}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names or isinstance(port["targetPort"], int)


def test_the_service_monitor_scrapes_the_direct_service_as_job_model():
    (monitor,) = by_kind("ServiceMonitor")
    services = [s for s in by_kind("Service")
                if selector_from_object(monitor["spec"]["selector"]).matches(s["metadata"]["labels"])]
    assert [s["metadata"]["name"] for s in services] == ["model-server-pods"]  # not the rerouted client Service
    assert services[0]["metadata"]["labels"][monitor["spec"]["jobLabel"]] == STAGING.model_job
    ports = {p["name"] for p in services[0]["spec"]["ports"]}
    assert all(e["port"] in ports for e in monitor["spec"]["endpoints"])


def test_references_between_objects_resolve():
    accounts = {(a["metadata"]["namespace"], a["metadata"]["name"]) for a in by_kind("ServiceAccount")}
    maps = {(c["metadata"]["namespace"], c["metadata"]["name"]) for c in by_kind("ConfigMap")}
    for cronjob in by_kind("CronJob"):
        spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        namespace = cronjob["metadata"]["namespace"]
        assert (namespace, spec["serviceAccountName"]) in accounts
        for volume in spec["volumes"]:
            if "configMap" in volume:
                assert (namespace, volume["configMap"]["name"]) in maps
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in by_kind("Role")}
    for binding in by_kind("RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
        assert (binding["metadata"]["namespace"], binding["roleRef"]["name"]) in roles
        for subject in binding["subjects"]:
            assert (subject["namespace"], subject["name"]) in accounts
    for role in by_kind("Role"):
        for rule in role["rules"]:
            assert rule["apiGroups"] and rule["resources"] and rule["verbs"]
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]


def _proxy_container() -> dict:
    (deployment,) = [d for d in by_kind("Deployment") if d["metadata"]["name"] == "fault-proxy"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_the_fault_proxy_api_requires_the_token_the_runner_sends():
    container = _proxy_container()
    args = container["args"]
    assert args[args.index("--api") + 1] == "0.0.0.0:8474", "bound beyond loopback: the token is required"
    env = {e["name"]: e for e in container["env"]}
    proxy_ref = env["MLCHAOS_PROXY_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert proxy_ref.get("optional", False) is False, "the proxy must not start without its token"
    (cronjob,) = by_kind("CronJob")
    runner = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    runner_ref = {e["name"]: e for e in runner["env"]}["MLCHAOS_PROXY_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert (runner_ref["name"], runner_ref["key"]) == (proxy_ref["name"], proxy_ref["key"])
    assert "--strict-upstreams" in args  # only the configured upstream, never the pod's own loopback
    allowed_hosts = {args[i + 1] for i, a in enumerate(args) if a == "--allow-host"}
    assert "fault-proxy.ml-serving.svc" in allowed_hosts  # the name the runner's proxy_url uses
    assert "httpGet" not in container["readinessProbe"], "an unauthenticated probe would get 401"


def test_a_network_policy_admits_only_the_runner_to_the_proxy_api():
    (policy,) = [p for p in by_kind("NetworkPolicy") if p["metadata"]["name"] == "fault-proxy"]
    (deployment,) = [d for d in by_kind("Deployment") if d["metadata"]["name"] == "fault-proxy"]
    assert policy["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert selector_from_object(policy["spec"]["podSelector"]).matches(
        deployment["spec"]["template"]["metadata"]["labels"])
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    ports = {p["name"]: p["containerPort"] for p in _proxy_container()["ports"]}
    rules = policy["spec"]["ingress"]
    api_rules = [r for r in rules if any(p["port"] in ("api", ports["api"]) for p in r["ports"])]
    assert len(api_rules) == 1 and len(api_rules[0]["from"]) == 1
    (peer,) = api_rules[0]["from"]
    # the runner's pods, and only in the runner's namespace: both selectors in one peer (AND, not OR)
    (cronjob,) = by_kind("CronJob")
    runner_labels = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    runner_namespace = cronjob["metadata"]["namespace"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": runner_namespace}}
    pods = selector_from_object(peer["podSelector"])
    assert pods.matches(runner_labels)
    (model,) = [d for d in by_kind("Deployment") if d["metadata"]["name"] == "model-server"]
    assert not pods.matches(model["spec"]["template"]["metadata"]["labels"])
    # every other rule opens only the proxy port, never the API
    for rule in rules:
        if rule is not api_rules[0]:
            assert {p["port"] for p in rule["ports"]} == {"model-server"}
def test_the_admission_policies_are_bound_to_deny_and_hold_the_runners_service_account():
    """Every policy has a binding that denies (a policy without one does nothing), fails closed, and its match
    condition names the ServiceAccount rbac.yaml binds the Role to."""
    (subject,) = {(s["kind"], s["name"], s["namespace"]): s for b in by_kind("RoleBinding")
                  for s in b["subjects"]}.values()  # every Role is bound to the one ServiceAccount
    runner = f"system:serviceaccount:{subject['namespace']}:{subject['name']}"
    policies = {p["metadata"]["name"]: p for p in by_kind("ValidatingAdmissionPolicy")}
    bindings = {b["spec"]["policyName"]: b for b in by_kind("ValidatingAdmissionPolicyBinding")}
    assert policies and set(bindings) == set(policies)
    for name, policy in policies.items():
        assert bindings[name]["spec"]["validationActions"] == ["Deny"], name
        assert policy["spec"]["failurePolicy"] == "Fail", name
        assert [c["expression"] for c in policy["spec"]["matchConditions"]] == [
            f"request.userInfo.username == '{runner}'"], name


def test_the_backup_secret_is_shipped_empty_and_the_role_may_patch_it():
    (store,) = [s for s in by_kind("Secret") if s["metadata"]["name"] == actions.BACKUP_SECRET]
    (role,) = [r for r in by_kind("Role") if r["metadata"]["name"] == "mlchaos-drills"]
    assert store["type"] == "Opaque" and "data" not in store and "stringData" not in store
    assert store["metadata"]["namespace"] == role["metadata"]["namespace"]
    granted = [r for r in role["rules"] if actions.BACKUP_SECRET in (r.get("resourceNames") or [])]
    assert [sorted(r["verbs"]) for r in granted] == [["get", "patch"]]


def test_the_prometheus_rule_is_the_current_rendering_of_the_alert_rules():
    assert (DEPLOY / "prometheus-rule.yaml").read_text() == manifests.render(), \
        "deploy/kubernetes/prometheus-rule.yaml is stale: run python -m drivers.kubernetes.manifests"
    assert manifests.main(["--check"]) == 0
    (rule,) = by_kind("PrometheusRule")
    assert rule["spec"]["groups"][0]["rules"] == alert_rules(STAGING)
    assert [r["alert"] for r in rule["spec"]["groups"][0]["rules"]] == list(ALERT_NAMES)


def test_a_stale_rule_file_is_detected(tmp_path, capsys):
    stale = tmp_path / "prometheus-rule.yaml"
    stale.write_text(manifests.render().replace("for: 1m", "for: 2m", 1))
    assert manifests.main(["--check", "--output", str(stale)]) == 1
    assert "is stale" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("k8s-*.yaml")), ids=lambda p: p.name)
def test_the_kubernetes_experiments_validate(path):
    assert validate(load_document(path)) == []


def test_the_game_days_experiment_is_the_staging_one_with_in_cluster_credentials(tmp_path):
    (configmap,) = [c for c in by_kind("ConfigMap") if c["metadata"]["name"] == "mlchaos-gameday"]
    text = configmap["data"]["k8s-delete-pod.yaml"]
    (cronjob,) = by_kind("CronJob")
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mlchaos"] and container["args"][:2] == ["run", "/experiments/k8s-delete-pod.yaml"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLCHAOS_ALLOWED_ENVIRONMENTS"] == "kubernetes:in-cluster"
    path = tmp_path / "k8s-delete-pod.yaml"
    path.write_text(text)
    assert validate(load_document(path)) == []
    in_cluster = yaml.safe_load(text)
    staging = yaml.safe_load((ROOT / "experiments" / "k8s-delete-pod.yaml").read_text())
    assert in_cluster["configuration"].pop("kube_in_cluster") is True
    assert staging["configuration"].pop("kube_context") == "staging"
    expected = copy.deepcopy(staging)
    expected["extensions"][0]["allowed_environments"] = ["kubernetes:in-cluster"]
    assert in_cluster == expected


def test_the_receiver_is_reached_only_by_alertmanager_with_the_runners_token():
    """notification-receiver.yaml: the Service selects the runner pods on the port the CronJob names, the
    NetworkPolicy admits only Alertmanager's pods there, the AlertmanagerConfig posts to that Service with the
    token from the Secret shipped beside it (empty: each run takes its token from it and rotates it,
    tests/unit/test_receiver_token_rotation.py), in the namespace its alerts carry; the staging drill listens on
    that port and names that Secret."""
    (service,) = [s for s in by_kind("Service") if s["metadata"]["name"] == "mlchaos-receiver"]
    (cronjob,) = by_kind("CronJob")
    template = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert selector_from_object({"matchLabels": service["spec"]["selector"]}).matches(template["metadata"]["labels"])
    (port,) = service["spec"]["ports"]
    assert {"name": port["targetPort"], "containerPort": port["port"], "protocol": "TCP"} in container["ports"]
    assert "MLCHAOS_RECEIVER_TOKEN" not in {e["name"] for e in container["env"]}  # the run takes it from the Secret
    (policy,) = [p for p in by_kind("NetworkPolicy") if p["metadata"]["name"] == "mlchaos-receiver"]
    assert policy["metadata"]["namespace"] == service["metadata"]["namespace"] == "mlchaos"
    assert policy["spec"]["podSelector"]["matchLabels"] == service["spec"]["selector"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                             "podSelector": {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": port["port"]}]
    (config,) = by_kind("AlertmanagerConfig")
    assert config["metadata"]["namespace"] == "ml-serving"  # the operator matches namespace="ml-serving"
    route, (receiver,) = config["spec"]["route"], config["spec"]["receivers"]
    assert route["receiver"] == receiver["name"] and route["continue"] is True
    assert route["matchers"] == [{"name": "component", "value": "model-serving", "matchType": "="}]
    assert all(r["labels"]["component"] == "model-serving" for r in alert_rules(STAGING))
    (hook,) = receiver["webhookConfigs"]
    assert hook["url"] == f"http://mlchaos-receiver.mlchaos.svc:{port['port']}/alerts" and hook["sendResolved"]
    assert hook["httpConfig"]["authorization"] == {"type": "Bearer", "credentials": {
        "name": "mlchaos-receiver-token", "key": "token"}}
    (secret,) = [s for s in by_kind("Secret") if s["metadata"]["name"] == "mlchaos-receiver-token"]
    assert secret["metadata"]["namespace"] == config["metadata"]["namespace"] and "data" not in secret  # ships empty
    drill = load_document(ROOT / "experiments" / "staging" / "kserve-kill-pod-alerts.yaml").data
    (ext,) = [e for e in drill["extensions"] if e["name"] == "mlchaos"]
    assert ext["notifications"] == {"listen": f"0.0.0.0:{port['port']}", "token_kubernetes_secret": {
        "namespace": "ml-serving", "name": "mlchaos-receiver-token", "reload_seconds": 120}}
