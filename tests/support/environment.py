"""The environment of a child process started by a test (``python -m mlchaos ...``, a watchdog, a server).

Every test that starts a child builds its environment here (or takes the ``subprocess_env`` fixture, which
calls :func:`child_env`): the child imports this checkout's ``mlchaos`` and ``drivers`` (the repository
root) and the ``testdrivers`` module (tests/drivers), prints unbuffered, and, when asked, keeps its state
in a given directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tests.support.paths import ROOT, TEST_DRIVERS


def pythonpath(existing: str | None = None) -> str:
    """The test drivers and the repository first, then ``existing`` (the current PYTHONPATH by default)."""
    rest = os.environ.get("PYTHONPATH", "") if existing is None else existing
    entries = [str(TEST_DRIVERS), str(ROOT)]
    entries += [entry for entry in rest.split(os.pathsep) if entry and entry not in entries]
    return os.pathsep.join(entries)


def child_env(state_dir: str | Path | None = None, base: Mapping[str, str] | None = None,
              **extra: str | None) -> dict[str, str]:
    """A copy of ``base`` (os.environ by default) for a child process.

    PYTHONPATH gets the test drivers and the repository first, PYTHONUNBUFFERED=1; MLCHAOS_STATE_DIR is
    ``state_dir`` when one is given (otherwise whatever the environment has: each unit test has its own, see
    tests/unit/conftest.py). ``extra`` sets more variables; a value of None removes that variable.
    """
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = pythonpath(env.get("PYTHONPATH", ""))
    env["PYTHONUNBUFFERED"] = "1"
    if state_dir is not None:
        env["MLCHAOS_STATE_DIR"] = str(state_dir)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env
