"""Probes that judge a model service over real HTTP (Open Inference Protocol / KServe V2, or KServe V1).

Replica URLs come from ``endpoint`` (a declared endpoint: its URL, credentials, CA and headers, e.g. KServe's
``Host``; see docs/experiment-format.md, "Endpoints"), ``urls`` (any OIP server), the endpoint declared as
``serving`` when neither is given, or from the sandbox state of ``service``: there, the client URL of each
replica, i.e. through the sandbox's fault proxy (so injected network faults are seen as a client sees them).
Every HTTP call has a timeout (``timeout``, seconds, per request).

``protocol`` says which protocol the server speaks: ``v2`` (default; the Open Inference Protocol:
MLServer, Triton, KServe's V2 endpoints) checks ``/v2/health/live``, ``/v2/health/ready`` and
``/v2/models/{m}/ready`` and infers with ``POST /v2/models/{m}/infer``; ``v1`` (KServe V1) checks
``GET /v1/models/{m}`` (200 with ``"ready": true``) and predicts with ``POST /v1/models/{m}:predict``
(``{"instances": [[...], ...]}`` -> ``{"predictions": [...]}``).
"""

from __future__ import annotations

import json
import math
import time
from itertools import cycle
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests as http  # `requests` is also a probe argument (a count); imported where it is used

from drivers._common import checks, polling
from drivers._common.endpoints import connection, http_for
from drivers.model import sandbox
from drivers.model.sandbox import holdout_split
from mlchaos.driver_kit import DriverError

MAX_REQUESTS = 10_000
DEFAULT_ENDPOINT = "serving"  # the declared endpoint used when neither urls nor endpoint is given
PROTOCOLS = ("v2", "v1")


def all_replicas_healthy(
    service: str = "model", urls: list[str] | None = None, model: str = "iris", timeout: float = 2.0,
    within: float = 0, protocol: str = "v2", endpoint: str | None = None,
) -> bool:
    """True when every replica answers live, ready and model-ready (timeout in seconds per call).

    With `within` (seconds), wait up to that long for them all to be: a recovery check right after a rollback
    that restarted a replica (it serves again once its model is loaded, sooner or later with the host's load).
    """
    checks.non_negative("within", within)  # before the replicas are looked up (polling checks it again)
    _check_protocol(protocol)
    targets = _urls(service, urls, endpoint=endpoint)
    return polling.poll(within, lambda: len(_healthy(targets, model, timeout, protocol)) == len(targets),
                        interval=0.5)


def healthy_replica_count(
    service: str = "model", urls: list[str] | None = None, model: str = "iris", timeout: float = 2.0,
    protocol: str = "v2", endpoint: str | None = None,
) -> int:
    """Count the replicas answering live, ready and model-ready (timeout in seconds)."""
    _check_protocol(protocol)
    return len(_healthy(_urls(service, urls, endpoint=endpoint), model, timeout, protocol))


def prediction_accuracy(
    service: str = "model",
    urls: list[str] | None = None,
    model: str = "iris",
    only_healthy: bool = True,
    golden_set: str | None = None,
    timeout: float = 2.0,
    replicas: list[str] | None = None,
    protocol: str = "v2",
    endpoint: str | None = None,
) -> float:
    """Lowest accuracy (0..1) over the replicas on the holdout or a golden set.

    Each replica (each healthy one when ``only_healthy``; only the sandbox replicas named in
    ``replicas`` when given, e.g. ``[model-1]``) gets the whole set in one infer request, so
    one bad replica pulls the result down. A replica that cannot be reached is left out; one
    that answers with an error or a malformed output scores 0. Raises DriverError when no
    replica could be reached at all. ``golden_set`` is a JSON file
    ``{"inputs": [[f1, f2, ...], ...], "labels": [int, ...]}``.
    """
    import requests as http  # on first use: validating an experiment imports this module, and needs no HTTP

    _check_protocol(protocol)
    rows, labels = _golden(golden_set) if golden_set else holdout_split()
    targets = _urls(service, urls, only=replicas, endpoint=endpoint)
    if only_healthy:
        targets = _healthy(targets, model, timeout, protocol)
    scores: list[float] = []
    with http.Session() as session:
        for url in targets:
            try:
                resp = _via(url, session).post(_infer_url(url, model, protocol), json=_infer_body(rows, protocol),
                                    timeout=timeout)
            except http.RequestException:
                continue
            predicted = _predictions(resp, len(rows), protocol)
            if predicted is None:
                scores.append(0.0)
            else:
                hits = sum(p == y for p, y in zip(predicted, labels, strict=True))
                scores.append(hits / len(rows))
    if not scores:
        raise DriverError(f"no replica of {service if urls is None else urls!r} could be reached")
    return min(scores)


