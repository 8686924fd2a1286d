"""One run of a game day at a time, on this host: an exclusive ``flock`` in the state directory.

The lock is per game-day file (its resolved path) and is held for as long as its suite runs,
by whichever process runs it: a scheduler, a one-shot ``mlchaos gameday``, or a second
scheduler started by mistake. The kernel releases it when the holder dies, so a crash never
leaves a stale lock. The file records who holds it, for the message of whoever is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from mlchaos.lib.state_dir import PRIVATE_FILE, private_dir, state_dir


def lock_path(source: Path) -> Path:
    """Where the lock of the game-day file ``source`` lives."""
    resolved = str(source.resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", source.stem)[:40]
    return state_dir() / "gamedays" / f"{stem}-{digest}.lock"


class SuiteLock:
    """The exclusive lock of one game-day file (not re-entrant: a second acquire in the same
    process is refused too, as flock locks belong to the open file)."""

    def __init__(self, source: Path):
        self.source = source
        self.path = lock_path(source)
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another run holds it."""
        if self._handle is not None:
            return False
        private_dir(self.path.parent)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
        handle = open(descriptor, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "since": datetime.now(UTC).isoformat(),
                                 "file": str(self.source.resolve())}) + "\n")
        handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def holder(self) -> dict[str, Any]:
        """Who holds the lock, as recorded (empty when unknown)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def describe_holder(self) -> str:
        info = self.holder()
        if not info:
            return "another run of this game day holds its lock"
        return f"its previous run is still going (pid {info.get('pid', '?')}, since {info.get('since', '?')})"

    def __enter__(self) -> SuiteLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
