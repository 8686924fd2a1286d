"""Prometheus probes: query values, rule health, and whether (and how fast) an alert fires and resolves.

The Prometheus is the declared endpoint named by ``endpoint``, or ``url``, or (neither given) the
endpoint declared as ``prometheus``, or the sandbox monitoring stack's (docs/experiment-format.md,
"Endpoints": credentials, TLS, headers). Every HTTP call has a timeout (seconds). API errors (``status: error``,
HTTP 4xx/5xx, an unreachable server) raise DriverError with Prometheus' own error text.

``alert_fires_within`` and ``alert_resolves_within`` return a ``measurement``
(``time_to_detect`` / ``time_to_recover``, seconds since the run's most recent fault)
that the runner collects into the journal. With ``dry_run=True`` (a plan: no fault was
injected) they do not wait: they check that Prometheus answers and that a healthy
alerting rule defines the alert, and return what they checked.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from drivers._common import checks, polling
from drivers._common.alerts import AlertSelector, alert_selector
from drivers._common.http import get_json
from drivers.prometheus import timing
from drivers.prometheus.sandbox import DEFAULT_ENDPOINT as DEFAULT_ENDPOINT  # takes declared endpoints
from drivers.prometheus.sandbox import preflight as preflight  # the validation hook (not a probe)
from drivers.prometheus.sandbox import prometheus_url
from mlchaos.driver_kit import DriverError, NamedCount, current_run

MAX_REQUEST_TIMEOUT = 5.0  # seconds, per poll of the polling probes
# seconds a recovery waits for ALERTS written back late: vmalert sends every 5 s, and VictoriaMetrics 1.79 showed
# a new (firing) series 7-11 s after vmalert reported it firing (3 busy loops on 2 cores; 10 s was once too few)
WRITE_BACK_WAIT = 20.0


def query_value(query: str, url: str | None = None, timeout: float = 5.0,
        endpoint: str | None = None) -> float | None:
    """The value of an instant PromQL query: one sample or a scalar; None when empty (timeout in s).

    A query that returns more than one series is an error: aggregate it (sum, max, ...).
    """
    series = _instant(query, url, timeout, endpoint)
    if not series:
        return None
    if len(series) > 1:
        shown = "; ".join(_labels_text(s["labels"]) for s in series[:10])
        more = f" and {len(series) - 10} more" if len(series) > 10 else ""
        raise DriverError(
            f"query {query!r} returned {len(series)} series ({shown}{more}); aggregate it to one value "
            f"(e.g. sum(...) or max(...))"
        )
    return series[0]["value"]


def query_series(query: str, url: str | None = None, timeout: float = 5.0,
        endpoint: str | None = None) -> list[dict[str, Any]]:
    """Every series of an instant PromQL query as ``{"labels": {...}, "value": float}`` (timeout in s)."""
    return _instant(query, url, timeout, endpoint)


def rule_is_healthy(rule: str, url: str | None = None, timeout: float = 5.0,
        endpoint: str | None = None) -> bool:
    """True when the alerting rule is loaded and its last evaluation succeeded (health "ok"; timeout in s).

    A rule that is not loaded raises DriverError naming the closest loaded rules, so an
    experiment fails before it injects a fault that nothing would detect.
    """
    return all(r.get("health") == "ok" for r in _alerting_rules(prometheus_url(url, endpoint), rule, timeout))


def alert_fires_within(alert: str, within: float = 30, labels: dict[str, str] | None = None,
                       match_fault_targets: bool = False, poll: float = 0.5, url: str | None = None,
                       endpoint: str | None = None,
                       *, dry_run: bool = False) -> dict[str, Any]:
    """Wait up to `within` seconds for the alert to be firing (not pending); measures time to detect.

    ``labels`` must all be on the alert; ``match_fault_targets`` also requires its
    ``instance`` to be one the run's most recent fault hit. Polls every ``poll`` seconds.
    The time to detect is exact: when Prometheus says it fired (``activeAt`` + the rule's ``for``),
    beside the polled one and the floor (scrape + evaluation interval + ``for``); see
    :mod:`drivers.prometheus.timing`. Where Prometheus cannot say, the polled time stands and the
    measurement's ``note`` says why.
    ``dry_run``: do not wait; check that Prometheus answers and a healthy rule defines the alert.
    """
    seen: dict[str, Any] = {}

    def fired(selector: AlertSelector, alerts: list[dict[str, Any]], origin: float,
              measured_from: str) -> dict[str, Any] | None:
        firing = [a for a in alerts if a.get("state") == "firing" and _matches(selector, a)]
        if not firing:
            return None
        seconds = round(time.time() - origin, 3)
        found = firing[0]
        seen.update(alert=found, origin=origin, at=origin + seconds)
        active_at = found.get("activeAt")
        return {
            "alert": alert,
            "state": "firing",
            "labels": found.get("labels") or {},
            "active_at": active_at,
            "fired_after_fault": seconds if measured_from == "fault" else None,
            # True: it was already pending/firing when the fault was injected, so the fault did not cause it
            "active_before_fault": _before(active_at, origin) if measured_from == "fault" else None,
            "measured_from": measured_from,
            "measurement": {"kind": "time_to_detect", "alert": alert, "seconds": seconds},
        }

    def late(selector: AlertSelector, alerts: list[dict[str, Any]]) -> str:
        return (f"alert {selector.describe()} did not fire within {within:g}s "
                f"(last seen: {_last_seen(selector, alerts)}); firing alerts: {_firing_text(alerts)}")

    result = _wait(alert, within, labels, match_fault_targets, poll, prometheus_url(url, endpoint), dry_run,
                   fired, late)
    if seen:
        base = prometheus_url(url, endpoint)
        rule = _timing(base, alert, seen["alert"].get("labels") or {})
        exact = (timing.fired_at(seen["alert"], rule, seen["origin"], seen["at"])
                 if isinstance(rule, timing.RuleTiming) else timing.Exact(None, rule))
        _refine(result, "fired_after_fault", exact, rule, seen["origin"])
    return result


def alert_resolves_within(alert: str, within: float = 60, labels: dict[str, str] | None = None,
                          match_fault_targets: bool = False, poll: float = 0.5, url: str | None = None,
                       endpoint: str | None = None,
                          *, dry_run: bool = False) -> dict[str, Any]:
    """Wait up to `within` seconds until no matching alert is pending or firing; measures time to recover.

    The seconds are counted from the run's most recent fault (from the probe's start
    outside a run). ``labels`` and ``match_fault_targets`` select alerts as in alert_fires_within.
    The time is exact where Prometheus (or vmalert, through VictoriaMetrics) can say: the evaluation after the
    last ``ALERTS`` sample of the alert (see :mod:`drivers.prometheus.timing`; ``resolution`` in the
    measurement when it is only true to that many seconds); the polled time stands beside it.
    ``dry_run``: do not wait; check that Prometheus answers and a healthy rule defines the alert.
    """
    seen: dict[str, Any] = {}

    def resolved(selector: AlertSelector, alerts: list[dict[str, Any]], origin: float,
                 measured_from: str) -> dict[str, Any] | None:
        active = _active(selector, alerts)
        if active:
            seen["labels"] = active[0].get("labels") or {}  # its job names the scrape interval
            seen["active_at"] = timing.timestamp(active[0].get("activeAt"))  # the evaluation grid's phase
            seen["last_active"] = timing.LastActive(str(active[0].get("state")), time.time())
            return None
        seconds = round(time.time() - origin, 3)
        seen.update(selector=selector, origin=origin, at=origin + seconds)
        return {
            "alert": alert,
            "state": "inactive",
            "labels": dict(labels or {}),
            "resolved_after_fault": seconds if measured_from == "fault" else None,
            "measured_from": measured_from,
            "measurement": {"kind": "time_to_recover", "alert": alert, "seconds": seconds},
        }

    def late(selector: AlertSelector, alerts: list[dict[str, Any]]) -> str:
        still = "; ".join(f"{_alert_text(a)} {a.get('state')} since {a.get('activeAt')}"
                          for a in _active(selector, alerts))
        return f"alert {selector.describe()} did not resolve within {within:g}s (still: {still})"

    deadline = time.monotonic() + within
    result = _wait(alert, within, labels, match_fault_targets, poll, prometheus_url(url, endpoint), dry_run,
                   resolved, late)
    if seen:
        base = prometheus_url(url, endpoint)
        rule = _timing(base, alert, seen.get("labels") or dict(labels or {}))
        if isinstance(rule, timing.RuleTiming):
            # a ruler that writes ALERTS back (vmalert) may not have sent the end yet: wait for it, within `within`
            wait = min(WRITE_BACK_WAIT, max(deadline - time.monotonic(), 0.0))
            try:
                exact = timing.resolved_at(lambda path, params: _get(base, path, params, MAX_REQUEST_TIMEOUT),
                                           seen["selector"].matches, alert, rule, seen["origin"], seen["at"],
                                           active_at=seen.get("active_at"), last_active=seen.get("last_active"),
                                           wait=wait, poll=poll)
            except DriverError as error:
                exact = timing.Exact(None, f"ALERTS could not be read: {error}")
        else:
            exact = timing.Exact(None, rule)
        _refine(result, "resolved_after_fault", exact, rule, seen["origin"])
    return result


def no_unexpected_alerts(allowed: list[str] | None = None, url: str | None = None,
                         endpoint: str | None = None, pending: bool = False) -> list[str]:
    """Sorted names of the firing (with `pending`, also pending) alerts not in `allowed` (empty: all is quiet)."""
    if allowed is not None and (not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed)):
        raise DriverError(f"allowed must be a list of alert names, got {allowed!r}")
    if not isinstance(pending, bool):
        raise DriverError(f"pending must be true or false, got {pending!r}")
    permitted = set(allowed or [])
    states = ("firing", "pending") if pending else ("firing",)
    alerts = _get(prometheus_url(url, endpoint), "/api/v1/alerts", None, MAX_REQUEST_TIMEOUT).get("alerts") or []
    names = {_name(a) for a in alerts if a.get("state") in states}
    return sorted(n for n in names if n not in permitted)


def unexpected_alert_count(allowed: list[str] | None = None, url: str | None = None, within: float = 0,
                           endpoint: str | None = None, pending: bool = False) -> int:
    """How many distinct alert names are firing that are not in `allowed` (use tolerance 0); the output's text
    names them (`1 (ModelNotReady)`), the journal records the number.

    With `within` (seconds), wait up to that long for them to resolve first: a recovery check on a system
    that is still settling (a replica restarted by the rollback may be honestly not ready for a few seconds).
    With `pending`, pending alerts count too: a drill's last check that leaves nothing about to fire for the
    next drill (a restarted replica's not-ready alert may still be pending when the restart has returned).
    """
    return polling.poll(within, lambda: NamedCount(no_unexpected_alerts(allowed=allowed, url=url, endpoint=endpoint,
                                                                        pending=pending)),
                        lambda count: count == 0)


def alerting_elsewhere_count(alert: str, labels: dict[str, str], url: str | None = None,
                             endpoint: str | None = None) -> int:
    """How many pending or firing `alert` alerts lack one of `labels` (0: it fires only where it should).

    A canary drill's check that the stable pool stays quiet: ``labels: {replica: model-2}``
    counts the alert on every other replica (use tolerance 0).
    """
    if not isinstance(alert, str) or not alert:
        raise DriverError(f"alert must be an alert name, got {alert!r}")
    if not isinstance(labels, dict) or not labels or not all(isinstance(v, str) for v in labels.values()):
        raise DriverError(f"labels must be a non-empty mapping of label names to values, got {labels!r}")
    alerts = _get(prometheus_url(url, endpoint), "/api/v1/alerts", None, MAX_REQUEST_TIMEOUT).get("alerts") or []
    return sum(1 for a in alerts if _name(a) == alert and a.get("state") in ("pending", "firing")
               and any((a.get("labels") or {}).get(k) != v for k, v in labels.items()))


# -- helpers --------------------------------------------------------------------------------


Settled = Callable[[AlertSelector, list[dict[str, Any]], float, str], dict[str, Any] | None]


def _wait(alert: str, within: float, labels: dict[str, str] | None, match_fault_targets: bool, poll: float,
          base: str, dry_run: bool, settled: Settled,
          late: Callable[[AlertSelector, list[dict[str, Any]]], str]) -> dict[str, Any]:
    """Poll the alerts until ``settled(selector, alerts, origin, measured_from)`` answers; DriverError(``late``)
    after `within` s. A dry run checks the rule and Prometheus instead (:func:`_dry_run`)."""
    selector = alert_selector(alert, labels, match_fault_targets and not dry_run)
    _check_durations(within, poll)
    if dry_run:
        return _dry_run(base, selector, match_fault_targets)
    origin, measured_from = _origin()
    deadline = time.monotonic() + within
    while True:
        alerts = _alerts(base, deadline)
        result = settled(selector, alerts, origin, measured_from)
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise DriverError(late(selector, alerts))
        time.sleep(min(poll, max(deadline - time.monotonic(), 0.0)))


def _timing(base: str, alert: str, labels: dict[str, str]) -> timing.RuleTiming | str:
    """The rule's timing as Prometheus reports it, or why it could not be read."""
    try:
        return timing.rule_timing(lambda path, params: _get(base, path, params, MAX_REQUEST_TIMEOUT), alert, labels)
    except DriverError as error:
        return f"the rule's timing could not be read: {error}"


def _refine(result: dict[str, Any], after_fault: str, exact: timing.Exact, rule: timing.RuleTiming | str,
            origin: float) -> None:
    """Put the exact time (else the polled one, and why), the polled time and the floor into the measurement."""
    measurement = result["measurement"]
    polled = measurement["seconds"]
    if exact.at is not None:
        seconds = round(exact.at - origin, 3)
        measurement.update(seconds=seconds, polled=polled, method="prometheus timestamps")
        if exact.resolution is not None:
            measurement.update(resolution=exact.resolution, note=exact.note)
        if result.get(after_fault) is not None:
            result[after_fault] = seconds
    else:
        measurement.update(polled=polled, method="polled", note=exact.note)
    floor = rule.floor(measurement["kind"]) if isinstance(rule, timing.RuleTiming) else None
    if floor is not None:
        measurement.update(floor=floor["seconds"], floor_text=floor["text"])


def _active(selector: AlertSelector, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a.get("state") in ("pending", "firing") and _matches(selector, a)]


def _alerting_rules(base: str, name: str, timeout: float) -> list[dict[str, Any]]:
    """The loaded alerting rules called `name`; DriverError naming close matches when there is none."""
    groups = _get(base, "/api/v1/rules", {"type": "alert"}, timeout).get("groups") or []
    rules = [r for g in groups for r in g.get("rules") or [] if r.get("type", "alerting") == "alerting"]
    found = [r for r in rules if r.get("name") == name] or _planned_rules(name)
    if not found:
        names = sorted({str(r.get("name")) for r in rules})
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
        if close:
            hint = "did you mean " + ", ".join(repr(n) for n in close) + "?"
        elif names:
            hint = "loaded: " + ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        else:
            hint = "no alerting rules are loaded at all"
        raise DriverError(f"alerting rule {name!r} is not loaded in Prometheus at {base} ({hint})")
    return found


def _planned_rules(name: str) -> list[dict[str, Any]]:
    """In a plan, the alert a planned add_rule_file would load stands for a loaded, healthy rule."""
    context = current_run()
    if context is None or not context.dry_run:
        return []
    for record in context.changes:
        for target in record.targets:
            if target.kind == "prometheus-rule-file" and name in (target.details.get("alerts") or []):
                return [{"name": name, "health": "ok", "state": "inactive", "planned_by": target.name}]
    return []


def _dry_run(base: str, selector: AlertSelector, match_fault_targets: bool) -> dict[str, Any]:
    """What a plan can check without a fault: the rule defining the alert is loaded and healthy, alerts answer.

    A rule whose evaluation failed (health "err") is refused; "unknown" (not evaluated yet) is reported.
    """
    rules = _alerting_rules(base, selector.alertname, MAX_REQUEST_TIMEOUT)
    healths = sorted({str(r.get("health", "unknown")) for r in rules})
    if "err" in healths:
        error = next((r.get("lastError") for r in rules if r.get("health") == "err"), "") or "no error text"
        raise DriverError(
            f"alerting rule {selector.alertname!r} in Prometheus at {base} fails to evaluate: {error}"
        )
    alerts = _get(base, "/api/v1/alerts", None, MAX_REQUEST_TIMEOUT).get("alerts") or []
    states = {str(a.get("state")) for a in alerts if _matches(selector, a)}
    return {
        "dry_run": True,
        "alert": selector.alertname,
        "labels": dict(selector.labels),
        "match_fault_targets": match_fault_targets,
        "prometheus": base,
        "rule_found": True,
        "rule_health": "/".join(healths),
        # before the fault: "firing" means the alert would not prove that the fault was detected
        "state_now": "firing" if "firing" in states else "pending" if "pending" in states else "inactive",
    }


def _get(base: str, path: str, params: dict[str, str] | None, timeout: float) -> Any:
    """GET a Prometheus API path and return its ``data``; every failure becomes a DriverError."""
    resp, body = get_json("Prometheus", base, path, params, timeout)
    if not isinstance(body, dict):
        raise DriverError(f"Prometheus {path} answered HTTP {resp.status_code} with no API body: {resp.text[:200]!r}")
    if body.get("status") != "success" or not resp.ok:
        kind = body.get("errorType") or "error"
        raise DriverError(f"Prometheus {path} failed (HTTP {resp.status_code}, {kind}): {body.get('error', resp.text)}")
    return body.get("data") or {}


def _instant(query: str, url: str | None, timeout: float, endpoint: str | None = None) -> list[dict[str, Any]]:
    if not isinstance(query, str) or not query.strip():
        raise DriverError(f"query must be a non-empty PromQL expression, got {query!r}")
    data = _get(prometheus_url(url, endpoint), "/api/v1/query", {"query": query}, timeout)
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return [{"labels": {}, "value": _float(result[1])}]
    if kind == "vector":
        return [{"labels": s.get("metric") or {}, "value": _float(s["value"][1])} for s in result or []]
    raise DriverError(f"query {query!r} returned a {kind}, not an instant vector or scalar")


def _alerts(base: str, deadline: float) -> list[dict[str, Any]]:
    timeout = min(MAX_REQUEST_TIMEOUT, max(deadline - time.monotonic(), 1.0))
    return _get(base, "/api/v1/alerts", None, timeout).get("alerts") or []


def _origin() -> tuple[float, str]:
    """Epoch seconds measurements count from: the run's last fault, else now (the probe's start)."""
    context = current_run()
    fault_time = context.fault_time() if context is not None else None
    return (fault_time, "fault") if fault_time is not None else (time.time(), "probe start")


def _before(timestamp: Any, epoch: float) -> bool | None:
    try:
        return datetime.fromisoformat(str(timestamp)).timestamp() < epoch
    except ValueError:
        return None


def _check_durations(within: float, poll: float) -> None:
    checks.non_negative("within", within)
    checks.non_negative("poll", poll)
    if poll <= 0:
        raise DriverError(f"poll must be > 0 seconds, got {poll!r}")


def _matches(selector: AlertSelector, alert: dict[str, Any]) -> bool:
    return selector.matches(_name(alert), alert.get("labels") or {})


def _name(alert: dict[str, Any]) -> str:
    return str((alert.get("labels") or {}).get("alertname", ""))


def _last_seen(selector: AlertSelector, alerts: list[dict[str, Any]]) -> str:
    mine = [a for a in alerts if _matches(selector, a)]
    if mine:
        return "; ".join(f"{a.get('state')} since {a.get('activeAt')}" for a in mine)
    same_name = [a for a in alerts if _name(a) == selector.alertname]
    if same_name:
        return "only for other labels: " + "; ".join(f"{_alert_text(a)} {a.get('state')}" for a in same_name)
    return "not present"


def _firing_text(alerts: list[dict[str, Any]]) -> str:
    return "[" + ", ".join(sorted(_alert_text(a) for a in alerts if a.get("state") == "firing")) + "]"


def _alert_text(alert: dict[str, Any]) -> str:
    labels = alert.get("labels") or {}
    return _name(alert) + _labels_text({k: v for k, v in labels.items() if k != "alertname"})


def _labels_text(labels: dict[str, Any]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _float(text: Any) -> float:
    try:
        return float(text)  # Prometheus sends sample values as strings, "NaN" and "+Inf" included
    except (TypeError, ValueError):
        raise DriverError(f"Prometheus returned a sample value that is not a number: {text!r}") from None
