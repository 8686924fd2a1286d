"""Run a game day's suite: one experiment after another, each by the real Runner, in process.

Every experiment keeps the runner's guarantees (rollbacks on deviation, errors and signals;
its journal on disk; bounds, guards, the emergency stop). The suite adds:

* one journal per experiment in the output directory (``NN-<name>.json``), and ``suite.json``,
  rewritten after every experiment: each experiment's verdict, exit code, journal, start/end;
* a cool-down between experiments, and ``stop_on_failure``;
* the calendar: an experiment never starts outside the allowed window, and one still running
  when the window closes is aborted through the runner's own abort path (``Runner.abort``:
  the rollbacks run, exit 5) and the rest of the suite is skipped;
* the suite's exit code: the most severe of its experiments' (:data:`SEVERITY`).

Some things always end the suite, whatever ``stop_on_failure`` says: a rollback that failed
(a fault may be in place), Ctrl-C or SIGTERM, the emergency stop, a closed window.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlchaos.engine import exit_codes, verdicts
from mlchaos.engine.signals import STOPPABLE_PHASES
from mlchaos.experiment.pipeline import ListenTargets
from mlchaos.experiment.problems import printable_lines
from mlchaos.gameday.progress import ProgressConsole
from mlchaos.gameday.schedule import Calendar, Clock, SystemClock
from mlchaos.gameday.suite import CheckedExperiment, GameDay
from mlchaos.lib.files import write_json
from mlchaos.safety import emergency_stop, run_registry

# Most severe first; 0 (held) is the least. A suite exits with the first of these that any of its
# experiments (or a skip that ended it) produced.
SEVERITY = (exit_codes.ROLLBACK_FAILED, exit_codes.TERMINATED, exit_codes.EXIT_UNGRACEFULLY,
            exit_codes.EXIT_GRACEFULLY, exit_codes.QUIT, exit_codes.INTERRUPTED, exit_codes.HANGUP,
            exit_codes.ABORTED, exit_codes.REFUSED, exit_codes.INVALID, exit_codes.DEVIATED)
# the exit code a signal gave a run, back to the signal (a game day stops on any of them)
SIGNAL_OF_EXIT = {code: signum for signum, code in verdicts.SIGNAL_EXIT.items()}
# a suite's record of one experiment, by its exit code (a suite's own vocabulary: "failed" covers deviated and
# activity-failed, "invalid" a file that could not run, "terminated" SIGTERM)
VERDICTS = {exit_codes.OK: verdicts.HELD, exit_codes.DEVIATED: "failed", exit_codes.INVALID: "invalid",
            exit_codes.ROLLBACK_FAILED: verdicts.ROLLBACK_FAILED, exit_codes.REFUSED: verdicts.REFUSED,
            exit_codes.ABORTED: verdicts.ABORTED, exit_codes.INTERRUPTED: verdicts.INTERRUPTED,
            exit_codes.TERMINATED: "terminated",
            **{code: verdicts.INTERRUPTED for code in SIGNAL_OF_EXIT if code != exit_codes.TERMINATED}}
WINDOW_POLL_SECONDS = 0.1
WINDOW_CLOSED = "the game day's window closed"
_ABORTABLE_PHASES = ("start of the run", *STOPPABLE_PHASES)  # never once the rollbacks have started


def most_severe(codes: Iterator[int] | list[int]) -> int:
    """The most severe exit code of ``codes`` (3 > 143 > 140 > 138 > 131 > 130 > 129 > 5 > 4 > 2 > 1 > 0)."""
    present = set(codes)
    for code in SEVERITY:
        if code in present:
            return code
    return exit_codes.OK if present <= {exit_codes.OK} else max(present)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class StopRequest:
    """Why a game day (and its scheduler) must stop: a signal, or the emergency stop.

    ``handlers()`` installs SIGINT/SIGTERM (stop everything) and SIGUSR1 (the emergency stop:
    end the current suite) handlers for the time *between* experiments; the Runner installs its
    own while an experiment runs, and restores these after it.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self.suite_abort = threading.Event()
        self.reason = ""

    def stop(self, reason: str, signum: int | None = None) -> None:
        if self.signum is None and signum is not None:
            self.signum = signum
        self.reason = self.reason or reason
        self.suite_abort.set()
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    @property
    def exit_code(self) -> int:
        return verdicts.SIGNAL_EXIT.get(self.signum, exit_codes.INTERRUPTED)

    @contextlib.contextmanager
    def handlers(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            self.stop(f"{name} received", signum)
            with contextlib.suppress(OSError):
                os.write(2, f"\n{name}: stopping the game day (a running experiment rolls back first)\n".encode())

        def on_abort(_signum: int, _frame: Any) -> None:
            self.suite_abort.set()

        # every signal that interrupts a run also stops the suite between its experiments (SIGUSR1: the abort)
        stopping = [s for s in verdicts.SIGNAL_EXIT if s != run_registry.ABORT_SIGNAL]
        previous = {s: signal.signal(s, on_signal) for s in stopping}
        previous[run_registry.ABORT_SIGNAL] = signal.signal(run_registry.ABORT_SIGNAL, on_abort)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@dataclass
class ExperimentRecord:
    """How one experiment of the suite went (a line of suite.json)."""

    index: int
    file: str
    title: str
    journal: str | None = None  # relative to the directory of suite.json
    verdict: str = "pending"
    exit_code: int | None = None
    started: str | None = None
    ended: str | None = None
    duration: float | None = None
    reason: str | None = None  # why it was skipped, or aborted

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SuiteResult:
    """The outcome of one run of a suite."""

    title: str
    source: str
    out_dir: Path
    exit_code: int = exit_codes.OK
    verdict: str = "running"
    started: str = field(default_factory=_now)
    ended: str | None = None
    trigger: str = "now"
    records: list[ExperimentRecord] = field(default_factory=list)
    stopped_by: str | None = None
    reports: list[str] = field(default_factory=list)

    def journal_path(self, record: ExperimentRecord) -> Path | None:
        return self.out_dir / record.journal if record.journal else None

    @property
    def journals(self) -> list[Path]:
        """The journals the suite wrote, in order."""
        paths = [self.journal_path(r) for r in self.records]
        return [p for p in paths if p is not None and p.exists()]

    def to_dict(self) -> dict[str, Any]:
        return {"gameday": self.title, "file": self.source, "trigger": self.trigger, "status": self.verdict,
                "exit_code": self.exit_code, "started": self.started, "ended": self.ended,
                "stopped_by": self.stopped_by, "experiments": [r.to_dict() for r in self.records],
                "reports": self.reports}


class WindowWatcher:
    """Aborts the running experiment when its window closes (a daemon thread polling the clock)."""

    def __init__(self, runner: Any, closes_at: datetime, clock: Clock, message: str):
        self.runner, self.closes_at, self.clock, self.message = runner, closes_at, clock, message
        self.fired = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="mlchaos-window")

    def start(self) -> WindowWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=2)

    def _watch(self) -> None:
        from mlchaos.safety.guards import Abort

        while not self._done.wait(WINDOW_POLL_SECONDS):
            if self.clock.now() < self.closes_at:
                continue
            runner = self.runner
            if getattr(runner, "journal", None) is None:
                continue  # run() has not set up its journal yet: abort() needs it
            if runner.phase in _ABORTABLE_PHASES:
                self.fired = True
                runner.abort(Abort("window", self.message))
            return  # in its rollbacks or recovery check: let them finish


