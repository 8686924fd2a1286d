"""A run's exact change records: what recovery needs, kept verbatim apart from the redacted journal.

The journal is redacted (:mod:`mlchaos.journal.redaction`): a change record whose path or URL holds
a secret says ``***`` there, which no undo can use. So the runner also keeps every real change
record exactly in ``<state dir>/exact-records/<run id>.json`` (folder 0700, file 0600), written and
fsynced before the fault is applied, with the action's output when it ends (it may add what only the
fault knew, e.g. its watchdog's pid). The journal names the file (``mlchaos.exact_records``); the
guardian and ``mlchaos recover`` read it, and fall back to the journal's records without one. It is
removed when the run ends with every change undone, or after a complete recovery.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlchaos.errors import InvalidInput, MlchaosError
from mlchaos.journal.redaction import Redactor
from mlchaos.lib.files import atomic_write
from mlchaos.lib.state_dir import state_dir

FOLDER = "exact-records"
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_BYTES = 16 * 1024 * 1024


@dataclass
class ExactRecords:
    """The exact change records of one run (``secrets``: the run's sensitive values, kept only where they
    occur in the records, so recovery can redact what it reports), and the endpoints the run declared (a
    credential's source only, never its value; exact where the journal's copy may be redacted)."""

    run_id: str
    path: Path
    journal: str | None = None
    secrets: list[str] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    endpoints: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_run(cls, run_id: str, journal: Path | None, secrets: list[str],
                endpoints: dict[str, Any] | None = None) -> ExactRecords:
        """The (empty, not yet written) records of a run that starts now."""
        if not RUN_ID.fullmatch(run_id):
            raise InvalidInput(f"not a run id: {run_id!r}")
        return cls(run_id, state_dir() / FOLDER / f"{run_id}.json", str(journal) if journal else None, list(secrets),
                   endpoints=dict(endpoints or {}))

    def add_change(self, record: dict[str, Any]) -> None:
        """Keep an announced change record (written at once: the fault is applied after this)."""
        self.changes.append(record)
        self.save()

    def add_output(self, output: dict[str, Any]) -> None:
        """Keep an action's output that is a change record (it may carry more than the announced copy)."""
        self.outputs.append(output)
        self.save()

    def as_journal(self) -> dict[str, Any]:
        """The records in the shape of a journal, for :func:`mlchaos.safety.undo.recorded_changes`."""
        return {"mlchaos": {"changes": self.changes}, "run": [{"output": o} for o in self.outputs]}

    def redactor(self) -> Redactor:
        """Hides this run's secrets in what recovery reports (journal, console, the guardian's log)."""
        return Redactor(self.secrets)

    def save(self) -> None:
        """Write the file (0600, in a 0700 folder), fsynced; MlchaosError when it cannot be written."""
        leaves = _leaves([self.changes, self.outputs, self.endpoints])
        occurring = [s for s in self.secrets if any(s in leaf for leaf in leaves)]
        data = {"run_id": self.run_id, "journal": self.journal, "secrets": occurring,
                "changes": self.changes, "outputs": self.outputs, "endpoints": self.endpoints}
        try:
            _private_folder(self.path.parent)
            atomic_write(self.path, json.dumps(data, default=str) + "\n", mode=0o600)
        except OSError as exc:
            raise MlchaosError(f"cannot keep the exact change records in {self.path}: {exc}") from None

    def remove(self) -> bool:
        """Delete the file (no longer needed); False when it could not be deleted (it stays, kept)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            return False
        return True


def load(path: Path, run_id: str) -> ExactRecords | None:
    """The exact records at ``path`` for ``run_id``; None when there is no such file; InvalidInput when it
    cannot be read or belongs to another run."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InvalidInput(f"{path}: larger than {MAX_BYTES} bytes: not exact change records")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"{path}: unreadable exact change records: {exc}") from None
    if not isinstance(data, dict) or data.get("run_id") != run_id:
        raise InvalidInput(f"{path}: not the exact change records of run {run_id}")
    parts = {key: data.get(key) for key in ("secrets", "changes", "outputs")}
    if not all(isinstance(value, list) for value in parts.values()):
        raise InvalidInput(f"{path}: malformed exact change records (secrets, changes, outputs must be lists)")
    endpoints = data.get("endpoints")  # absent in the records of an older mlchaos
    return ExactRecords(run_id, path, data.get("journal"), [str(s) for s in parts["secrets"]],
                        parts["changes"], parts["outputs"], endpoints if isinstance(endpoints, dict) else {})


def _private_folder(folder: Path) -> None:
    """Create the state dir and ``folder`` 0700 where they are missing; ``folder`` is made 0700 if it is not."""
    for path in (folder.parent, folder):
        if not path.is_dir():
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)  # whatever the umask
    if stat.S_IMODE(folder.stat().st_mode) != 0o700:
        os.chmod(folder, 0o700)


def _leaves(value: Any) -> list[str]:
    """Every string and number in ``value``, as text."""
    if isinstance(value, dict):
        return [s for item in value.values() for s in _leaves(item)]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _leaves(item)]
    return [] if value is None or isinstance(value, bool) else [str(value)]
