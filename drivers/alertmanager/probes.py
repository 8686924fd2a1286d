"""Alertmanager probes: is an alert active, and was its notification delivered (and how fast), or sent.

The Alertmanager is the declared endpoint named by ``endpoint``, or ``url``, or (neither given) the
endpoint declared as ``alertmanager``, or the sandbox monitoring stack's (docs/experiment-format.md,
"Endpoints": credentials, TLS, headers). Every HTTP call has a timeout (seconds). Delivery is judged on the run's
notification receiver (the ``notifications`` setting of the experiment's mlchaos
extension), counting only what arrived after the run's most recent fault. With
``dry_run=True`` (a plan: no fault was injected) the notification probes do not wait:
they check that the run has a receiver and that the Alertmanager notifying it answers.

Where no receiver of the run is reachable from Alertmanager, ``notification_baseline`` (before the fault) and
``notification_sent_within`` read delivery from Alertmanager itself: the alert routed to a receiver, and its
integration's own counters (drivers/alertmanager/counters.py); docs/drivers/monitoring.md says what that proves.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from drivers._common import checks
from drivers._common.alerts import AlertSelector, alert_selector
from drivers._common.endpoints import connection
from drivers._common.http import get_json
from drivers._common.polling import poll
from drivers.alertmanager import counters
from drivers.alertmanager.sandbox import DEFAULT_ENDPOINT as DEFAULT_ENDPOINT  # takes declared endpoints
from drivers.alertmanager.sandbox import alertmanager_url, sink_address
from drivers.prometheus.sandbox import preflight as preflight  # the validation hook (not a probe)
from mlchaos.driver_kit import ALERT_STATUSES, DriverError, Notification, current_run

NO_RECEIVER = "this experiment has no notification receiver: declare `notifications` in its mlchaos extension"
DRY_RUN_TIMEOUT = 5.0  # seconds for the one Alertmanager request of a dry run
MEASUREMENT_KINDS = {"firing": "time_to_notify", "resolved": "time_to_notify_resolved"}
RULER_CLOCK_SLACK = 1.0  # seconds a ruler's clock (an alert's startsAt) may lag this host's


def alert_is_active(
    alert: str,
    labels: dict[str, str] | None = None,
    match_fault_targets: bool = False,
    url: str | None = None,
    timeout: float = 5.0,
    endpoint: str | None = None,
) -> bool:
    """True when Alertmanager holds the alert as active (not silenced, inhibited or unprocessed; timeout in s).

    ``labels`` must all be on the alert; ``match_fault_targets`` also requires its
    ``instance`` to be one the run's most recent fault hit.
    """
    selector = alert_selector(alert, labels, match_fault_targets)
    return bool(_active(alertmanager_url(url, endpoint), selector, timeout))


def notification_delivered_within(
    alert: str,
    within: float = 30,
    status: str = "firing",
    labels: dict[str, str] | None = None,
    match_fault_targets: bool = False,
    url: str | None = None,
    endpoint: str | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Wait up to `within` seconds for a notification of the alert with `status`; measures time to notify.

    Only notifications received since the run's most recent fault count (since the
    probe's start when no fault was injected yet), of an alert that began (``startsAt``) after the fault,
    so an earlier drill cannot satisfy it, not even by a delivery Alertmanager retried late.
    ``dry_run``: do not wait; check the receiver and that Alertmanager (``url``, None: the
    sandbox's, when the receiver listens at its sink) answers.
    """
    if status not in ALERT_STATUSES:
        raise DriverError(f"status must be 'firing' or 'resolved', got {status!r}")
    checks.non_negative("within", within)
    context = current_run()
    receiver = context.receiver if context is not None else None
    if receiver is None:
        raise DriverError(NO_RECEIVER)
    selector = alert_selector(alert, labels, match_fault_targets and not dry_run)
    if dry_run:
        base = _notifying_alertmanager(url, receiver, endpoint)
        info = _get(base, "/api/v2/status", {}, DRY_RUN_TIMEOUT)
        version = (info.get("versionInfo") or {}).get("version") if isinstance(info, dict) else None
        return {
            "dry_run": True,
            "alert": alert,
            "status": status,
            "labels": dict(selector.labels),
            "match_fault_targets": match_fault_targets,
            "receiver": receiver.url,
            "alertmanager": base,
            "alertmanager_version": version,
        }
    fault_time = context.fault_time()
    since, measured_from = (fault_time, "fault") if fault_time is not None else (time.time(), "probe start")

    witness = _witness(url, receiver, endpoint) if status == "firing" else None
    unconfirmed: list[Notification] = []  # matching, but the witness does not hold the alert

    def wanted(note: Notification) -> bool:
        return (note.received_at >= since and note.status == status and not any(n is note for n in unconfirmed)
                and selector.matches(note.alertname, note.labels) and not _began_before(note, fault_time))

    deadline = time.monotonic() + within
    while True:  # the witness is asked outside the receiver's lock, so deliveries never wait for it
        note = receiver.wait_for(wanted, timeout=max(deadline - time.monotonic(), 0.0))
        if note is None or witness is None or _confirmed(witness, note):
            break
        unconfirmed.append(note)
    if note is None:
        recent = [n for n in receiver.notifications() if n.received_at >= since]
        seen = "; ".join(f"{n.describe()} at +{n.received_at - since:.1f}s" for n in recent[-10:]) or "none"
        rejected = receiver.rejections()
        refused = f"; {receiver.rejected_count()} requests refused, last: {rejected[-1].reason}" if rejected else ""
        denied = (f"; not held by Alertmanager {witness}: "
                  + ", ".join(f"{n.describe()} (fingerprint {n.fingerprint or 'none'})" for n in unconfirmed[-3:])
                  if unconfirmed else "")
        earlier = [n for n in recent if n.status == status and selector.matches(n.alertname, n.labels)
                   and _began_before(n, fault_time)]
        older = ("; of an alert that began before the fault (a late delivery of an earlier one): "
                 + ", ".join(f"{n.describe()} since {n.starts_at}" for n in earlier[-3:]) if earlier else "")
        raise DriverError(
            f"no {status} notification of {selector.describe()} arrived within {within:g}s "
            f"(received since the {measured_from}: {seen}{refused}{denied}{older})"
        )
    seconds = round(note.received_at - since, 3)
    return {
        "alert": alert,
        "status": status,
        "labels": dict(note.labels),
        "received_at": note.received_at,
        "measured_from": measured_from,
        "confirmed_by": witness,  # the Alertmanager whose API holds the same alert; None: not reachable
        "measurement": {"kind": MEASUREMENT_KINDS[status], "alert": alert, "seconds": seconds},
    }


