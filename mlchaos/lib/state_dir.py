"""Where mlchaos keeps its state on this host (sandbox, registered runs, the emergency stop), kept private.

The state directory holds journals' undo arguments, run registrations, certificate keys and
backups: it and every directory mlchaos creates under it are 0700 (:func:`private_dir`). An
existing one with looser permissions is tightened when it belongs to this user (mlchaos owns
it); one that belongs to someone else is left as it is. Files written there are 0600
(:data:`PRIVATE_FILE`), but for certificates that other programs read.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def state_dir() -> Path:
    """Return the state directory (MLCHAOS_STATE_DIR, XDG_STATE_HOME or ~/.local/state)."""
    explicit = os.environ.get("MLCHAOS_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "mlchaos"


def in_state_dir(path: Path | str) -> bool:
    """True when ``path`` is the state directory or lies under it."""
    return Path(path).absolute().is_relative_to(state_dir().absolute())


def private_dir(path: Path | str | None = None) -> Path:
    """``path`` (default: the state directory) as a private directory, returned.

    Missing directories are created 0700 (whatever the umask), parents included. Of the existing
    ones, ``path`` itself and, when it lies in the state directory, every directory from the
    state directory down to it are tightened to 0700 when they belong to this user.
    """
    target = Path(path if path is not None else state_dir()).absolute()
    root = state_dir().absolute()
    chain = [target, *target.parents]
    missing = [p for p in chain if not p.is_dir()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile: tightened below
            os.mkdir(folder, PRIVATE_DIR)
    ours = [p for p in chain if p == target or p in missing or (target.is_relative_to(root) and p.is_relative_to(root))]
    for folder in ours:
        _tighten(folder)
    return target


def _tighten(folder: Path) -> None:
    """chmod 0700 when the folder is ours and looser (or tighter than usable); never follows a link."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
        os.chmod(folder, PRIVATE_DIR)
