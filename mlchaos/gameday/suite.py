"""A game-day file: a suite of experiments, their variables, a cool-down, and an optional schedule.

Parsing goes through the experiment loader (same limits, same file:line problems); every
problem of the file is reported at once. :func:`check_suite` then validates every
experiment of the suite with its variables, so an invalid suite executes nothing.

```yaml
title: Weekly serving drills
experiments:
  - ../kill-one-replica.yaml                 # a path relative to this file, or a glob
  - path: ../latency-one-replica.yaml
    vars: {target_replica: model-2}          # --var overrides (typed by YAML)
    var_files: [staging.env]                 # --var-file, relative to this file
vars: {service: model}                       # for every experiment (an experiment's own win)
var_files: []
cool_down: 30                                # seconds between two experiments (default 0)
stop_on_failure: true                        # default true
schedule:                                    # optional
  cron: "0 10 * * mon-thu"                   # 5 fields, or 6 with seconds first
  timezone: Europe/Berlin                    # default UTC
  windows: [{days: [mon, tue, wed, thu], start: "09:00", end: "16:00"}]
  exclude: ["2025-12-24", {from: "2025-12-20", to: "2026-01-06", reason: change freeze}]
```
"""

from __future__ import annotations

import difflib
import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mlchaos.experiment.checking import DocumentChecker
from mlchaos.experiment.loader import Document, pointer_join, read_document
from mlchaos.experiment.pipeline import ListenTargets, load_checked
from mlchaos.experiment.problems import Problem, ProblemList
from mlchaos.gameday.schedule import DAY_NAMES, Calendar, CronSchedule, Exclusion, Window, cron_problem, parse_hhmm
from mlchaos.gameday.schedule import zone as parse_zone

TOP_KEYS = ("title", "description", "experiments", "vars", "var_files", "cool_down", "stop_on_failure", "schedule")
ENTRY_KEYS = ("path", "vars", "var_files")
SCHEDULE_KEYS = ("cron", "timezone", "windows", "exclude")
WINDOW_KEYS = ("days", "start", "end")
EXCLUSION_KEYS = ("date", "from", "to", "reason")
MAX_EXPERIMENTS = 200
MAX_COOL_DOWN = 24 * 3600


@dataclass(frozen=True)
class SuiteEntry:
    """One experiment of the suite, with the variables it runs with."""

    path: Path
    pointer: str  # where the game-day file names it
    vars: dict[str, Any] = field(default_factory=dict)
    var_files: tuple[Path, ...] = ()

    def var_args(self) -> list[str]:
        """``vars`` as ``--var name:type=value`` arguments (what ``load_checked`` takes)."""
        return [_var_arg(name, value) for name, value in self.vars.items()]


@dataclass(frozen=True)
class ScheduleSpec:
    """The ``schedule`` block: a cron expression (optional) and the calendar it runs in."""

    cron: str | None
    calendar: Calendar

    def cron_schedule(self, expression: str | None = None) -> CronSchedule:
        """The fire times of ``expression`` (default: the block's own) in the block's timezone."""
        chosen = expression or self.cron
        if not chosen:
            raise ValueError("no cron expression: give one with --schedule CRON or as schedule.cron in the file")
        return CronSchedule(chosen, self.calendar.timezone)


@dataclass(frozen=True)
class GameDay:
    """A validated game-day file."""

    source: Path
    title: str
    description: str
    entries: tuple[SuiteEntry, ...]
    cool_down: float = 0.0
    stop_on_failure: bool = True
    schedule: ScheduleSpec = field(default_factory=lambda: ScheduleSpec(None, Calendar()))


@dataclass(frozen=True)
class CheckedExperiment:
    """An experiment of the suite that passed validation, ready to run."""

    index: int
    entry: SuiteEntry
    experiment: Any  # mlchaos.experiment.models.Experiment
    variables: Any  # mlchaos.experiment.variables.Variables


def load_gameday(path: str | Path) -> GameDay:
    """Read and check a game-day file; raise ProblemList with every problem found."""
    doc = read_document(path)
    problems = list(_Checker(doc).check())
    if problems:
        raise ProblemList(problems)
    return _build(doc)


