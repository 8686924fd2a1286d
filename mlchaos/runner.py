"""Run a validated experiment: hypothesis, method, rollbacks (always), recovery check.

The phases and their order follow Chaos Toolkit; the guarantees are mlchaos' own
(see ../shared/notes/chaoslib.md for what chaostoolkit-lib's ``Runner`` lacks):

* rollbacks run after a deviation, a failed or raising activity, an exception, Ctrl-C
  and SIGTERM; during rollbacks a first signal only warns (and lists what is left), a
  second abandons them and the journal and the exit code (3) say what was left undone;
* every activity has an enforced timeout (``mlchaos.execution``);
* the journal is on disk before any action starts (``mlchaos.journal``);
* the experiment is never mutated: activities run from private copies.

Providers are executed by chaostoolkit-lib (``chaoslib.activity.run_activity``) and
tolerances checked by ``chaoslib.hypothesis.within_tolerance``, so an mlchaos
experiment means what it means to Chaos Toolkit.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlchaos import budgets, changes, exitcodes, runcontext
from mlchaos.budgets import Measurement
from mlchaos.console import Console
from mlchaos.errors import InvalidInput
from mlchaos.execution import FAILED, SUCCEEDED, LockType, Outcome, Waiter, execute, in_background
from mlchaos.journal import Journal, Redactor, activity_record, secret_values
from mlchaos.models import Activity, Experiment
from mlchaos.settings import SANDBOX
from mlchaos.tolerance import check as check_tolerance
from mlchaos.variables import Variables

SIGNAL_EXIT = {signal.SIGINT: exitcodes.INTERRUPTED, signal.SIGTERM: exitcodes.TERMINATED}


class Interrupted(BaseException):
    """A signal stopped the run (raised in the main thread by the signal handler)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RollbacksAbandoned(BaseException):
    """A second signal during rollbacks: stop rolling back, and say what is left."""


@dataclass
class RunResult:
    """The outcome of a run, as the CLI reports it."""

    title: str
    status: str
    verdict: str
    exit_code: int
    deviated: bool
    failures: list[str] = field(default_factory=list)
    left_undone: list[str] = field(default_factory=list)
    journal_path: Path | None = None
    duration: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    budgets: list[budgets.BudgetResult] = field(default_factory=list)


