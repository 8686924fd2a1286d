"""Model input fault: send invalid inputs (NaN, out of range, wrong shape or datatype) among real rows; every
invalid one must be refused 4xx. Nothing to undo.

Part of :mod:`drivers.model.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from itertools import cycle
from typing import Any

import requests as http  # `requests` is also an argument (a count)

from drivers._common import checks
from drivers._common.checks import is_number
from drivers._common.endpoints import http_for
from drivers.model.endpoints import parse_scope
from drivers.model.faults import Labels, announce_record, check_timeout
from drivers.model.sandbox import N_FEATURES, holdout_split
from mlchaos.driver_kit import DriverError

INVALID_KINDS = ("nan", "out_of_range", "wrong_shape", "wrong_datatype")
MAX_REQUESTS = 10_000
MAX_RATE = 500.0
JSON = {"Content-Type": "application/json"}


def send_invalid_inputs(
    kind: str = "nan", requests: int = 100, rate: float = 20.0, invalid_fraction: float = 0.5,
    service: str = "model", count: int = 1, seed: int | None = None, model: str = "iris",
    max_seconds: float = 60.0, timeout: float = 2.0, target: str = "sandbox", labels: Labels = None,
    name_pattern: str | None = None, project: str | None = None, urls: list[str] | None = None,
    endpoint: str | None = None,
    *, dry_run: bool = False,
) -> dict[str, Any]:
    """Send `requests` infer calls at `rate`/s to `count` random replicas, `invalid_fraction` of them invalid.

    Bounded by count and by `max_seconds`. The valid calls are real holdout rows. Every invalid call
    must be answered 4xx (never a prediction, never 5xx), else DriverError. Nothing to undo.
    A container is sent its calls at its published port (through docker exec when it has none: slower).
    """
    if kind not in INVALID_KINDS:
        raise DriverError(f"kind must be one of {', '.join(INVALID_KINDS)}, got {kind!r}")
    if isinstance(requests, bool) or not isinstance(requests, int) or not 1 <= requests <= MAX_REQUESTS:
        raise DriverError(f"requests must be an integer in [1, {MAX_REQUESTS}], got {requests!r}")
    if not is_number(rate) or not 0 < rate <= MAX_RATE:
        raise DriverError(f"rate must be a number of requests per second in (0, {MAX_RATE:g}], got {rate!r}")
    if not is_number(invalid_fraction) or not 0 < invalid_fraction <= 1:
        raise DriverError(f"invalid_fraction must be in (0, 1], got {invalid_fraction!r}")
    checks.positive("max_seconds", max_seconds)
    check_timeout(timeout)
    scope = parse_scope(target, service, labels, name_pattern, project, urls, endpoint)
    chosen, population, seed = scope.select(count, seed)
    record = announce_record("send_invalid_inputs", scope, chosen, population,
                             {"service": service, "count": count, "seed": seed, "kind": kind, "requests": requests,
                              "rate": rate, "invalid_fraction": invalid_fraction, "model": model,
                              "max_seconds": max_seconds},
                             {}, dry_run)
    if dry_run:
        return record.to_dict()
    rows, _ = holdout_split()
    pick = random.Random(record.parameters["seed"])
    answers: dict[str, Counter[str]] = {"invalid": Counter(), "valid": Counter()}
    path = f"/v2/models/{model}/infer"
    started = time.monotonic()
    with http.Session() as session:
        # a URL under a declared endpoint goes with its session (credentials, headers), any other with ours
        clients = {e.name: _client(e.url, session) for e in chosen if e.url}
        for i, e in zip(range(requests), cycle(chosen), strict=False):
            if time.monotonic() - started >= max_seconds:
                break
            time.sleep(max(started + i / rate - time.monotonic(), 0.0))
            invalid = int((i + 1) * invalid_fraction) > int(i * invalid_fraction)
            body = invalid_body(kind) if invalid else row_body(pick.choice(rows))
            try:
                if e.url:  # json.dumps writes the NaN literal that requests' own json= refuses to send
                    client, capped = clients[e.name]
                    status = str(client.post(e.url + path, data=json.dumps(body), headers=JSON,
                                             timeout=capped(timeout)).status_code)
                else:
                    status = str(e.request("POST", path, body, timeout).status)
            except (http.RequestException, DriverError) as exc:
                status = type(exc).__name__
            answers["invalid" if invalid else "valid"][status] += 1
    counts = {k: dict(sorted(v.items())) for k, v in answers.items()}
    record.parameters["answers"] = counts
    wrong = {s: n for s, n in counts["invalid"].items() if not s.startswith("4")}
    if wrong:
        raise DriverError(f"invalid {kind} inputs must be answered 4xx, got {wrong} (all answers: {counts})")
    return record.to_dict()


def _client(url: str, session: http.Session) -> tuple[Any, Callable[[float], float]]:
    """(what to post with, how to cap a timeout) for ``url``: a declared endpoint's session, else ``session``."""
    found, capped = http_for(url)
    return (session, lambda timeout: timeout) if found is http else (found, capped)


def invalid_body(kind: str) -> dict[str, Any]:
    """An infer request body that the server must refuse (``kind``: one of INVALID_KINDS)."""
    tensor: dict[str, Any] = {"name": "input-0", "shape": [1, N_FEATURES], "datatype": "FP64",
                              "data": [5.1, 3.5, 1.4, 0.2]}
    if kind == "nan":
        tensor["data"] = [5.1, float("nan"), 1.4, 0.2]
    elif kind == "out_of_range":
        tensor["data"] = [5.1, 3.5, 1400.0, 0.2]
    elif kind == "wrong_shape":
        tensor["shape"], tensor["data"] = [1, N_FEATURES - 1], [5.1, 3.5, 1.4]
    else:  # wrong_datatype
        tensor["datatype"], tensor["data"] = "BYTES", ["5.1", "3.5", "1.4", "0.2"]
    return {"inputs": [tensor]}


def row_body(row: list[float]) -> dict[str, Any]:
    """A valid infer request body: one real row."""
    return {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": list(row)}]}
