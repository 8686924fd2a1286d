"""Driver functions used only by the tests: the Python provider `module: testdrivers`.

This directory (tests/drivers, not a package) is on sys.path in pytest (pyproject `pythonpath`) and on
the PYTHONPATH of child processes (tests.support.environment.child_env), so the module has one name only:
`testdrivers`. Never import it as `tests.drivers.testdrivers`."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from mlchaos.driver_kit import undo_function
from mlchaos.safety.changes import ChangeRecord, Target, announce


def echo(value: Any = True) -> Any:
    """Return ``value`` unchanged."""
    return value


def fail(message: str = "boom") -> None:
    """Raise RuntimeError(message)."""
    raise RuntimeError(message)


def sleep(seconds: float) -> float:
    """Sleep, then return the seconds slept."""
    time.sleep(seconds)
    return seconds


def append_line(path: str, text: str) -> str:
    """Append a line to a file (a visible side effect for rollback tests)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return text


def inject_marker(path: str, hold: float = 0.0) -> dict:
    """A fake fault: announce a change record, create the marker file, then hold."""
    record = ChangeRecord(driver="test", action="inject-marker",
                          targets=[Target(kind="file", name=path, details={"pid": os.getpid()})],
                          undo={"func": "testdrivers.remove_marker", "arguments": {"path": path}})
    announce(record)
    Path(path).write_text("fault\n", encoding="utf-8")
    if hold:
        time.sleep(hold)
    return record.to_dict()


def start_load(path: str) -> dict:
    """A fake client load the recovery check relies on: a marker file, undone after recovery."""
    record = ChangeRecord(driver="test", action="start-load", targets=[Target(kind="file", name=path)],
                          undo={"func": "testdrivers.remove_marker", "arguments": {"path": path}},
                          undo_after_recovery=True)
    announce(record)
    Path(path).write_text("load\n", encoding="utf-8")
    return record.to_dict()


def marker_exists(path: str) -> bool:
    """True while the marker file exists."""
    return Path(path).exists()


@undo_function
def remove_marker(path: str) -> bool:
    """Undo inject_marker."""
    Path(path).unlink(missing_ok=True)
    return True


def read_secret(token: str) -> str:
    """Return a string that contains the secret it was given."""
    return f"token was {token}"


def with_config(configuration: dict | None = None) -> dict:
    """Return the configuration the runner injected."""
    return dict(configuration or {})


def typed(count: int, ratio: float = 0.5, name: str = "x") -> int:
    """Return count (used to test argument type checks)."""
    return count


def greater_than_one(value: float) -> bool:
    """A tolerance probe: true when value > 1."""
    return value > 1


def optional(seed: int | None = None, names: list[str] | None = None) -> list:
    """Return its arguments (used to test checks of optional and generic annotations)."""
    return [seed, names]


def measured(what: str, alert: str, seconds: float, beside: dict | None = None) -> dict:
    """Report a measurement the way the alert probes do (``beside``: polled, method, note, floor, floor_text)."""
    return {"alert": alert, "measurement": {"kind": what, "alert": alert, "seconds": seconds, **(beside or {})}}


def hit_targets(
    names: list[str], marker: str, population: list[str] | None = None, kind: str = "replica",
    environment: str = "local:test", labels: dict | None = None, service: str | None = None,
    hold: float = 0.0, *, dry_run: bool = False,
) -> dict:
    """A fake fault on named targets (for blast-radius tests): announce, then create the marker and hold."""
    record = ChangeRecord(
        driver="test", action="hit-targets",
        targets=[Target(kind=kind, name=n, details={"labels": labels or {}, "service": service}) for n in names],
        undo={"func": "testdrivers.remove_marker", "arguments": {"path": marker}},
        dry_run=dry_run, environment=environment, population=list(population or []),
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    with open(marker, "a", encoding="utf-8") as handle:
        handle.write(",".join(names) + "\n")
    if hold:
        time.sleep(hold)
    return record.to_dict()


def hit_targets_unplanned(names: list[str], marker: str, population: list[str] | None = None,
                          environment: str = "local:test", service: str | None = None) -> dict:
    """The same fake fault, without dry-run support (it can only be checked when it runs)."""
    return hit_targets(names, marker, population, environment=environment, service=service)


def write_text(path: str, text: str) -> str:
    """Write ``text`` into ``path`` (a guard's input)."""
    Path(path).write_text(text, encoding="utf-8")
    return text


def read_text(path: str) -> str:
    """The stripped text of ``path`` (a guard probe)."""
    return Path(path).read_text(encoding="utf-8").strip()


def touch_marker(text: str = "ran") -> str:
    """Append ``text`` to the file named by $MLCHAOS_TEST_MARKER: proof that an action was executed."""
    with open(os.environ["MLCHAOS_TEST_MARKER"], "a", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return text


def leak(token: str, endpoint: str, fail: bool = False) -> dict:
    """Echo a secret and a configuration value in the output, in print()s, and in an exception when asked."""
    print(f"driver stdout: token={token} endpoint={endpoint}")
    print(f"driver stderr: token={token} endpoint={endpoint}", file=sys.stderr)
    if fail:
        raise RuntimeError(f"could not use token {token} at {endpoint}")
    return {"seen": f"token={token} endpoint={endpoint}", token: endpoint}


def exit_ungracefully() -> bool:
    """Call Chaos Toolkit's documented exit interface, as a published extension does: SIGUSR2 to this process
    (chaoslib skips the rollbacks then; mlchaos must still run them)."""
    from chaoslib.exit import exit_ungracefully as ctk_exit_ungracefully

    ctk_exit_ungracefully()
    return True


def exit_gracefully() -> bool:
    """Call Chaos Toolkit's ``exit_gracefully()``: SIGUSR1 to this process (the run stops, rollbacks run)."""
    from chaoslib.exit import exit_gracefully as ctk_exit_gracefully

    ctk_exit_gracefully()
    return True


def slow_accept(value: Any, seconds: float) -> bool:
    """A tolerance probe that takes ``seconds`` to accept any value."""
    time.sleep(seconds)
    return True


def wait_for_lines(path: str, count: int, timeout: float = 30.0) -> int:
    """Wait until the file ``path`` has at least ``count`` lines (another activity writes them), at most
    ``timeout`` seconds; return how many it has."""
    deadline = time.monotonic() + timeout
    while True:
        lines = len(Path(path).read_text(encoding="utf-8").splitlines()) if os.path.exists(path) else 0
        if lines >= count or time.monotonic() >= deadline:
            return lines
        time.sleep(0.01)


def marker_seen(path: str, log: str) -> bool:
    """Whether the marker exists; each time it does, a line is appended to ``log``."""
    exists = os.path.exists(path)
    if exists:
        append_line(log, "seen")
    return exists
