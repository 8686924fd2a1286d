"""drivers.process on host processes (kill_processes, stop_processes and their undos) against real short-lived
processes: ``sleep`` and small Python parents with children, each carrying a marker of its own in its command
line. The unit selector runs against a fake ``systemctl`` first on PATH (tests/support/fake_systemctl.py: this
machine runs no systemd); the processes it starts are real. MLServer itself: tests/integration/test_process_mlserver.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.process import actions, probes, selectors
from drivers.process.tree import Member, send
from mlchaos.driver_kit import DriverError, TargetNotFound, procfs
from mlchaos.safety import changes
from mlchaos.safety.watchdog import pending
from tests.support import fake_systemctl
from tests.support.polling import wait_until

PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "child-of", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(600)
"""


@pytest.fixture
def started() -> Iterator[list]:
    """Processes a test starts (and their trees), killed at the end whatever happened: each named with its start
    time when it is added, so a pid reused meanwhile (by another test worker's process) is never hit."""
    procs: list = []
    yield procs
    for proc in procs:
        for member in [proc.member, *(Member.of(p) for p in _descendants(proc.pid))]:
            if member is not None:
                send(member, signal.SIGKILL)
        proc.wait(timeout=10)


def _descendants(pid: int) -> list[int]:
    from drivers.process.tree import descendants

    return descendants(pid)


def _marker() -> str:
    return f"mlchaos-test-{uuid.uuid4().hex[:12]}"


def _sleep(started: list, marker: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker])
    started.append(_Started(proc))
    wait_until(lambda: marker in (procfs.cmdline(proc.pid) or []), what="the process to exec")
    return proc


def _parent(started: list, marker: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen([sys.executable, "-c", PARENT, marker], stdout=subprocess.PIPE)
    started.append(_Started(proc))
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    wait_until(lambda: marker in (procfs.cmdline(child) or []), what="the child to exec")
    return proc, child


def _restart(marker: str, **more: object) -> dict:
    return {"command": [sys.executable, "-c", "import time; time.sleep(600)", marker], **more}


def _gone(pid: int) -> bool:
    return procfs.start_time(pid) is None


@pytest.mark.parametrize(("arguments", "message"), [
    ({}, "exactly one of pid_file, pattern or unit .got none"),
    ({"pattern": "x", "unit": "a.service"}, "exactly one .* .got pattern, unit"),
    ({"pid_file": "run/x.pid"}, "pid_file must be an absolute path"),
    ({"pattern": "("}, "not a valid regular expression"),
    ({"pattern": " "}, "pattern must be a non-empty"),
    ({"unit": "--now"}, "unit must be a systemd unit name"),
    ({"unit": "a b.service"}, "unit must be a systemd unit name"),
    ({"pattern": "x", "max_matches": 0}, "max_matches must be an integer >= 1"),
    ({"pattern": "x", "max_matches": True}, "max_matches must be an integer >= 1"),
    ({"pattern": "x", "scope": "everything"}, "scope must be one of tree, group, process"),
    ({"pattern": "x", "scope": "cgroup"}, "cgroup needs a unit"),
    ({"pattern": "x", "signal": "SIGHUP"}, "signal must be one of"),
    ({"pattern": "x", "timeout": 0}, "timeout must be a positive number"),
    ({"pattern": "x", "restart": None}, "needs restart: {command"),
    ({"unit": "a.service", "restart": {"command": ["true"]}}, "may declare only ready_url and timeout"),
    ({"unit": "a.service", "restart": {"ready_url": "x"}}, "ready_url must be an http"),
    ({"pattern": "x", "restart": "mlserver start"}, "restart must be a mapping"),
    ({"pattern": "x", "restart": {"command": "mlserver start ."}}, "restart.command must be a non-empty list"),
    ({"pattern": "x", "restart": {"command": []}}, "restart.command must be a non-empty list"),
    ({"pattern": "x", "restart": {"command": ["no-such-program-mlchaos"]}}, "program 'no-such-program-mlchaos' is not"),
    ({"pattern": "x", "restart": {"command": ["true"], "shell": True}}, r"unknown key\(s\) \['shell'\]"),
    ({"pattern": "x", "restart": {"command": ["true"], "cwd": "relative"}}, "restart.cwd must be an absolute path"),
    ({"pattern": "x", "restart": {"command": ["true"], "env": {"A": 1}}}, "restart.env must map"),
    ({"pattern": "x", "restart": {"command": ["true"], "log": "x.log"}}, "restart.log must be an absolute"),
    ({"pattern": "x", "restart": {"command": ["true"], "ready_url": "localhost:1"}}, "ready_url must be an http"),
    ({"pattern": "x", "restart": {"command": ["true"], "timeout": -1}}, "restart.timeout must be a positive"),
    ({"pattern": "x", "restart": {"command": ["true"], "write_pid_file": True}},
     "true only when selecting by pid_file"),
])
def test_bad_arguments_are_refused_before_anything_is_read(arguments: dict, message: str) -> None:
    arguments = {"restart": {"command": ["true"]}} | arguments if "unit" not in arguments else arguments
    with pytest.raises(DriverError, match=message):
        actions.kill_processes(**arguments)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"pattern": "x", "ttl": 0}, "ttl must be a positive number"),
    ({"pattern": "x", "count": 1, "all": True}, "give only one of count, percentage or all"),
    ({"pattern": "x", "count": 0}, "count must be an integer >= 1"),
])
def test_bad_pause_arguments_are_refused(arguments: dict, message: str) -> None:
    with pytest.raises(DriverError, match=message):
        actions.stop_processes(**arguments)


