"""Reading journals into reports: the only place in ``mlchaos.reports`` where journal dicts are read.

A journal is user input (a file on disk, possibly cut short by a killed runner, possibly edited), so
every field is optional and read defensively; text is kept as text and escaped by each renderer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from mlchaos.engine.budgets import KIND_LABELS
from mlchaos.errors import InvalidInput
from mlchaos.journal import reader as journal_reader
from mlchaos.reports.types import (
    PHASE_AFTER,
    PHASE_BEFORE,
    PHASE_METHOD,
    PHASE_RECOVERY,
    PHASE_ROLLBACKS,
    ActivityResult,
    BlastRadius,
    BudgetRow,
    DuringCheck,
    FiredAlert,
    GuardResult,
    KindRadius,
    Marker,
    MeasurementRow,
    NotificationSeen,
    RunReport,
    Span,
    Suite,
    TargetHit,
    Timeline,
)

VALUE_LIMIT = 200
T = TypeVar("T")


def read_run(data: Mapping[str, Any]) -> RunReport:
    """The report of one run, from its journal."""
    return _JournalReader(data).report()


def load_journal(path: str | Path) -> dict[str, Any]:
    """Read one journal file; InvalidInput (naming the file) when it is not a journal."""
    data = journal_reader.read_file(Path(path))
    if not isinstance(data, dict) or not isinstance(data.get("experiment"), dict):
        raise InvalidInput(f"{path}: not an mlchaos or Chaos Toolkit journal (no 'experiment' object)")
    return data


def build_suite(journals: Iterable[str | Path | Mapping[str, Any] | RunReport]) -> Suite:
    """A suite from journal files, journal dicts or reports (in any mix)."""
    runs = []
    for item in journals:
        if isinstance(item, RunReport):
            runs.append(item)
        elif isinstance(item, Mapping):
            runs.append(read_run(item))
        else:
            runs.append(read_run(load_journal(item)))
    return Suite(tuple(runs))


class _JournalReader:
    """Reads one journal into a :class:`RunReport`."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = data
        self.experiment = _mapping(data.get("experiment"))
        self.extra = _mapping(data.get("mlchaos"))
        self.start = _time(data.get("start"))
        self.end = _time(data.get("end"))

    def report(self) -> RunReport:
        data, extra, experiment = self.data, self.extra, self.experiment
        activities = self._activities()
        targets = self._targets()
        budgets = self._budgets()
        guards = self._guards()
        aborted = _mapping(extra.get("aborted"))
        status = _text(data.get("status")) or "unknown"
        verdict = _text(extra.get("verdict")) or ("unfinished" if status == "running" else status)
        duration = _number(data.get("duration"))
        if duration is None:
            duration = (self.end - self.start).total_seconds() if self.start and self.end else 0.0
        notifications = self._notifications()
        report = RunReport(
            experiment_id=experiment_id(_text(extra.get("source")), _text(experiment.get("title"))),
            title=_text(experiment.get("title")) or "(untitled experiment)",
            description=_text(experiment.get("description")),
            source=_text(extra.get("source")),
            tags=tuple(_text(t) for t in _sequence(experiment.get("tags")) if _text(t)),
            run_id=_text(extra.get("run_id")) or (self.start.strftime("%Y%m%dT%H%M%S") if self.start else ""),
            verdict=verdict,
            exit_code=_integer(extra.get("exit_code")),
            status=status,
            start=self.start,
            end=self.end,
            duration=max(duration, 0.0),
            node=_text(data.get("node")),
            mlchaos_version=_text(extra.get("version")),
            activities=tuple(activities),
            hypothesis_probes=tuple(
                _text(_mapping(p).get("name")) for p in
                _sequence(_mapping(experiment.get("steady-state-hypothesis")).get("probes"))
            ),
            budgets=tuple(budgets),
            measurements=tuple(self._measurements()),
            targets=tuple(targets),
            blast_radius=self._blast_radius(),
            guards=tuple(guards),
            failures=tuple(self._failures(activities, budgets)),
            refusals=tuple(_text(r) for r in _sequence(extra.get("refused"))),
            aborted=_text(aborted.get("message")),
            aborted_kind=_text(aborted.get("kind")),
            interrupted_by=_text(extra.get("interrupted_by")),
            recoveries=tuple(self._recoveries()),
            during=self._during(),
            hypothesis_strategy=_text(_mapping(extra.get("hypothesis_schedule")).get("strategy")),
            left_undone=tuple(_text(n) for n in _sequence(extra.get("rollbacks_left_undone"))),
            notifications=tuple(notifications),
            fired_alerts=tuple(self._fired_alerts(notifications)),
            timeline=self._timeline(duration, notifications, guards),
        )
        return report

    # --- activities -----------------------------------------------------------------------
    def _entries(self) -> list[tuple[str, Mapping[str, Any]]]:
        states = _mapping(self.data.get("steady_states"))
        found: list[tuple[str, Mapping[str, Any]]] = []
        for phase, section in (
            (PHASE_BEFORE, _mapping(states.get("before")).get("probes")),
            (PHASE_METHOD, self.data.get("run")),
            (PHASE_AFTER, _mapping(states.get("after")).get("probes")),
            (PHASE_ROLLBACKS, self.data.get("rollbacks")),
            (PHASE_RECOVERY, _mapping(self.extra.get("recovery")).get("probes")),
        ):
            found.extend((phase, _mapping(entry)) for entry in _sequence(section))
        return found

    def _activities(self) -> list[ActivityResult]:
        results = []
        for phase, entry in self._entries():
            activity = _mapping(entry.get("activity"))
            tolerance = activity.get("tolerance")
            met = entry.get("tolerance_met")
            results.append(ActivityResult(
                phase=phase,
                kind=_text(activity.get("type")) or "probe",
                name=_text(activity.get("name")) or "(unnamed)",
                status=_text(entry.get("status")) or "unknown",
                duration=_number(entry.get("duration")),
                value=summarise(entry.get("output")),
                tolerance="" if tolerance is None else _compact(tolerance),
                tolerance_met=met if isinstance(met, bool) else None,
                error=exception_message(entry.get("exception")),
                automatic=journal_reader.is_automatic(entry),
            ))
        return results

    def _failures(self, activities: list[ActivityResult], budgets: list[BudgetRow]) -> list[str]:
        failures = []
        states = _mapping(self.data.get("steady_states"))
        if _mapping(states.get("before")).get("steady_state_met") is False:
            failures.append("steady state not met before the method: the method did not run")
        for activity in activities:
            where = f"{activity.phase}: {activity.kind} {activity.name}"
            if activity.status == "running":
                failures.append(f"{where}: still running when the run stopped")
            elif activity.status != "succeeded":
                failures.append(f"{where} failed: {activity.error or activity.status}")
            elif activity.tolerance_met is False:
                failures.append(f"{where}: tolerance {activity.tolerance} not met, actual value {activity.value}")
        for budget in budgets:
            if budget.measured is None:
                failures.append(f"{budget.label} {budget.alert}: not measured (budget {budget.budget:g}s)")
            elif not budget.met:
                failures.append(f"{budget.label} {budget.alert}: {budget.measured:.1f}s exceeds the budget of "
                                f"{budget.budget:g}s")
        missed = [check for check in self._during() if not check.met]
        if missed:
            failures.append(f"steady state not met during the method in {len(missed)} of {len(self._during())} "
                            f"checks (first: check {missed[0].index}: {'; '.join(missed[0].missed)})")
        if _mapping(self.extra.get("recovery")).get("recovered") is False:
            failures.append("the system did not return to its steady state after the rollbacks")
        internal = _text(self.extra.get("internal_error"))
        if internal:
            failures.append(f"internal error: {exception_message(internal)}")
        return failures

    def _during(self) -> tuple[DuringCheck, ...]:
        checks = []
        for index, state in enumerate(_sequence(_mapping(self.data.get("steady_states")).get("during")), 1):
            probes = [_mapping(p) for p in _sequence(_mapping(state).get("probes"))]
            missed = tuple(f"{_text(_mapping(p.get('activity')).get('name')) or '(unnamed)'}: "
                           f"{exception_message(p.get('exception')) or summarise(p.get('output'))}"
                           for p in probes if p.get("tolerance_met") is not True)
            checks.append(DuringCheck(index, _mapping(state).get("steady_state_met") is True,
                                      _text(probes[0].get("start")) if probes else "", missed))
        return tuple(checks)

    # --- mlchaos' sections ----------------------------------------------------------------
    def _budgets(self) -> list[BudgetRow]:
        def row(item: Mapping[str, Any]) -> BudgetRow | None:
            budget, measured = _number(item.get("budget")), _number(item.get("measured"))
            if budget is None:
                return None
            return BudgetRow(_text(item.get("alert")), _text(item.get("kind")), budget, measured,
                             measured is not None and measured <= budget)

        return self._rows("budgets", row)

    def _measurements(self) -> list[MeasurementRow]:
        def row(item: Mapping[str, Any]) -> MeasurementRow | None:
            seconds = _number(item.get("seconds"))
            if seconds is None:
                return None
            return MeasurementRow(_text(item.get("kind")), _text(item.get("alert")), seconds,
                                  _text(item.get("activity")), polled=_number(item.get("polled")),
                                  method=_text(item.get("method")), note=_text(item.get("note")),
                                  floor=_number(item.get("floor")), floor_text=_text(item.get("floor_text")))

        return self._rows("measurements", row)

    def _rows(self, key: str, row: Callable[[Mapping[str, Any]], T | None]) -> list[T]:
        """The readable rows of the list ``key`` of the mlchaos section (an unreadable item is left out)."""
        found = (row(_mapping(item)) for item in _sequence(self.extra.get(key)))
        return [item for item in found if item is not None]

    def _changes(self) -> list[Mapping[str, Any]]:
        return [_mapping(c) for c in _sequence(self.extra.get("changes"))]

    def _targets(self) -> list[TargetHit]:
        hits = []
        for change in self._changes():
            targets = _sequence(change.get("targets")) or [{}]
            for target in targets:
                target = _mapping(target)
                details = _mapping(target.get("details"))
                detail = ", ".join(f"{k} {_text(details[k])}" for k in ("pid", "id", "instance", "url", "path")
                                   if details.get(k) not in (None, ""))
                hits.append(TargetHit(
                    action=_text(change.get("action")), driver=_text(change.get("driver")),
                    kind=_text(target.get("kind")), name=_text(target.get("name")), detail=detail,
                    environment=_text(change.get("environment")), announced_at=_time(change.get("announced_at")),
                    dry_run=change.get("dry_run") is True,
                ))
        return hits

    def _blast_radius(self) -> BlastRadius:
        radius = _mapping(self.extra.get("blast_radius"))
        kinds = []
        for kind, item in _mapping(radius.get("by_kind")).items():
            item = _mapping(item)
            kinds.append(KindRadius(
                kind=_text(kind), affected=tuple(_text(a) for a in _sequence(item.get("affected"))),
                eligible=_integer(item.get("eligible")), fraction=_number(item.get("fraction")),
                population_unknown=item.get("population_unknown") is True,
            ))
        return BlastRadius(
            bounds=tuple(_text(b) for b in _sequence(radius.get("bounds"))),
            targets=_integer(radius.get("targets")) or 0, kinds=tuple(kinds),
            environments=tuple(_text(e) for e in _sequence(radius.get("environments"))),
        )

    def _guards(self) -> list[GuardResult]:
        guards = []
        for item in _sequence(self.extra.get("guards")):
            item = _mapping(item)
            guards.append(GuardResult(
                name=_text(item.get("name")), checks=_integer(item.get("checks")) or 0,
                last_value=summarise(item.get("last_value")), tripped=item.get("tripped") is True,
                explanation=_text(item.get("explanation")), tripped_at=_number(item.get("tripped_at")),
            ))
        return guards

    def _recoveries(self) -> list[str]:
        lines = []
        for item in _sequence(self.extra.get("recoveries")):
            item = _mapping(item)
            results = [_mapping(r) for r in _sequence(item.get("results"))]
            done = ", ".join(
                f"{_text(r.get('action'))} on {', '.join(_text(t) for t in _sequence(r.get('targets'))) or 'nothing'}"
                f": {_text(r.get('status'))}" + (f" ({_text(r.get('error'))})" if r.get("error") else "")
                for r in results
            )
            lines.append(f"{_text(item.get('by')) or 'recovery'} at {_text(item.get('at'))}: "
                         f"{'ok' if item.get('ok') else 'NOT ALL UNDONE'}; {done or 'nothing recorded'}")
        return lines

    def _notifications(self) -> list[NotificationSeen]:
        block = _mapping(self.extra.get("notifications"))
        seen = []
        for item in _sequence(block.get("notifications")):
            item = _mapping(item)
            received = _number(item.get("received_at"))
            seen.append(NotificationSeen(
                status=_text(item.get("status")), alertname=_text(item.get("alertname")),
                received_at=datetime.fromtimestamp(received, UTC) if received is not None else None,
                labels=_labels(item.get("labels")),
            ))
        return seen

    def _fired_alerts(self, notifications: list[NotificationSeen]) -> list[FiredAlert]:
        """Alerts seen firing: firing notifications, and the outputs of probes that saw an alert fire."""
        fired = [FiredAlert(n.alertname or n.labels.get("alertname", ""), n.labels, "notification")
                 for n in notifications if n.status == "firing"]
        for _phase, entry in self._entries():
            output = entry.get("output")
            if not isinstance(output, Mapping):
                continue
            labels = _labels(output.get("labels"))
            if labels and (output.get("state") == "firing" or output.get("status") == "firing"):
                name = labels.get("alertname") or _text(output.get("alert"))
                fired.append(FiredAlert(name, labels, f"probe {_text(_mapping(entry.get('activity')).get('name'))}"))
        return fired

    # --- the timeline ---------------------------------------------------------------------
    def _offset(self, moment: datetime | None) -> float | None:
        if moment is None or self.start is None:
            return None
        return (moment - self.start).total_seconds()

    def _timeline(self, duration: float, notifications: list[NotificationSeen],
                  guards: list[GuardResult]) -> Timeline:
        spans: list[Span] = []
        markers: list[Marker] = []
        ends: list[float] = [duration]
        entries = self._entries()
        phase_starts = [(phase, self._offset(_time(e.get("start")))) for phase, e in entries]
        for phase, entry in entries:
            begin = self._offset(_time(entry.get("start")))
            if begin is None:
                continue  # automatic undos carry no start; nothing to place
            finish = self._offset(_time(entry.get("end")))
            status = _text(entry.get("status")) or "unknown"
            if finish is None:  # the run stopped under it: it lasted until the next phase began
                later = [at for p, at in phase_starts if p != phase and at is not None and at > begin]
                finish = min(later) if later else max(duration, begin)
            if entry.get("tolerance_met") is False:
                status = "failed"
            name = _text(_mapping(entry.get("activity")).get("name"))
            spans.append(Span(phase, name, begin, finish, status))
            ends.append(finish)
        applied = [c for c in self._changes() if c.get("dry_run") is not True]
        faults = [(at, c) for c in applied if (at := self._offset(_time(c.get("announced_at")))) is not None]
        for at, change in faults:
            names = ", ".join(_text(_mapping(t).get("name")) for t in _sequence(change.get("targets")))
            markers.append(Marker("fault", f"fault: {_text(change.get('action'))} -> {names}", at))
        fault_times = sorted(at for at, _ in faults)
        starts = {_text(_mapping(e.get("activity")).get("name")): self._offset(_time(e.get("start")))
                  for _p, e in self._entries()}
        kinds = {"time_to_detect": "detected", "time_to_recover": "resolved",
                 "time_to_notify": "notified", "time_to_notify_resolved": "notified-resolved"}
        firing_at: dict[str, float] = {}
        resolved_at: dict[str, float] = {}
        for measurement in self._measurements():
            fault = _fault_before(fault_times, starts.get(measurement.activity))
            if fault is None or measurement.kind not in kinds:
                continue
            at = fault + measurement.seconds
            label = KIND_LABELS.get(measurement.kind, measurement.kind)
            if measurement.kind in ("time_to_detect", "time_to_recover"):  # notifications come from the receiver
                markers.append(Marker(kinds[measurement.kind],
                                      f"{label} {measurement.alert}: {measurement.seconds:.1f}s", at))
            if measurement.kind == "time_to_detect":
                firing_at.setdefault(measurement.alert, at)
            elif measurement.kind == "time_to_recover":
                resolved_at.setdefault(measurement.alert, at)
            ends.append(at)
        pending_at = self._pending_times()
        for alert in dict.fromkeys([*pending_at, *firing_at]):
            lane = f"alert {alert}"
            fired = firing_at.get(alert)
            pending = pending_at.get(alert)
            if pending is not None and (fired is None or pending < fired):
                spans.append(Span(lane, f"{alert} pending", pending, fired if fired is not None else pending,
                                  "pending"))
            if fired is not None:
                spans.append(Span(lane, f"{alert} firing", fired, resolved_at.get(alert, max(ends)), "firing"))
        for notification in notifications:
            at = self._offset(notification.received_at)
            if at is None:
                continue
            kind = "notified-resolved" if notification.status == "resolved" else "notified"
            markers.append(Marker(kind, f"notification {notification.status}: {notification.alertname}", at))
            ends.append(at)
        for guard in guards:
            if guard.tripped and guard.tripped_at is not None:
                markers.append(Marker("guard", f"guard {guard.name} tripped: {guard.explanation}", guard.tripped_at))
        rollbacks = [at for p, at in phase_starts if p == PHASE_ROLLBACKS and at is not None]
        stopped_by = self._stopped_by(guards)
        if stopped_by and rollbacks:  # when the stop came is not recorded: the rollbacks it started are
            markers.append(Marker("stop", f"{stopped_by}: rolling back", min(rollbacks)))
        total = max([*ends, *(m.at for m in markers), 0.0])
        return Timeline(total, tuple(spans), tuple(sorted(markers, key=lambda m: m.at)))

    def _stopped_by(self, guards: list[GuardResult]) -> str:
        """What stopped the run before its end (a signal, an abort that is not a guard's), if anything."""
        interrupted = _text(self.extra.get("interrupted_by"))
        if interrupted:
            return f"interrupted by {interrupted}"
        aborted = _mapping(self.extra.get("aborted"))
        if aborted and not any(g.tripped for g in guards):
            return f"aborted: {_text(aborted.get('message'))}"
        if self.extra.get("refused"):
            return "refused"
        return ""

    def _pending_times(self) -> dict[str, float]:
        """When each alert became active (pending), from the outputs of the probes that waited for it."""
        found: dict[str, float] = {}
        for _phase, entry in self._entries():
            output = entry.get("output")
            if isinstance(output, Mapping) and output.get("active_at") and output.get("alert"):
                at = self._offset(_time(output.get("active_at")))
                if at is not None:
                    found.setdefault(_text(output["alert"]), at)
        return found