def served_versions(
    service: str = "model", model: str = "iris", timeout: float = 5.0, target: str = "sandbox",
    labels: dict[str, str] | list[str] | None = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, endpoint: str | None = None,
) -> dict[str, str | None]:
    """The version of `model` each live replica serves (its repository index entry in state READY), by name.

    `target` sandbox, docker or url as for drivers.model.actions; a replica serving none maps to null.
    """
    from drivers.model.endpoints import parse_scope  # the replica resolution the actions use

    served: dict[str, str | None] = {}
    for replica in parse_scope(target, service, labels, name_pattern, project, urls, endpoint).named(None):
        if not replica.alive():
            continue
        served[replica.name] = replica.served_version(model, timeout)
    return served


def served_version_count(
    version: str, service: str = "model", model: str = "iris", timeout: float = 5.0, target: str = "sandbox",
    labels: dict[str, str] | list[str] | None = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, endpoint: str | None = None,
) -> int:
    """How many live replicas serve `version` (other arguments as served_versions): all of them after a rollback."""
    served = served_versions(service, model, timeout, target, labels, name_pattern, project, urls, endpoint)
    return sum(1 for v in served.values() if v == version)


def latency_percentile(
    percentile: float = 95,
    requests: int = 50,
    service: str = "model",
    urls: list[str] | None = None,
    model: str = "iris",
    timeout: float = 2.0,
    exclude: list[str] | None = None,
    protocol: str = "v2",
    endpoint: str | None = None,
) -> float:
    """Inference latency percentile in milliseconds over `requests` sequential single-row calls.

    Calls are spread round-robin over the healthy replicas (of the sandbox ``service``
    except those named in ``exclude``, e.g. ``[model-1]``); only successful (2xx)
    calls are timed. Raises DriverError when none succeeded.
    """
    if not 0 < percentile <= 100:
        raise DriverError(f"percentile must be in (0, 100], got {percentile}")
    _check_count(requests)
    _check_protocol(protocol)
    targets = _healthy(_urls(service, urls, exclude, endpoint=endpoint), model, timeout, protocol)
    if not targets:
        raise DriverError("no healthy replica to measure latency on")
    rows, _ = holdout_split()
    timings: list[float] = []
    import requests as http

    with http.Session() as session:
        for _, url, row in zip(range(requests), cycle(targets), cycle(rows), strict=False):
            started = time.perf_counter()
            try:
                resp = _via(url, session).post(
                    _infer_url(url, model, protocol), json=_infer_body([row], protocol), timeout=timeout
                )
            except http.RequestException:
                continue
            if resp.ok:
                timings.append((time.perf_counter() - started) * 1000.0)
    if not timings:
        raise DriverError(f"none of {requests} infer requests succeeded")
    return _percentile(timings, percentile)


def error_rate(
    requests: int = 50,
    service: str = "model",
    urls: list[str] | None = None,
    model: str = "iris",
    timeout: float = 2.0,
    concurrency: int = 8,
    protocol: str = "v2",
    endpoint: str | None = None,
) -> float:
    """Fraction (0..1) of `requests` infer calls that failed, over ALL configured replicas.

    A failure is a non-2xx answer, a connection error or a timeout (``timeout``
    seconds each). Calls go round-robin over every replica, dead ones included,
    ``concurrency`` at a time so that hung replicas cannot stretch the probe.
    """
    from concurrent.futures import ThreadPoolExecutor

    import requests as http

    _check_count(requests)
    if concurrency < 1:
        raise DriverError(f"concurrency must be >= 1, got {concurrency}")
    _check_protocol(protocol)
    targets = _urls(service, urls, endpoint=endpoint)
    rows, _ = holdout_split()
    plan = list(zip(range(requests), cycle(targets), cycle(rows), strict=False))

    def call(item: tuple[int, str, list[float]]) -> bool:
        _, url, row = item
        try:
            resp = _via(url, http).post(_infer_url(url, model, protocol), json=_infer_body([row], protocol),
                                        timeout=timeout)
        except http.RequestException:
            return False
        return resp.ok

    with ThreadPoolExecutor(max_workers=min(concurrency, requests)) as pool:
        failures = sum(1 for ok in pool.map(call, plan) if not ok)
    return failures / requests


# -- helpers --------------------------------------------------------------------------------


