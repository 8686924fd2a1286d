"""Network fault actions through a Toxiproxy-compatible API (the sandbox's proxy or Toxiproxy).

``proxy`` names a proxy; in the sandbox each replica has one named like it
(``model-0``...), and ``url`` None means the sandbox's proxy API. Fault actions
validate their arguments, announce a :class:`~mlchaos.driver_kit.ChangeRecord` *before*
changing anything and return it; its undo is the matching rollback
(:func:`remove_toxic`, :func:`enable_proxy`), which is idempotent (``already`` says when
there was nothing left to undo). A record's ``environment`` is the API's base URL; its
``population`` is every proxy of the target's kind at that API: the client proxies, or
the sandbox's ``<replica>-metrics`` proxies (which carry only Prometheus' scrapes).

Safety TTL: a toxic added without ``ttl`` gets ``SAFETY_TTL`` (600 s) anyway, so a
runner that dies (SIGKILL, power loss) never leaves latency in place forever; the
mlchaos proxy removes it by itself when it expires. (A real Toxiproxy ignores
``ttl``: there, only the rollback removes the toxic.)
"""

from __future__ import annotations

from typing import Any

from drivers._common.endpoints import endpoint_argument
from drivers.proxy.client import DEFAULT_ENDPOINT as DEFAULT_ENDPOINT  # takes declared endpoints
from drivers.proxy.client import api_url, call, check_toxic, get_proxy, sandbox_replica
from drivers.proxy.sandbox import FEEDBACK_PATH, INFER_PATH, METRICS_PROXY_SUFFIX
from mlchaos.driver_kit import ChangeRecord, DriverError, Target, announce, undo_function

SAFETY_TTL = 600.0