class SuiteRunner:
    """Runs one suite once (from the main thread: each experiment's Runner handles signals)."""

    def __init__(self, gameday: GameDay, checked: list[CheckedExperiment], out_dir: Path, *,
                 console: ProgressConsole | None = None, clock: Clock | None = None,
                 calendar: Calendar | None = None, stop: StopRequest | None = None, trigger: str = "now",
                 report_formats: list[str] | None = None,
                 on_experiment: Callable[[ExperimentRecord], None] | None = None,
                 listen_targets: ListenTargets | None = None):
        self.gameday, self.checked, self.out_dir = gameday, checked, out_dir
        self.console = console or ProgressConsole()
        self.clock = clock or SystemClock()
        self.calendar = calendar
        self.stop = stop or StopRequest()
        self.report_formats = list(report_formats or [])
        self.on_experiment = on_experiment
        self.listen_targets = listen_targets  # named notification listeners (the CLI passes the sandbox's)
        self.result = SuiteResult(gameday.title, str(gameday.source.resolve()), out_dir, trigger=trigger)
        self.result.records = [
            ExperimentRecord(c.index, str(c.entry.path.resolve()), c.experiment.title,
                             journal=f"{c.index:02d}-{_slug(c.entry.path.stem)}.json")
            for c in checked]
        self._end_codes: list[int] = []
        self._window_closed = False

    @property
    def suite_file(self) -> Path:
        return self.out_dir / "suite.json"

    def run(self) -> SuiteResult:
        """Run the suite; the result's exit code is the most severe of its experiments'."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stop.suite_abort.clear()
        self._save()
        total = len(self.checked)
        self.console.write(f"game day: {self.gameday.title} ({total} experiment{'s' if total != 1 else ''})")
        self.console.write(f"  file: {self.gameday.source}   results: {self.out_dir}")
        with self.stop.handlers():
            ran_one = False
            for checked, record in zip(self.checked, self.result.records, strict=True):
                reason = self._skip_reason()
                if reason is None and ran_one and self.gameday.cool_down > 0:
                    self.console.write(f"  cool-down: {self.gameday.cool_down:g}s before the next experiment")
                    self._cool_down(self.gameday.cool_down)
                    reason = self._skip_reason()
                if reason is not None:
                    self._skip(record, reason)
                    continue
                self._run_one(checked, record)
                ran_one = True
        self._finish()
        return self.result

    # --- one experiment -----------------------------------------------------------------------
    def _run_one(self, checked: CheckedExperiment, record: ExperimentRecord) -> None:
        from mlchaos.engine.runner import Runner
        from mlchaos.engine.summary import print_summary
        from mlchaos.errors import InvalidInput
        from mlchaos.journal.redaction import redacted_output

        experiment = checked.experiment
        total = len(self.checked)
        closes_at = self.calendar.closes_at(self.clock.now()) if self.calendar is not None else None
        local_close = closes_at.astimezone(self.calendar.timezone) if closes_at and self.calendar else None
        self.console.write()
        self.console.write(f"== experiment {checked.index}/{total}: {experiment.title}")
        journal = self.result.journal_path(record) or Path("journal.json")
        self.console.write(f"   file: {checked.entry.path}   journal: {journal}")
        if local_close is not None:
            self.console.write(f"   window closes at {local_close:%Y-%m-%d %H:%M %Z}: the run is aborted and rolled "
                               "back if it is still going then")
        record.started, record.verdict = _now(), "running"
        self._save()
        runner = Runner(experiment, checked.variables, journal, self.console, listen_targets=self.listen_targets)
        self.console.begin(checked.index, total, experiment.title, experiment.settings.blast_radius.max_duration,
                           local_close)
        self.console.attach(runner)
        watcher = None
        if closes_at is not None and local_close is not None:
            message = f"{WINDOW_CLOSED} at {local_close:%H:%M %Z}"
            watcher = WindowWatcher(runner, closes_at, self.clock, message).start()
        environment = dict(os.environ)  # a .env var file of one experiment must not leak into the next
        result = None
        try:
            with redacted_output(lambda: self.console.redactor):
                try:
                    result = runner.run()
                except InvalidInput as exc:
                    print(f"error: {exc}\nnothing was executed.", file=sys.stderr, flush=True)
                    record.verdict, record.exit_code, record.reason = "invalid", exit_codes.INVALID, str(exc)
                except Exception as exc:  # a bug: say so, and never inject more after it
                    message = (f"internal error: {type(exc).__name__}: {exc}; a fault may still be in place "
                               f"(mlchaos recover {journal})")
                    print(f"error: {message}", file=sys.stderr, flush=True)
                    record.verdict, record.exit_code, record.reason = "error", exit_codes.ROLLBACK_FAILED, message
        finally:
            if watcher is not None:
                watcher.stop()
            self.console.end()
            os.environ.clear()
            os.environ.update(environment)
        record.ended = _now()
        if result is not None:
            with redacted_output(lambda: self.console.redactor):
                print_summary(result)
            record.verdict, record.exit_code, record.duration = result.verdict, result.exit_code, result.duration
            if result.abort is not None:
                record.reason = result.abort.message
            self._after(result)
        self._save()
        if self.on_experiment is not None:
            self.on_experiment(record)

    def _after(self, result: Any) -> None:
        """What an experiment's outcome means for the rest of the suite."""
        code, abort = result.exit_code, result.abort
        if code in SIGNAL_OF_EXIT:  # SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2, or SIGUSR1 (exit_gracefully)
            signum = SIGNAL_OF_EXIT[code]
            self.stop.stop(f"{signal.Signals(signum).name} received during an experiment", signum)
        elif abort is not None and abort.kind == "stop":
            self.stop.suite_abort.set()
        elif abort is not None and abort.kind == "window":
            self._window_closed = True

    # --- skipping ---------------------------------------------------------------------------
    def _skip_reason(self) -> str | None:
        """Why the next experiment must not start (None when it may)."""
        if self.stop.is_set():
            self._end(self.stop.exit_code, f"stopped: {self.stop.reason}")
            return f"the game day was stopped ({self.stop.reason})"
        info = emergency_stop.engaged()
        if info is not None or self.stop.suite_abort.is_set():
            message = emergency_stop.describe(info) if info is not None else "the emergency stop (SIGUSR1)"
            self._end(exit_codes.REFUSED, message)
            return message
        done = [r for r in self.result.records if r.exit_code is not None]
        if any(r.exit_code == exit_codes.ROLLBACK_FAILED for r in done):
            return "a rollback failed: a fault may still be in place (mlchaos recover JOURNAL)"
        if self._window_closed:
            return WINDOW_CLOSED
        if self.gameday.stop_on_failure and any(r.exit_code for r in done):
            return "stop_on_failure: an earlier experiment did not hold"
        if self.calendar is not None:
            why = self.calendar.why_not(self.clock.now())
            if why is not None:
                self._end(exit_codes.ABORTED, f"the window closed: {why}")
                return f"the window closed: {why}"
        return None

    def _end(self, code: int, why: str) -> None:
        self._end_codes.append(code)
        self.result.stopped_by = self.result.stopped_by or why

    def _skip(self, record: ExperimentRecord, reason: str) -> None:
        record.verdict, record.reason, record.journal = "skipped", reason, None
        self.console.write(f"  skipped {record.index}/{len(self.checked)}: {record.title}: {reason}")
        self._save()

    def _cool_down(self, seconds: float) -> None:
        """Wait between two experiments (no longer than the window stays open)."""
        deadline = self.clock.now().timestamp() + seconds
        closes = self.calendar.closes_at(self.clock.now()) if self.calendar is not None else None
        if closes is not None:
            deadline = min(deadline, closes.timestamp())
        while not self.stop.suite_abort.is_set():
            left = deadline - self.clock.now().timestamp()
            if left <= 0 or self.clock.wait(min(left, 1.0), self.stop.event):
                return

    # --- the end ----------------------------------------------------------------------------
    def _finish(self) -> None:
        codes = [r.exit_code for r in self.result.records if r.exit_code is not None] + self._end_codes
        self.result.exit_code = most_severe(codes)
        self.result.verdict = VERDICTS.get(self.result.exit_code, "failed")
        self.result.ended = _now()
        self._save()
        journals = self.result.journals
        if self.report_formats and journals:
            self.result.reports = write_reports_hook(journals, self.out_dir, self.report_formats)
            self._save()
        print_suite_summary(self.result)

    def _save(self) -> None:
        write_json(self.suite_file, self.result.to_dict())