def _urls(service: str, urls: list[str] | None, exclude: list[str] | None = None,
          only: list[str] | None = None, endpoint: str | None = None) -> list[str]:
    if urls is not None and endpoint is not None:
        raise DriverError(f"give urls or endpoint, not both (got urls={urls!r}, endpoint={endpoint!r})")
    declared = connection(endpoint, None, DEFAULT_ENDPOINT) if urls is None else None
    if declared is not None:
        if exclude or only is not None:
            raise DriverError(f"{'exclude' if exclude else 'replicas'} names sandbox replicas: use it without an "
                              f"endpoint")
        return [declared.url]
    if urls is not None:
        if exclude or only is not None:
            raise DriverError(f"{'exclude' if exclude else 'replicas'} names sandbox replicas: use it without urls")
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise DriverError(f"urls must be a non-empty list of strings, got {urls!r}")
        return [u.rstrip("/") for u in urls]
    replicas = sandbox.replicas(service)
    if exclude:
        if not isinstance(exclude, list) or not all(isinstance(n, str) for n in exclude):
            raise DriverError(f"exclude must be a list of replica names, got {exclude!r}")
        unknown = sorted(set(exclude) - {r.name for r in replicas})
        if unknown:
            raise DriverError(f"exclude: no replica {', '.join(unknown)} in service {service!r}"
                              f" (replicas: {', '.join(r.name for r in replicas)})")
        replicas = [r for r in replicas if r.name not in exclude]
        if not replicas:
            raise DriverError(f"exclude leaves no replica of service {service!r}")
    if only is not None:
        if isinstance(only, str) or not isinstance(only, list) or not only \
                or not all(isinstance(n, str) for n in only):
            raise DriverError(f"replicas must be a non-empty list of replica names, got {only!r}")
        unknown = sorted(set(only) - {r.name for r in replicas})
        if unknown:
            raise DriverError(f"replicas: no replica {', '.join(unknown)} in service {service!r}"
                              f" (replicas: {', '.join(r.name for r in replicas)})")
        replicas = [r for r in replicas if r.name in only]
    return [r.client_url for r in replicas]


def _check_protocol(protocol: Any) -> None:
    if protocol not in PROTOCOLS:
        raise DriverError(f"protocol must be v2 (Open Inference Protocol) or v1 (KServe V1), got {protocol!r}")


def _healthy(urls: list[str], model: str, timeout: float, protocol: str = "v2") -> list[str]:
    import requests as http

    healthy = []
    with http.Session() as session:
        for url in urls:
            try:
                if _answers_healthy(_via(url, session), url, model, timeout, protocol):
                    healthy.append(url)
            except http.RequestException:
                continue
    return healthy


def _answers_healthy(session: http.Session, url: str, model: str, timeout: float, protocol: str) -> bool:
    if protocol == "v1":  # KServe V1: the model's status, {"name": m, "ready": true}
        resp = session.get(f"{url}/v1/models/{model}", timeout=timeout)
        try:
            return resp.ok and resp.json().get("ready") is True
        except (ValueError, AttributeError):
            return False
    paths = ("/v2/health/live", "/v2/health/ready", f"/v2/models/{model}/ready")
    return all(session.get(url + p, timeout=timeout).ok for p in paths)


def _via(url: str, default: Any) -> Any:
    """What a call to ``url`` goes through: the declared endpoint's session (its credentials, CA, headers such as
    KServe's ``Host``) when ``url`` is under one, else ``default``."""
    import requests as http  # imported where it is used (see the module's imports)

    found, _ = http_for(url)
    return default if found is http else found


def _infer_url(url: str, model: str, protocol: str = "v2") -> str:
    return f"{url}/v1/models/{model}:predict" if protocol == "v1" else f"{url}/v2/models/{model}/infer"


def _infer_body(rows: list[list[float]], protocol: str = "v2") -> dict[str, Any]:
    if protocol == "v1":
        return {"instances": [list(row) for row in rows]}
    width = len(rows[0]) if rows else 0
    flat = [v for row in rows for v in row]
    return {"inputs": [{"name": "input-0", "shape": [len(rows), width], "datatype": "FP64",
                        "data": flat}]}


def _predictions(resp: http.Response, n_rows: int, protocol: str = "v2") -> list[int] | None:
    if not resp.ok:
        return None
    try:
        answer = resp.json()
        data = answer["predictions"] if protocol == "v1" else answer["outputs"][0]["data"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not isinstance(data, list) or len(data) != n_rows:
        return None
    # a NaN or infinite output (the nan_outputs fault) is a wrong answer, not a crash of the probe
    return [int(v) if isinstance(v, int | float) and math.isfinite(v) else -1 for v in data]


def _golden(path: str) -> tuple[list[list[float]], list[int]]:
    try:
        data = json.loads(Path(path).read_text())
        rows, labels = data["inputs"], data["labels"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DriverError(f"cannot read golden set {path}: {exc}") from exc
    if not isinstance(rows, list) or not isinstance(labels, list) or not rows:
        raise DriverError(f"golden set {path}: 'inputs' and 'labels' must be non-empty lists")
    if len(rows) != len(labels):
        raise DriverError(f"golden set {path}: {len(rows)} inputs but {len(labels)} labels")
    return rows, labels


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REQUESTS:
        raise DriverError(f"requests must be an integer in [1, {MAX_REQUESTS}], got {n!r}")


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (like numpy's default) of a non-empty list."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