def load_suite(path: str | Path, var: list[str] | None = None, var_files: list[str] | None = None,
               listen_targets: ListenTargets | None = None) -> tuple[GameDay, list[CheckedExperiment]]:
    """Read a game-day file and validate every experiment it names; raise ProblemList with every problem
    of both (the experiments of a game-day file with problems are still checked, where they can be)."""
    doc = read_document(path)
    checker = _Checker(doc)
    problems = list(checker.check())
    if problems:
        usable = _entries(doc, checker.clean_items, checker.suite_vars, checker.suite_var_files)
        problems += _check_entries(usable, var, var_files, listen_targets)[1]
        raise ProblemList(problems)
    gameday = _build(doc)
    checked, problems = _check_entries(gameday.entries, var, var_files, listen_targets)
    if problems:
        raise ProblemList(problems)
    return gameday, checked


def check_suite(gameday: GameDay, var: list[str] | None = None, var_files: list[str] | None = None,
                listen_targets: ListenTargets | None = None) -> list[CheckedExperiment]:
    """Validate every experiment of the suite with its variables (the file's, then the command line's);
    raise ProblemList with the problems of all of them."""
    checked, problems = _check_entries(gameday.entries, var, var_files, listen_targets)
    if problems:
        raise ProblemList(problems)
    return checked


def _check_entries(entries: tuple[SuiteEntry, ...] | list[SuiteEntry], var: list[str] | None,
                   var_files: list[str] | None, listen_targets: ListenTargets | None = None,
                   ) -> tuple[list[CheckedExperiment], list[Problem]]:
    checked: list[CheckedExperiment] = []
    problems: list[Problem] = []
    for index, entry in enumerate(entries, start=1):
        try:
            experiment, variables = load_checked(
                str(entry.path), [*entry.var_args(), *(var or [])],
                [*(str(p) for p in entry.var_files), *(var_files or [])], listen_targets)
        except ProblemList as exc:
            problems.extend(p for p in exc.problems if p not in problems)  # a file named twice: once
            continue
        checked.append(CheckedExperiment(index, entry, experiment, variables))
    return checked, problems