def test_a_pattern_matching_more_than_max_matches_is_refused_naming_them(started: list) -> None:
    marker = _marker()
    first, second = _sleep(started, marker), _sleep(started, marker)
    with pytest.raises(DriverError, match=rf"matches 2 processes, more than max_matches=1.*{first.pid}.*{second.pid}"):
        actions.kill_processes(pattern=marker, restart=_restart(marker))
    assert not _gone(first.pid) and not _gone(second.pid)
    planned = actions.kill_processes(pattern=marker, max_matches=2, count=1, seed=3, restart=_restart(marker),
                                     dry_run=True)
    assert planned["dry_run"] is True and len(planned["targets"]) == 1
    assert planned["population"] == [f"pid {first.pid}", f"pid {second.pid}"]
    assert not _gone(first.pid) and not _gone(second.pid)  # a plan changes nothing
    assert probes.processes_running(pattern=marker, max_matches=2) == 2
    with pytest.raises(TargetNotFound, match="no running process's command line matches"):
        actions.kill_processes(pattern=_marker(), restart=_restart(marker))


def test_kill_by_pattern_kills_the_tree_and_its_undo_restarts_once(started: list) -> None:
    marker = _marker()
    parent, child = _parent(started, marker)
    seen: list[changes.ChangeRecord] = []
    token = changes.set_sink(lambda record: seen.append(record) if _alive(parent.pid, child) else None)
    try:
        record = actions.kill_processes(pattern=marker, restart=_restart(marker))
    finally:
        changes.reset_sink(token)
    assert len(seen) == 1  # announced while both ran
    parent.wait(timeout=10)
    assert _gone(child)  # the worker went with its parent: nothing is left behind
    (target,) = record["targets"]
    assert target["details"]["pid"] == parent.pid and target["details"]["scope"] == "tree"
    assert [Member.parse(m).pid for m in target["details"]["members"]] == [parent.pid, child]
    undo = record["undo"]
    assert undo["func"] == "drivers.process.actions.restart_processes"
    assert undo["arguments"]["roots_before"] == 1 and undo["arguments"]["killed"] == target["details"]["members"]
    assert probes.processes_running(pattern=marker) == 0

    first = actions.restart_processes(**undo["arguments"])
    (new,) = first["restarted"]
    started.append(_Adopted(new))
    assert probes.processes_running(pattern=marker) == 1
    again = actions.restart_processes(**undo["arguments"])
    assert again["restarted"] == [] and again["already"] == [f"pattern '{marker}'"]