def resolved_notification_delivered_within(
    alert: str,
    within: float = 60,
    labels: dict[str, str] | None = None,
    match_fault_targets: bool = False,
    url: str | None = None,
    endpoint: str | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Wait up to `within` seconds for a resolved notification of the alert; measures time to notify recovery."""
    return notification_delivered_within(
        alert, within=within, status="resolved", labels=labels, match_fault_targets=match_fault_targets,
        url=url, endpoint=endpoint, dry_run=dry_run,
    )


def notification_baseline(
    integration: str = "webhook",
    url: str | None = None,
    endpoint: str | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Record Alertmanager's notification counters of an integration now, for notification_sent_within later.

    Put it in the method before the fault. The counters (``alertmanager_notifications_total``,
    ``_notifications_failed_total``, ``_notification_requests_total``, ``_requests_failed_total`` of the
    ``integration``, from Alertmanager's /metrics through the same endpoint and credentials) are kept in the run
    for that Alertmanager and integration; a second baseline replaces the first.
    """
    _integration(integration)
    context = current_run()
    if context is None:
        raise DriverError("notification_baseline needs a running experiment (it keeps the counters for a later probe)")
    base = alertmanager_url(url, endpoint)
    found = counters.read(base, integration, timeout)
    context.baselines[counters.BASELINE_KEY.format(base=base, integration=integration)] = found
    return {"alertmanager": base, **found.to_dict()}


def notification_sent_within(
    alert: str,
    receiver: str,
    integration: str = "webhook",
    within: float = 60,
    labels: dict[str, str] | None = None,
    match_fault_targets: bool = False,
    url: str | None = None,
    endpoint: str | None = None,
    timeout: float = 5.0,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Wait up to `within` s until Alertmanager holds the alert routed to `receiver` and the integration sent.

    For where no receiver of the run is reachable from Alertmanager. It passes when the alert is active (not
    silenced or inhibited) with ``receiver`` among its receivers in ``/api/v2/alerts``, and, since the run's
    notification_baseline, the integration's requests rose by more than its failed requests, and neither
    ``alertmanager_notification_requests_failed_total`` nor ``alertmanager_notifications_failed_total`` rose
    (it fails at once when one does). What it proves: Alertmanager routed the alert and an integration call
    returned success. What it cannot: that the far end delivered or showed it, nor that the call was for this
    alert (the counters are per integration: another alert notifying through it at the same time satisfies
    it, and fails it when its own calls fail). ``dry_run``: no waiting; check Alertmanager and its counters.
    """
    _integration(integration)
    if not isinstance(receiver, str) or not receiver:
        raise DriverError(f"receiver must be the name of an Alertmanager receiver, got {receiver!r}")
    checks.non_negative("within", within)
    selector = alert_selector(alert, labels, match_fault_targets and not dry_run)
    base = alertmanager_url(url, endpoint)
    if dry_run:
        found = counters.read(base, integration, timeout)
        return {"dry_run": True, "alert": alert, "receiver": receiver, "integration": integration,
                "alertmanager": base, "per_receiver": found.per_receiver}
    context = current_run()
    key = counters.BASELINE_KEY.format(base=base, integration=integration)
    baseline = context.baselines.get(key) if context is not None else None
    if baseline is None:
        raise DriverError(f"no notification_baseline of integration {integration!r} on Alertmanager {base} in this "
                          f"run: put one in the method before the fault (same url/endpoint and integration)")
    last: dict[str, Any] = {}

    def attempt() -> str | None:
        routed = sorted({str(r.get("name")) for a in _active(base, selector, timeout)
                         for r in a.get("receivers") or [] if isinstance(r, dict)})
        delta = counters.read(base, integration, timeout).since(baseline, receiver)
        last.update(routed=routed, delta=delta)
        if delta["requests_failed"] or delta["notifications_failed"]:
            return "failed"
        return "sent" if receiver in routed and delta["requests"] - delta["requests_failed"] >= 1 else None

    outcome = poll(within, attempt, done=lambda answer: answer is not None)
    routed, delta = last["routed"], last["delta"]
    scope = f"receiver {receiver!r}" if baseline.per_receiver else f"integration {integration!r} (all receivers)"
    counted = (f"since the baseline, {scope}: {delta['requests']:g} requests, {delta['requests_failed']:g} failed; "
               f"{delta['notifications']:g} notifications started, {delta['notifications_failed']:g} given up")
    if outcome == "failed":
        raise DriverError(f"Alertmanager at {base}: notifications of integration {integration!r} failed ({counted}; "
                          f"alertmanager_notification_requests_failed_total / alertmanager_notifications_failed_total "
                          f"rose): its log names the receiver and the error")
    if outcome is None:
        held = (f"routed to {', '.join(routed)}, not {receiver!r}" if routed and receiver not in routed
                else f"routed to {receiver!r}" if routed else "not held as active by Alertmanager")
        raise DriverError(f"no successful {integration} call for {selector.describe()} within {within:g}s: the alert "
                          f"is {held}; {counted}")
    return {
        "alert": alert,
        "receiver": receiver,
        "integration": integration,
        "routed_to": routed,
        "since_baseline": delta,
        "seconds_since_baseline": round(time.time() - baseline.read_at, 3),
        "attribution": "receiver" if baseline.per_receiver else "integration",
        "alertmanager": base,
    }


# -- helpers --------------------------------------------------------------------------------


def _integration(integration: Any) -> None:
    if not isinstance(integration, str) or not integration:
        raise DriverError(f"integration must be an Alertmanager integration name (webhook, slack...), got "
                          f"{integration!r}")


def _witness(url: str | None, receiver: Any, endpoint: str | None) -> str | None:
    """The Alertmanager whose API must hold a delivered firing alert: ``url``, else the sandbox's when the
    receiver is its sink; None when there is none to ask (the receiver's token is then the only proof)."""
    try:
        base = _notifying_alertmanager(url, receiver, endpoint)
        _get(base, "/api/v2/status", {}, DRY_RUN_TIMEOUT)
    except DriverError:
        return None
    return base


def _confirmed(base: str, note: Notification) -> bool:
    """Whether Alertmanager's API holds the notified alert: the same fingerprint, or labels and startsAt."""
    escaped = note.alertname.replace("\\", "\\\\").replace('"', '\\"')
    try:
        alerts = _get(base, "/api/v2/alerts", {"filter": f'alertname="{escaped}"'}, DRY_RUN_TIMEOUT)
    except DriverError:
        return False
    started = _instant(note.starts_at)
    return isinstance(alerts, list) and any(
        isinstance(a, dict) and (
            (note.fingerprint and a.get("fingerprint") == note.fingerprint)
            or (a.get("labels") == note.labels and started is not None and _instant(a.get("startsAt")) == started))
        for a in alerts)


def _began_before(note: Notification, fault_time: float | None) -> bool:
    """Whether the notified alert began (``startsAt``) before the fault, beyond the rulers' clock slack: an
    earlier alert's notification, which Alertmanager may deliver late (it retries a failed one with backoff)."""
    if fault_time is None:
        return False
    try:
        started = datetime.fromisoformat(note.starts_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False  # Alertmanager always sends startsAt; without one the token and the witness still hold
    return started < fault_time - RULER_CLOCK_SLACK


def _instant(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).replace(microsecond=0)
    except ValueError:
        return None


def _notifying_alertmanager(url: str | None, receiver: Any, endpoint: str | None = None) -> str:
    """The Alertmanager a dry run checks: ``url`` or the (named or default) declared endpoint, else the sandbox's
    when the receiver listens at its sink."""
    found = connection(endpoint, url, DEFAULT_ENDPOINT)
    if found is not None:
        return found.url
    if url is not None:
        return alertmanager_url(url)
    base = alertmanager_url(None)  # DriverError when the sandbox monitoring stack is not running
    host, port = sink_address()
    if (receiver.host, receiver.port) != (host, port):
        raise DriverError(
            f"the receiver at {receiver.url} is not the sandbox Alertmanager's sink "
            f"({host}:{port}): give url, the Alertmanager that notifies it"
        )
    return base


def _active(base: str, selector: AlertSelector, timeout: float) -> list[dict[str, Any]]:
    """The alerts Alertmanager holds as active (not silenced, inhibited or unprocessed) that ``selector`` matches."""
    escaped = selector.alertname.replace("\\", "\\\\").replace('"', '\\"')
    params = {"active": "true", "silenced": "false", "inhibited": "false", "filter": f'alertname="{escaped}"'}
    alerts = _get(base, "/api/v2/alerts", params, timeout)
    if not isinstance(alerts, list):
        raise DriverError(f"Alertmanager /api/v2/alerts answered {type(alerts).__name__}, not a list of alerts")
    return [a for a in alerts if isinstance(a, dict) and (a.get("status") or {}).get("state") == "active"
            and selector.matches(str((a.get("labels") or {}).get("alertname", "")), a.get("labels") or {})]


def _get(base: str, path: str, params: dict[str, str], timeout: float) -> Any:
    """GET an Alertmanager API path and return its JSON; every failure becomes a DriverError."""
    resp, body = get_json("Alertmanager", base, path, params, timeout)
    if not resp.ok:
        # v2 errors are a JSON string ("bad matcher format: ...") or {"code", "message"}
        text = body.get("message", body) if isinstance(body, dict) else (body or resp.text[:200])
        raise DriverError(f"Alertmanager {path} failed (HTTP {resp.status_code}): {text}")
    if body is None:
        raise DriverError(f"Alertmanager {path} answered HTTP {resp.status_code} with no JSON: {resp.text[:200]!r}")
    return body
