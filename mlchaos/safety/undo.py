"""Undo what a run's journal says was changed: ``mlchaos recover``, the guardian, the runner's safety net.

Every fault's change record is on disk (journal ``mlchaos.changes``, redacted, and exactly in the
run's private records, :mod:`mlchaos.safety.exact_records`) before the fault is applied, with the
function that undoes it. Recovery calls those undo functions newest
first, continues past individual failures and reports them all. It calls only the functions
drivers declare as undos (:mod:`mlchaos.safety.declared_undos`): any other function a record
names is refused, reported as a failed undo, and nothing is run. Undo functions are
idempotent (undoing what is already undone succeeds and changes nothing), so recovering
a journal twice, or after the run's own rollbacks, is harmless.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlchaos.errors import InvalidInput
from mlchaos.experiment.endpoint_sources import recorded_endpoints
from mlchaos.experiment.endpoints import table_of
from mlchaos.experiment.execution import Waiter, execute
from mlchaos.journal import reader as journal_reader
from mlchaos.journal.redaction import REDACTED, Redactor, redacted_output
from mlchaos.lib import endpoints
from mlchaos.lib.files import atomic_write
from mlchaos.lib.state_dir import PRIVATE_FILE
from mlchaos.safety import exact_records
from mlchaos.safety.changes import ChangeRecord, is_change_record
from mlchaos.safety.declared_undos import UndoRefused, resolve
from mlchaos.safety.exact_records import ExactRecords

UNDO_TIMEOUT = 120.0


@dataclass
class UndoResult:
    """What undoing one change record did."""

    action: str
    targets: list[str]
    undo: str
    status: str  # undone | failed | nothing-to-undo
    output: Any = None
    error: str | None = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def describe(self) -> str:
        what = f"{self.action} on {', '.join(self.targets) or 'nothing'}"
        if self.status == "failed":
            return f"FAILED  {what}: {self.undo} -> {self.error}"
        return f"{self.status:<7} {what} ({self.undo}, {self.duration:.2f}s)"


@dataclass
class RecoveryReport:
    """The outcome of recovering one journal."""

    journal: str
    by: str
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    results: list[UndoResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "at": self.at, "ok": self.ok, "results": [asdict(r) for r in self.results]}


def undo_record(record: ChangeRecord, timeout: float = UNDO_TIMEOUT, waiter: Waiter | None = None) -> UndoResult:
    """Call the record's undo function once (with a timeout), if it is a declared undo; never raises."""
    targets = [t.name for t in record.targets]
    func = (record.undo or {}).get("func")
    if not func:
        return UndoResult(record.action, targets, "-", "nothing-to-undo")
    arguments = (record.undo or {}).get("arguments") or {}
    try:
        resolve(func)
        if not isinstance(arguments, dict):
            raise UndoRefused(f"its arguments are not a mapping: {arguments!r}")
    except UndoRefused as exc:
        return UndoResult(record.action, targets, str(func), "failed", error=refusal(exc, func, arguments))
    module, _, name = func.rpartition(".")
    spec = {"type": "action", "name": f"undo {record.action}",
            "provider": {"type": "python", "module": module, "func": name, "arguments": dict(arguments)}}
    outcome = execute(spec, {}, {}, timeout, waiter or Waiter())
    return UndoResult(record.action, targets, func, "undone" if outcome.succeeded else "failed",
                      output=outcome.output, error=outcome.error, duration=outcome.duration)


def refusal(exc: UndoRefused, func: Any, arguments: Any) -> str:
    """What a person reads when a record's undo is refused: why, that nothing ran, and what to do."""
    return (f"refused: {exc}; nothing was run. Recovery calls only the undo functions drivers declare: if the "
            f"journal was edited or is not mlchaos', distrust it; if the change it records is real, undo it by hand "
            f"(recorded: {func}, arguments {arguments!r})")


def recorded_changes(journal: dict[str, Any], unreadable: list[str] | None = None) -> list[ChangeRecord]:
    """The real (not dry-run) changes a journal recorded, oldest first, each in its most complete form.

    The announced copy is written before the fault; the action's output (when it finished) may add what
    only the fault knew, e.g. the pid of the watchdog its undo must stop. A record that cannot be read
    is never skipped in silence: it is described in ``unreadable`` (when given).
    """
    extra = journal_reader.mlchaos_section(journal)
    finished = {}
    for entry in journal.get("run") or []:
        output = entry.get("output") if isinstance(entry, dict) else None
        if is_change_record(output):
            finished[(output.get("announced_at"), output.get("action"))] = output
    records = []
    for index, announced in enumerate(extra.get("changes") or []):
        if not is_change_record(announced) or announced.get("dry_run"):
            continue
        record = None
        for data in (finished.get((announced.get("announced_at"), announced.get("action"))), announced):
            if record is None and data is not None:
                with contextlib.suppress(TypeError, ValueError, AttributeError):
                    record = ChangeRecord.from_dict(data)
        if record is not None:
            records.append(record)
        elif unreadable is not None:
            unreadable.append(f"change record {index} ({announced.get('action')!r}) cannot be read")
    return records


