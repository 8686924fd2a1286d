"""A real `mlchaos run` process is interrupted mid-method: rollbacks must run.

These start the real CLI as a child process and send it real signals (so they are integration tests):
every signal a run handles (INT, TERM, HUP, QUIT, USR1, USR2), `mlchaos stop`, and Chaos Toolkit's own
exit interface (chaoslib.exit) called from inside an activity.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes
from tests.support.builders import py
from tests.support.polling import wait_until
from tests.support.runs import journal_so_far, start_run

pytestmark = pytest.mark.usefixtures("isolated_state")  # each test's own MLCHAOS_STATE_DIR, as in tests/unit


def _experiment(tmp_path: Path, rollback_seconds: float = 0.0, hold: float = 0.0, before_wait: tuple = ()) -> dict:
    """Inject a marker fault, run ``before_wait``, then wait 60 s; the rollbacks remove the marker and log it."""
    marker, log = tmp_path / "fault", tmp_path / "rollback.log"
    rollbacks = []
    if rollback_seconds:
        rollbacks.append(py("slow-cleanup", "sleep", seconds=rollback_seconds))
    rollbacks += [py("remove-fault", "remove_marker", path=str(marker)),
                  py("log-rollback", "append_line", path=str(log), text="rolled back")]
    return {
        "title": "interrupt me", "description": "d",
        "method": [py("inject", "inject_marker", path=str(marker), hold=hold), *before_wait,
                   {**py("wait", "sleep", seconds=60), "timeout": 120}],
        "rollbacks": rollbacks,
    }


def _background(name: str, func: str, **arguments) -> dict:
    return {**py(name, func, **arguments), "type": "probe", "background": True, "timeout": 120}


def _running(data: dict) -> list[str]:
    """The activities a journal still calls ``running``."""
    states = data.get("steady_states") or {}
    entries = [*data.get("run", []), *data.get("rollbacks", [])]
    for state in (states.get("before"), states.get("after")):
        entries += (state or {}).get("probes", [])
    return [e["activity"]["name"] for e in entries if e.get("status") == "running"]


def _assert_rolled_back_and_finished(tmp_path: Path, journal: Path, status: str) -> dict:
    assert not (tmp_path / "fault").exists()
    assert (tmp_path / "rollback.log").read_text() == "rolled back\n"
    data = journal_so_far(journal)
    assert data["status"] == status
    assert [r["status"] for r in data["rollbacks"]] == ["succeeded", "succeeded"]
    assert _running(data) == [], "a finished journal holds no running activity"
    return data


def _in_wait(journal: Path) -> bool:
    runs = journal_so_far(journal).get("run", [])
    return any(r["activity"]["name"] == "wait" and r["status"] == "running" for r in runs)


@pytest.mark.parametrize(("signum", "code"), [
    (signal.SIGINT, exit_codes.INTERRUPTED), (signal.SIGTERM, exit_codes.TERMINATED),
    (signal.SIGHUP, exit_codes.HANGUP), (signal.SIGQUIT, exit_codes.QUIT),
    (signal.SIGUSR1, exit_codes.EXIT_GRACEFULLY),  # no emergency stop engaged: Chaos Toolkit's exit_gracefully
    (signal.SIGUSR2, exit_codes.EXIT_UNGRACEFULLY),  # Chaos Toolkit's exit_ungracefully: mlchaos still rolls back
], ids=lambda v: v.name if isinstance(v, signal.Signals) else str(v))
def test_a_signal_mid_method_runs_the_rollbacks(tmp_path, subprocess_env, signum, code):
    watcher = _background("watch", "sleep", seconds=60)  # still running in the background when the signal comes
    proc, journal = start_run(tmp_path, subprocess_env, _experiment(tmp_path, before_wait=(watcher,)))
    wait_until(lambda: _in_wait(journal), what="the method to reach its wait")
    assert (tmp_path / "fault").exists()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, out + err
    data = _assert_rolled_back_and_finished(tmp_path, journal, "interrupted")
    assert data["mlchaos"]["interrupted_by"] == signal.Signals(signum).name
    assert data["mlchaos"]["exit_code"] == code
    wait = next(r for r in data["run"] if r["activity"]["name"] == "wait")  # cut short, not left "running"
    assert wait["status"] == "interrupted" and wait["end"] and wait["duration"] > 0, wait
    assert signal.Signals(signum).name in wait["exception"][0]
    watch = next(r for r in data["run"] if r["activity"]["name"] == "watch")  # abandoned, with an end time
    assert watch["status"] == "interrupted" and watch["end"] and watch["duration"] > 0, watch
    assert "abandoned" in watch["exception"][0] and signal.Signals(signum).name in watch["exception"][0]


def test_mlchaos_stop_aborts_the_run_and_closes_its_background_activity(tmp_path, subprocess_env):
    """SIGUSR1 with the emergency stop engaged is `mlchaos stop`'s abort: exit 5, aborted, rolled back."""
    watcher = _background("watch", "sleep", seconds=60)
    proc, journal = start_run(tmp_path, subprocess_env, _experiment(tmp_path, before_wait=(watcher,)))
    wait_until(lambda: _in_wait(journal), what="the method to reach its wait")
    stop = subprocess.run([sys.executable, "-m", "mlchaos", "stop", "--reason", "drill over", "--wait", "60"],
                          env=subprocess_env, capture_output=True, text=True, timeout=90)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == exit_codes.ABORTED, out + err
    data = _assert_rolled_back_and_finished(tmp_path, journal, "aborted")
    assert "drill over" in data["mlchaos"]["aborted"]["message"]
    watch = next(r for r in data["run"] if r["activity"]["name"] == "watch")
    assert watch["status"] == "interrupted" and watch["end"], watch
    assert "drill over" in watch["exception"][0]