def report_formats(requested: list[str]) -> list[str]:
    """The report formats a game day writes: ``requested`` (checked), else every format mlchaos.reports
    knows; ValueError for an unknown one; none when this build has no mlchaos.reports."""
    try:
        from mlchaos.reports import FORMATS
    except ImportError:
        if requested:
            raise ValueError(f"--report {requested[0]}: this mlchaos has no mlchaos.reports") from None
        return []
    unknown = [name for name in requested if name not in FORMATS]
    if unknown:
        raise ValueError(f"unknown report format {unknown[0]!r}; known: {', '.join(FORMATS)}")
    return list(requested or FORMATS)


def write_reports_hook(journals: list[Path], out_dir: Path, formats: list[str]) -> list[str]:
    """The reports of a game day's journals, next to them (``mlchaos.reports.write_reports``); a report
    that cannot be written is said, and changes no verdict."""
    from mlchaos.errors import MlchaosError

    try:
        from mlchaos.reports import write_reports
    except ImportError:
        print(f"warning: reports ({', '.join(formats)}) not written: this mlchaos has no mlchaos.reports")
        return []
    try:
        written = write_reports(journals, out_dir, formats)
    except (MlchaosError, OSError) as exc:
        print(f"error: the game day's reports were not written: {exc}", file=sys.stderr)
        return []
    paths = written.values() if isinstance(written, dict) else written or []
    return [str(path) for path in paths]