def add_toxic(
    proxy: str,
    type: str,
    attributes: dict[str, Any] | None = None,
    stream: str = "downstream",
    toxicity: float = 1.0,
    name: str | None = None,
    ttl: float | None = None,
    url: str | None = None,
    endpoint: str | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Add a toxic (latency, bandwidth, timeout, reset_peer, slow_close, http_transform, http_drop); undo: remove_toxic.

    ``stream``: downstream (server->client) or upstream; ``toxicity``: fraction of
    connections affected; ``ttl``: seconds until the proxy removes it by itself
    (default SAFETY_TTL, 600 s).
    """
    check_toxic(type, attributes, stream, toxicity, ttl)
    ttl = SAFETY_TTL if ttl is None else float(ttl)
    name = name or f"{type}_{stream}"
    base = api_url(url, endpoint)
    found = get_proxy(base, proxy)
    if any(t.get("name") == name for t in found.get("toxics") or []):
        raise DriverError(f"proxy {proxy!r} already has a toxic named {name!r}; remove it or choose another name")
    parameters = {"type": type, "attributes": dict(attributes or {}), "stream": stream,
                  "toxicity": float(toxicity), "name": name, "ttl": ttl}
    record = ChangeRecord(
        driver="proxy", action="add-toxic", targets=[_target(proxy, found, base, url, endpoint, toxic=name)],
        parameters=parameters,
        undo={"func": "drivers.proxy.actions.remove_toxic", "arguments": {"proxy": proxy, "name": name, "url": url,
                                                                        **endpoint_argument(endpoint)}},
        dry_run=dry_run, environment=base, population=_population(base, proxy),
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    created = call("POST", base, f"/proxies/{proxy}/toxics", {**parameters, "attributes": parameters["attributes"]})
    result = record.to_dict()
    result["toxic"] = created
    return result


def skew_requests(
    proxy: str,
    transforms: list[dict[str, Any]],
    path: str = INFER_PATH,
    probability: float = 1.0,
    tensor: str = "",
    name: str = "skew",
    ttl: float | None = None,
    url: str | None = None,
    endpoint: str | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Train/serve skew: rewrite the features of infer requests on their way through a proxy; undo: remove_toxic.

    ``transforms``: operations applied in order to the input tensor's columns, e.g.
    ``[{"op": "scale", "feature": 2, "factor": 10}]``; ops: scale (factor), offset (delta),
    zero, swap (features [i, j]), datatype (datatype). ``path``: regular expression of the
    request paths to rewrite (default: OIP infer); ``probability``: share of those requests.
    """
    attributes = {"transforms": transforms, "path": path, "probability": probability, "tensor": tensor}
    return add_toxic(proxy, "http_transform", attributes, "upstream", 1.0, name, ttl, url, endpoint, dry_run=dry_run)


def drop_requests(
    proxy: str,
    path: str = FEEDBACK_PATH,
    method: str = "POST",
    status: int = 202,
    probability: float = 1.0,
    name: str = "drop",
    ttl: float | None = None,
    url: str | None = None,
    endpoint: str | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Swallow matching requests in a proxy, answering ``status`` itself (0: close); undo: remove_toxic.

    Default: OIP feedback calls, answered 202 so the sender believes they were delivered
    (feedback that silently stops arriving). ``probability``: share of the matching requests.
    """
    attributes = {"path": path, "method": method, "status": status, "probability": probability}
    return add_toxic(proxy, "http_drop", attributes, "upstream", 1.0, name, ttl, url, endpoint, dry_run=dry_run)


@undo_function
def remove_toxic(proxy: str, name: str, url: str | None = None, endpoint: str | None = None) -> dict[str, Any]:
    """Remove a toxic from a proxy (the rollback of add_toxic; idempotent: a missing toxic is fine)."""
    base = api_url(url, endpoint)
    found = [t for t in get_proxy(base, proxy).get("toxics") or [] if t.get("name") == name]
    existed = bool(found)
    if existed:
        call("DELETE", base, f"/proxies/{proxy}/toxics/{name}", missing_ok=True)  # it may expire meanwhile
    left = [t.get("name") for t in get_proxy(base, proxy).get("toxics") or []]
    if name in left:
        raise DriverError(f"toxic {name!r} is still on proxy {proxy!r} after DELETE")
    result = {"proxy": proxy, "toxic": name, "removed": existed, "toxics_left": left,
              "already": [] if existed else [name]}
    if found and "stats" in found[0]:
        result["stats"] = found[0]["stats"]  # what a request-level toxic did while it was in place
    return result


def disable_proxy(proxy: str, url: str | None = None, endpoint: str | None = None, *,
                  dry_run: bool = False) -> dict[str, Any]:
    """Disable a proxy: it refuses new connections and drops live ones; undo: enable_proxy."""
    base = api_url(url, endpoint)
    found = get_proxy(base, proxy)
    record = ChangeRecord(
        driver="proxy", action="disable-proxy", targets=[_target(proxy, found, base, url, endpoint)],
        parameters={"enabled": False},
        undo={"func": "drivers.proxy.actions.enable_proxy", "arguments": {"proxy": proxy, "url": url,
                                                                        **endpoint_argument(endpoint)}},
        dry_run=dry_run, environment=base, population=_population(base, proxy),
    )
    announce(record)
    if not dry_run:
        call("POST", base, f"/proxies/{proxy}", {"enabled": False})
    return record.to_dict()


@undo_function
def enable_proxy(proxy: str, url: str | None = None, endpoint: str | None = None) -> dict[str, Any]:
    """Enable a proxy again (the rollback of disable_proxy; idempotent: an enabled proxy is left alone)."""
    base = api_url(url, endpoint)
    if get_proxy(base, proxy).get("enabled", True) is True:
        return {"proxy": proxy, "enabled": True, "already": [proxy]}
    updated = call("POST", base, f"/proxies/{proxy}", {"enabled": True})
    return {"proxy": proxy, "enabled": bool(updated and updated.get("enabled")), "already": []}


@undo_function
def reset(url: str | None = None, endpoint: str | None = None) -> dict[str, Any]:
    """Enable every proxy and remove every toxic (POST /reset): undo all network faults at once."""
    base = api_url(url, endpoint)
    call("POST", base, "/reset")
    proxies = call("GET", base, "/proxies") or {}
    return {"api": base, "proxies": sorted(proxies),
            "toxics_left": sum(len(p.get("toxics") or []) for p in proxies.values())}


def _population(base: str, proxy: str) -> list[str]:
    """Every proxy at the API of the same kind as ``proxy``: client proxies, or ``-metrics`` (scrape) proxies."""
    metrics = proxy.endswith(METRICS_PROXY_SUFFIX)
    return sorted(p for p in call("GET", base, "/proxies") or {} if p.endswith(METRICS_PROXY_SUFFIX) == metrics)


def _target(proxy: str, found: dict[str, Any], base: str, url: str | None, endpoint: str | None,
            toxic: str | None = None) -> Target:
    details: dict[str, Any] = {"api": base, "listen": found.get("listen"), "upstream": found.get("upstream")}
    if toxic is not None:
        details["toxic"] = toxic
    replica = sandbox_replica(proxy, url, endpoint)
    if replica is not None:
        # instance: the replica's own address, the label its alerts carry (match_fault_targets)
        details |= {"instance": f"{replica.host}:{replica.port}", "service": replica.service, "url": replica.url}
    elif found.get("upstream"):
        # a proxy elsewhere (the Docker stack's): its upstream is the server's address as Prometheus scrapes it
        details["instance"] = found["upstream"]
    return Target(kind="proxy", name=proxy, details=details)