@pytest.mark.parametrize(("activity", "signum", "code"), [
    (py("leave-now", "exit_ungracefully"), signal.SIGUSR2, exit_codes.EXIT_UNGRACEFULLY),
    (_background("leave-gracefully", "exit_gracefully"), signal.SIGUSR1, exit_codes.EXIT_GRACEFULLY),
], ids=["exit_ungracefully", "exit_gracefully-in-the-background"])
def test_chaos_toolkits_exit_interface_from_an_activity_still_rolls_back(tmp_path, subprocess_env, activity,
                                                                          signum, code):
    """An extension calls chaoslib.exit's documented functions (Chaos Toolkit would skip the rollbacks on
    exit_ungracefully): the run stops, the fault is rolled back, the journal is finished."""
    proc, journal = start_run(tmp_path, subprocess_env, _experiment(tmp_path, before_wait=(activity,)))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, out + err
    data = _assert_rolled_back_and_finished(tmp_path, journal, "interrupted")
    assert data["mlchaos"]["interrupted_by"] == signal.Signals(signum).name


def _ctrl_c_twice_into_the_rollbacks(proc: subprocess.Popen, journal: Path) -> None:
    """Ctrl-C mid-method, then again once the rollbacks have started."""
    wait_until(lambda: _in_wait(journal), what="the method to reach its wait")
    proc.send_signal(signal.SIGINT)
    wait_until(lambda: journal_so_far(journal).get("rollbacks"), what="rollbacks to start")
    proc.send_signal(signal.SIGINT)


def test_a_second_ctrl_c_during_rollbacks_warns_and_rollbacks_finish(tmp_path, subprocess_env):
    proc, journal = start_run(tmp_path, subprocess_env, _experiment(tmp_path, rollback_seconds=1.5))
    _ctrl_c_twice_into_the_rollbacks(proc, journal)
    out, err = proc.communicate(timeout=30)
    assert "rollbacks in progress, still to run: slow-cleanup, remove-fault, log-rollback" in err
    assert proc.returncode == exit_codes.INTERRUPTED
    assert not (tmp_path / "fault").exists()


