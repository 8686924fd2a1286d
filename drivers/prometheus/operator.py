"""add_rule_file / remove_rule_file in a cluster where the Prometheus Operator manages rules: a PrometheusRule.

The rules (checked by promtool first, in :mod:`drivers.prometheus.actions`) become the
PrometheusRule ``mlchaos-drill-<name>`` in ``namespace``, carrying the labels the operator's
``ruleSelector`` wants (:mod:`drivers.kubernetes.prometheus_rules`). The operator writes it to
Prometheus as the rule file ``<namespace>-<object name>-<uid>.yaml``; with a Prometheus to ask (a declared ``endpoint``,
else ``url``: http(s), or ``k8s://monitoring/prometheus-operated:9090`` through the API server's
service proxy, else a declared ``prometheus`` endpoint) the action waits until that file's groups
are loaded and evaluated, and the rollback until they are gone. Without one it does not wait
(the record says ``loaded: not checked``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from drivers._common.endpoints import connection, endpoint_argument
from drivers._common.http import get_json
from drivers.kubernetes import prometheus_rules
from drivers.kubernetes.faults import change_id
from drivers.kubernetes.service_proxy import is_k8s_url, open_service
from drivers.kubernetes.targets import connect_namespace
from mlchaos.driver_kit import ChangeRecord, DriverError, Target, announce

UNDO_FUNC = "drivers.prometheus.actions.remove_rule_file"
HTTP_TIMEOUT = 5.0
DEFAULT_ENDPOINT = "prometheus"
Where = dict[str, Any]  # kubeconfig, context, in_cluster, configuration


def add_rule_object(name: str, text: str, groups: list[dict[str, Any]], source: str, namespace: str,
                    labels: dict[str, Any] | None, url: str | None, endpoint: str | None, timeout: float,
                    where: Where, dry_run: bool) -> dict[str, Any]:
    """Create the drill's PrometheusRule (see the module doc); the change record's undo deletes exactly it."""
    change = change_id()
    obj = prometheus_rules.drill_rule(name, namespace, groups, labels, change)
    object_name = obj["metadata"]["name"]
    conn = connect_namespace(namespace, **where)
    loaded, prometheus = _loaded_reader(url, endpoint, where)
    if loaded is not None:
        loaded(namespace, object_name, None)  # Prometheus answers (DriverError when not), before the announce
    arguments = {"name": name, "namespace": namespace, "change": change, **conn.where.arguments(),
                 **({"url": url} if url else {}), **endpoint_argument(endpoint)}
    group_names = [str(g["name"]) for g in groups]
    record = ChangeRecord(
        driver="prometheus", action="add-prometheus-rule",
        targets=[Target(kind="prometheus-rule", name=f"{namespace}/{object_name}", details={
            "namespace": namespace, "object": object_name, "groups": group_names, "labels": obj["metadata"]["labels"],
            "alerts": sorted({str(r["alert"]) for g in groups for r in g.get("rules") or [] if "alert" in r}),
            "prometheus_url": prometheus,
            "loaded": "waited for" if loaded else "not checked (no Prometheus url or endpoint)"})],
        parameters={"name": name, "source": source, "namespace": namespace, "change": change},
        undo={"func": UNDO_FUNC, "arguments": arguments},
        dry_run=dry_run, environment=conn.environment,
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    created = prometheus_rules.create(conn, obj)
    uid = (created.get("metadata") or {}).get("uid")
    record.undo["arguments"]["uid"] = uid
    if loaded is not None:
        try:
            _wait(lambda: sorted(loaded(namespace, object_name, uid)) == sorted(group_names), timeout,
                  f"Prometheus at {prometheus} did not load PrometheusRule {namespace}/{object_name}"
                  f" (groups {group_names}) within {timeout} s: does the operator's ruleSelector match its labels"
                  f" {obj['metadata']['labels']}?")
        except DriverError:
            prometheus_rules.delete(conn, namespace, object_name, change, uid)  # leave no half-applied fault
            raise
    return record.to_dict()


def remove_rule_object(name: str, namespace: str, change: str | None, uid: str | None, url: str | None,
                       endpoint: str | None, timeout: float, where: Where) -> dict[str, Any]:
    """Delete exactly the drill's PrometheusRule (labels, change, uid); with a Prometheus, wait until it drops it."""
    object_name = prometheus_rules.object_name(name)
    conn = connect_namespace(namespace, **where)
    result = prometheus_rules.delete(conn, namespace, object_name, change, uid)
    loaded, prometheus = _loaded_reader(url, endpoint, where) if result == "deleted" else (None, None)
    if loaded is not None:
        _wait(lambda: not loaded(namespace, object_name, uid), timeout,
              f"Prometheus at {prometheus} still has PrometheusRule {namespace}/{object_name} loaded after"
              f" {timeout} s")
    return {"name": name, "namespace": namespace, "object": object_name, "result": result,
            "already": [] if result == "deleted" else [object_name]}


def _loaded_reader(url: str | None, endpoint: str | None,
                   where: Where) -> tuple[Callable[[str, str, str | None], list[str]] | None, str | None]:
    """(a function: the evaluated groups Prometheus loaded from the operator's file of an object, uid None: any;
    where that Prometheus is), or (None, None) when there is no Prometheus to ask."""
    if url is not None and endpoint is None and is_k8s_url(url):
        service = open_service(url=url, **where)
        session, base = service.session, service.base_url

        def fetch() -> tuple[Any, Any]:
            resp = session.get(base + "/api/v1/rules", timeout=HTTP_TIMEOUT)
            try:
                return resp, resp.json()
            except ValueError:
                return resp, None
        shown = url
    else:
        declared = connection(endpoint, url, DEFAULT_ENDPOINT)
        if declared is None and url is None:
            return None, None
        if declared is None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            raise DriverError(f"url must be a Prometheus URL (http(s)://... or k8s://NAMESPACE/SERVICE:PORT),"
                              f" got {url!r}")
        base = declared.url if declared is not None else str(url).rstrip("/")
        shown = f"endpoint {declared.name}" if declared is not None else base

        def fetch() -> tuple[Any, Any]:
            return get_json("Prometheus", base, "/api/v1/rules", None, HTTP_TIMEOUT)

    def loaded(namespace: str, object_name: str, uid: str | None) -> list[str]:
        resp, body = fetch()
        if not resp.ok or not isinstance(body, dict):
            raise DriverError(f"cannot read rules from Prometheus at {shown}: HTTP {resp.status_code}")
        prefix = f"{namespace}-{object_name}-"
        wanted = f"{prefix}{uid}.yaml" if uid else None
        groups = [g for g in body.get("data", {}).get("groups", [])
                  if (os.path.basename(str(g.get("file"))) == wanted if wanted
                      else os.path.basename(str(g.get("file"))).startswith(prefix))]
        return [g["name"] for g in groups if all(r.get("health") != "unknown" for r in g.get("rules", []))]

    return loaded, shown


def _wait(done: Callable[[], bool], timeout: float, failure: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            raise DriverError(failure)
        time.sleep(0.1)
