"""Files: the one atomic (fsync'd) write, JSON state files, a lock, strict reads, free ports.

Under the state directory (:mod:`mlchaos.lib.state_dir`) what these create is private: folders
0700, files 0600 unless the caller asks for another mode (certificates: 0644).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from mlchaos.errors import SandboxError
from mlchaos.lib.state_dir import PRIVATE_FILE, in_state_dir, private_dir


def atomic_write(path: Path | str, data: str | bytes, mode: int | None = None, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` at once: a temporary file of a unique name in the same folder (concurrent
    writers never share one), fsynced (unless ``sync`` is False), then renamed over ``path``. A reader sees
    the old file or the new one, never a part of either.

    Without ``mode`` the file gets the permissions any new file gets (0666 less the umask, as ``open``
    gives), but in the state directory, where it is 0600 and its missing folders 0700; with one, exactly
    ``mode`` whatever the umask (``0o600`` for keys and journals; ``0o644`` for certificates and reports,
    which other users' programs read)."""
    path = Path(path)
    _make_parent(path)
    if mode is None and in_state_dir(path):
        mode = PRIVATE_FILE
    while True:
        tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")  # secrets.token_hex(6), without its import
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


def _make_parent(path: Path) -> None:
    """The folder of ``path``: private (0700) in the state directory, as any new folder elsewhere."""
    if in_state_dir(path.parent):
        private_dir(path.parent)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON, readable by this user only (0600): state, not a report."""
    atomic_write(path, json.dumps(data, indent=2) + "\n", mode=PRIVATE_FILE)


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
    """Hold an exclusive lock on ``path`` (created 0600 if needed) for the duration of the block."""
    _make_parent(path)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_ports(count: int, avoid: Collection[int] = ()) -> list[int]:
    """``count`` distinct free loopback ports (all held open while choosing, so no duplicates), none of ``avoid``
    (ports chosen earlier that nothing listens on yet)."""
    import socket  # here: drivers import this module, and validating an experiment needs no socket

    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            if port not in avoid:
                ports.append(port)
        return ports
