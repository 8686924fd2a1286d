"""Run a validated experiment: hypothesis, method, rollbacks (always), recovery check.

The phases and their order follow Chaos Toolkit; the guarantees are mlchaos' own
(see ../shared/notes/chaoslib.md for what chaostoolkit-lib's ``Runner`` lacks):

* rollbacks run after a deviation, a failed or raising activity, an exception, Ctrl-C
  and SIGTERM; during rollbacks a first signal only warns (and lists what is left), a
  second abandons them and the journal and the exit code (3) say what was left undone;
  after the declared rollbacks, every recorded change no successful rollback covered is
  undone from its change record (the safety net);
* bounds (``blast_radius``, ``allowed_environments``): a real run first resolves its
  actions in dry-run mode and is refused (exit 4) when the plan breaks a bound; every
  change is checked again when it is announced, before it is applied;
* guards, the emergency stop (``mlchaos stop``) and ``max_duration`` abort the run
  (exit 5) and roll back; a guardian process undoes the recorded faults when the
  runner's heartbeat stops (``mlchaos.guardian``);
* every activity has an enforced timeout (``mlchaos.execution``);
* the journal is on disk before any action starts (``mlchaos.journal``);
* the experiment is never mutated: activities run from private copies.

Providers are executed by chaostoolkit-lib (``chaoslib.activity.run_activity``) and
tolerances checked by ``chaoslib.hypothesis.within_tolerance``, so an mlchaos
experiment means what it means to Chaos Toolkit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlchaos.engine import budgets, exit_codes
from mlchaos.engine.budgets import Measurement
from mlchaos.engine.console import Console
from mlchaos.engine.result import RunResult
from mlchaos.errors import InvalidInput
from mlchaos.experiment.driver_registry import accepts_dry_run
from mlchaos.experiment.execution import FAILED, SUCCEEDED, LockType, Outcome, Waiter, execute, in_background
from mlchaos.experiment.models import Activity, Experiment
from mlchaos.experiment.tolerance import check as check_tolerance
from mlchaos.experiment.variables import Variables
from mlchaos.journal.redaction import Redactor, sensitive_values
from mlchaos.journal.writer import Journal, activity_record
from mlchaos.monitoring.notifications import open_receiver
from mlchaos.safety import changes, emergency_stop, run_context, run_registry
from mlchaos.safety.blast_radius import BoundExceeded, Ledger
from mlchaos.safety.guards import Abort, GuardState, RunMonitor

SIGNAL_EXIT = {signal.SIGINT: exit_codes.INTERRUPTED, signal.SIGTERM: exit_codes.TERMINATED}
STOPPABLE_PHASES = ("steady-state hypothesis (before)", "method", "steady-state hypothesis (after)")


class Stop(BaseException):
    """The run must stop before its method ends (raised in the main thread); rollbacks still run."""


class Interrupted(Stop):
    """A signal stopped the run (raised in the main thread by the signal handler)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Aborted(Stop):
    """A guard, the emergency stop, max_duration or a refused change stopped the run."""

    def __init__(self, abort: Abort):
        super().__init__(abort.message)
        self.abort = abort


class RollbacksAbandoned(BaseException):
    """A second signal during rollbacks: stop rolling back, and say what is left."""