def test_a_third_ctrl_c_abandons_rollbacks_and_says_what_is_left(tmp_path, subprocess_env):
    stderr = tmp_path / "stderr.txt"
    proc, journal = start_run(tmp_path, subprocess_env, _experiment(tmp_path, rollback_seconds=30), stderr=stderr)
    _ctrl_c_twice_into_the_rollbacks(proc, journal)
    # The third only once the second was handled: two pending SIGINTs would merge into one.
    wait_until(lambda: "still to run" in stderr.read_text(), what="the second Ctrl-C's warning")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    err = stderr.read_text()
    assert proc.returncode == exit_codes.ROLLBACK_FAILED, out + err
    assert "abandoning rollbacks; left undone: slow-cleanup, remove-fault, log-rollback" in err
    assert "rollbacks left undone: slow-cleanup, remove-fault, log-rollback" in out
    assert (tmp_path / "fault").exists()  # honestly reported as still in place
    assert journal_so_far(journal)["mlchaos"]["rollbacks_left_undone"] == ["slow-cleanup", "remove-fault",
                                                                     "log-rollback"]


def test_sigusr1_never_abandons_the_rollbacks(tmp_path, subprocess_env):
    """exit_gracefully() is graceful: SIGUSR1 during the rollbacks (three times) only says they go on."""
    stderr = tmp_path / "stderr.txt"
    proc, journal = start_run(tmp_path, subprocess_env, _experiment(tmp_path, rollback_seconds=3), stderr=stderr)
    wait_until(lambda: _in_wait(journal), what="the method to reach its wait")
    proc.send_signal(signal.SIGINT)
    wait_until(lambda: journal_so_far(journal).get("rollbacks"), what="rollbacks to start")
    for count in (1, 2, 3):  # one at a time: two pending signals would merge into one
        proc.send_signal(signal.SIGUSR1)
        wait_until(lambda n=count: stderr.read_text().count("they go on") == n, what=f"SIGUSR1 number {count}")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == exit_codes.INTERRUPTED, out + stderr.read_text()
    assert "abandoning" not in stderr.read_text()
    assert not (tmp_path / "fault").exists()
    assert journal_so_far(journal)["mlchaos"]["rollbacks_left_undone"] == []


def test_sigkill_leaves_a_journal_that_names_the_injected_fault(tmp_path, subprocess_env):
    proc, journal = start_run(tmp_path, subprocess_env, _experiment(tmp_path, hold=60))
    marker = tmp_path / "fault"
    wait_until(marker.exists, what="the fault to be injected")
    proc.kill()
    proc.communicate(timeout=10)
    data = journal_so_far(journal)
    (change,) = data["mlchaos"]["changes"]
    assert change["action"] == "inject-marker"
    assert change["targets"][0]["name"] == str(marker)
    assert change["undo"]["arguments"] == {"path": str(marker)}
    assert data["run"][0]["status"] == "running"
    assert data["status"] == "running"


def _background_action(name: str, func: str, **arguments) -> dict:
    return {**py(name, func, **arguments), "background": True, "timeout": 120}


@pytest.mark.parametrize("background", [True, False], ids=["background-action", "method-action-cut-short"])
def test_a_fault_applied_after_the_safety_net_is_undone_again(tmp_path, subprocess_env, background):
    """An action announced its fault, then applies it only after the run's undo has run (its undo lets it go
    on): the runner waits for it and undoes its change once more, so the fault never outlives the run. In the
    background, or in the method when a signal stops the run's wait for it."""
    marker, flag = tmp_path / "late-fault", tmp_path / "undone-once"
    fault = py("slow-fault", "announce_then_apply_late", path=str(marker), wait_for=str(flag))
    method = ([{**fault, "background": True, "timeout": 120}, {**py("wait", "sleep", seconds=60), "timeout": 120}]
              if background else [{**fault, "timeout": 120}])
    proc, journal = start_run(tmp_path, subprocess_env, {"title": "a slow fault", "description": "d",
                                                         "method": method})
    wait_until(lambda: (_in_wait(journal) or not background)
               and bool(journal_so_far(journal).get("mlchaos", {}).get("changes")),
               what="the fault's announcement (and the method's wait)")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == exit_codes.TERMINATED, out + err
    assert flag.exists(), "the safety net's undo ran (and let the fault go on)"
    assert not marker.exists(), "the fault applied after the safety net outlived the run"
    undos = [r for r in journal_so_far(journal)["rollbacks"]
             if r["activity"]["provider"]["func"] == "remove_marker_and_touch"]
    assert [r["status"] for r in undos] == ["succeeded", "succeeded"]
    where = "background" if background else "cut-short"
    assert undos[1]["mlchaos"]["automatic"] is True and f"{where} action 'slow-fault'" in undos[1]["mlchaos"]["reason"]
    assert _running(journal_so_far(journal)) == []


