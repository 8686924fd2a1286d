"""Exact detection and recovery times from Prometheus' own timestamps, and the floor each one stands on.

The polling probes see an alert fire (or go) up to one poll late. Prometheus knows better:

* **fired**: an alert becomes active (pending) at the evaluation ``activeAt`` and fires at the first
  evaluation at least ``for`` later. Evaluations of a group run every ``interval`` from ``activeAt``, so it
  fired at ``activeAt + ceil(for / interval) * interval`` (``activeAt + for`` when ``for`` is a multiple of
  the interval, as in the bundled rules); with ``for: 0`` at ``activeAt`` itself.
* **resolved**: an alert's disappearance from ``/api/v1/alerts`` carries no timestamp, and a rule's
  ``lastEvaluation`` is merely the newest evaluation when it is asked. The ``ALERTS`` series, though, has
  one sample per evaluation at which the alert was active (pending or firing, ``keep_firing_for`` included):
  its last sample is the last evaluation that held it, so it was gone at the next one, ``interval`` later.
  VictoriaMetrics also returns the staleness marker (a ``NaN`` sample) vmalert writes at the evaluation
  that found the alert gone: that is the time itself. vmalert writes ``ALERTS`` at whole seconds (its
  evaluation's time truncated): the evaluation is then put back on its grid (``activeAt`` + n *
  ``interval``) when the probe saw the alert's ``activeAt``; otherwise the time is a lower bound, true to
  ``resolution`` (1 s), and says so.

The **floor** of a detection is what the monitoring's configuration alone costs at worst: the scrape
interval (until the fault is sampled) + the evaluation interval (until a rule sees the sample) + the
rule's ``for``. The floor of a recovery, counted from the moment the fault ends, is scrape + evaluation
+ ``keep_firing_for``. They are read from Prometheus: the rule (``duration``, ``keepFiringFor``), its
group's ``interval`` and the running configuration (``/api/v1/status/config``: the job's
``scrape_interval``, else the global one).

Both times are epoch seconds on Prometheus' clock, compared with the fault's time on this host's: a
time that lies after the probe saw the change (a clock ahead of ours) or before the fault is refused,
and the probe keeps its polled value (and says why).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from mlchaos.driver_kit import DriverError

CLOCK_SLACK = 0.05  # seconds Prometheus' timestamps may lie after what this host saw (rounding, not skew)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}

Get = Callable[[str, dict[str, str] | None], Any]  # (API path, params) -> the answer's ``data``


@dataclass(frozen=True)
class RuleTiming:
    """The durations that bound when an alert can fire and resolve; None where Prometheus did not say."""

    for_seconds: float | None
    keep_firing_for: float | None
    evaluation_interval: float | None
    scrape_interval: float | None

    def floor(self, kind: str) -> dict[str, Any] | None:
        """``{"seconds", "text"}``: scrape + evaluation + ``for`` (detect) or ``keep_firing_for`` (recover)."""
        last = ("for", self.for_seconds) if kind == "time_to_detect" else ("keep_firing_for", self.keep_firing_for)
        parts = [("scrape", self.scrape_interval), ("evaluation", self.evaluation_interval), last]
        if any(value is None for _, value in parts):
            return None
        seconds = round(sum(float(value or 0.0) for _, value in parts), 3)
        return {"seconds": seconds, "text": " + ".join(f"{name} {value:g}s" for name, value in parts)}


@dataclass(frozen=True)
class Exact:
    """An exact time (epoch seconds on Prometheus' clock), or None and why the polled value stands.

    ``resolution`` (seconds): ``at`` is a lower bound, the truth lies within that much after it (the
    timestamps it was read from were truncated); ``note`` then says why.
    """

    at: float | None
    note: str = ""
    resolution: float | None = None


def parse_duration(text: Any) -> float | None:
    """Seconds of a Prometheus duration (``1m30s``, ``500ms``) or a number of seconds; None when unreadable."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str) or not text:
        return None
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def timestamp(text: Any) -> float | None:
    """Epoch seconds of an RFC 3339 time as Prometheus writes it (nanoseconds, ``Z``); None when unreadable."""
    if not isinstance(text, str) or text.startswith("0001-01-01"):  # Go's zero time: "never"
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def rule_timing(get: Get, alertname: str, labels: Mapping[str, str]) -> RuleTiming:
    """The timing of the alerting rule ``alertname`` (the first loaded one; the job from the alert's labels)."""
    groups = (get("/api/v1/rules", {"type": "alert"}) or {}).get("groups") or []
    found = [(g, r) for g in groups for r in g.get("rules") or [] if r.get("name") == alertname]
    group, rule = found[0] if found else ({}, {})
    config = _config(get)
    global_ = config.get("global") or {}
    job = labels.get("job")
    jobs = [c for c in config.get("scrape_configs") or [] if isinstance(c, dict) and c.get("job_name") == job]
    scrape = parse_duration((jobs[0] if jobs else {}).get("scrape_interval")) if jobs else None
    return RuleTiming(
        for_seconds=parse_duration(rule.get("duration")) if rule else None,
        keep_firing_for=parse_duration(rule.get("keepFiringFor", 0 if rule else None)) if rule else None,
        evaluation_interval=parse_duration(group.get("interval")) or parse_duration(global_.get("evaluation_interval")),
        scrape_interval=scrape or parse_duration(global_.get("scrape_interval")),
    )


def fired_at(alert: Mapping[str, Any], timing: RuleTiming, origin: float, seen: float) -> Exact:
    """When the firing ``alert`` (from /api/v1/alerts) fired: ``activeAt`` + ``for``, rounded up to evaluations."""
    active_at = timestamp(alert.get("activeAt"))
    if active_at is None:
        return Exact(None, "Prometheus gave no activeAt")
    if timing.for_seconds is None:
        return Exact(None, "Prometheus gave no rule duration (for)")
    if alert.get("keepFiringSince"):
        return Exact(None, f"kept firing (keep_firing_for) since {alert.get('keepFiringSince')}")
    if active_at < origin:
        return Exact(None, f"active since {alert.get('activeAt')}, before the fault: not caused by it")
    interval = timing.evaluation_interval
    steps = math.ceil(timing.for_seconds / interval - 1e-9) if interval and timing.for_seconds > 0 else None
    at = active_at + (steps * interval if steps is not None and interval else timing.for_seconds)
    return _checked(at, origin, seen, "fired")


def resolved_at(get: Get, selector: Callable[[str, Mapping[str, str]], bool], alertname: str,
                timing: RuleTiming, origin: float, seen: float, active_at: float | None = None) -> Exact:
    """When the alert was last gone: the evaluation after the last ``ALERTS`` sample since the fault (its
    staleness marker where the server returns one, else one interval later). ``active_at`` (epoch seconds,
    the alert's ``activeAt`` when the probe saw it) puts whole-second timestamps back on the evaluation grid."""
    interval = timing.evaluation_interval
    if not interval:
        return Exact(None, "Prometheus gave no evaluation interval")
    window = max(int(math.ceil(seen - origin + 2 * interval)), 1)
    escaped = alertname.replace("\\", "\\\\").replace('"', '\\"')
    data = get("/api/v1/query", {"query": f'ALERTS{{alertname="{escaped}"}}[{window}s]', "time": f"{seen:.3f}"})
    if (data or {}).get("resultType") != "matrix":
        return Exact(None, "ALERTS range query gave no matrix")
    active: list[float] = []
    gone: list[float] = []  # staleness markers (NaN): evaluations that found the alert inactive
    for series in data.get("result") or []:
        if selector(alertname, {k: v for k, v in (series.get("metric") or {}).items() if k != "alertstate"}):
            for stamp, value in series.get("values") or []:
                (active if _finite(value) else gone).append(float(stamp))
    if not active:
        return Exact(None, "no ALERTS sample since the fault: it was never active, or the ruler does not write "
                           "ALERTS where it is queried (vmalert without -remoteWrite.url)")
    last = max(active)
    markers = [stamp for stamp in gone if stamp > last]
    if not all(stamp.is_integer() for stamp in [*active, *markers]):
        return _checked(min(markers) if markers else last + interval, origin, seen, "resolved")
    # whole seconds (vmalert): the evaluation ran within the second after each stamp
    stamp, after = (min(markers), 0.0) if markers else (last, interval)
    evaluation = _on_grid(stamp, active_at, interval) if active_at is not None else None
    if evaluation is not None:
        return _checked(evaluation + after, origin, seen, "resolved")
    checked = _checked(stamp + after, origin, seen, "resolved")
    if checked.at is None:
        return checked
    return Exact(checked.at, "ALERTS has whole-second timestamps and the alert's activeAt was not seen: "
                             "a lower bound, true to 1s", resolution=1.0)


def _on_grid(stamp: float, active_at: float, interval: float) -> float | None:
    """The evaluation (``active_at`` + n * ``interval``) within the second after the truncated ``stamp``;
    None when the grid does not single one out (an interval under a second)."""
    if interval < 1.0:
        return None
    evaluation = active_at + math.ceil((stamp - active_at) / interval - 1e-9) * interval
    return evaluation if stamp <= evaluation < stamp + 1.0 else None


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _checked(at: float, origin: float, seen: float, what: str) -> Exact:
    """``at`` unless Prometheus' clock contradicts ours (after this host saw it, or before the fault)."""
    if at > seen + CLOCK_SLACK:
        return Exact(None, f"Prometheus says it {what} {at - seen:.3f}s after this host saw it: clocks disagree")
    if at < origin - CLOCK_SLACK:
        return Exact(None, f"Prometheus says it {what} {origin - at:.3f}s before the fault")
    return Exact(at)


def _config(get: Get) -> dict[str, Any]:
    """Prometheus' running configuration (parsed YAML); empty when it cannot be read."""
    try:
        text = (get("/api/v1/status/config", None) or {}).get("yaml")
        config = yaml.safe_load(text) if isinstance(text, str) else None
    except (DriverError, yaml.YAMLError):  # a proxy may forbid it: the floor is then unknown, not the time
        return {}
    return config if isinstance(config, dict) else {}