def _say(text: str = "") -> None:
    """Print a line of the summary: titles and reasons may carry driver or network text, escaped here."""
    print(printable_lines(text))


def print_suite_summary(result: SuiteResult) -> None:
    """The end-of-suite summary (printed even with --quiet): a line per experiment, then the verdict."""
    counts = {"held": 0, "failed": 0, "skipped": 0}
    total = len(result.records)
    _say()
    _say(f"game day: {result.title}")
    for record in result.records:
        code = "" if record.exit_code is None else f"exit {record.exit_code}"
        took = "" if record.duration is None else f"{record.duration:.1f}s"
        tail = f"  {result.journal_path(record)}" if record.journal else ""
        _say(f"  {record.index}/{total} {record.verdict.upper():<16} {code:<8} {took:>7}  {record.title}{tail}")
        if record.reason and record.verdict in ("skipped", "aborted", "invalid", "error"):
            _say(f"        {record.reason}")
        key = "held" if record.exit_code == exit_codes.OK else "skipped" if record.verdict == "skipped" else "failed"
        counts[key] += 1
    _say(f"verdict: {result.verdict.upper()} (exit {result.exit_code})  {counts['held']} held, "
          f"{counts['failed']} did not hold, {counts['skipped']} skipped")
    if result.stopped_by:
        _say(f"  stopped: {result.stopped_by}")
    for report in result.reports:
        _say(f"  report: {report}")
    print(f"  suite journal: {result.out_dir / 'suite.json'}", flush=True)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60] or "experiment"