def test_a_background_fault_announced_after_the_run_stopped_is_refused(tmp_path, subprocess_env):
    """A background action that announces its fault only after the run stopped waiting for it is refused
    before it changes anything (drivers announce first): no fault appears during or after the rollbacks."""
    marker, go, attempted = tmp_path / "fault", tmp_path / "go", tmp_path / "attempted"
    data = {"title": "a late background fault", "description": "d",
            "method": [_background_action("late-fault", "apply_after", path=str(marker), wait_for=str(go),
                                          attempted=str(attempted)),
                       {**py("wait", "sleep", seconds=60), "timeout": 120}],
            "rollbacks": [py("let-it-try", "touch_then_wait", touch=str(go), wait_for=str(attempted))]}
    proc, journal = start_run(tmp_path, subprocess_env, data)
    wait_until(lambda: _in_wait(journal), what="the method to reach its wait")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == exit_codes.TERMINATED, out + err
    assert attempted.read_text().startswith("refused: the run stopped while this background activity ran")
    assert not marker.exists()
    final = journal_so_far(journal)
    assert final["mlchaos"]["changes"] == [] and _running(final) == []
    late = next(r for r in final["run"] if r["activity"]["name"] == "late-fault")
    assert late["status"] == "interrupted" and "abandoned" in late["exception"][0]


def _in_action(journal: Path, name: str) -> bool:
    runs = journal_so_far(journal).get("run", [])
    return any(r["activity"]["name"] == name and r["status"] == "running" for r in runs)


def test_a_method_action_cut_short_cannot_apply_its_fault_after_the_rollbacks(tmp_path, subprocess_env):
    """A signal stops the wait for a method action, whose worker cannot be stopped: it must not announce (so
    apply) its fault once the rollbacks have passed. A clean-clone CI run saw it happen: chaostoolkit-addons'
    exit_gracefully came while the first action was starting, the rollback ran before the action wrote its
    marker, and the marker outlived the run. Here the action announces only when its rollback lets it."""
    marker, go, attempted = tmp_path / "fault", tmp_path / "go", tmp_path / "attempted"
    data = {"title": "a fault cut short", "description": "d",
            "method": [{**py("late-fault", "apply_after", path=str(marker), wait_for=str(go),
                             attempted=str(attempted)), "timeout": 120}],
            "rollbacks": [py("let-it-try", "touch_then_wait", touch=str(go), wait_for=str(attempted))]}
    proc, journal = start_run(tmp_path, subprocess_env, data)
    wait_until(lambda: _in_action(journal, "late-fault"), what="the method's action to start")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == exit_codes.TERMINATED, out + err
    assert attempted.read_text().startswith("refused: the run stopped waiting for this action (a signal or its "
                                            "timeout cut it short)")
    assert not marker.exists()
    final = journal_so_far(journal)
    assert final["mlchaos"]["changes"] == [] and _running(final) == []
    assert [(r["activity"]["name"], r["status"]) for r in final["run"]] == [("late-fault", "interrupted")]


def test_a_method_action_past_its_timeout_cannot_apply_its_fault_later(tmp_path, subprocess_env):
    """The run stops waiting for an action at its timeout and goes on; the action, still running, is refused
    when it announces its fault later (the next action lets it try)."""
    marker, go, attempted = tmp_path / "fault", tmp_path / "go", tmp_path / "attempted"
    data = {"title": "a fault past its timeout", "description": "d",
            "method": [{**py("late-fault", "apply_after", path=str(marker), wait_for=str(go),
                             attempted=str(attempted)), "timeout": 0.5},
                       py("let-it-try", "touch_then_wait", touch=str(go), wait_for=str(attempted))]}
    proc, journal = start_run(tmp_path, subprocess_env, data)
    out, err = proc.communicate(timeout=60)
    assert attempted.read_text().startswith("refused: the run stopped waiting for this action"), out + err
    assert not marker.exists()
    final = journal_so_far(journal)
    assert final["mlchaos"]["changes"] == []
    assert [(r["activity"]["name"], r["status"]) for r in final["run"]] == [("late-fault", "failed"),
                                                                           ("let-it-try", "succeeded")]
