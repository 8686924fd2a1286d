"""Kubernetes latency fault: route a Service through the fault-proxy pods (with a latency toxic), and restore_service.

The Service's previous selector and ports (and the toxic added) are kept in its
``mlchaos.io/service-backup`` annotation. Part of :mod:`drivers.kubernetes.actions`
(experiments and change records name the functions there).
"""

from __future__ import annotations

from typing import Any

from drivers._common import checks
from drivers.kubernetes import backups, selection
from drivers.kubernetes.backups import SERVICE_BACKUP
from drivers.kubernetes.client import Connection
from drivers.kubernetes.faults import (
    ROLLBACKS,
    SAFETY_TTL,
    Selector,
    change_id,
    equality_terms,
    read_backup,
    stop_watchdogs,
    undo,
)
from drivers.kubernetes.targets import DRIVER, connect_namespace, pod_ready
from mlchaos.driver_kit import ChangeRecord, DriverError, Target, announce, undo_function


def route_through_proxy(
    service: str, namespace: str, proxy_selector: Selector, proxy_port: int, port: int | str | None = None,
    latency_ms: float | None = None, jitter_ms: float = 0.0, proxy_url: str | None = None,
    proxy_name: str | None = None, ttl: float | None = SAFETY_TTL,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Point a Service at the fault-proxy pods (`proxy_selector`, `proxy_port`), optionally with a latency toxic.

    The Service's selector becomes `proxy_selector` and the chosen `port`'s targetPort becomes
    `proxy_port` (deploy/kubernetes/fault-proxy.yaml: the proxy forwards to a second Service
    that still selects the model pods). With `latency_ms`, a latency toxic (`jitter_ms`, expiring
    after `ttl`) is added first through the proxy's Toxiproxy API at `proxy_url`, on proxy
    `proxy_name` (default: the Service's name). Refused unless a proxy pod is ready. The
    Service's previous selector and ports are kept in its ``mlchaos.io/service-backup``
    annotation; undo: restore_service.
    """
    from drivers.proxy.client import api_url, call, check_toxic, get_proxy  # imports requests: only when needed

    selection.check_namespace(namespace)
    target_selector = dict(equality_terms(proxy_selector, "proxy_selector"))
    checks.port("proxy_port", proxy_port)
    checks.ttl(ttl)
    toxic = None
    if latency_ms is not None:
        if proxy_url is None:
            raise DriverError("latency_ms needs proxy_url: the fault proxy's Toxiproxy-compatible API")
        attributes = {"latency": latency_ms, "jitter": jitter_ms}
        check_toxic("latency", attributes, "downstream", 1.0, ttl)
        toxic = {"url": api_url(proxy_url), "proxy": proxy_name or service, "name": f"mlchaos-latency-{change_id()}",
                 "attributes": attributes}
    conn = connect_namespace(namespace, kubeconfig, context, in_cluster, configuration)
    obj = conn.call(f"get service {namespace}/{service}", "core", "read_namespaced_service", service, namespace)
    backups.refuse_skipped(obj, "Service")
    backups.refuse_stacked(obj, SERVICE_BACKUP, "route_through_proxy", "restore_service")
    spec = obj.get("spec") or {}
    if spec.get("type") == "ExternalName" or not spec.get("selector"):
        raise DriverError(f"service {namespace}/{service} has no pod selector: nothing to reroute")
    ports = [dict(p) for p in spec.get("ports") or []]
    index = _service_port(ports, port, f"{namespace}/{service}")
    ready = _ready_proxy_pods(conn, namespace, target_selector)
    if toxic is not None:
        get_proxy(toxic["url"], toxic["proxy"])  # refuse before changing anything when it is not there
    change = change_id()
    new_ports = [dict(p) for p in ports]
    new_ports[index]["targetPort"] = proxy_port
    backup = {"selector": spec.get("selector"), "ports": ports, "change": change, "toxic": toxic}
    meta = obj.get("metadata") or {}
    target = Target(kind="service", name=service, details={
        "namespace": namespace, "labels": dict(meta.get("labels") or {}), "uid": meta.get("uid"),
        "selector": spec.get("selector"), "ports": ports})
    listed = conn.call(f"list services in {namespace}", "core", "list_namespaced_service", namespace) or {}
    population = [s["metadata"]["name"] for s in listed.get("items") or []
                  if not selection.is_skipped(s["metadata"].get("labels") or {})]
    record = ChangeRecord(driver=DRIVER, action="route-through-proxy", targets=[target],
                          parameters={"namespace": namespace, "service": service, "selector": target_selector,
                                      "port": ports[index].get("port"), "proxy_port": proxy_port,
                                      "proxy_pods": ready, "toxic": toxic, "change": change, "ttl": ttl},
                          undo=undo("restore_service", conn, namespace=namespace, service=service, uid=meta.get("uid")),
                          dry_run=dry_run, environment=conn.environment, population=population)
    announce(record)
    if dry_run:
        return record.to_dict()
    if toxic is not None:
        call("POST", toxic["url"], f"/proxies/{toxic['proxy']}/toxics",
             {"name": toxic["name"], "type": "latency", "stream": "downstream", "toxicity": 1.0,
              "attributes": toxic["attributes"], "ttl": float(ttl) if ttl is not None else SAFETY_TTL})
    patch = backups.add_annotation_ops(obj, SERVICE_BACKUP, backups.encode(backup))
    patch += [{"op": "replace", "path": "/spec/selector", "value": target_selector},
              {"op": "replace", "path": "/spec/ports", "value": new_ports}]
    try:
        conn.call(f"reroute service {namespace}/{service}", "core", "patch_namespaced_service", service, namespace,
                  body=backups.guarded(obj, patch))
    except Exception:
        if toxic is not None:
            call("DELETE", toxic["url"], f"/proxies/{toxic['proxy']}/toxics/{toxic['name']}", missing_ok=True)
        raise
    if ttl is not None:
        ROLLBACKS.start_watchdog(record, ttl, "restore_service", dict(record.undo["arguments"]))
    return record.to_dict()


@undo_function
def restore_service(
    namespace: str, service: str, uid: str | None = None,
    kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None, watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back route_through_proxy: the Service's exact previous selector and ports, and the toxic removed.

    Idempotent: the state comes from the Service's ``mlchaos.io/service-backup`` annotation,
    which is removed last (a failed toxic removal leaves it, so a second call retries).
    """
    from drivers.proxy.client import call

    found = read_backup("service", namespace, service, uid, SERVICE_BACKUP, watchdog_pid, kubeconfig, context,
                        in_cluster, configuration)
    if isinstance(found, dict):
        return found
    conn, obj, raw, backup = found
    spec = obj.get("spec") or {}
    result = "already restored"
    if spec.get("selector") != backup["selector"] or spec.get("ports") != backup["ports"]:
        conn.call(f"restore service {namespace}/{service}", "core", "patch_namespaced_service", service, namespace,
                  body=[{"op": "test", "path": backups.annotation_path(SERVICE_BACKUP), "value": raw},
                        {"op": "replace", "path": "/spec/selector", "value": backup["selector"]},
                        {"op": "replace", "path": "/spec/ports", "value": backup["ports"]}])
        result = "restored"
    toxic_result = None
    toxic = backup.get("toxic")
    if toxic:
        existed = call("GET", toxic["url"], f"/proxies/{toxic['proxy']}/toxics/{toxic['name']}", missing_ok=True)
        if existed is not None:
            call("DELETE", toxic["url"], f"/proxies/{toxic['proxy']}/toxics/{toxic['name']}", missing_ok=True)
        toxic_result = "removed" if existed is not None else "already gone (removed or expired)"
    conn.call(f"remove the backup of service {namespace}/{service}", "core", "patch_namespaced_service", service,
              namespace, body=[{"op": "test", "path": backups.annotation_path(SERVICE_BACKUP), "value": raw},
                               {"op": "remove", "path": backups.annotation_path(SERVICE_BACKUP)}])
    stop_watchdogs("restore_service", namespace, {service}, "service")
    return {"service": service, "result": result, "toxic": toxic_result,
            "already": [] if result == "restored" else [service]}


def _ready_proxy_pods(conn: Connection, namespace: str, labels: dict[str, str]) -> list[str]:
    text = ",".join(f"{k}={v}" for k, v in labels.items())
    listed = conn.call(f"list pods in {namespace}", "core", "list_namespaced_pod", namespace,
                       label_selector=text) or {}
    chooser = selection.parse_label_selector(labels)
    assert chooser is not None
    ready = sorted(p["metadata"]["name"] for p in listed.get("items") or []
                   if chooser.matches(p["metadata"].get("labels")) and pod_ready(p))
    if not ready:
        raise DriverError(f"no ready fault-proxy pod matches {text} in {namespace}: rerouting the Service there "
                          "would be an outage, not latency (deploy/kubernetes/fault-proxy.yaml)")
    return ready


def _service_port(ports: list[dict[str, Any]], port: int | str | None, where: str) -> int:
    if not ports:
        raise DriverError(f"service {where} has no ports")
    if port is None:
        if len(ports) > 1:
            raise DriverError(f"service {where} has {len(ports)} ports: say which with port "
                              f"({', '.join(str(p.get('name') or p.get('port')) for p in ports)})")
        return 0
    for index, entry in enumerate(ports):
        if port in (entry.get("port"), entry.get("name")):
            return index
    raise DriverError(f"service {where} has no port {port!r}")
