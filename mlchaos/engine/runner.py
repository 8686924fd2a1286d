"""Run a validated experiment: hypothesis, method, rollbacks (always), recovery check.

The phases and their order follow Chaos Toolkit; the guarantees are mlchaos' own
(see ../shared/notes/chaoslib.md for what chaostoolkit-lib's ``Runner`` lacks):

* rollbacks run after a deviation, a failed or raising activity, an exception, and every signal
  a run handles (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2: :mod:`mlchaos.engine.signals`);
  after the declared rollbacks, every recorded change no successful rollback covered is undone from
  its change record (:mod:`mlchaos.safety.safety_net`);
* bounds (``blast_radius``, ``allowed_environments``): a real run first resolves its actions in
  dry-run mode and is refused (exit 4) when the plan breaks a bound (:mod:`mlchaos.engine.plan`);
  every change is checked again when it is announced, before it is applied;
* guards, the emergency stop (``mlchaos stop``) and ``max_duration`` abort the run (exit 5) and
  roll back (:mod:`mlchaos.safety.guards`); a guardian process undoes the recorded faults when
  the runner's heartbeat stops (:mod:`mlchaos.safety.guardian`);
* every activity has an enforced timeout (:mod:`mlchaos.experiment.execution`), and its tolerance is
  checked within what is left of it (:mod:`mlchaos.experiment.tolerance`);
* the journal is on disk before any action starts (:mod:`mlchaos.journal.writer`);
* the experiment is never mutated: activities run from private copies.

Providers are executed by chaostoolkit-lib (``chaoslib.activity.run_activity``) and tolerances
checked with chaoslib's semantics, so an mlchaos experiment means what it means to Chaos Toolkit.
The verdict and the exit code are decided in :mod:`mlchaos.engine.verdicts`.
"""

from __future__ import annotations

import copy
import signal
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlchaos.engine import budgets, plan
from mlchaos.engine.budgets import Measurement
from mlchaos.engine.console import Console, summarise_output
from mlchaos.engine.controls import Holder, RunControls
from mlchaos.engine.result import RunResult
from mlchaos.engine.run_events import JOURNAL, Later
from mlchaos.engine.signals import DONE, METHOD, ROLLBACKS, Aborted, Interrupted, RollbacksAbandoned, RunSignals, Stop
from mlchaos.engine.strategies import FAIL_FAST, DuringHypothesis, HypothesisSchedule
from mlchaos.engine.verdicts import Ending
from mlchaos.errors import DriverError, InvalidInput
from mlchaos.experiment.controls import ControlSet
from mlchaos.experiment.endpoint_sources import resolve_endpoints
from mlchaos.experiment.endpoints import table_of
from mlchaos.experiment.execution import FAILED, SUCCEEDED, LockType, Outcome, Waiter, execute, in_background
from mlchaos.experiment.models import Activity, Experiment
from mlchaos.experiment.pipeline import ListenTargets, listen_endpoint
from mlchaos.experiment.tolerance import check as check_tolerance
from mlchaos.experiment.variables import Variables, resolve_values
from mlchaos.journal.redaction import MIN_SECRET_LENGTH, Redactor, code_paths, sensitive_values, too_short_to_redact
from mlchaos.journal.writer import Journal, activity_record
from mlchaos.lib import endpoints
from mlchaos.safety import changes, emergency_stop, run_context, run_registry, safety_net
from mlchaos.safety.blast_radius import BoundExceeded, Ledger
from mlchaos.safety.exact_records import ExactRecords
from mlchaos.safety.guards import Abort, GuardState, RunMonitor
from mlchaos.safety.safety_net import SafetyNet

SETTLE_LIMIT = 30.0  # the longest wait for an abandoned background activity after the rollbacks (s)
# the longest wait for a method action cut short (s): long enough for one that announced its change to apply it,
# short enough that an abort is not held up by an action that holds its fault for a while
CUT_SHORT_SETTLE = 2.0