def resolve_values(experiment: Experiment, variables: Variables) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load configuration and secrets (env-backed values, --var overrides); InvalidInput on failure."""
    from chaoslib.configuration import load_configuration
    from chaoslib.exceptions import ChaosException
    from chaoslib.secret import load_secrets

    os.environ.update(variables.environment)
    try:
        configuration = load_configuration(
            dict(experiment.configuration), dict(variables.configuration)
        )
        # chaostoolkit-lib drops --var values the experiment did not declare; mlchaos keeps them
        for key, value in variables.configuration.items():
            configuration.setdefault(key, value)
        secrets = load_secrets(dict(experiment.secrets), configuration, dict(variables.secrets))
    except ChaosException as exc:
        raise InvalidInput(f"{experiment.source}: {exc}") from None
    return configuration, secrets


class Runner:
    """Runs one experiment once. Must be used from the main thread (it handles signals)."""

    def __init__(
        self,
        experiment: Experiment,
        variables: Variables | None = None,
        journal_path: Path | None = None,
        console: Console | None = None,
        dry_run: bool = False,
    ):
        self.experiment = experiment
        self.variables = variables or Variables()
        self.journal_path = journal_path
        self.dry_run = dry_run
        self.console = console or Console()
        self.phase = "start of the run"
        self._waiting = False
        self._interrupt: int | None = None
        self._rollback_signals = 0
        self._abandon = False
        self._rollbacks_left: list[str] = []
        self.failures: list[str] = []
        self.deviated = False
        self.counts = {"succeeded": 0, "failed": 0, "skipped": 0}

    # --- the run ------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run the experiment and return its result (the journal is on disk at every step)."""
        configuration, secrets = resolve_values(self.experiment, self.variables)
        self.configuration, self.secrets = configuration, secrets
        redactor = Redactor(secret_values(secrets))
        self.console.redactor = redactor
        receiver = self._start_receiver()  # may refuse the run (InvalidInput) before any journal exists
        self.journal = Journal(self.journal_path, self.experiment.raw, self.experiment.source, redactor)
        self.waiter = Waiter(self._on_wait)
        self.journal.save(force=True)
        self.measurements: list[Measurement] = []
        previous = self._install_signal_handlers()
        self.context = runcontext.RunContext(receiver=receiver)
        token = changes.set_sink(self._record_change)
        context_token = runcontext.activate(self.context)
        try:
            self._run_phases()
            left_undone = self._run_rollbacks()
            if not left_undone and self._interrupt is None and self.experiment.recovery:
                self._run_recovery()
        finally:
            runcontext.deactivate(context_token)
            changes.reset_sink(token)
            self._restore_signal_handlers(previous)
            if receiver is not None:
                receiver.stop()
                self.journal.extra["notifications"] = receiver.to_journal()
        self._check_budgets()
        return self._finish(left_undone)

    def _start_receiver(self) -> Any:
        """Start the run's notification receiver when the experiment declares one (before anything runs)."""
        listen = self.experiment.settings.notifications_listen
        if listen is None:
            return None
        from mlchaos.notifications import NotificationReceiver

        if listen == SANDBOX:
            from mlchaos.errors import DriverError
            from mlchaos.sandbox.monitoring import endpoints

            try:
                found = endpoints()
            except DriverError as exc:
                raise InvalidInput(f"notifications: listen: sandbox: {exc}") from None
            host, port = found.sink_host, found.sink_port
        else:
            host, _, port_text = listen.rpartition(":")
            host, port = host.strip("[]"), int(port_text)
        receiver = NotificationReceiver(host=host, port=port)
        try:
            receiver.start()
        except OSError as exc:
            raise InvalidInput(f"cannot listen for notifications on {host}:{port}: {exc}") from None
        self.console.write(f"  notifications: listening on {receiver.url}")
        return receiver

    def _check_budgets(self) -> None:
        results = budgets.evaluate(self.experiment.settings.budgets, self.measurements)
        self.journal.extra["budgets"] = [r.to_dict() for r in results]
        self.budget_results = results
        for result in results:
            if not result.met:
                self.deviated = True
                self.failures.append(result.describe())

    def _record_change(self, record: changes.ChangeRecord) -> None:
        """A driver announced a change: keep it for the run's drivers and persist it at once."""
        self.context.changes.append(record)
        self.journal.record_change(record)

    def _run_phases(self) -> None:
        try:
            if self.experiment.hypothesis:
                met = self._run_hypothesis("before")
                if not met:
                    self.deviated = True
                    self.failures.append("steady state not met before the method: method not run")
                    return
            self.phase = "method"
            self.console.heading("method:")
            background = [self._run_method_activity(a) for a in self.experiment.method]
            for job in background:
                if job is not None:
                    self._join_background(*job)
            if self.experiment.hypothesis and not self._run_hypothesis("after"):
                self.deviated = True
        except Interrupted as exc:
            self.journal.extra["interrupted_by"] = str(exc)
            self.console.warn(f"{exc} received during the {self.phase}: rolling back")
        except Exception as exc:  # a bug must never cost the rollbacks
            message = f"internal error during the {self.phase}: {type(exc).__name__}: {exc}"
            self.failures.append(message)
            self.journal.extra["internal_error"] = traceback.format_exc()
            self.console.error(f"{message}; rolling back")

    # --- activities ---------------------------------------------------------------------
    def _timeout(self, activity: Activity, rollback: bool = False) -> float:
        if activity.timeout is not None:
            return float(self._substitute(activity.timeout))
        settings = self.experiment.settings
        return settings.rollback_timeout if rollback else settings.activity_timeout

    def _substitute(self, value: Any) -> Any:
        from chaoslib import substitute

        return substitute(value, self.configuration, self.secrets)

    def _pause(self, seconds: Any, label: str) -> None:
        if seconds is None or self.dry_run:
            return
        seconds = float(self._substitute(seconds))
        if seconds > 0:
            self.console.write(f"         pause  {label} {seconds:g}s")
            self.waiter.sleep(seconds)

    def _run_activity(self, activity: Activity, section: list[dict[str, Any]],
                      rollback: bool = False, report: bool = True) -> Outcome:
        if not rollback:
            self._checkpoint()
        self._pause(activity.pause_before, f"before {activity.name}")
        entry = activity_record(activity)
        section.append(entry)
        self.journal.save(force=activity.kind == "action")
        self.console.started(activity.kind, activity.name)
        outcome = self._execute(activity, rollback)
        entry.clear()
        entry.update(activity_record(activity, outcome))
        self._collect_measurement(activity, outcome)
        self.journal.save()
        if report:
            self._report(activity, outcome)
        self._pause(activity.pause_after, f"after {activity.name}")
        return outcome

    def _collect_measurement(self, activity: Activity, outcome: Outcome) -> None:
        measurement = Measurement.from_output(outcome.output, activity.name)
        if measurement is not None:
            self.measurements.append(measurement)
            self.journal.extra.setdefault("measurements", []).append(measurement.to_dict())

    def _execute(self, activity: Activity, rollback: bool, waiter: Waiter | None = None) -> Outcome:
        spec = activity.private_spec()
        if self.dry_run and activity.kind == "action":
            if not _accepts_dry_run(spec):
                return Outcome(SUCCEEDED, {"dry_run": "skipped"}, duration=0.0)
            spec["provider"].setdefault("arguments", {})["dry_run"] = True
        timeout = self._timeout(activity, rollback)
        return execute(spec, self.configuration, self.secrets, timeout, waiter or self.waiter)

    def _report(self, activity: Activity, outcome: Outcome, detail: str = "") -> None:
        self.counts["succeeded" if outcome.succeeded else "failed"] += 1
        if not outcome.succeeded:
            detail = detail or str(outcome.error)
            self.failures.append(f"{activity.kind} {activity.name!r} failed: {outcome.error}")
        elif not detail:
            detail = _summarise_output(outcome.output)
        self.console.finished(activity.kind, activity.name, outcome.succeeded, outcome.duration, detail)

    def _run_method_activity(self, activity: Activity) -> tuple[Activity, dict, LockType, dict] | None:
        if not activity.background:
            if activity.kind == "probe" and activity.has_tolerance:
                self._check_probe(activity, self.journal.data["run"])  # an mlchaos addition
            else:
                self._run_activity(activity, self.journal.data["run"])
            return None
        self._checkpoint()
        entry = activity_record(activity)
        self.journal.data["run"].append(entry)
        self.journal.save(force=True)
        box: dict[str, Outcome] = {}

        def work() -> None:
            box["outcome"] = self._execute(activity, rollback=False, waiter=Waiter())

        done = in_background(work)
        self.console.write(f"  ..   {activity.kind:<6} {activity.name}  (in the background)")
        return activity, entry, done, box

    def _join_background(self, activity: Activity, entry: dict, done: LockType, box: dict) -> None:
        self.waiter.wait(done, self._timeout(activity) + 1.0)
        outcome = box.get("outcome") or Outcome(FAILED, None, "background activity did not finish")
        entry.clear()
        entry.update(activity_record(activity, outcome))
        self._collect_measurement(activity, outcome)
        self.journal.save()
        self._report(activity, outcome)

    def _check_probe(self, probe: Activity, section: list[dict[str, Any]]) -> bool:
        outcome = self._run_activity(probe, section, report=False)
        entry = section[-1]
        if not outcome.succeeded:
            entry["tolerance_met"] = False
            self._report(probe, outcome)
            return False
        verdict = check_tolerance(probe.tolerance, outcome.output, self.configuration,
                                  self.secrets, self._timeout(probe), self.waiter)
        entry["tolerance_met"] = verdict.met
        self.counts["succeeded" if verdict.met else "failed"] += 1
        if not verdict.met:
            self.failures.append(f"probe {probe.name!r}: {verdict.explanation}")
        detail = _summarise_output(outcome.output) if verdict.met else verdict.explanation
        self.console.finished(probe.kind, probe.name, verdict.met, outcome.duration, detail)
        return verdict.met

    def _run_hypothesis(self, when: str) -> bool:
        self.phase = f"steady-state hypothesis ({when})"
        self.console.heading(f"steady state {when}: {self.experiment.hypothesis_title}")
        state: dict[str, Any] = {"steady_state_met": None, "probes": []}
        self.journal.data["steady_states"][when] = state
        results = [self._check_probe(p, state["probes"]) for p in self.experiment.hypothesis]
        state["steady_state_met"] = all(results)
        self.journal.save()
        return state["steady_state_met"]

    def _run_recovery(self) -> None:
        self.phase = "recovery check"
        self.console.heading("recovery (after rollbacks):")
        state: dict[str, Any] = {"recovered": None, "probes": []}
        self.journal.extra["recovery"] = state
        try:
            results = [self._check_probe(p, state["probes"]) for p in self.experiment.recovery]
        except Interrupted as exc:
            self.journal.extra["interrupted_by"] = str(exc)
            results = [False]
        state["recovered"] = all(results)
        if not state["recovered"]:
            self.deviated = True
            self.failures.append("the system did not return to its steady state after rollbacks")
        self.journal.save(force=True)

    # --- rollbacks ----------------------------------------------------------------------
    def _run_rollbacks(self) -> list[str]:
        """Run every rollback; return the names of those left undone (failed or abandoned)."""
        self.phase = "rollbacks"
        rollbacks = list(self.experiment.rollbacks)
        left: list[str] = []
        if not rollbacks:
            return left
        self.console.heading("rollbacks:")
        self._rollbacks_left = [a.name for a in rollbacks]
        for index, activity in enumerate(rollbacks):
            if self._abandon:
                left.extend(a.name for a in rollbacks[index:])
                break
            try:
                outcome = self._run_activity(activity, self.journal.data["rollbacks"], rollback=True)
            except RollbacksAbandoned:
                left.extend(a.name for a in rollbacks[index:])
                break
            self._rollbacks_left.pop(0)
            if not outcome.succeeded:
                left.append(activity.name)
        if self._abandon:
            self.console.error("rollbacks abandoned on a second signal; left undone: " + ", ".join(left))
        self.journal.extra["rollbacks_left_undone"] = left
        self.journal.save(force=True)
        return left

    # --- signals ------------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict[int, Any]:
        previous = {}
        if threading.current_thread() is not threading.main_thread():
            return previous
        for signum in SIGNAL_EXIT:
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _restore_signal_handlers(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.phase == "rollbacks":
            self._rollback_signals += 1
            left = ", ".join(self._rollbacks_left) or "none"
            if self._rollback_signals == 1:
                if self._interrupt is None:
                    self._interrupt = signum
                _say(f"\n{name}: rollbacks in progress, still to run: {left}. "
                     f"Send it again to ABANDON them (the faults would stay in place).\n")
                return
            self._abandon = True
            _say(f"\n{name}: abandoning rollbacks; left undone: {left}\n")
            if self._waiting:
                raise RollbacksAbandoned()
            return
        if self._interrupt is None:
            self._interrupt = signum
        elif self.phase != "done":
            _say(f"\n{name}: already stopping; rollbacks will run first.\n")
            return
        if self._waiting:
            raise Interrupted(signum)

    def _on_wait(self, waiting: bool) -> None:
        self._waiting = waiting
        if waiting:
            if self.phase == "rollbacks" and self._abandon:
                raise RollbacksAbandoned()
            if self.phase != "rollbacks":
                self._checkpoint()

    def _checkpoint(self) -> None:
        if self._interrupt is not None and self.phase not in ("rollbacks", "done"):
            raise Interrupted(self._interrupt)

    # --- the end ------------------------------------------------------------------------
    def _finish(self, left_undone: list[str]) -> RunResult:
        self.phase = "done"
        failed = bool(self.failures)
        if left_undone:
            verdict, code = "rollback-failed", exitcodes.ROLLBACK_FAILED
        elif self._interrupt is not None:
            verdict, code = "interrupted", SIGNAL_EXIT[self._interrupt]
        elif self.deviated:
            verdict, code = "deviated", exitcodes.DEVIATED
        elif failed:
            verdict, code = "activity-failed", exitcodes.DEVIATED
        else:
            verdict, code = "held", exitcodes.OK
        if self._interrupt is not None:
            status = "interrupted"
            self.journal.extra["interrupted_by"] = signal.Signals(self._interrupt).name
        else:
            status = "failed" if (failed or self.deviated) else "completed"
        self.journal.finish(status, self.deviated, verdict, code)
        return RunResult(
            title=self.experiment.title, status=status, verdict=verdict, exit_code=code,
            deviated=self.deviated, failures=list(self.failures), left_undone=left_undone,
            journal_path=self.journal_path, duration=self.journal.data.get("duration", 0.0),
            counts=dict(self.counts), measurements=list(self.measurements),
            budgets=list(self.budget_results),
        )


def _accepts_dry_run(spec: dict[str, Any]) -> bool:
    provider = spec.get("provider", {})
    if provider.get("type") != "python":
        return False
    from mlchaos.validation import import_driver_module

    module, _ = import_driver_module(provider["module"])
    func = getattr(module, provider["func"], None) if module else None
    return func is not None and "dry_run" in inspect.signature(func).parameters


def _summarise_output(output: Any, limit: int = 100) -> str:
    if output is None:
        return ""
    if changes.is_change_record(output):
        targets = ", ".join(t.get("name", "?") for t in output.get("targets", []))
        return f"{output.get('action')} -> {targets}" if targets else str(output.get("action"))
    if isinstance(output, dict):
        parts = []
        for key, value in output.items():
            if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
                parts.append(f"{key}=[{', '.join(map(str, value))}]")
            elif isinstance(value, (str, int, float, bool)) or value is None:
                parts.append(f"{key}={value}")
        text = " ".join(parts) or str(output)
    else:
        text = str(output)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _say(text: str) -> None:
    """Write from a signal handler without touching Python's buffered streams."""
    with contextlib.suppress(OSError):
        os.write(2, text.encode())