def test_scope_process_leaves_the_children_and_scope_group_needs_a_leader(started: list) -> None:
    marker = _marker()
    parent, child = _parent(started, marker)
    started.append(_Adopted(child))
    with pytest.raises(DriverError, match="does not lead its process group"):
        actions.stop_processes(pattern=marker, scope="group", ttl=None)
    record = actions.kill_processes(pattern=marker, scope="process", restart=_restart(marker))
    parent.wait(timeout=10)
    assert not _gone(child)  # left running, as asked (reparented)
    assert [Member.parse(m).pid for m in record["targets"][0]["details"]["members"]] == [parent.pid]


def test_a_forked_child_with_its_parents_command_line_belongs_to_the_parents_tree(started: list) -> None:
    marker = _marker()
    code = "import os, time\nif os.fork() == 0:\n    time.sleep(600)\nelse:\n    time.sleep(600)\n"
    proc = subprocess.Popen([sys.executable, "-c", code, marker], start_new_session=True)
    started.append(_Started(proc))
    wait_until(lambda: len(_descendants(proc.pid)) == 1, what="the fork")
    (forked,) = _descendants(proc.pid)
    planned = actions.stop_processes(pattern=marker, dry_run=True)  # two command lines match, one target
    assert [t["details"]["pid"] for t in planned["targets"]] == [proc.pid]
    assert [Member.parse(m).pid for m in planned["targets"][0]["details"]["members"]] == [proc.pid, forked]
    grouped = actions.stop_processes(pattern=marker, scope="group", dry_run=True)  # it leads its own group
    assert [Member.parse(m).pid for m in grouped["targets"][0]["details"]["members"]] == [proc.pid, forked]


def test_stop_pauses_the_tree_and_continue_resumes_exactly_those(started: list) -> None:
    marker = _marker()
    parent, child = _parent(started, marker)
    record = actions.stop_processes(pattern=marker, ttl=600)
    members = [Member.parse(m) for m in record["undo"]["arguments"]["processes"]]
    assert {m.pid for m in members} == {parent.pid, child} and all(m.stopped() for m in members)
    watchdog = record["parameters"]["watchdog_pid"]
    assert watchdog in [pid for pid, _ in pending("drivers.process.actions.continue_processes")]
    assert probes.processes_running(pattern=marker) == 0
    with pytest.raises(TargetNotFound, match="every one is stopped already"):
        actions.stop_processes(pattern=marker, ttl=None)

    out = actions.continue_processes(**record["undo"]["arguments"])
    assert sorted(out["continued"]) == sorted(map(str, members)) and out["already"] == []
    assert not any(m.stopped() for m in members)
    wait_until(lambda: procfs.start_time(watchdog) is None, what="the watchdog to be stopped")
    assert actions.continue_processes(**record["undo"]["arguments"])["already"] == [str(m) for m in reversed(members)]


def test_the_ttl_watchdog_resumes_a_pause_by_itself(started: list) -> None:
    marker = _marker()
    proc = _sleep(started, marker)
    record = actions.stop_processes(pattern=marker, ttl=0.5)
    member = Member.parse(record["undo"]["arguments"]["processes"][0])
    assert member.pid == proc.pid
    wait_until(lambda: not member.stopped() and member.alive(), what="the watchdog to resume the process")


def test_a_reused_pid_is_never_signalled(started: list) -> None:
    proc = _sleep(started, _marker())
    me = Member.of(proc.pid)
    assert me is not None
    impostor = Member(proc.pid, me.start_time + 1)  # the same pid, another process
    assert send(impostor, signal.SIGSTOP) is False and not me.stopped()
    out = actions.continue_processes(processes=[str(impostor)])
    assert out == {"continued": [], "already": [], "gone": [str(impostor)]}
    with pytest.raises(DriverError, match="not a process as change records name one"):
        actions.continue_processes(processes=[str(proc.pid)])


