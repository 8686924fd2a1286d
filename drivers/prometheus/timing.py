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
* **written back late**: vmalert sends its ``ALERTS`` samples every ``-remoteWrite.flushInterval`` (5 s),
  and VictoriaMetrics finds a new series (the firing one) some time after its first samples. Read too
  soon, the series lacks its end, and the pending series' marker (the alert began firing) passes for it.
  So the samples must be complete before they are read: the series of the state the probe last saw, and
  the newest, end in a marker; a pending series that lasted ``for`` is followed by a firing one; where no
  markers are returned (Prometheus), the series reaches the evaluation behind the probe's last sight.
  They are asked again until they are, for up to ``wait`` seconds.

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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from mlchaos.driver_kit import DriverError

CLOCK_SLACK = 0.05  # seconds Prometheus' timestamps may lie after what this host saw (rounding, not skew)
NO_SAMPLES = ("no ALERTS sample since the fault: it was never active, or the ruler does not write ALERTS where "
              "it is queried (vmalert without -remoteWrite.url)")
EVALUATION_SLACK = 1.0  # seconds an evaluation may run late, or its answer take to reach the probe
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


@dataclass(frozen=True)
class LastActive:
    """The alert as the probe last saw it before it went: its state (pending or firing) and when (epoch
    seconds on this host's clock, when the answer came)."""

    state: str
    at: float


def resolved_at(get: Get, selector: Callable[[str, Mapping[str, str]], bool], alertname: str,
                timing: RuleTiming, origin: float, seen: float, active_at: float | None = None,
                last_active: LastActive | None = None, wait: float = 0.0, poll: float = 0.5) -> Exact:
    """When the alert was last gone: the evaluation after the last ``ALERTS`` sample since the fault (its
    staleness marker where the server returns one, else one interval later). ``active_at`` (epoch seconds,
    the alert's ``activeAt`` when the probe saw it) puts whole-second timestamps back on the evaluation grid.

    ``last_active`` (what the probe last saw) tells an ALERTS series still being written back from a complete
    one (:func:`_incomplete`); for up to ``wait`` seconds it is asked again every ``poll`` seconds until it
    is complete, else the polled time stands and the note says why.
    """
    interval = timing.evaluation_interval
    if not interval:
        return Exact(None, "Prometheus gave no evaluation interval")
    window = max(int(math.ceil(seen - origin + 2 * interval)), 1)
    escaped = alertname.replace("\\", "\\\\").replace('"', '\\"')
    # nocache: VictoriaMetrics would move a query this close to now back by its -search.latencyOffset (30 s)
    params = {"query": f'ALERTS{{alertname="{escaped}"}}[{window}s]', "time": f"{seen:.3f}", "nocache": "1"}
    deadline = time.monotonic() + wait
    while True:
        samples = _samples(get("/api/v1/query", params), selector, alertname)
        if samples is None:
            return Exact(None, "ALERTS range query gave no matrix")
        missing = _incomplete(samples, last_active, timing)
        if missing is None:
            return _resolved(samples, interval, origin, seen, active_at)
        if time.monotonic() + poll > deadline:
            break
        time.sleep(poll)
    if not any(active for active, _ in samples.values()):
        return Exact(None, NO_SAMPLES)
    return Exact(None, f"ALERTS was still incomplete after {wait:g}s ({missing}): the ruler writes it back late "
                       f"(vmalert's -remoteWrite.flushInterval), or missed evaluations")


Samples = dict[str, tuple[list[float], list[float]]]  # alertstate -> (active stamps, staleness marker stamps)


def _samples(data: Any, selector: Callable[[str, Mapping[str, str]], bool], alertname: str) -> Samples | None:
    """The selected alert's ALERTS stamps by state from a range query's ``data``; None when it is no matrix."""
    if (data or {}).get("resultType") != "matrix":
        return None
    samples: Samples = {}
    for series in data.get("result") or []:
        labels = series.get("metric") or {}
        if selector(alertname, {k: v for k, v in labels.items() if k != "alertstate"}):
            active, gone = samples.setdefault(str(labels.get("alertstate")), ([], []))
            for stamp, value in series.get("values") or []:
                (active if _finite(value) else gone).append(float(stamp))
    return samples


def _incomplete(samples: Samples, last_active: LastActive | None, timing: RuleTiming) -> str | None:
    """What is missing from ALERTS samples a ruler may still be writing back (vmalert sends them every few
    seconds; VictoriaMetrics shows a new series some time after its first samples), or None when they are
    complete up to the alert's end as far as can be told.

    Where the server returns staleness markers (VictoriaMetrics), the series of the state the probe last saw,
    and the one with the newest sample, must end in one: the marker of the evaluation that found the alert
    gone, sent after every earlier sample. A pending series that ends after ``for`` ended by firing, not by
    going: the firing series must be there. Where the server returns no markers (Prometheus' API drops
    them), the series of the state the probe last saw must reach the evaluation behind that sight.
    """
    if last_active is not None and not samples.get(last_active.state, ([], []))[0]:
        return f"no {last_active.state} sample yet"
    if any(markers for _, markers in samples.values()):
        newest = max(samples, key=lambda state: max(samples[state][0], default=-math.inf))
        for state in dict.fromkeys([newest] + ([last_active.state] if last_active else [])):
            active, gone = samples[state]
            if active and not any(stamp > max(active) for stamp in gone):
                return f"no staleness marker yet after its last {state} sample"
        return _fired_unseen(samples, timing)
    if last_active is None:
        return None
    interval = timing.evaluation_interval or 0.0
    last = max(samples[last_active.state][0])
    truncated = 1.0 if last.is_integer() else 0.0
    if last >= last_active.at - interval - truncated - EVALUATION_SLACK:
        return None
    return f"its last {last_active.state} sample is {last_active.at - last:.3f}s older than the probe's last sight"


def _fired_unseen(samples: Samples, timing: RuleTiming) -> str | None:
    """Why samples are missing when the pending series' last episode ended by firing (it lasted the ``for``
    evaluations) and no firing sample follows it; None otherwise."""
    active, gone = samples.get("pending", ([], []))
    if not active or not gone or max(gone) < max(active) or not timing.for_seconds or not timing.evaluation_interval:
        return None
    end = max(gone)
    before = max((stamp for stamp in gone if stamp < end), default=-math.inf)  # an earlier episode's end
    episode = [stamp for stamp in active if before < stamp < end]
    if len(episode) < math.ceil(timing.for_seconds / timing.evaluation_interval - 1e-9):
        return None  # it went while pending
    firing = samples.get("firing", ([], []))[0]
    truncated = 1.0 if end.is_integer() else 0.0
    if any(stamp >= end - truncated for stamp in firing):
        return None
    return "the pending series lasted its for, so the alert fired, but no firing sample is there yet"


def _resolved(samples: Samples, interval: float, origin: float, seen: float, active_at: float | None) -> Exact:
    """The end of the alert's last episode in complete ``samples`` (see :func:`resolved_at`)."""
    active = [stamp for stamps, _ in samples.values() for stamp in stamps]
    gone = [stamp for _, markers in samples.values() for stamp in markers]  # evaluations that found it gone
    if not active:
        return Exact(None, NO_SAMPLES)
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
