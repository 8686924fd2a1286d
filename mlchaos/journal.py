"""The run journal: Chaos Toolkit's journal format plus an ``mlchaos`` section.

It is written to disk while the run goes (atomically: temporary file then rename), and
always before an action starts, so a runner killed with SIGKILL still leaves a record
naming the fault it was injecting. Secret values, and the values of env-backed
configuration entries, are replaced by ``***`` on the way out (journal, console, and
whatever the run writes to stdout/stderr: see :func:`redacted_output`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlchaos import __version__
from mlchaos.changes import ChangeRecord
from mlchaos.execution import RUNNING, Outcome
from mlchaos.models import Activity

REDACTED = "***"
MIN_SECRET_LENGTH = 3
THROTTLE_SECONDS = 0.25


def secret_values(secrets: dict[str, Any]) -> list[str]:
    """Every loaded secret value as text (the strings to keep out of journals and logs)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif value is not None and not isinstance(value, bool):
            text = str(value)
            if len(text) >= MIN_SECRET_LENGTH:
                found.append(text)

    walk(secrets)
    return sorted(set(found), key=len, reverse=True)


def sensitive_values(
    experiment_configuration: Any, configuration: dict[str, Any], secrets: dict[str, Any],
    overrides: Any = None,
) -> list[str]:
    """Secret values plus the resolved values (and declared defaults) of env-backed configuration entries.

    ``overrides`` are --var-file configuration entries, which may declare env-backed values too.
    """
    picked: list[Any] = []
    for declared in (experiment_configuration, overrides):
        if not isinstance(declared, dict):
            continue
        for key, value in declared.items():
            if isinstance(value, dict) and value.get("type") == "env":
                picked.append(configuration.get(key))
                picked.append(value.get("default"))
    return secret_values({"secrets": secrets, "configuration": picked})


@dataclass
class Redactor:
    """Replaces secret values in any JSON-like structure or string."""

    secrets: list[str] = field(default_factory=list)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def data(self, value: Any) -> Any:
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return REDACTED if str(value) in self.secrets else value
        return value


class RedactedStream(io.TextIOBase):
    """A text stream that redacts what is written to it before passing it on."""

    def __init__(self, stream: Any, redactor: Callable[[], Redactor]):
        self.stream = stream
        self.redactor = redactor  # read at each write: the run builds its redactor once values are resolved

    def write(self, text: str) -> int:
        self.stream.write(self.redactor().text(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


@contextlib.contextmanager
def redacted_output(redactor: Callable[[], Redactor]) -> Iterator[None]:
    """While it lasts, sys.stdout and sys.stderr redact: drivers' prints, logging and tracebacks too."""
    out, err = RedactedStream(sys.stdout, redactor), RedactedStream(sys.stderr, redactor)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield


def redact_secrets_block(secrets: Any) -> Any:
    """The experiment's ``secrets`` block with literal values hidden (env/vault references kept)."""
    if not isinstance(secrets, dict):
        return secrets
    result: dict[str, Any] = {}
    for scope, values in secrets.items():
        if not isinstance(values, dict):
            result[scope] = REDACTED
            continue
        result[scope] = {
            key: (value if isinstance(value, dict) and value.get("type") in ("env", "vault") else REDACTED)
            for key, value in values.items()
        }
    return result


def activity_record(activity: Activity, outcome: Outcome | None = None) -> dict[str, Any]:
    """A journal 'run' entry for an activity (status ``running`` while it is in flight)."""
    record: dict[str, Any] = {"activity": activity.spec, "output": None}  # read-only: never mutated
    if outcome is None:
        record.update(status=RUNNING, start=datetime.now(UTC).isoformat())
        return record
    record.update(
        output=outcome.output, start=outcome.start, end=outcome.end,
        duration=outcome.duration, status=outcome.status,
    )
    if outcome.exception:
        record["exception"] = outcome.exception
    return record


class Journal:
    """The journal of one run, persisted to ``path`` as it changes."""

    def __init__(self, path: Path | None, experiment_raw: dict[str, Any], source: Path, redactor: Redactor):
        self.path = path
        self.redactor = redactor
        self._last_write = 0.0
        experiment = copy.deepcopy(experiment_raw)
        if "secrets" in experiment:
            experiment["secrets"] = redact_secrets_block(experiment["secrets"])
        self.data: dict[str, Any] = {
            "chaoslib-version": _chaoslib_version(),
            "platform": platform.platform(),
            "node": socket.gethostname(),
            "experiment": experiment,
            "start": datetime.now(UTC).isoformat(),
            "status": RUNNING,
            "deviated": False,
            "steady_states": {"before": None, "after": None, "during": []},
            "run": [],
            "rollbacks": [],
            "mlchaos": {
                "version": __version__,
                "source": str(source),
                "pid": os.getpid(),
                "changes": [],
                "recovery": None,
                "rollbacks_left_undone": [],
                "interrupted_by": None,
                "verdict": None,
                "exit_code": None,
            },
        }

    @property
    def extra(self) -> dict[str, Any]:
        return self.data["mlchaos"]

    def record_change(self, record: ChangeRecord) -> None:
        """Persist a change an action is about to make (always written at once)."""
        self.extra["changes"].append(record.to_dict())
        self.save(force=True)

    def finish(self, status: str, deviated: bool, verdict: str, exit_code: int) -> None:
        end = datetime.now(UTC)
        self.data["end"] = end.isoformat()
        start = datetime.fromisoformat(self.data["start"])
        self.data["duration"] = round((end - start).total_seconds(), 6)
        self.data.update(status=status, deviated=deviated)
        self.extra.update(verdict=verdict, exit_code=exit_code)
        self.save(force=True)

    def save(self, force: bool = False) -> None:
        """Write the journal; unless forced, at most every THROTTLE_SECONDS."""
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._last_write < THROTTLE_SECONDS:
            return
        self._last_write = now
        # compact: json's C encoder is only used without indent (~30x faster on big journals)
        text = json.dumps(self.redactor.data(self.data), default=str)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.write("\n")
            if force:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, self.path)


def _chaoslib_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chaostoolkit-lib")
    except PackageNotFoundError:
        return "unknown"
