"""Every Kubernetes driver function, run once against the API emulator, on the reference stack as a server holds it.

No API server runs on this machine: the emulator (tests/support/kubernetes_emulator.py) stands
in for one. The objects are those of deploy/kubernetes/ (the model-server Deployment and
Service of model-serving.yaml, the fault proxy of fault-proxy.yaml, the backup Secret of
rbac.yaml), plus a StatefulSet and the TLS Secrets. Each gets the fields a real API server
adds when it stores it (defaults, clusterIP, revision annotation), so what the driver
patches looks like what it patches in a cluster.

tests/unit/test_kubernetes_rbac.py checks each function's calls against the Role;
tests/unit/test_kubernetes_admission.py checks each write against the admission policy.
"""

from __future__ import annotations

import base64
import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import yaml

from drivers.kubernetes import actions, probes
from drivers.kubernetes.service_proxy import ServiceUnreachable, open_service
from drivers.prometheus import actions as prometheus_actions
from mlchaos.lib import certificates as certs
from tests.support.kubernetes_emulator import (
    DEPLOYMENTS,
    NETWORKPOLICIES,
    SECRETS,
    SERVICES,
    STATEFULSETS,
    ApiCall,
    EmulatedCluster,
    Write,
)
from tests.support.paths import ROOT

DEPLOY = ROOT / "deploy" / "kubernetes"
NS = "ml-serving"  # the namespace the Role is for
APP = {"app.kubernetes.io/name": "model-server"}
SELECTOR = "app.kubernetes.io/name=model-server"


def manifest(file: str, kind: str, name: str) -> dict[str, Any]:
    """One object of a file of deploy/kubernetes/."""
    documents = [d for d in yaml.safe_load_all((DEPLOY / file).read_text()) if d]
    (found,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return copy.deepcopy(found)


def served_pod_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A pod spec with the defaults a real API server fills in."""
    spec = copy.deepcopy(spec)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("serviceAccountName", "default")
    for container in spec.get("containers") or []:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", "Always")
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in container:
                for key, value in (("timeoutSeconds", 1), ("successThreshold", 1), ("periodSeconds", 10),
                                   ("failureThreshold", 3)):
                    container[probe].setdefault(key, value)
    for volume in spec.get("volumes") or []:
        for source in ("secret", "configMap"):
            if source in volume:
                volume[source].setdefault("defaultMode", 420)
    return spec


def served_workload(obj: dict[str, Any]) -> dict[str, Any]:
    """A Deployment or StatefulSet with the defaults a real API server fills in."""
    obj = copy.deepcopy(obj)
    meta, spec = obj["metadata"], obj["spec"]
    meta["generation"] = 1
    spec.setdefault("revisionHistoryLimit", 10)
    spec["template"]["spec"] = served_pod_spec(spec["template"]["spec"])
    if obj["kind"] == "Deployment":
        meta.setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "1"
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%",
                                                                                "maxSurge": "25%"}})
    else:
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    obj["status"] = {}
    return obj


def served_service(obj: dict[str, Any], cluster_ip: str) -> dict[str, Any]:
    """A Service with what a real API server fills in: its clusterIP, type, IP families, traffic policy."""
    obj = copy.deepcopy(obj)
    spec = obj["spec"]
    spec.setdefault("type", "ClusterIP")
    spec.update({"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ipFamilies": ["IPv4"],
                 "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster", "sessionAffinity": "None"})
    return obj


def feature_store() -> dict[str, Any]:
    """A StatefulSet (none ships in deploy/kubernetes/): the keep-down and scale faults' other kind."""
    labels = {"app": "feature-store"}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "feature-store", "namespace": NS, "labels": dict(labels)},
            "spec": {"replicas": 2, "serviceName": "feature-store", "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [{
                         "name": "store", "image": "redis:7", "ports": [{"name": "redis", "containerPort": 6379}],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                         "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}


def seed(cluster: EmulatedCluster) -> None:
    """The reference stack in namespace ml-serving, as a real API server would hold it."""
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    ca = certs.CertificateAuthority.create("staging CA")
    cert, key, _ = certs.issue_certificate("valid", ["model-server.ml-serving.svc"], ca)
    cluster.put(SECRETS, {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                          "metadata": {"name": "model-server-tls", "namespace": NS},
                          "data": {"tls.crt": b64(certs.cert_pem(cert)), "tls.key": b64(certs.key_pem(key)),
                                   "ca.crt": b64(certs.cert_pem(ca.certificate))}})
    cluster.put(SECRETS, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",  # never read by mlchaos
                          "metadata": {"name": "model-serving-ca", "namespace": NS},
                          "data": {"ca.crt": b64(certs.cert_pem(ca.certificate)),
                                   "ca.key": b64(certs.key_pem(ca.key))}})
    cluster.put(SECRETS, manifest("rbac.yaml", "Secret", "mlchaos-backups"))
    cluster.add_workload(DEPLOYMENTS, served_workload(manifest("model-serving.yaml", "Deployment", "model-server")))
    cluster.add_workload(DEPLOYMENTS, served_workload(manifest("fault-proxy.yaml", "Deployment", "fault-proxy")))
    cluster.add_workload(STATEFULSETS, served_workload(feature_store()))
    cluster.put(SERVICES, served_service(manifest("model-serving.yaml", "Service", "model-server"), "10.96.0.20"))
    cluster.put(SERVICES, served_service(manifest("fault-proxy.yaml", "Service", "fault-proxy"), "10.96.0.21"))


