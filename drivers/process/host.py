"""Faults on the host's own processes (a model server run as a plain process or a systemd unit).

Targets are selected by ``pid_file``, ``pattern`` or ``unit`` (:mod:`drivers.process.selectors`), each with
its ``scope`` (``tree`` by default: the process and its descendants, so MLServer's inference workers go
with it). Every process is named in the change record by its pid *and* start time, and signalled through a
pidfd checked against that start time (:mod:`drivers.process.tree`): a pid the kernel reused is never hit.

* :func:`kill_processes` kills (SIGKILL, or SIGTERM/SIGINT/SIGQUIT/SIGABRT) and waits until every process is
  gone; its undo :func:`restart_processes` starts the declared ``restart`` command (or ``systemctl start``
  for a unit) once for each killed target nobody restarted, and waits until it is ready.
* :func:`stop_processes` pauses them (SIGSTOP: they hang, holding their sockets) with a ``ttl``: a detached
  watchdog resumes them by itself, even when the runner is killed; its undo :func:`continue_processes`
  sends SIGCONT to exactly the recorded processes.

With scope ``tree``, the root is frozen (SIGSTOP) before its tree is read, so a worker it would spawn
meanwhile cannot escape the fault.
"""

from __future__ import annotations

import signal as signals
import time
from typing import Any

from drivers._common import checks, selection
from drivers._common.undo import Rollbacks, covers, stop_told
from drivers.process import restart as restarting
from drivers.process import selectors, systemd
from drivers.process.selectors import Selector
from drivers.process.tree import Member, command_text, send
from mlchaos.driver_kit import (
    ChangeRecord,
    DriverError,
    Target,
    TargetNotFound,
    announce,
    local_environment,
    procfs,
    undo_function,
    wait_for,
)

ROLLBACKS = Rollbacks("drivers.process.actions")
STOPPED_TIMEOUT = 5.0