def _var_arg(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{name}:bool={'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{name}:int={value}"
    if isinstance(value, float):
        return f"{name}:float={value!r}"
    return f"{name}={value}"


# --- checking -----------------------------------------------------------------------------------


class _Checker(DocumentChecker):
    """Every problem of a game-day document, each located by pointer and line."""

    def __init__(self, doc: Document):
        super().__init__(doc)
        self.base = doc.path.parent
        self.clean_items: list[tuple[int, Any]] = []  # (index, entry) of the experiments without a problem
        self.suite_vars: dict[str, Any] = {}
        self.suite_var_files: list[str] = []
        self._total = 0

    def check(self) -> Iterator[Problem]:
        data = self.doc.data
        if not isinstance(data, dict):
            kind = "empty" if data is None else f"a {type(data).__name__}"
            yield self.problem("", f"a game-day file must be a mapping (object), got {kind}")
            return
        yield from self._unknown_keys(data, "", TOP_KEYS)
        if not isinstance(data.get("title"), str) or not data["title"].strip():
            yield self.problem("/title" if "title" in data else "", "a game day needs a 'title' (a non-empty string)")
        if "description" in data and not isinstance(data["description"], str):
            yield self.problem("/description", "must be a string")
        yield from self._experiments(data.get("experiments"), "experiments" in data)
        problems = [*self._vars(data.get("vars"), "/vars"), *self._var_files(data.get("var_files"), "/var_files")]
        yield from problems
        if not problems:
            self.suite_vars, self.suite_var_files = data.get("vars") or {}, data.get("var_files") or []
        if "cool_down" in data and not _seconds(data["cool_down"], MAX_COOL_DOWN):
            yield self.problem("/cool_down", f"must be a number of seconds from 0 to {MAX_COOL_DOWN}, "
                                             f"got {data['cool_down']!r}")
        if "stop_on_failure" in data and not isinstance(data["stop_on_failure"], bool):
            yield self.problem("/stop_on_failure", f"must be true or false, got {data['stop_on_failure']!r}")
        if "schedule" in data:
            yield from self._schedule(data["schedule"])

    def _unknown_keys(self, data: dict[str, Any], pointer: str, known: tuple[str, ...]) -> Iterator[Problem]:
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
                yield self.problem(pointer_join(pointer, key), f"unknown key {key!r}{hint}")

    def _experiments(self, items: Any, present: bool) -> Iterator[Problem]:
        if not present:
            yield self.problem("", "a game day needs 'experiments': a list of experiment files or globs")
            return
        if not isinstance(items, list) or not items:
            yield self.problem("/experiments", "must be a non-empty list of experiment files or globs")
            return
        for index, item in enumerate(items):
            problems = list(self._entry(index, item))
            yield from problems
            if not problems:
                self.clean_items.append((index, item))
        if self._total > MAX_EXPERIMENTS:
            yield self.problem("/experiments", f"a suite runs at most {MAX_EXPERIMENTS} experiments, "
                                               f"these entries name {self._total}")

    def _entry(self, index: int, item: Any) -> Iterator[Problem]:
        pointer = f"/experiments/{index}"
        if isinstance(item, dict):
            yield from self._unknown_keys(item, pointer, ENTRY_KEYS)
            yield from self._vars(item.get("vars"), f"{pointer}/vars")
            yield from self._var_files(item.get("var_files"), f"{pointer}/var_files")
            if "path" not in item:
                yield self.problem(pointer, "an experiment entry needs a 'path' (a file or a glob)")
                return
            spec, pointer = item["path"], f"{pointer}/path"
        else:
            spec = item
        if not isinstance(spec, str) or not spec.strip():
            yield self.problem(pointer, f"must be a path or glob (a string), got {spec!r}")
            return
        found = _expand(self.base, spec, self.doc.path)
        self._total += len(found)
        if not found:
            kind = "glob" if glob.has_magic(spec) else "file"
            yield self.problem(pointer, f"{kind} {spec!r} matches no experiment file "
                                        f"(paths are relative to {self.base})")

    def _vars(self, value: Any, pointer: str) -> Iterator[Problem]:
        def variable(name: Any, item: Any, where: str) -> Iterator[Problem]:
            if not name or not isinstance(item, (str, int, float, bool)):
                yield self.problem(where, f"a variable is a string, number or boolean, got {type(item).__name__}")

        if value is not None:
            yield from self.each_entry(value, pointer, "must be a mapping of variable names to values", variable)

    def _var_files(self, value: Any, pointer: str) -> Iterator[Problem]:
        def var_file(item: Any, where: str) -> Iterator[Problem]:
            if not isinstance(item, str) or not item:
                yield self.problem(where, f"must be a file name, got {item!r}")
            elif not (self.base / item).is_file():
                yield self.problem(where, f"var file {item!r} not found (relative to {self.base})")

        if value is not None:
            yield from self.each(value, pointer, "must be a list of var files (JSON/YAML or .env)", var_file)

    def _schedule(self, value: Any) -> Iterator[Problem]:
        if not isinstance(value, dict):
            yield self.problem("/schedule", "must be a mapping with cron, timezone, windows, exclude")
            return
        yield from self._unknown_keys(value, "/schedule", SCHEDULE_KEYS)
        if "cron" in value:
            cron = value["cron"]
            message = cron_problem(cron) if isinstance(cron, str) else f"must be a string, got {cron!r}"
            if message:
                yield self.problem("/schedule/cron", message)
        if "timezone" in value:
            if not isinstance(value["timezone"], str):
                yield self.problem("/schedule/timezone", f"must be a timezone name, got {value['timezone']!r}")
            else:
                try:
                    parse_zone(value["timezone"])
                except ValueError as exc:
                    yield self.problem("/schedule/timezone", str(exc))
        yield from self.each(value.get("windows", []), "/schedule/windows", "must be a list of {days, start, end}",
                             self._window)
        yield from self.each(value.get("exclude", []), "/schedule/exclude",
                             "must be a list of dates and {from, to} ranges", self._exclusion)

    def _exclusion(self, item: Any, pointer: str) -> Iterator[Problem]:
        try:
            _exclusion(item)
        except ValueError as exc:
            yield self.problem(pointer, str(exc))

    def _window(self, window: Any, pointer: str) -> Iterator[Problem]:
        if not isinstance(window, dict):
            yield self.problem(pointer, "a window is a mapping {days, start, end}")
            return
        yield from self._unknown_keys(window, pointer, WINDOW_KEYS)
        try:
            _days(window.get("days"))
        except ValueError as exc:
            yield self.problem(f"{pointer}/days", str(exc))
        times = []
        for key in ("start", "end"):
            if key not in window:
                yield self.problem(pointer, f"a window needs '{key}' (\"HH:MM\")")
                continue
            try:
                times.append(_time(window[key]))
            except ValueError as exc:
                yield self.problem(f"{pointer}/{key}", str(exc))
        if times and "start" in window and times[0] == 24 * 60:
            yield self.problem(f"{pointer}/start", "a window starts at 23:59 at the latest (24:00 is an end)")
        elif len(times) == 2 and times[0] == times[1]:
            yield self.problem(pointer, "a window's start and end must differ (00:00-24:00 is the whole day)")


def _seconds(value: Any, limit: float) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= limit


def _expand(base: Path, spec: str, own: Path) -> list[Path]:
    """The experiment files ``spec`` names (relative to ``base``), sorted; a glob's matches, less the
    game-day file itself."""
    path = Path(spec).expanduser()
    full = Path(os.path.normpath(path if path.is_absolute() else base / path))
    if glob.has_magic(spec):
        matches = [Path(p) for p in sorted(glob.glob(str(full), recursive=True)) if Path(p).is_file()]
        return [p for p in matches if p.resolve() != own.resolve()]
    return [full] if full.is_file() else []


def _days(value: Any) -> frozenset[int]:
    if value is None:
        return frozenset(range(7))
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError("days is a list of weekdays (mon, tue, ... or ranges like mon-fri)")
    days: set[int] = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"a weekday is a name like 'mon', got {item!r}")
        first, _, last = item.strip().lower().partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(f"unknown weekday {item!r} (use mon, tue, wed, thu, fri, sat, sun, or a range mon-fri)")
        start, end = DAY_NAMES[first], DAY_NAMES[last or first]
        days.update(range(start, end + 1) if start <= end else [*range(start, 7), *range(0, end + 1)])
    return frozenset(days)


def _time(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 24 * 60:
        raise ValueError(f"quote times: YAML reads an unquoted {value // 60}:{value % 60:02d} as the number "
                         f"{value}; write \"{value // 60:02d}:{value % 60:02d}\"")
    if not isinstance(value, str):
        raise ValueError(f"expected a time as \"HH:MM\", got {value!r}")
    return parse_hhmm(value)


def _date(value: Any) -> date:
    if not isinstance(value, str):
        raise ValueError(f"expected a date as \"YYYY-MM-DD\", got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a date as \"YYYY-MM-DD\", got {value!r}") from None


def _exclusion(item: Any) -> Exclusion:
    if isinstance(item, str):
        day = _date(item)
        return Exclusion(day, day)
    if not isinstance(item, dict):
        raise ValueError(f"an exclusion is a date \"YYYY-MM-DD\" or {{from, to, reason}}, got {item!r}")
    unknown = set(item) - set(EXCLUSION_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(EXCLUSION_KEYS)})")
    reason = item.get("reason", "")
    if not isinstance(reason, str):
        raise ValueError("reason must be a string")
    if "date" in item:
        if "from" in item or "to" in item:
            raise ValueError("give either 'date' or 'from' and 'to'")
        day = _date(item["date"])
        return Exclusion(day, day, reason)
    if "from" not in item or "to" not in item:
        raise ValueError("a date range needs both 'from' and 'to'")
    first, last = _date(item["from"]), _date(item["to"])
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    return Exclusion(first, last, reason)


# --- building -----------------------------------------------------------------------------------


def _entries(doc: Document, items: list[tuple[int, Any]], suite_vars: dict[str, Any],
             suite_var_files: list[str]) -> list[SuiteEntry]:
    """The suite's experiments: each entry's files (a glob's matches), with the suite's variables and its own."""
    base = doc.path.parent
    entries = []
    for index, item in items:
        spec = item["path"] if isinstance(item, dict) else item
        own = item if isinstance(item, dict) else {}
        for path in _expand(base, spec, doc.path):
            entries.append(SuiteEntry(
                path=path, pointer=f"/experiments/{index}",
                vars={**suite_vars, **(own.get("vars") or {})},
                var_files=tuple(base / f for f in [*suite_var_files, *(own.get("var_files") or [])]),
            ))
    return entries


def _build(doc: Document) -> GameDay:
    data = doc.data
    entries = _entries(doc, list(enumerate(data["experiments"])), dict(data.get("vars") or {}),
                       list(data.get("var_files") or []))
    schedule = data.get("schedule") or {}
    timezone = parse_zone(schedule["timezone"]) if "timezone" in schedule else ZoneInfo("UTC")
    calendar = Calendar(
        timezone=timezone,
        windows=tuple(Window(_days(w.get("days")), _time(w["start"]), _time(w["end"]))
                      for w in schedule.get("windows") or []),
        exclusions=tuple(_exclusion(e) for e in schedule.get("exclude") or []),
    )
    return GameDay(
        source=doc.path, title=data["title"], description=data.get("description", ""), entries=tuple(entries),
        cool_down=float(data.get("cool_down", 0)), stop_on_failure=data.get("stop_on_failure", True),
        schedule=ScheduleSpec(schedule.get("cron"), calendar),
    )