DRILL_RULE = """\
groups:
  - name: drill-canary
    rules:
      - alert: DrillCanary
        expr: vector(1)
        labels: {severity: info}
"""


def add_drill_rule(conn: dict[str, Any]) -> dict[str, Any]:
    """add_rule_file's PrometheusRule form. promtool is not run: the tour is a unit test, and promtool's check of
    these rules is tested against the real binary in tests/integration/test_prometheus_operator_rules.py."""
    with mock.patch.object(prometheus_actions, "_check_rules", return_value=["drill-canary"]):
        return prometheus_actions.add_rule_file("canary", DRILL_RULE, namespace=NS,
                                                labels={"release": "kube-prometheus-stack"}, **conn)


def through_service_proxy(conn: dict[str, Any], service: str, port: int, methods: tuple[str, ...]) -> None:
    """Requests through the API server's service proxy (no endpoint runs in the tour: the API server answers 503
    after authorising, which is what RBAC sees)."""
    endpoint = open_service(NS, service, port, **conn)
    for method in methods:
        with contextlib.suppress(ServiceUnreachable):
            endpoint.session.request(method, endpoint.base_url + "/", json={} if method != "GET" else None)


@dataclass
class TourLog:
    """What each driver function of the tour sent: every request, and every write with the object before and after."""

    calls: dict[str, list[ApiCall]] = field(default_factory=dict)
    writes: dict[str, list[Write]] = field(default_factory=dict)


def tour(cluster: EmulatedCluster) -> TourLog:
    """Run every driver function once on the seeded stack (:func:`seed`): what each one sent."""
    seed(cluster)
    conn = cluster.connection()
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
        "model-server-tls", NS, "expired", restart=["model-server"], ttl=None, **conn), keep="tls")
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
    step("add_rule_file(prometheusrule)", lambda: add_drill_rule(conn), keep="rule")
    step("remove_rule_file(prometheusrule)", lambda: prometheus_actions.remove_rule_file(
        **state["rule"]["undo"]["arguments"]))
    step("service proxy: model-server", lambda: through_service_proxy(conn, "model-server", 8000, ("GET", "POST")))
    step("service proxy: fault-proxy", lambda: through_service_proxy(conn, "fault-proxy", 8474,
                                                                     ("GET", "POST", "DELETE")))
    step("pods_ready / ready_pod_count / restart_counts / total_restarts", lambda: (
        probes.pods_ready(NS, SELECTOR, **conn), probes.ready_pod_count(NS, SELECTOR, **conn),
        probes.restart_counts(NS, SELECTOR, **conn), probes.total_restarts(NS, SELECTOR, **conn)))
    step("ready_replicas", lambda: probes.ready_replicas("model-server", NS, **conn))
    step("ready_replicas(statefulset)", lambda: probes.ready_replicas("feature-store", NS, "StatefulSet", **conn))
    step("deployment_available", lambda: probes.deployment_available("model-server", NS, **conn))
    step("events_since_fault / event_count", lambda: (probes.events_since_fault(NS, since_seconds=60, **conn),
                                                     probes.event_count(NS, **conn)))
    log = TourLog()
    for name, run in steps:
        cluster.clear_calls()
        run()
        log.calls.setdefault(name, []).extend(cluster.calls)
        log.writes.setdefault(name, []).extend(cluster.writes)
    assert cluster.list(NETWORKPOLICIES, NS) == []
    return log


