"""drivers.netem against a real process in its own network namespace (``unshare --net``).

This machine's kernel has no netem: there the test proves the action fails with a clear
message before changing anything. On a kernel with netem, the same test proves the qdisc
is added and the rollback removes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from drivers.netem import actions
from drivers.netem.commands import netem_support, run, show_command
from mlchaos.errors import DriverError
from mlchaos.safety import changes
from tests.support.components import require_component
from tests.support.polling import wait_until


@pytest.fixture
def isolated_process() -> Iterator[int]:
    """A sleeping process in a network namespace of its own (only a loopback device)."""
    ready = all(shutil.which(tool) for tool in ("unshare", "nsenter", "tc")) and os.geteuid() == 0
    require_component("root with unshare, nsenter and tc", ready, "run as root; apt-get install util-linux iproute2")
    process = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    wait_until(lambda: os.readlink(f"/proc/{process.pid}/ns/net") != os.readlink("/proc/self/ns/net"),
               timeout=5, what="the new network namespace")
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def announced() -> Iterator[list[changes.ChangeRecord]]:
    seen: list[changes.ChangeRecord] = []
    token = changes.set_sink(seen.append)
    yield seen
    changes.reset_sink(token)


def _qdisc(pid: int) -> str:
    return run(show_command(pid, "lo")).stdout


def test_latency_in_a_namespace_or_a_clear_refusal(isolated_process, announced):
    before = _qdisc(isolated_process)
    available, reason = netem_support()
    if not available:
        with pytest.raises(DriverError) as caught:
            actions.add_latency(isolated_process, delay_ms=300, device="lo", ttl=None)
        assert str(caught.value) == reason
        assert "netem" in reason and "drivers.proxy" in reason
        assert _qdisc(isolated_process) == before, "nothing was changed"
        assert announced == [], "nothing was announced"
        return
    record = actions.add_latency(isolated_process, delay_ms=300, device="lo", ttl=None)
    assert "netem" in _qdisc(isolated_process) and "delay 300ms" in _qdisc(isolated_process)
    assert announced and record["undo"]["arguments"] == {"pid": isolated_process, "device": "lo"}
    assert actions.remove_latency(isolated_process, "lo")["removed"] is True
    assert "netem" not in _qdisc(isolated_process)


def test_the_host_namespace_is_refused_before_anything(announced):
    with pytest.raises(DriverError, match="shares this host's network namespace"):
        actions.add_latency(os.getpid(), delay_ms=100, device="lo")
    assert announced == []


def test_a_missing_process_is_refused():
    with pytest.raises(DriverError, match="no process with pid"):
        actions.add_latency(2**22 + 12345, delay_ms=100)


def test_rollback_of_a_gone_namespace_is_a_no_op():
    result = actions.remove_latency(2**22 + 12345, "eth0")
    assert result["removed"] is False and "gone" in result["reason"]


def test_dry_run_checks_everything_and_changes_nothing(isolated_process, announced, monkeypatch):
    before = _qdisc(isolated_process)
    available, reason = netem_support()
    if not available:  # refused exactly like the real fault: a dry run never promises what cannot work
        with pytest.raises(DriverError) as caught:
            actions.add_latency(isolated_process, delay_ms=300, device="lo", dry_run=True)
        assert str(caught.value) == reason and announced == []
        # the rest of the dry run, as on a kernel with netem (this one cannot be given netem on demand)
        monkeypatch.setattr(actions, "netem_support", lambda: (True, ""))
    with pytest.raises(DriverError, match="device 'nope0'"):
        actions.add_latency(isolated_process, delay_ms=300, device="nope0", dry_run=True)  # resolved for real
    record = actions.add_latency(isolated_process, delay_ms=300, jitter_ms=10, device="lo", ttl=30, dry_run=True)
    assert record["dry_run"] is True and [r.dry_run for r in announced] == [True]
    assert record["targets"] == [{"kind": "netns", "name": f"pid {isolated_process} dev lo",
                                  "details": {"pid": isolated_process, "device": "lo"}}]
    assert record["undo"] == {"func": "drivers.netem.actions.remove_latency",
                              "arguments": {"pid": isolated_process, "device": "lo"}}  # no watchdog started
    assert record["environment"] == changes.local_environment() and record["population"] == []
    assert _qdisc(isolated_process) == before


def test_remove_latency_is_idempotent_when_there_is_no_netem(isolated_process):
    before = _qdisc(isolated_process)
    for _ in range(2):  # `mlchaos recover` may call it again, after the rollback already ran
        result = actions.remove_latency(isolated_process, "lo")
        assert result == {"pid": isolated_process, "device": "lo", "removed": False, "reason": "no netem qdisc",
                          "already": [f"pid {isolated_process} dev lo"]}
    assert _qdisc(isolated_process) == before