class Runner:
    """Runs one experiment once. Must be used from the main thread (it handles signals)."""

    def __init__(
        self,
        experiment: Experiment,
        variables: Variables | None = None,
        journal_path: Path | None = None,
        console: Console | None = None,
        dry_run: bool = False,
        listen_targets: ListenTargets | None = None,
        settings: dict[str, Any] | None = None,
        schedule: HypothesisSchedule | None = None,
    ):
        self.experiment = experiment
        self.listen_targets = listen_targets  # named notification listeners (the command line passes the sandbox's)
        self.variables = variables or Variables()
        self.journal_path = journal_path
        self.dry_run = dry_run or experiment.dry_run  # the file's ``dry_run: true`` makes every run a plan
        self.console = console or Console()
        self.signals = RunSignals(on_abort=self._record_abort)
        self.net = SafetyNet()
        self.refusals: list[str] = []
        self.planned: list[tuple[Activity, Outcome]] = []
        self.entry: run_registry.RunEntry | None = None
        self.guardian_pid: int | None = None
        self.exact: ExactRecords | None = None  # the run's exact change records (the journal's are redacted)
        self.secret_token: Any = None  # mlchaos.monitoring.secret_token.SecretToken: the receiver's rotating token
        self.failures: list[str] = []
        self.background: list[tuple[Activity, dict, LockType, dict]] = []  # started, not yet joined
        # activities the run stopped waiting for while they still ran: in the background, or a method action a
        # signal or its timeout cut short (see _settle_abandoned)
        self.abandoned: list[tuple[Activity, LockType, dict]] = []
        self._worker_changes = threading.Lock()  # a worker's announcement vs. its abandonment
        self.deviated = False
        self.counts = {"succeeded": 0, "failed": 0, "skipped": 0}
        self.ctk_settings = settings or {}  # Chaos Toolkit's settings (its global controls)
        self.schedule = schedule or HypothesisSchedule()
        self.during: DuringHypothesis | None = None
        # what controls see: copies (a control may change them; the run does not follow), made in _controls when
        # the run has controls (without any, nothing receives them: a copy of thousands of activities is spared)
        self.control_experiment: dict[str, Any] = experiment.raw
        self.control_hypothesis: dict[str, Any] = {}

    @property
    def phase(self) -> str:
        """Where the run is: a hypothesis, the method, rollbacks, the recovery check, done."""
        return self.signals.phase

    @phase.setter
    def phase(self, value: str) -> None:
        self.signals.phase = value

    # --- the run ------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run the experiment and return its result (the journal is on disk at every step)."""
        configuration, secrets = resolve_values(self.experiment, self.variables)
        self.configuration, self.secrets = configuration, secrets
        declared = (self.experiment.configuration, configuration, secrets, self.variables.configuration)
        redactor = Redactor(sensitive_values(*declared))  # env-backed values too
        redactor.protect(code_paths(self.experiment.raw))  # a secret never rewrites a provider's name
        self.console.redactor = redactor
        # the experiment's endpoints and the var files', ${name} substituted (InvalidInput naming the place)
        declared_endpoints = resolve_endpoints(self.experiment.raw, self.variables, self.experiment.source,
                                               configuration, secrets, redactor.secrets)
        table = table_of(declared_endpoints, secrets, Path(self.experiment.source).parent)
        if table is not None:  # every endpoint credential readable now is redacted before anything is written
            unusable = table.problems()
            if unusable:  # where the run happens, a missing token or certificate is bad input: nothing runs
                raise InvalidInput("endpoints: " + "; ".join(unusable))
            for value in table.credentials():
                redactor.add_secret(value)
            table.on_secret = redactor.add_secret  # and any read later (a rotated ServiceAccount token)
        too_short = too_short_to_redact(*declared)
        if too_short:
            self.console.warn(f"{', '.join(too_short)}: shorter than {MIN_SECRET_LENGTH} characters, too short to"
                              " redact safely: shown as is in the journal and the output")
        if self.journal_path is not None:
            try:
                self.journal_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidInput(f"cannot create the journal's directory {self.journal_path.parent}: {exc}") from None
        receiver = self._start_receiver()  # may refuse the run (InvalidInput) before any journal exists
        self.journal = Journal(self.journal_path, self.experiment.raw, self.experiment.source, redactor)
        if declared_endpoints:  # what recovery rebuilds the endpoints an undo names from (redacted like the rest)
            self.journal.extra["endpoints"] = declared_endpoints
        self.waiter = Waiter(self.signals.on_wait)
        self.run_controls = self._controls(configuration, secrets)
        if self.schedule != HypothesisSchedule():
            self.journal.extra["hypothesis_schedule"] = self.schedule.to_dict()
        for warning in self.experiment.warnings:  # what validation advised: on screen and in the journal
            self.console.warn(warning)
        if self.experiment.warnings:
            self.journal.extra["warnings"] = list(self.experiment.warnings)
        self.journal.save(force=True)
        self.measurements: list[Measurement] = []
        settings = self.experiment.settings
        self.ledger = Ledger(settings.blast_radius, settings.allowed_environments)
        previous = self.signals.install()
        self.context = run_context.RunContext(receiver=receiver, dry_run=self.dry_run)
        if not self.dry_run:
            try:
                self.entry = run_registry.register(self.journal_path, self.experiment.title,
                                                   str(self.experiment.source))
            except OSError as exc:
                self.signals.restore(previous)
                if receiver is not None:
                    receiver.stop()
                raise InvalidInput(f"cannot register the run in {run_registry.runs_dir()} (MLCHAOS_STATE_DIR): "
                                   f"{exc}") from None
            self.journal.extra["run_id"] = self.entry.run_id
            if self.journal_path is not None:
                self.exact = ExactRecords.for_run(self.entry.run_id, self.journal_path.resolve(), redactor.secrets,
                                                  declared_endpoints)
        if too_short:
            self.journal.extra["too_short_to_redact"] = too_short
        self.monitor = RunMonitor(
            on_abort=self.abort, entry=self.entry,
            max_duration=None if self.dry_run else settings.blast_radius.max_duration,
            guards=() if self.dry_run else self.experiment.guards, guard_interval=settings.guard_interval,
            guard_timeout=self._timeout, configuration=configuration, secrets=secrets,
        )
        token = changes.set_sink(self._record_change)
        context_token = run_context.activate(self.context)
        previous_endpoints = endpoints.activate(table)
        left_undone: list[str] = []
        all_undone = False
        try:  # the handlers stay until the controls have had their last word (after_experiment_control)
            try:
                self.monitor.start()
                if self._admitted():
                    self._run_phases()
                self.monitor.stop_guarding()
                self.phase = ROLLBACKS
                self.run_controls.event("start_rollbacks", self.control_experiment)
                with self.run_controls.around("rollback", self.control_experiment,
                                              Holder(self.journal.data["rollbacks"]), waiter=Waiter()):
                    left_undone = self._run_rollbacks()
                self.run_controls.event("rollbacks_completed", self.control_experiment, JOURNAL)
                injected = any(not r.dry_run for r in self.context.changes)
                recovering = (self.signals.interrupt is None and bool(self.experiment.recovery) and not self.dry_run
                              and (injected or not self.refusals))  # a refused run that changed nothing: nothing to do
                left_undone += self._undo_uncovered_changes(keep_loads=recovering and not left_undone)
                if recovering and not left_undone:
                    self._run_recovery()
                left_undone += self._undo_uncovered_changes()  # the loads the recovery check relied on
                left_undone += self._settle_abandoned()
                all_undone = not left_undone and not self.signals.abandon
            finally:
                self.monitor.stop()
                run_context.deactivate(context_token)
                endpoints.activate(previous_endpoints)
                if table is not None:
                    table.close()
                changes.reset_sink(token)
                if receiver is not None:
                    receiver.stop()
                    self.journal.extra["notifications"] = receiver.to_journal()
                self._rotate_receiver_token()
                if self.entry is not None:
                    run_registry.unregister(self.entry)
                if all_undone:
                    self._drop_exact_records()
            self._check_budgets()
            return self._finish(left_undone)
        finally:
            self.signals.restore(previous)

    # --- safety: refusals, aborts, the guardian, the safety net ------------------------------
    def _admitted(self) -> bool:
        """Refuse the run before anything runs when the emergency stop is engaged or the plan breaks a bound."""
        info = emergency_stop.engaged()
        if info is not None:
            self._refuse(emergency_stop.describe(info))
            return self.dry_run  # a plan still shows what a run would do
        refusals = plan.pauses_exceed_max_duration(self.experiment, self._substitute)
        if not self.dry_run and self.ledger.active:
            refusals += plan.resolve_plan(self.experiment, self.ledger, self._execute_spec, self.console)
        for message in refusals:
            self._refuse(message)
        return not refusals or self.dry_run

    def _refuse(self, message: str) -> None:
        self.refusals.append(message)
        self.journal.extra.setdefault("refused", []).append(message)
        self.console.error(f"refused: {message}")
        if not self.dry_run:
            self.signals.refuse(Abort("refused", message))

    def abort(self, abort: Abort) -> None:
        """Stop the run and roll back (called from the monitor's threads)."""
        self.signals.abort(abort)

    def _record_abort(self, abort: Abort) -> None:
        self.journal.extra["aborted"] = {"kind": abort.kind, "message": abort.message}

    def _ensure_guardian(self) -> None:
        """Start the guardian before the first real fault (it undoes the faults if this runner dies)."""
        if self.guardian_pid is not None or self.entry is None or self.journal_path is None:
            return
        from mlchaos.safety.guardian import start_guardian

        self.guardian_pid = start_guardian(self.entry, self.experiment.settings.heartbeat_timeout)
        self.journal.extra["guardian_pid"] = self.guardian_pid

    def _drop_exact_records(self) -> None:
        """Every change was undone: the exact records (and the secrets in them) are no longer needed."""
        if self.exact is not None and self.exact.remove() and "exact_records" in self.journal.extra:
            self.journal.extra["exact_records"]["kept"] = False

    def _keep_exact(self, output: Any) -> None:
        """An action's output that is a real change record: kept exactly (it may say more than the announcement)."""
        if self.exact is not None and changes.is_change_record(output) and not output.get("dry_run"):
            self.exact.add_output(output)

    def _undo_uncovered_changes(self, keep_loads: bool = False) -> list[str]:
        """The safety net: undo every applied change that no successful declared rollback undid.

        ``keep_loads``: leave the changes marked ``undo_after_recovery`` (client traffic) for later.
        """
        if self.signals.abandon:
            return []
        uncovered = self.net.uncovered(self.context.changes, keep_loads)
        if uncovered and not self.experiment.rollbacks:
            self.console.heading("rollbacks:")
        left = self._undo_records(uncovered)
        if uncovered:
            self.journal.save(force=True)
        return left

    def _undo_records(self, records: list[changes.ChangeRecord], reason: str | None = None) -> list[str]:
        """Undo ``records`` newest first, each with a rollback entry in the journal (its ``reason`` under the
        mlchaos key when given) and a console line; the names of the undos that failed (and a failure each)."""
        left: list[str] = []
        for record in reversed(records):
            name = safety_net.undo_name(record)
            self.console.started("action", name)
            result, entry = safety_net.undo(record, self.experiment.settings.rollback_timeout, self.waiter)
            if reason is not None:
                entry["mlchaos"]["reason"] = reason
            self.journal.data["rollbacks"].append(entry)
            self.console.finished("action", name, result.ok, result.duration, result.error or "")
            if not result.ok:
                left.append(name)
                self.failures.append(f"automatic undo of {record.action} failed: {result.error}")
        return left

    def _start_receiver(self) -> Any:
        """Start the run's notification receiver when the experiment declares one (before anything runs)."""
        endpoint = listen_endpoint(self.experiment, self.listen_targets)
        if endpoint is None:
            return None
        from mlchaos.monitoring.notifications import open_receiver, run_token  # its HTTP server: only when used

        if endpoint.token_secret is not None:  # the in-cluster runner: a fresh token from a Secret, rotated at the end
            from mlchaos.monitoring.secret_token import SecretToken

            self.secret_token = SecretToken(endpoint.token_secret, self.configuration)
            spec = endpoint.token_secret
            self.console.write(f"  notifications: taking the run's token from secret {spec.namespace}/{spec.name} "
                               f"(Alertmanager may need up to {spec.reload_seconds:g}s to load a new one)")
            token = self.secret_token.take(dry_run=self.dry_run)
            source = f"token from secret {spec.namespace}/{spec.name}"
        else:
            token = run_token(endpoint.token_file, endpoint.token_env)
            source = f"token in {endpoint.token_file}" if endpoint.token_file else f"token from ${endpoint.token_env}"
        self.console.redactor.add_secret(token)  # never in the journal, the console or a report
        receiver = open_receiver(endpoint.address, token)
        self.console.write(f"  notifications: listening on {receiver.url} (only with the run's {source})")
        return receiver

    def _rotate_receiver_token(self) -> None:
        """The receiver's token from a Kubernetes Secret: rotated for the next run, the records journaled. A failure
        is a warning: the token stays marked taken, so the next run rotates it before it listens."""
        if self.secret_token is None:
            return
        problem = self.secret_token.finish()
        self.journal.extra["notifications_token"] = self.secret_token.record
        if problem is not None:
            self.console.warn(problem)
            self.journal.extra.setdefault("warnings", []).append(problem)

    def _check_budgets(self) -> None:
        if self.dry_run:  # a plan injects nothing, so there is nothing to measure
            self.budget_results = []
            return
        results = budgets.evaluate(self.experiment.settings.budgets, self.measurements)
        if self.signals.interrupt is not None or self.signals.stop is not None:
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
        data = record.to_dict()
        self.console.redactor.protect(code_paths(data))  # its undo's name, in what the console says of it
        if not record.dry_run:
            self._ensure_guardian()
            if self.exact is not None:  # exact first: a record only the journal holds is redacted there
                self.exact.add_change(data)
                self.journal.extra["exact_records"] = {"path": str(self.exact.path), "kept": True}
        self.context.changes.append(record)
        self.journal.record_change(data)
        if not record.dry_run:
            self.monitor.fault_applied()

    # --- the phases ---------------------------------------------------------------------
    def _run_phases(self) -> None:
        try:
            self.run_controls.start(self.control_experiment, self.schedule.chaoslib())
            if self.experiment.hypothesis and self.schedule.before:
                met = self._run_hypothesis("before")
                if not met:
                    self.deviated = True
                    if not self.dry_run:
                        self.failures.append("steady state not met before the method: method not run")
                        return
                    self.failures.append("steady state not met now: a run would stop before its method")
            if self.dry_run and self.experiment.guards:
                self._plan_guards()
            self.phase = METHOD
            self.run_controls.event("start_method", self.control_experiment)
            with self.run_controls.around("method", self.control_experiment, Holder(self.journal.data["run"])):
                self.console.heading("method:")
                self._start_during()
                for activity in self.experiment.method:
                    job = self._run_method_activity(activity)
                    if job is not None:
                        self.background.append(job)
                while self.background:
                    self._join_background(*self.background[0])
                    self.background.pop(0)
                self._end_during()
            self.run_controls.event("method_completed", self.control_experiment, self.journal.data["run"])
            if (self.experiment.hypothesis and not self.dry_run and self.schedule.after
                    and not self._run_hypothesis("after")):
                self.deviated = True
        except Interrupted as exc:
            self.journal.extra["interrupted_by"] = str(exc)
            self.console.warn(f"{exc} received during the {self.phase}: rolling back")
            self.run_controls.event("signal_exit")
        except Aborted as exc:
            self.console.warn(f"aborted during the {self.phase}: {exc}; rolling back")
            self.run_controls.event("interrupted", self.control_experiment, JOURNAL)
        except Exception as exc:  # a bug must never cost the rollbacks
            message = f"internal error during the {self.phase}: {type(exc).__name__}: {exc}"
            self.failures.append(message)
            self.journal.extra["internal_error"] = traceback.format_exc()
            self.console.error(f"{message}; rolling back")
        finally:
            if self.during is not None:
                self.during.stop(drop=True)  # stopped early: never waited for (the rollbacks come first)
            self._abandon_background()

    # --- controls and the hypothesis during the method ----------------------------------------
    def _controls(self, configuration: dict[str, Any], secrets: dict[str, Any]) -> RunControls:
        """The run's Chaos Toolkit controls (none in a plan: a control is code mlchaos cannot dry-run)."""
        controls = ControlSet(self.experiment.raw, self.ctk_settings, self.experiment.settings.control_timeout,
                              configuration, secrets)
        if self.dry_run and controls:
            self.console.warn(f"controls not called in a plan: {', '.join(controls.declared)}")
            controls = ControlSet({})
        elif controls:  # they get (and may change) a copy; the run does not follow
            self.control_experiment = copy.deepcopy(self.experiment.raw)
            hypothesis = self.control_experiment.get("steady-state-hypothesis")
            self.control_hypothesis = hypothesis if isinstance(hypothesis, dict) else {}
            controls.experiment = self.control_experiment
        record: dict[str, Any] = {}
        run_controls = RunControls(controls, self.signals, self.console, self.waiter, record,
                                   journal=lambda: self.journal.redactor.data(self.journal.data))
        if run_controls.active:
            self.journal.extra["controls"] = record
        return run_controls

    def _start_during(self) -> None:
        """``--hypothesis-strategy during-method-only|continuously``: check the hypothesis while the method runs."""
        if not (self.schedule.during and self.experiment.hypothesis) or self.dry_run:
            return
        self.console.write(f"  steady state during the method: every {self.schedule.frequency:g}s"
                           f"{' (--fail-fast)' if self.schedule.fail_fast else ''}")
        self.during = DuringHypothesis(self.schedule.frequency, self._check_hypothesis_during,
                                       self._during_result, self.journal.data["steady_states"]["during"])
        self.run_controls.event("start_continuous_hypothesis", self.schedule.frequency)
        self.during.start()

    def _end_during(self) -> None:
        """The method ended: no further check; the one in progress is waited for (within its probes' timeouts)."""
        if self.during is None:
            return
        self.during.stop()
        limit = sum(self._timeout(p) for p in self.experiment.hypothesis) + 2 * self.experiment.settings.control_timeout
        if not self.waiter.wait(self.during.done, limit):
            self.console.warn("the steady-state check during the method did not finish: its result is dropped")
        for error in self.during.errors:
            self.failures.append(f"internal error while checking the steady state during the method: {error}")
        self.during = None
        self.run_controls.event("continuous_hypothesis_completed", self.control_experiment, JOURNAL, None)
        self.journal.save(force=True)

    def _check_hypothesis_during(self) -> dict[str, Any]:
        """One check of the hypothesis on the during thread (its own waits: signals are the main thread's)."""
        waiter = Waiter()
        state: dict[str, Any] = {"steady_state_met": None, "probes": []}
        with self.run_controls.around("hypothesis", self.control_hypothesis, Holder(state), waiter=waiter):
            for probe in self.experiment.hypothesis:
                holder = Holder()
                with self.run_controls.around("activity", self._control_context(probe), holder, waiter=waiter):
                    outcome = self._execute(probe, rollback=False, waiter=waiter)
                    entry = activity_record(probe, outcome)
                    if outcome.succeeded:
                        verdict = check_tolerance(probe.tolerance, outcome.output, self.configuration, self.secrets,
                                                  self._timeout(probe) - outcome.duration, waiter)
                        entry["tolerance_met"] = verdict.met
                    else:
                        entry["tolerance_met"] = False
                    holder.state = entry
                state["probes"].append(entry)
            state["steady_state_met"] = all(p["tolerance_met"] for p in state["probes"])
        return state

    def _during_result(self, index: int, state: dict[str, Any]) -> None:
        self.run_controls.event("continuous_hypothesis_iteration", index,
                                Later(lambda: self.journal.redactor.data(state)))
        if state["steady_state_met"]:
            self.console.write(f"  ok   steady state during the method (check {index})")
            return
        missed = [p["activity"].get("name") for p in state["probes"] if not p["tolerance_met"]]
        self.console.write(f"  FAIL steady state during the method (check {index}): {', '.join(missed)}")
        if not any(f.startswith("steady state not met during the method") for f in self.failures):
            self.failures.append(f"steady state not met during the method (check {index}): {', '.join(missed)}")
        self.deviated = True
        if self.schedule.fail_fast:
            self.abort(Abort(FAIL_FAST, f"steady state not met during the method (check {index}; --fail-fast)"))

    def _abandon_background(self) -> None:
        """The run stopped before it joined its background activities: never wait for them (the rollbacks
        come first), and never leave them ``running`` in the journal. One that has finished keeps its outcome;
        one still going is closed as interrupted (a Python function cannot be killed: its late result is
        discarded)."""
        for activity, entry, done, box in self.background:
            with self._worker_changes:  # from now on it cannot announce (so cannot apply) a new fault
                box["abandoned"] = True
            if done.acquire(blocking=False):
                self._close_background(activity, entry, box.get("outcome"))
                continue
            self.abandoned.append((activity, done, box))
            ended = datetime.now(UTC)
            reason = self.journal.extra.get("interrupted_by") or (self.signals.stop.message if self.signals.stop
                                                                   else "an error")
            entry.update(status="interrupted", end=ended.isoformat(),
                         duration=(ended - datetime.fromisoformat(entry["start"])).total_seconds(),
                         exception=[f"abandoned: the run stopped ({reason}) while this activity ran in the "
                                    f"background; it was not waited for and its result is discarded\n"])
            self.console.warn(f"background {activity.kind} {activity.name!r} abandoned (still running)")
        if self.background:
            self.background.clear()
            self.journal.save(force=True)

    def _run_hypothesis(self, when: str) -> bool:
        self.phase = f"steady-state hypothesis ({when})"
        self.console.heading(f"steady state {when}: {self.experiment.hypothesis_title}")
        state: dict[str, Any] = {"steady_state_met": None, "probes": []}
        self.journal.data["steady_states"][when] = state
        self.run_controls.event(f"start_hypothesis_{when}", self.control_experiment)
        with self.run_controls.around("hypothesis", self.control_hypothesis, Holder(state)):
            results = [self._check_probe(p, state["probes"]) for p in self.experiment.hypothesis]
            state["steady_state_met"] = all(results)
        self.run_controls.event(f"hypothesis_{when}_completed", self.control_experiment, state, JOURNAL)
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

    def _run_rollbacks(self) -> list[str]:
        """Run every rollback; return the names of those left undone (failed or abandoned)."""
        self.phase = ROLLBACKS
        rollbacks = list(self.experiment.rollbacks)
        left: list[str] = []
        if not rollbacks:
            return left
        self.console.heading("rollbacks:")
        self.signals.rollbacks_left = [a.name for a in rollbacks]
        for index, activity in enumerate(rollbacks):
            if self.signals.abandon:
                left.extend(a.name for a in rollbacks[index:])
                break
            try:
                outcome = self._run_activity(activity, self.journal.data["rollbacks"], rollback=True)
            except RollbacksAbandoned:
                left.extend(a.name for a in rollbacks[index:])
                break
            self.signals.rollbacks_left.pop(0)
            if not outcome.succeeded:
                left.append(activity.name)
            elif activity.spec.get("provider", {}).get("type") == "python":
                provider = activity.spec["provider"]
                self.net.rolled_back(f"{provider.get('module')}.{provider.get('func')}")
        if self.signals.abandon:
            self.console.error("rollbacks abandoned on a second signal; left undone: " + ", ".join(left))
        self.journal.extra["rollbacks_left_undone"] = left
        self.journal.save(force=True)
        return left

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

    # --- activities ---------------------------------------------------------------------
    def _timeout(self, activity: Activity, rollback: bool = False) -> float:
        """The activity's timeout (or the default), or its provider's own ``timeout`` when that is smaller."""
        if activity.timeout is not None:
            timeout = float(self._substitute(activity.timeout))
        else:
            settings = self.experiment.settings
            timeout = settings.rollback_timeout if rollback else settings.activity_timeout
        if activity.provider_timeout is not None:
            timeout = min(timeout, float(self._substitute(activity.provider_timeout)))
        return timeout

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
            self.signals.checkpoint()
        holder = Holder()
        if not self.run_controls.active:  # no controls: no hooks around it, nothing to hand them
            return self._run_activity_now(activity, section, holder, rollback, report, activity.spec)
        context = self._control_context(activity)
        with self.run_controls.around("activity", context, holder):
            outcome = self._run_activity_now(activity, section, holder, rollback, report, context)
        return outcome

    def _control_context(self, activity: Activity) -> dict[str, Any]:
        """What an activity's controls and run events get: a copy of its spec (the same dict for all of them, as
        chaoslib has it). Without controls nothing gets it, and no copy is made."""
        return copy.deepcopy(activity.spec) if self.run_controls.active else activity.spec

    def _run_activity_now(self, activity: Activity, section: list[dict[str, Any]], holder: Holder,
                          rollback: bool, report: bool, context: dict[str, Any]) -> Outcome:
        if activity.pause_before is not None:
            self._pause(activity.pause_before, f"before {activity.name}")
        entry = activity_record(activity)
        holder.state = entry
        controlled = self.run_controls.active  # without controls, no event is sent: none is built either
        if controlled:
            self.run_controls.event("start_activity", context)
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
        if controlled:
            self.run_controls.event("activity_completed", context, Later(lambda: self.journal.redactor.data(entry)))
        self._keep_exact(outcome.output)
        self._collect_measurement(activity, outcome)
        self.journal.save()
        if report:
            self._report(activity, outcome)
        if activity.pause_after is not None:
            self._pause(activity.pause_after, f"after {activity.name}")
        return outcome

    def _collect_measurement(self, activity: Activity, outcome: Outcome) -> None:
        measurement = Measurement.from_output(outcome.output, activity.name)
        if measurement is not None:
            self.measurements.append(measurement)
            self.journal.extra.setdefault("measurements", []).append(measurement.to_dict())

    def _execute(self, activity: Activity, rollback: bool, waiter: Waiter | None = None) -> Outcome:
        if not self.dry_run:
            if activity.kind == "action" and not rollback and waiter is None:
                return self._execute_action(activity)
            return self._execute_spec(activity, activity.private_spec(), rollback, waiter)
        if rollback:
            return Outcome(SUCCEEDED, {"dry_run": "a plan does not run rollbacks"}, duration=0.0)
        spec = plan.dry_run_spec(activity, waiting_probe=self.phase == METHOD)  # a probe waiting for the fault
        if spec is None:
            return Outcome(SUCCEEDED, {"dry_run": "skipped: its provider has no dry run"}, duration=0.0)
        return self._execute_spec(activity, spec, rollback, waiter)

    def _execute_spec(self, activity: Activity, spec: dict[str, Any], rollback: bool = False,
                      waiter: Waiter | None = None) -> Outcome:
        timeout = self._timeout(activity, rollback)
        return execute(spec, self.configuration, self.secrets, timeout, waiter or self.waiter,
                       inline=activity.kind == "probe")

    def _execute_action(self, activity: Activity) -> Outcome:
        """Run a method action for real. Should the run stop waiting for it (a signal, its timeout), it must not
        go on to announce (so apply) a change the rollbacks have already passed; one it announced before is
        settled after them (:meth:`_settle_abandoned`)."""
        box: dict[str, Any] = {"where": "cut-short"}

        def abandon(done: LockType) -> None:
            with self._worker_changes:
                box["abandoned"] = True
            self.abandoned.append((activity, done, box))

        token = changes.set_sink(lambda record: self._record_worker_change(box, record))
        try:
            return execute(activity.private_spec(), self.configuration, self.secrets, self._timeout(activity),
                           self.waiter, abandoned=abandon)
        finally:
            changes.reset_sink(token)

    def _report(self, activity: Activity, outcome: Outcome, detail: str = "") -> None:
        self.counts["succeeded" if outcome.succeeded else "failed"] += 1
        if not outcome.succeeded:
            detail = detail or str(outcome.error)
            self.failures.append(f"{activity.kind} {activity.name!r} failed: {outcome.error}")
        elif not detail:
            detail = summarise_output(outcome.output)
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
        self.signals.checkpoint()
        entry = activity_record(activity)
        self.journal.data["run"].append(entry)
        self.journal.save(force=True)
        box: dict[str, Outcome] = {}

        def work() -> None:
            token = changes.set_sink(lambda record: self._record_worker_change(box, record))
            holder, waiter, context = Holder(entry), Waiter(), self._control_context(activity)
            try:
                with self.run_controls.around("activity", context, holder, waiter=waiter):
                    self.run_controls.event("start_activity", context)
                    box["outcome"] = outcome = self._execute(activity, rollback=False, waiter=waiter)
                    self.run_controls.event("activity_completed", context, Later(
                        lambda: self.journal.redactor.data(activity_record(activity, outcome))))
            finally:
                changes.reset_sink(token)

        done = in_background(work)
        self.console.write(f"  ..   {activity.kind:<6} {activity.name}  (in the background)")
        return activity, entry, done, box

    def _record_worker_change(self, box: dict, record: changes.ChangeRecord) -> None:
        """A background activity, or a method action on its worker, announced a change: recorded as any other,
        unless the run has stopped waiting for it; then it is refused (drivers announce before they change
        anything, so nothing is applied)."""
        with self._worker_changes:
            if box.get("abandoned") and not record.dry_run:
                why = ("the run stopped waiting for this action (a signal or its timeout cut it short)"
                       if box.get("where") == "cut-short" else "the run stopped while this background activity ran")
                raise DriverError(f"{why}: its change ({record.driver} {record.action}) is refused and not applied")
            self._record_change(record)
            box.setdefault("changes", []).append(record)

    def _settle_abandoned(self) -> list[str]:
        """An abandoned activity (in the background, or a method action cut short) that announced a fault before
        the run stopped waiting for it may still be applying it after the rollbacks and the safety net undid it:
        wait for it (up to its timeout, at most :data:`SETTLE_LIMIT` s, or :data:`CUT_SHORT_SETTLE` s for a method
        action) and undo its changes once more (undos are idempotent). Whatever still runs after that dies with
        the process, which ends right after (in a game day, it is left running)."""
        left: list[str] = []
        if self.signals.abandon:
            return left
        for activity, done, box in self.abandoned:
            records = [r for r in box.get("changes", []) if not r.dry_run]
            if not records:
                continue
            where = box.get("where", "background")
            limit = CUT_SHORT_SETTLE if where == "cut-short" else SETTLE_LIMIT
            if not done.acquire(timeout=min(self._timeout(activity), limit)):
                self.console.warn(f"{where} {activity.kind} {activity.name!r} still runs after the rollbacks: "
                                  "its changes are undone once more and it ends with the run")
            left += self._undo_records(
                records, reason=f"again, after the abandoned {where} {activity.kind} {activity.name!r}")
            self.journal.save(force=True)
        return left

    def _join_background(self, activity: Activity, entry: dict, done: LockType, box: dict) -> None:
        self.waiter.wait(done, self._timeout(activity) + 1.0)
        self._close_background(activity, entry, box.get("outcome"))

    def _close_background(self, activity: Activity, entry: dict, outcome: Outcome | None) -> None:
        outcome = outcome or Outcome(FAILED, None, "background activity did not finish")
        entry.clear()
        entry.update(activity_record(activity, outcome))
        self._keep_exact(outcome.output)
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
        if isinstance(probe.tolerance, dict):  # may take the rest of its timeout: the journal shows where the run is
            entry["tolerance_met"] = None  # not decided (yet, or ever when a signal stops the run now)
            self.journal.save(force=True, sync=False)
        # within what is left of the probe's timeout; a signal stops it like any wait
        verdict = check_tolerance(probe.tolerance, outcome.output, self.configuration,
                                  self.secrets, self._timeout(probe) - outcome.duration, self.waiter)
        entry["tolerance_met"] = verdict.met
        self.counts["succeeded" if verdict.met else "failed"] += 1
        if not verdict.met:
            self.failures.append(f"probe {probe.name!r}: {verdict.explanation}")
        if not self.console.quiet:  # --quiet: no line to write (thousands of probes in a long run)
            detail = summarise_output(outcome.output) if verdict.met else verdict.explanation
            self.console.finished(probe.kind, probe.name, verdict.met, outcome.duration, detail)
        return verdict.met

    # --- the end ------------------------------------------------------------------------
    def _finish(self, left_undone: list[str]) -> RunResult:
        self.phase = DONE
        interrupt, stop = self.signals.interrupt, self.signals.stop
        ending = Ending(left_undone=bool(left_undone), interrupt=interrupt, refused=bool(self.refusals),
                        stopped=stop is not None and stop.kind != FAIL_FAST,  # --fail-fast: a deviation
                        deviated=self.deviated, failed=bool(self.failures),
                        dry_run=self.dry_run)
        verdict, code = ending.verdict()
        status = ending.status()
        if interrupt is not None:
            self.journal.extra["interrupted_by"] = signal.Signals(interrupt).name
        self.journal.extra["blast_radius"] = {"bounds": self.ledger.describe_bounds(), **self.ledger.summary()}
        self.journal.extra["guards"] = [g.to_dict() for g in self.monitor.states]
        self.journal.finish(status, self.deviated, verdict, code)
        if self.run_controls.active:  # with the finished journal (redacted, as it is on disk)
            self.run_controls.finish(self.control_experiment, self.journal.redactor.data(self.journal.data))
            self.journal.save(force=True)
        return RunResult(
            title=self.experiment.title, status=status, verdict=verdict, exit_code=code,
            deviated=self.deviated, failures=list(self.failures), left_undone=left_undone,
            journal_path=self.journal_path, duration=self.journal.data.get("duration", 0.0),
            counts=dict(self.counts), measurements=list(self.measurements),
            budgets=list(self.budget_results), dry_run=self.dry_run, planned=list(self.planned),
            bounds=self.ledger.describe_bounds(), blast_radius=self.ledger.summary(),
            guards=[g.to_dict() for g in self.monitor.states], refusals=list(self.refusals), abort=stop,
        )