def load_journal(path: Path) -> dict[str, Any]:
    """The journal at ``path``; InvalidInput when it cannot be read or has no ``mlchaos`` section."""
    data = journal_reader.read_file(Path(path))
    if not isinstance(data, dict) or not isinstance(data.get(journal_reader.SECTION), dict):
        raise InvalidInput(f"{path}: not an mlchaos journal (no 'mlchaos' section)")
    return data


def recover(path: Path, by: str, timeout: float = UNDO_TIMEOUT) -> RecoveryReport:
    """Undo every change the journal at ``path`` recorded, newest first; append the report to the journal.

    The run's exact records (:mod:`mlchaos.safety.exact_records`) are used when the journal names them;
    a record the journal holds only redacted is never replayed (its undo would act on ``***``). What the
    report says is redacted with the run's secrets; the exact records are removed once all is undone.
    """
    journal = load_journal(path)
    report = RecoveryReport(journal=str(path), by=by)
    problems: list[str] = []
    exact = _exact_records(journal, problems)
    redactor = exact.redactor() if exact is not None else Redactor()
    table = _endpoints(journal, redactor, exact)
    previous = endpoints.activate(table) if table is not None else None
    try:
        with redacted_output(lambda: redactor):  # what the undo functions print
            for record in reversed(recorded_changes(exact.as_journal() if exact else journal, problems)):
                redacted = exact is None and _redacted(record)
                report.results.append(_undo_redacted(record, journal) if redacted else undo_record(record, timeout))
    finally:
        if table is not None:
            endpoints.activate(previous)
            table.close()
    report.results += [UndoResult("?", [], "-", "failed", error=f"{problem}: undo it by hand") for problem in problems]
    for result in report.results:
        _redact_result(result, redactor)
    journal = load_journal(path)  # re-read: keep whatever was written meanwhile
    extra = journal["mlchaos"]
    extra.setdefault("recoveries", []).append(report.to_dict())
    if exact is not None and report.ok and exact.remove():
        extra["exact_records"] = {**(extra.get("exact_records") or {}), "kept": False}
    atomic_write(Path(path), json.dumps(journal, default=str) + "\n", mode=PRIVATE_FILE)
    return report


def _endpoints(journal: dict[str, Any], redactor: Redactor,
               exact: ExactRecords | None) -> endpoints.EndpointTable | None:
    """The endpoints the run declared (the experiment's and its var files', as the run recorded them: exactly in
    its exact records, else in the journal), for the undos that name one. The experiment's secrets are not kept
    anywhere after the run, so an endpoint whose credential is a ``secret`` cannot be used here (its undo fails,
    saying so); files and environment variables are read again."""
    declared = exact.endpoints if exact is not None and exact.endpoints else recorded_endpoints(journal)
    source = (journal.get(journal_reader.SECTION) or {}).get("source")
    base_dir = Path(source).parent if isinstance(source, str) else Path.cwd()
    try:
        table = table_of(declared, {}, base_dir)
    except (KeyError, TypeError, ValueError):  # a hand-edited journal: undos that need one fail, naming it
        return None
    if table is not None:
        table.on_secret = redactor.add_secret
    return table


def _exact_records(journal: dict[str, Any], problems: list[str]) -> ExactRecords | None:
    """The exact records the journal names, if they are still there (a problem when they cannot be read)."""
    extra = journal_reader.mlchaos_section(journal)
    named, run_id = extra.get("exact_records"), extra.get("run_id")
    if not isinstance(named, dict) or not named.get("path") or not isinstance(run_id, str):
        return None
    try:
        return exact_records.load(Path(str(named["path"])), run_id)
    except InvalidInput as exc:
        problems.append(str(exc))
        return None


def _redacted(record: ChangeRecord) -> bool:
    """True when the record's undo holds a redacted value (``***``)."""
    return REDACTED in json.dumps(record.undo, default=str)


def _undo_redacted(record: ChangeRecord, journal: dict[str, Any]) -> UndoResult:
    """A record known only redacted: nothing to do when the run or a recovery undid everything, else failed."""
    targets = [t.name for t in record.targets]
    func = str((record.undo or {}).get("func"))
    named = journal_reader.mlchaos_section(journal).get("exact_records")
    if isinstance(named, dict) and named.get("kept") is False:
        return UndoResult(record.action, targets, func, "nothing-to-undo",
                          output={"note": "undone already: the run or a recovery undid every change"})
    where = named.get("path") if isinstance(named, dict) else None
    return UndoResult(record.action, targets, func, "failed",
                      error=f"its undo arguments are redacted in the journal and the run's exact records"
                            f" ({where or 'not kept by the mlchaos that wrote it'}) are gone: undo it by hand")


def _redact_result(result: UndoResult, redactor: Redactor) -> None:
    result.targets = [redactor.text(t) for t in result.targets]
    result.output = redactor.data(result.output)
    result.error = redactor.text(result.error) if result.error else result.error
