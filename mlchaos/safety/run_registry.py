"""The runs in progress on this host, their heartbeats, and the emergency stop.

A run registers itself in ``<state_dir>/runs/<run_id>.json`` (pid, journal, experiment)
and touches ``<run_id>.heartbeat`` every second while it runs; both are removed when it
ends. ``mlchaos stop`` tells every registered run to abort (:func:`signal_abort`, SIGUSR1;
the stop itself is :mod:`mlchaos.safety.emergency_stop`). A run whose heartbeat stopped is
dead or hung: its guardian, or ``mlchaos recover --all``, undoes what its journal recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlchaos.lib import procfs
from mlchaos.lib.files import atomic_write
from mlchaos.lib.state_dir import PRIVATE_FILE, private_dir, state_dir

ABORT_SIGNAL = signal.SIGUSR1


@dataclass(frozen=True)
class RunEntry:
    """One registered run."""

    run_id: str
    pid: int
    journal: str | None
    experiment: str
    source: str
    started: str
    directory: str
    start_ticks: int | None = None  # the process' start time (/proc/PID/stat), so a reused pid is not taken for it

    @property
    def registry_file(self) -> Path:
        return Path(self.directory) / f"{self.run_id}.json"

    @property
    def heartbeat_file(self) -> Path:
        return Path(self.directory) / f"{self.run_id}.heartbeat"

    def heartbeat_age(self) -> float | None:
        """Seconds since the last heartbeat (None when there is none)."""
        try:
            return max(time.time() - self.heartbeat_file.stat().st_mtime, 0.0)
        except FileNotFoundError:
            return None

    def runner_alive(self) -> bool:
        """True when the registered process still runs (a zombie or a reused pid does not)."""
        stat = procfs.stat(self.pid)
        if stat is None or stat[0] == "Z":
            return False
        return self.start_ticks is None or stat[1] == self.start_ticks

    def is_dead(self, heartbeat_timeout: float) -> bool:
        """The runner is gone, or its heartbeat is older than ``heartbeat_timeout`` seconds."""
        age = self.heartbeat_age()
        return not self.runner_alive() or age is None or age > heartbeat_timeout


def runs_dir() -> Path:
    return state_dir() / "runs"


def register(journal: Path | None, experiment: str, source: str) -> RunEntry:
    """Register the current process as a run in progress (and give it a first heartbeat)."""
    directory = private_dir(runs_dir())
    entry = RunEntry(
        run_id=f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", pid=os.getpid(),
        journal=str(journal.resolve()) if journal else None, experiment=experiment, source=source,
        started=datetime.now(UTC).isoformat(), directory=str(directory),
        start_ticks=(procfs.stat(os.getpid()) or ("", None))[1],
    )
    beat(entry)
    atomic_write(entry.registry_file, json.dumps(asdict(entry), indent=2) + "\n")
    return entry


def beat(entry: RunEntry) -> None:
    """Say the runner is alive (touch its heartbeat file)."""
    entry.heartbeat_file.touch(mode=PRIVATE_FILE)


def unregister(entry: RunEntry) -> None:
    """The run ended: remove its registry and heartbeat files (its guardian then exits)."""
    for path in (entry.registry_file, entry.heartbeat_file):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def registered() -> list[RunEntry]:
    """Every run registered on this host (alive or not)."""
    return registered_in(runs_dir())


def registered_in(directory: Path) -> list[RunEntry]:
    """Every run registered in ``directory``."""
    entries = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries.append(RunEntry(**{**data, "directory": str(directory)}))
        except (OSError, ValueError, TypeError):
            continue  # a half-written or foreign file is not a run
    return entries


def signal_abort(entry: RunEntry) -> bool:
    """Tell a live run to abort and roll back; True when it was signalled."""
    if not entry.runner_alive():
        return False
    try:
        os.kill(entry.pid, ABORT_SIGNAL)
        return True
    except ProcessLookupError:
        return False