# --- helpers ------------------------------------------------------------------------------
def experiment_id(source: str, title: str) -> str:
    """A short, stable name for an experiment: its file's stem, else its title as a slug."""
    if source:
        stem = Path(source).name
        for suffix in (".yaml", ".yml", ".json"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
        if stem:
            return stem
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug[:80] or "experiment"


def summarise(value: Any, limit: int = VALUE_LIMIT) -> str:
    """An activity output as one line of text (change records as 'action -> targets')."""
    if value is None:
        return ""
    if isinstance(value, Mapping) and value.get("mlchaos_change") == 1:
        names = ", ".join(_text(_mapping(t).get("name")) for t in _sequence(value.get("targets")))
        text = f"{_text(value.get('action'))} -> {names}" if names else _text(value.get("action"))
    elif isinstance(value, Mapping):
        parts = []
        for key, item in value.items():
            if isinstance(item, (str, int, float, bool)) or item is None:
                parts.append(f"{key}={item}")
            elif isinstance(item, list) and all(isinstance(i, (str, int, float)) for i in item):
                parts.append(f"{key}=[{', '.join(map(str, item))}]")
        text = " ".join(parts) or _compact(value)
    elif isinstance(value, str):
        text = value
    else:
        text = _compact(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def exception_message(exception: Any) -> str:
    """The last line of an activity's exception (a traceback list or a string), without module paths."""
    if isinstance(exception, (list, tuple)):
        exception = "".join(_text(line) for line in exception)
    lines = [line.strip() for line in _text(exception).splitlines() if line.strip()]
    if not lines:
        return ""
    message = lines[-1]
    message = re.sub(r"^(?:chaoslib\.exceptions\.)?ActivityFailed: (?=[\w.]+: )", "", message)  # chaoslib's wrapper
    return re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*: )", "", message)


def _fault_before(fault_times: Sequence[float], moment: float | None) -> float | None:
    """The latest fault applied before ``moment`` (measurements count from the last fault)."""
    if not fault_times:
        return None
    if moment is None:
        return fault_times[-1]
    earlier = [t for t in fault_times if t <= moment + 1e-6]
    return earlier[-1] if earlier else fault_times[0]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _labels(value: Any) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in _mapping(value).items()}


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), default=str, sort_keys=False)
    except (TypeError, ValueError):
        return str(value)


def _time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp (Prometheus' nanoseconds and 'Z' included) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