def test_kill_by_pid_file_writes_the_new_pid_on_restart(started: list, tmp_path: Path) -> None:
    marker = _marker()
    proc = _sleep(started, marker)
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(f"{proc.pid}\n")
    log = tmp_path / "restart.log"
    record = actions.kill_processes(pid_file=str(pid_file), restart=_restart(marker, log=str(log)))
    proc.wait(timeout=10)
    assert record["undo"]["arguments"]["restart"]["write_pid_file"] is True
    assert probes.processes_running(pid_file=str(pid_file)) == 0
    with pytest.raises(TargetNotFound, match=f"names pid {proc.pid}, which is not running"):
        actions.kill_processes(pid_file=str(pid_file), restart=_restart(marker))
    out = actions.restart_processes(**record["undo"]["arguments"])
    (new,) = out["restarted"]
    started.append(_Adopted(new))
    assert pid_file.read_text().strip() == str(new) and probes.processes_running(pid_file=str(pid_file)) == 1
    assert "mlchaos restarts" in log.read_text() and oct(log.stat().st_mode & 0o777) == "0o600"
    assert actions.restart_processes(**record["undo"]["arguments"])["restarted"] == []


def test_a_restart_that_exits_at_once_fails_with_its_log(started: list, tmp_path: Path) -> None:
    marker = _marker()
    proc = _sleep(started, marker)
    failing = {"command": [sys.executable, "-c", "import sys; print('cannot bind'); sys.exit(3)", marker],
               "ready_url": "http://127.0.0.1:9/ready", "timeout": 30}
    record = actions.kill_processes(pattern=marker, restart=failing)
    proc.wait(timeout=10)
    with pytest.raises(DriverError, match="(?s)exited with 3 after its restart:.*cannot bind"):
        actions.restart_processes(**record["undo"]["arguments"])