def resolve_values(experiment: Experiment, variables: Variables) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load configuration and secrets (env-backed values, --var overrides); InvalidInput on failure."""
    from chaoslib.configuration import load_configuration
    from chaoslib.exceptions import ChaosException
    from chaoslib.secret import load_secrets

    # chaostoolkit-lib reads env-backed values from os.environ: the .env variables are put there for
    # the resolution only, and the environment is restored after (they never leak into the process)
    saved = {name: os.environ.get(name) for name in variables.environment}
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
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
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
        self._stop: Abort | None = None
        self._signals_installed = False
        self._undo_funcs_done: set[str] = set()
        self._auto_undone: set[int] = set()  # ids of the change records the safety net already undid
        self.refusals: list[str] = []
        self.planned: list[tuple[Activity, Outcome]] = []
        self.entry: run_registry.RunEntry | None = None
        self.guardian_pid: int | None = None
        self.failures: list[str] = []
        self.deviated = False
        self.counts = {"succeeded": 0, "failed": 0, "skipped": 0}

    # --- the run ------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run the experiment and return its result (the journal is on disk at every step)."""
        configuration, secrets = resolve_values(self.experiment, self.variables)
        self.configuration, self.secrets = configuration, secrets
        redactor = Redactor(sensitive_values(self.experiment.configuration, configuration, secrets,
                                             self.variables.configuration))  # env-backed values too
        self.console.redactor = redactor
        if self.journal_path is not None:
            try:
                self.journal_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidInput(f"cannot create the journal's directory {self.journal_path.parent}: {exc}") from None
        receiver = self._start_receiver()  # may refuse the run (InvalidInput) before any journal exists
        self.journal = Journal(self.journal_path, self.experiment.raw, self.experiment.source, redactor)
        self.waiter = Waiter(self._on_wait)
        self.journal.save(force=True)
        self.measurements: list[Measurement] = []
        settings = self.experiment.settings
        self.ledger = Ledger(settings.blast_radius, settings.allowed_environments)
        previous = self._install_signal_handlers()
        self.context = run_context.RunContext(receiver=receiver, dry_run=self.dry_run)
        if not self.dry_run:
            try:
                self.entry = run_registry.register(self.journal_path, self.experiment.title,
                                                   str(self.experiment.source))
            except OSError as exc:
                self._restore_signal_handlers(previous)
                if receiver is not None:
                    receiver.stop()
                raise InvalidInput(f"cannot register the run in {run_registry.runs_dir()} (MLCHAOS_STATE_DIR): "
                                   f"{exc}") from None
            self.journal.extra["run_id"] = self.entry.run_id
        self.monitor = RunMonitor(
            on_abort=self.abort, entry=self.entry,
            max_duration=None if self.dry_run else settings.blast_radius.max_duration,
            guards=() if self.dry_run else self.experiment.guards, guard_interval=settings.guard_interval,
            guard_timeout=self._timeout, configuration=configuration, secrets=secrets,
        )
        token = changes.set_sink(self._record_change)
        context_token = run_context.activate(self.context)
        left_undone: list[str] = []
        try:
            self.monitor.start()
            if self._admitted():
                self._run_phases()
            self.monitor.stop_guarding()
            left_undone = self._run_rollbacks()
            injected = any(not r.dry_run for r in self.context.changes)
            recovering = (self._interrupt is None and bool(self.experiment.recovery) and not self.dry_run
                          and (injected or not self.refusals))  # a refused run that changed nothing: nothing to do
            left_undone += self._undo_uncovered_changes(keep_loads=recovering and not left_undone)
            if recovering and not left_undone:
                self._run_recovery()
            left_undone += self._undo_uncovered_changes()  # the loads the recovery check relied on
        finally:
            self.monitor.stop()
            run_context.deactivate(context_token)
            changes.reset_sink(token)
            self._restore_signal_handlers(previous)
            if receiver is not None:
                receiver.stop()
                self.journal.extra["notifications"] = receiver.to_journal()
            if self.entry is not None:
                run_registry.unregister(self.entry)
        self._check_budgets()
        return self._finish(left_undone)

    # --- safety: refusals, aborts, the guardian, the safety net ------------------------------
    def _admitted(self) -> bool:
        """Refuse the run before anything runs when the emergency stop is engaged or the plan breaks a bound."""
        info = emergency_stop.engaged()
        if info is not None:
            self._refuse(emergency_stop.describe(info))
            return self.dry_run  # a plan still shows what a run would do
        refusals = self._pauses_exceed_max_duration()
        if not self.dry_run and self.ledger.active:
            refusals += self._resolve_plan()
        for message in refusals:
            self._refuse(message)
        return not refusals or self.dry_run

    def _refuse(self, message: str) -> None:
        self.refusals.append(message)
        self.journal.extra.setdefault("refused", []).append(message)
        self.console.error(f"refused: {message}")
        if not self.dry_run and self._stop is None:
            self._stop = Abort("refused", message)

    def _pauses_exceed_max_duration(self) -> list[str]:
        limit = self.experiment.settings.blast_radius.max_duration
        if limit is None:
            return []
        activities = [*self.experiment.hypothesis, *self.experiment.method, *self.experiment.hypothesis,
                      *self.experiment.rollbacks]
        total = 0.0
        for activity in activities:
            for pause in (activity.pause_before, activity.pause_after):
                try:
                    total += float(self._substitute(pause)) if pause is not None else 0.0
                except (TypeError, ValueError):
                    continue
        if total > limit:
            return [f"its pauses alone last {total:g}s, more than max_duration {limit:g}s"]
        return []

    def _resolve_plan(self) -> list[str]:
        """Resolve every method action in dry-run mode and check the plan against the bounds."""
        ledger = Ledger(self.ledger.bounds, self.ledger.allowed, self.ledger.host_allowed)
        refusals: list[str] = []

        def admit(record: changes.ChangeRecord) -> None:
            try:
                ledger.admit(record)
            except BoundExceeded as exc:
                refusals.append(str(exc))

        token = changes.set_sink(admit)
        try:
            for activity in self.experiment.actions:
                spec = activity.private_spec()
                if not accepts_dry_run(spec):
                    self.console.warn(f"plan: {activity.name!r} cannot be resolved in advance "
                                      "(its provider has no dry run); its change is checked when it runs")
                    continue
                spec["provider"].setdefault("arguments", {})["dry_run"] = True
                outcome = execute(spec, self.configuration, self.secrets, self._timeout(activity), self.waiter)
                if not outcome.succeeded:
                    self.console.warn(f"plan: {activity.name!r} could not be resolved: {outcome.error}")
        except Stop as exc:
            refusals.append(f"stopped while resolving the plan: {exc}")
        finally:
            changes.reset_sink(token)
        if not refusals:
            summary = ledger.summary()
            self.console.write(f"  plan: {summary['targets']} target(s) within the bounds "
                               f"({', '.join(ledger.describe_bounds())})")
        return refusals

    def abort(self, abort: Abort) -> None:
        """Stop the run and roll back (called from the monitor's threads)."""
        if self._stop is None:
            self._stop = abort
            self.journal.extra["aborted"] = {"kind": abort.kind, "message": abort.message}
            _say(f"\nABORT: {abort.message}; rolling back\n")
        if self._signals_installed and self.phase in STOPPABLE_PHASES:
            signal.pthread_kill(threading.main_thread().ident, run_registry.ABORT_SIGNAL)

    def _ensure_guardian(self) -> None:
        """Start the guardian before the first real fault (it undoes the faults if this runner dies)."""
        if self.guardian_pid is not None or self.entry is None or self.journal_path is None:
            return
        from mlchaos.safety.guardian import start_guardian

        self.guardian_pid = start_guardian(self.entry, self.experiment.settings.heartbeat_timeout)
        self.journal.extra["guardian_pid"] = self.guardian_pid

    def _undo_uncovered_changes(self, keep_loads: bool = False) -> list[str]:
        """The safety net: undo every applied change that no successful declared rollback undid.

        ``keep_loads``: leave the changes marked ``undo_after_recovery`` (client traffic) for later.
        """
        if self._abandon:
            return []
        from mlchaos.safety.undo import undo_record

        left: list[str] = []
        uncovered = [r for r in self.context.changes
                     if not r.dry_run and r.undo.get("func") and r.undo["func"] not in self._undo_funcs_done
                     and id(r) not in self._auto_undone and not (keep_loads and r.undo_after_recovery)]
        self._auto_undone.update(id(r) for r in uncovered)
        if uncovered and not self.experiment.rollbacks:
            self.console.heading("rollbacks:")
        for record in reversed(uncovered):
            name = f"undo {record.action} (automatic, from its change record)"
            self.console.started("action", name)
            result = undo_record(record, self.experiment.settings.rollback_timeout, self.waiter)
            entry = {"activity": {"type": "action", "name": name, "provider": {
                "type": "python", "module": record.undo["func"].rpartition(".")[0],
                "func": record.undo["func"].rpartition(".")[2], "arguments": record.undo.get("arguments", {})}},
                "status": SUCCEEDED if result.ok else FAILED, "output": result.output, "duration": result.duration,
                "automatic": True}
            if result.error:
                entry["exception"] = [result.error]
            self.journal.data["rollbacks"].append(entry)
            self.console.finished("action", name, result.ok, result.duration, result.error or "")
            if not result.ok:
                left.append(name)
                self.failures.append(f"automatic undo of {record.action} failed: {result.error}")
        if uncovered:
            self.journal.save(force=True)
        return left

    def _start_receiver(self) -> Any:
        """Start the run's notification receiver when the experiment declares one (before anything runs)."""
        listen = self.experiment.settings.notifications_listen
        if listen is None:
            return None
        receiver = open_receiver(listen)
        self.console.write(f"  notifications: listening on {receiver.url}")
        return receiver

    def _check_budgets(self) -> None:
        if self.dry_run:  # a plan injects nothing, so there is nothing to measure
            self.budget_results = []
            return
        results = budgets.evaluate(self.experiment.settings.budgets, self.measurements)
        if self._interrupt is not None or self._stop is not None:
            # a run stopped early never reached the probes that measure: unmeasured budgets are not failures
            results = [r for r in results if r.measured is not None]
        self.journal.extra["budgets"] = [r.to_dict() for r in results]
        self.budget_results = results
        for result in results:
            if not result.met:
                self.deviated = True
                self.failures.append(result.describe())

    def _record_change(self, record: changes.ChangeRecord) -> None:
        """A driver announced a change: check it against the bounds, keep it for the run's drivers and
        persist it at once (before it is applied). A refused change raises BoundExceeded in the driver."""
        try:
            self.ledger.admit(record)
        except BoundExceeded as exc:
            self._refuse(str(exc))
            if not record.dry_run:
                self.journal.save(force=True)
                raise
        if not record.dry_run:
            self._ensure_guardian()
        self.context.changes.append(record)
        self.journal.record_change(record)
        if not record.dry_run:
            self.monitor.fault_applied()

    def _run_phases(self) -> None:
        try:
            if self.experiment.hypothesis:
                met = self._run_hypothesis("before")
                if not met:
                    self.deviated = True
                    if not self.dry_run:
                        self.failures.append("steady state not met before the method: method not run")
                        return
                    self.failures.append("steady state not met now: a run would stop before its method")
            if self.dry_run and self.experiment.guards:
                self._plan_guards()
            self.phase = "method"
            self.console.heading("method:")
            background = [self._run_method_activity(a) for a in self.experiment.method]
            for job in background:
                if job is not None:
                    self._join_background(*job)
            if self.experiment.hypothesis and not self.dry_run and not self._run_hypothesis("after"):
                self.deviated = True
        except Interrupted as exc:
            self.journal.extra["interrupted_by"] = str(exc)
            self.console.warn(f"{exc} received during the {self.phase}: rolling back")
        except Aborted as exc:
            self.console.warn(f"aborted during the {self.phase}: {exc}; rolling back")
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
        try:
            outcome = self._execute(activity, rollback)
        except BaseException as exc:  # an abort or a signal cut it short: the entry must not stay "running"
            ended = datetime.now(UTC)
            entry.update(status="interrupted", end=ended.isoformat(),
                         duration=(ended - datetime.fromisoformat(entry["start"])).total_seconds(),
                         exception=[f"{type(exc).__name__}: {exc}"])
            self.journal.save(force=True)
            raise
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
        if self.dry_run and rollback:
            return Outcome(SUCCEEDED, {"dry_run": "a plan does not run rollbacks"}, duration=0.0)
        if self.dry_run and activity.kind == "action":
            if not accepts_dry_run(spec):
                return Outcome(SUCCEEDED, {"dry_run": "skipped: its provider has no dry run"}, duration=0.0)
            spec["provider"].setdefault("arguments", {})["dry_run"] = True
        elif self.dry_run and self.phase == "method" and accepts_dry_run(spec):
            spec["provider"].setdefault("arguments", {})["dry_run"] = True  # a probe waiting for the fault
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
        if not activity.background or self.dry_run:
            if activity.kind == "probe" and activity.has_tolerance and not self.dry_run:
                self._check_probe(activity, self.journal.data["run"])  # an mlchaos addition
            else:
                outcome = self._run_activity(activity, self.journal.data["run"])
                if self.dry_run:
                    self.planned.append((activity, outcome))
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
        except Stop as exc:
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
            elif activity.spec.get("provider", {}).get("type") == "python":
                provider = activity.spec["provider"]
                self._undo_funcs_done.add(f"{provider.get('module')}.{provider.get('func')}")
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
        previous[run_registry.ABORT_SIGNAL] = signal.signal(run_registry.ABORT_SIGNAL, self._on_abort_signal)
        self._signals_installed = True
        return previous

    def _restore_signal_handlers(self, previous: dict[int, Any]) -> None:
        self._signals_installed = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_abort_signal(self, _signum: int, _frame: Any) -> None:
        """SIGUSR1: ``mlchaos stop`` (or the run's own monitor) asks the run to abort and roll back."""
        if self._stop is None:
            info = emergency_stop.engaged()
            message = "emergency stop: " + (emergency_stop.describe(info) if info else "SIGUSR1 received")
            self._stop = Abort("stop", message)
            self.journal.extra["aborted"] = {"kind": "stop", "message": message}
            _say(f"\nABORT: {message}; rolling back\n")
        if self.phase in STOPPABLE_PHASES and self._waiting:
            raise Aborted(self._stop)

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
        if self._stop is not None and self.phase in STOPPABLE_PHASES:
            raise Aborted(self._stop)

    # --- the end ------------------------------------------------------------------------
    def _finish(self, left_undone: list[str]) -> RunResult:
        self.phase = "done"
        failed = bool(self.failures)
        if left_undone:
            verdict, code = "rollback-failed", exit_codes.ROLLBACK_FAILED
        elif self._interrupt is not None:
            verdict, code = "interrupted", SIGNAL_EXIT[self._interrupt]
        elif self.refusals:
            verdict, code = "refused", exit_codes.REFUSED
        elif self._stop is not None:
            verdict, code = "aborted", exit_codes.ABORTED
        elif self.deviated:
            verdict, code = "deviated", exit_codes.DEVIATED
        elif failed:
            verdict, code = "activity-failed", exit_codes.DEVIATED
        else:
            verdict, code = ("planned" if self.dry_run else "held"), exit_codes.OK
        if self._interrupt is not None:
            status = "interrupted"
            self.journal.extra["interrupted_by"] = signal.Signals(self._interrupt).name
        elif self._stop is not None or self.refusals:
            status = "aborted"
        else:
            status = "failed" if (failed or self.deviated) else "completed"
        self.journal.extra["blast_radius"] = {"bounds": self.ledger.describe_bounds(), **self.ledger.summary()}
        self.journal.extra["guards"] = [g.to_dict() for g in self.monitor.states]
        self.journal.finish(status, self.deviated, verdict, code)
        return RunResult(
            title=self.experiment.title, status=status, verdict=verdict, exit_code=code,
            deviated=self.deviated, failures=list(self.failures), left_undone=left_undone,
            journal_path=self.journal_path, duration=self.journal.data.get("duration", 0.0),
            counts=dict(self.counts), measurements=list(self.measurements),
            budgets=list(self.budget_results), dry_run=self.dry_run, planned=list(self.planned),
            bounds=self.ledger.describe_bounds(), blast_radius=self.ledger.summary(),
            guards=[g.to_dict() for g in self.monitor.states], refusals=list(self.refusals), abort=self._stop,
        )

    def _plan_guards(self) -> None:
        """In a plan, evaluate every guard once: it proves the probe works and shows its value now."""
        self.console.heading("guards (evaluated once; a run evaluates them while a fault is active):")
        for guard in self.experiment.guards:
            state = GuardState(guard.name)  # a plan's monitor guards nothing: its states are the plan's
            self.monitor.states.append(state)
            met, explanation = self.monitor.evaluate(guard, state)
            self.console.finished("probe", guard.name, met, 0.0, explanation)
            if not met:
                self.failures.append(f"guard {guard.name!r} would trip now: {explanation}")


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