def kill_processes(
    pid_file: str | None = None,
    pattern: str | None = None,
    unit: str | None = None,
    restart: dict[str, Any] | None = None,
    signal: str = "SIGKILL",
    scope: str = "tree",
    max_matches: int = 1,
    count: int | None = None,
    percentage: float | None = None,
    all: bool = False,
    seed: int | None = None,
    timeout: float = 30.0,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Kill host processes chosen by pid_file, pattern or unit (and their tree); undo restarts them by `restart`.

    `restart` declares how the rollback starts a killed process again: ``{command: [argv...], cwd, env, log,
    ready_url, timeout}`` (required unless a `unit` is selected: a unit restarts with ``systemctl start``, and
    its `restart` may give only ready_url and timeout).
    Waits up to `timeout` s until every signalled process is gone.
    """
    selector = selectors.parse(pid_file, pattern, unit, max_matches, scope)
    name = checks.signal_name(signal, checks.KILL_SIGNALS)
    checks.positive("timeout", timeout)
    if unit is None and restart is None:
        raise DriverError(f"kill_processes by {selector.describe()} needs restart: {{command: [...]}}, the command "
                          "its rollback starts the killed process with (nothing is killed that cannot be restarted)")
    spec = restarting.parse_unit(restart) if unit is not None else restarting.parse(restart, pid_file)
    found, chosen, seed = _choose(selector, count, percentage, all, seed, "kill")
    action = "terminate" if name == "SIGTERM" else "kill"
    trees = {root: selectors.scoped(selector, root) for root in chosen}
    record = _record(action, selector, found, trees, {"signal": name, "seed": seed, "timeout": timeout}, dry_run,
                     ROLLBACKS.undo("restart_processes", **selector.arguments(), restart=spec,
                                    killed=_names(trees), roots_before=len(found)))
    announce(record)
    if dry_run:
        return record.to_dict()
    signum = signals.Signals[name]
    trees = _signal(selector, trees, signum)
    _update(record, trees, "killed")
    if signum != signals.SIGKILL:  # a stopped process acts on a catchable signal only once continued
        for member in (m for tree in trees.values() for m in tree if m.stopped()):
            send(member, signals.SIGCONT)
    everyone = [m for tree in trees.values() for m in tree]
    wait_for(lambda: not any(m.alive() for m in everyone), timeout, interval=0.02)
    left = [str(m) for m in everyone if m.alive()]
    if left:
        raise DriverError(f"process(es) {left} still running {timeout:g}s after {name}")
    return record.to_dict()


def stop_processes(
    pid_file: str | None = None,
    pattern: str | None = None,
    unit: str | None = None,
    ttl: float | None = 600.0,
    scope: str = "tree",
    max_matches: int = 1,
    count: int | None = None,
    percentage: float | None = None,
    all: bool = False,
    seed: int | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Pause host processes chosen by pid_file, pattern or unit (and their tree) with SIGSTOP: they hang, not die.

    With `ttl` (seconds) a detached watchdog resumes them by itself, even if the runner died.
    Undo: continue_processes (SIGCONT to exactly the recorded processes).
    """
    selector = selectors.parse(pid_file, pattern, unit, max_matches, scope)
    checks.ttl(ttl)
    found, chosen, seed = _choose(selector, count, percentage, all, seed, "stop", running_only=True)
    trees = {root: selectors.scoped(selector, root) for root in chosen}
    record = _record("stop", selector, found, trees, {"signal": "SIGSTOP", "seed": seed, "ttl": ttl}, dry_run,
                     ROLLBACKS.undo("continue_processes", processes=_names(trees)))
    announce(record)
    if dry_run:
        return record.to_dict()
    trees = _signal(selector, trees, signals.SIGSTOP)
    _update(record, trees, "processes")
    everyone = [m for tree in trees.values() for m in tree]
    wait_for(lambda: all_stopped(everyone), STOPPED_TIMEOUT, interval=0.02)
    if ttl is not None:
        ROLLBACKS.start_watchdog(record, ttl, "continue_processes", {"processes": _names(trees)})
    return record.to_dict()


def all_stopped(members: list[Member]) -> bool:
    """True when every member still running is stopped."""
    return all(m.stopped() or not m.alive() for m in members)


@undo_function
def continue_processes(
    processes: list[str] | None = None,
    pid_file: str | None = None,
    pattern: str | None = None,
    unit: str | None = None,
    max_matches: int = 1,
    scope: str = "tree",
    watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Resume (SIGCONT) exactly the recorded `processes` ("pid@start time"), or those a selector picks (idempotent).

    A change record's undo names the processes; a declared rollback may select by pid_file, pattern or unit
    instead (each selected process with its scope).
    """
    stop_told(watchdog_pid)
    if processes is None:
        selector = selectors.parse(pid_file, pattern, unit, max_matches, scope)
        members = [m for root in selectors.roots(selector) for m in selectors.scoped(selector, root)]
    elif (pid_file, pattern, unit) != (None, None, None):
        raise DriverError("give either processes (a change record's) or a selector (pid_file, pattern, unit), "
                          "not both")
    else:
        members = _members(processes, "processes")
    result: dict[str, list[str]] = {"continued": [], "already": [], "gone": []}
    for member in reversed(members):  # workers first, their parent last
        if member.stopped() and send(member, signals.SIGCONT):
            result["continued"].append(str(member))
        else:
            result["already" if member.alive() else "gone"].append(str(member))
    ROLLBACKS.stop_watchdogs("continue_processes", covers("processes", {str(m) for m in members}))
    return result


@undo_function
def restart_processes(
    killed: list[str] | None = None,
    pid_file: str | None = None,
    pattern: str | None = None,
    unit: str | None = None,
    restart: dict[str, Any] | None = None,
    max_matches: int = 1,
    scope: str = "tree",
    roots_before: int = 1,
) -> dict[str, Any]:
    """Start again what kill_processes killed (its declared command, or systemctl start for a unit); wait until ready.

    The command runs once per killed target that nobody restarted since (a declared rollback without `killed`:
    until `roots_before` processes are selected again); idempotent (what runs already is listed under ``already``).
    """
    selector = selectors.parse(pid_file, pattern, unit, max_matches, scope)
    members = _members(killed, "killed") if killed is not None else []
    started = time.monotonic()
    if unit is not None:
        return _restart_unit(unit, restarting.parse_unit(restart) or {}, started)
    if killed is None:  # a declared rollback: its declaration is checked as the fault checks it
        restart = restarting.parse(restart, pid_file)
    if not isinstance(restart, dict) or not isinstance(restart.get("command"), list):
        raise DriverError(f"restart_processes needs the recorded restart declaration, got {restart!r}")
    if isinstance(roots_before, bool) or not isinstance(roots_before, int) or roots_before < 1:
        raise DriverError(f"roots_before must be an integer >= 1, got {roots_before!r}")
    running = _running_count(selector)
    dead = len([m for m in members if not m.alive()]) if killed is not None else roots_before
    missing = max(0, min(roots_before - running, dead))
    deadline = time.monotonic() + float(restart.get("timeout") or restarting.DEFAULT_TIMEOUT)
    new = [restarting.launch(restart, pid_file) for _ in range(missing)]
    for process in new:
        restarting.wait_ready(process, restart, deadline)
    return {"selected_by": selector.describe(), "restarted": [p.pid for p in new],
            "already": [] if new else [selector.describe()], "running_before": running,
            "command": restart["command"], "log": restart.get("log"), "seconds": round(time.monotonic() - started, 3)}


def _restart_unit(unit: str, spec: dict[str, Any], started: float) -> dict[str, Any]:
    timeout = float(spec.get("timeout") or restarting.DEFAULT_TIMEOUT)
    url = spec.get("ready_url")
    if systemd.is_active(unit):
        return {"selected_by": f"unit {unit}", "restarted": [], "already": [unit], "seconds": 0.0}
    systemd.start(unit, timeout)
    if not wait_for(lambda: systemd.is_active(unit), timeout, interval=0.2):
        raise DriverError(f"unit {unit} not active {timeout:g}s after systemctl start")
    if url and not restarting.wait_url(url, max(timeout - (time.monotonic() - started), 0.1)):
        raise DriverError(f"unit {unit} started but {url} did not answer 200 within {timeout:g}s")
    return {"selected_by": f"unit {unit}", "restarted": [unit], "main_pid": systemd.main_pid(unit),
            "already": [], "ready_url": url, "seconds": round(time.monotonic() - started, 3)}


# -- shared -----------------------------------------------------------------------------------------


def _choose(selector: Selector, count: Any, percentage: Any, every: Any, seed: Any, action: str,
            running_only: bool = False) -> tuple[list[Member], list[Member], int]:
    """(every selected process, the chosen ones, the seed used)."""
    mode = selection.parse_mode(count, percentage, every)
    seed = selection.check_seed(seed)
    found = selectors.roots(selector)
    pool = [m for m in found if not m.stopped()] if running_only else found
    state = "running (not stopped)" if running_only else "running"
    chosen = selection.choose(pool, mode, seed, noun=f"of {len(found)} process(es)",
                              scope=f"selected by {selector.describe()} are {state}",
                              nothing=f"no process selected by {selector.describe()} to {action}"
                                      + (" (every one is stopped already)" if running_only else ""),
                              name=lambda m: f"pid {m.pid}")
    return found, chosen, seed


def _record(action: str, selector: Selector, found: list[Member], trees: dict[Member, list[Member]],
            parameters: dict[str, Any], dry_run: bool, undo: dict[str, Any]) -> ChangeRecord:
    targets = [Target(kind="process", name=f"pid {root.pid}", details=_details(selector, root, tree))
               for root, tree in trees.items()]
    return ChangeRecord(driver="process", action=action, targets=targets,
                        parameters=selector.arguments() | parameters, undo=undo, dry_run=dry_run,
                        environment=local_environment(), population=[f"pid {m.pid}" for m in found])


def _details(selector: Selector, root: Member, tree: list[Member]) -> dict[str, Any]:
    ids = procfs.parentage(root.pid)
    return {"pid": root.pid, "start_time": root.start_time, "command": command_text(root.pid),
            "pgid": ids[1] if ids else None, "selected_by": selector.describe(), "scope": selector.scope,
            "members": [str(m) for m in tree]}


def _signal(selector: Selector, trees: dict[Member, list[Member]], signum: signals.Signals
            ) -> dict[Member, list[Member]]:
    """Signal every tree, root first; with scope tree the root is frozen first and its tree read again (a
    child spawned since the record was made is signalled too). The trees actually signalled."""
    done: dict[Member, list[Member]] = {}
    for root, tree in trees.items():
        frozen = (selector.scope == "tree" and signum in (signals.SIGKILL, signals.SIGSTOP)
                  and send(root, signals.SIGSTOP))
        if frozen:
            again = selectors.scoped(selector, root)
            tree = [*tree, *(m for m in again if m not in tree)]
        try:
            for member in tree:
                send(member, signum)
        except DriverError:  # not allowed to signal one of them: never leave the root frozen by a failed kill
            if frozen and signum != signals.SIGSTOP:
                send(root, signals.SIGCONT)
            raise
        done[root] = tree
    return done


def _update(record: ChangeRecord, trees: dict[Member, list[Member]], key: str) -> None:
    """The record's members and undo after signalling (the returned output supersedes the announced copy)."""
    for target, tree in zip(record.targets, trees.values(), strict=True):
        target.details["members"] = [str(m) for m in tree]
    record.undo["arguments"][key] = _names(trees)


def _names(trees: dict[Member, list[Member]]) -> list[str]:
    return [str(m) for tree in trees.values() for m in tree]


def _members(names: Any, argument: str) -> list[Member]:
    if not isinstance(names, list) or not names:
        raise DriverError(f"{argument} must be a non-empty list of '<pid>@<start time>', got {names!r}")
    return [Member.parse(n) for n in names]


def _running_count(selector: Selector) -> int:
    """How many processes the selector selects now (0 when none)."""
    try:
        return len(selectors.matching(selector.pattern)) if selector.pattern is not None else len(
            selectors.roots(selector))
    except TargetNotFound:
        return 0