def test_a_unit_is_selected_by_its_main_pid_and_restarted_with_systemctl_start(
        started: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the fake systemctl (no systemd here); the unit's process and its child are real."""
    folder = fake_systemctl.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    marker = _marker()
    fake_systemctl.declare_unit(folder, "model.service", [sys.executable, "-c", PARENT, marker])
    with pytest.raises(TargetNotFound, match="has no main process .ActiveState=inactive, MainPID=0"):
        actions.stop_processes(unit="model.service", dry_run=True)
    with pytest.raises(TargetNotFound, match="systemd has no unit 'other.service'"):
        actions.stop_processes(unit="other.service", dry_run=True)
    subprocess.run([str(folder / "systemctl"), "start", "model.service"], check=True)
    main = fake_systemctl.main_pid(folder, "model.service")
    assert main is not None
    started.append(_Adopted(main))
    wait_until(lambda: len(_descendants(main)) == 1, what="the unit's child")
    record = actions.kill_processes(unit="model.service")
    assert [Member.parse(m).pid for m in record["targets"][0]["details"]["members"]][0] == main
    assert _gone(main) and all(_gone(Member.parse(m).pid) for m in record["undo"]["arguments"]["killed"])
    out = actions.restart_processes(**record["undo"]["arguments"])
    assert out["restarted"] == ["model.service"] and out["main_pid"] != main
    started.append(_Adopted(out["main_pid"]))
    assert "start model.service" in fake_systemctl.calls(folder)[1:]  # the first start was the test's
    assert actions.restart_processes(**record["undo"]["arguments"])["already"] == ["model.service"]
    assert probes.processes_running(unit="model.service") == 1


def _alive(*pids: int) -> bool:
    return all(procfs.start_time(p) is not None for p in pids)


class _Started:
    """A process the test started (its Popen), named with its start time."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc, self.pid, self.member = proc, proc.pid, Member.of(proc.pid)

    def wait(self, timeout: float) -> None:
        self.proc.wait(timeout=timeout)


class _Adopted:
    """A process the test did not start itself (a restart's), killed with its tree at the end."""

    def __init__(self, pid: int) -> None:
        self.pid, self.member = pid, Member.of(pid)

    def wait(self, timeout: float) -> None:
        wait_until(lambda: self.member is None or not self.member.alive(), timeout=timeout,
                   what=f"pid {self.pid} to end")


def test_declared_rollbacks_may_select_instead_of_naming_the_records_processes(started: list) -> None:
    marker = _marker()
    parent, child = _parent(started, marker)
    actions.stop_processes(pattern=marker, ttl=None)
    out = actions.continue_processes(pattern=marker)
    assert len(out["continued"]) == 2 and probes.processes_running(pattern=marker) == 1
    with pytest.raises(DriverError, match="either processes .* or a selector"):
        actions.continue_processes(processes=[str(Member.of(parent.pid))], pattern=marker)
    actions.kill_processes(pattern=marker, restart=_restart(marker))
    parent.wait(timeout=10)
    with pytest.raises(DriverError, match="restart must be a mapping"):
        actions.restart_processes(pattern=marker)
    out = actions.restart_processes(pattern=marker, restart=_restart(marker))
    (new,) = out["restarted"]
    started.append(_Adopted(new))
    seen = (selectors.matching(marker), procfs.cmdline(new), procfs.stat(new), procfs.parentage(new))
    assert actions.restart_processes(pattern=marker, restart=_restart(marker))["restarted"] == [], seen


def test_scope_cgroup_takes_every_process_of_the_units_control_group(
        started: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit's cgroup.procs is a file under a stand-in /sys/fs/cgroup (no systemd cgroup tree here) listing
    real processes: the unit's main process and one that is not its descendant."""
    from drivers.process import systemd

    folder = fake_systemctl.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    marker = _marker()
    fake_systemctl.declare_unit(folder, "model.service", [sys.executable, "-c", "import time; time.sleep(600)", marker])
    subprocess.run([str(folder / "systemctl"), "start", "model.service"], check=True)
    main = fake_systemctl.main_pid(folder, "model.service")
    assert main is not None
    started.append(_Adopted(main))
    helper = _sleep(started, _marker())
    group = tmp_path / "cgroup" / "system.slice" / "model.service"
    group.mkdir(parents=True)
    (group / "cgroup.procs").write_text(f"{main}\n{helper.pid}\n")
    monkeypatch.setattr(systemd, "CGROUP_ROOTS", (tmp_path / "cgroup",))
    planned = actions.stop_processes(unit="model.service", scope="cgroup", dry_run=True)
    assert [Member.parse(m).pid for m in planned["targets"][0]["details"]["members"]] == [main, helper.pid]
    tree = actions.stop_processes(unit="model.service", dry_run=True)  # the tree: the main process alone
    assert [Member.parse(m).pid for m in tree["targets"][0]["details"]["members"]] == [main]


def test_mlchaos_plan_resolves_the_targets_and_signals_nothing(started: list, tmp_path: Path) -> None:
    from tests.support.environment import child_env

    marker = _marker()
    proc = _sleep(started, marker)
    experiment = {"title": "t", "description": "d", "rollbacks": [], "method": [{
        "type": "action", "name": "kill-it", "provider": {
            "type": "python", "module": "drivers.process.actions", "func": "kill_processes",
            "arguments": {"pattern": marker, "restart": _restart(marker)}}}]}
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    plan = subprocess.run([sys.executable, "-m", "mlchaos", "plan", str(path)], env=child_env(), capture_output=True,
                          text=True, timeout=120)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"would hit process pid {proc.pid}" in plan.stdout and "restart_processes(pattern=" in plan.stdout
    assert Member.of(proc.pid) is not None and not Member.of(proc.pid).stopped()  # type: ignore[union-attr]
