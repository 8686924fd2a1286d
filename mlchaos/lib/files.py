"""Files: the one atomic (fsync'd) write, JSON state files, a lock, strict reads, free ports."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlchaos.errors import SandboxError


def atomic_write(path: Path | str, data: str | bytes, mode: int | None = None, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` at once: a temporary file of a unique name in the same folder (concurrent
    writers never share one), fsynced (unless ``sync`` is False), then renamed over ``path``. A reader sees
    the old file or the new one, never a part of either.

    Without ``mode`` the file gets the permissions any new file gets (0666 less the umask, as ``open``
    gives); with one, exactly ``mode`` whatever the umask (``0o600`` for keys; ``0o644`` for
    certificates and reports, which other users' programs read)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:  # created 0600 when a mode is given, so a key is never readable by others, not even briefly
            descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else 0o600)
            break
        except FileExistsError:
            continue
    try:
        with open(descriptor, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path, what: str) -> Any:
    """The JSON in ``path``; None when it does not exist; SandboxError naming ``what`` when unreadable."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SandboxError(f"cannot read {what} {path}: {exc}") from exc


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all held open while choosing, so no duplicates)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports
