"""The tc command lines drivers.netem builds, and the values it refuses."""

from __future__ import annotations

import pytest

from drivers.netem.commands import NetemSpec, add_command, delete_command, show_command
from mlchaos.errors import DriverError


def test_add_command_runs_tc_netem_inside_the_target_namespace():
    spec = NetemSpec(delay_ms=300, jitter_ms=30, correlation_percent=25, loss_percent=1.5)
    assert add_command(4242, "eth0", spec) == [
        "nsenter", "-t", "4242", "-n", "tc", "qdisc", "add", "dev", "eth0", "root", "netem",
        "delay", "300ms", "30ms", "25%", "loss", "1.5%",
    ]


def test_plain_delay_has_no_optional_parts():
    assert NetemSpec(delay_ms=200).arguments() == ["delay", "200ms"]


def test_rollback_and_show_commands():
    assert delete_command(7, "eth1") == ["nsenter", "-t", "7", "-n", "tc", "qdisc", "del", "dev", "eth1", "root"]
    assert show_command(7, "eth1") == ["nsenter", "-t", "7", "-n", "tc", "qdisc", "show", "dev", "eth1"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay_ms": 0}, "delay_ms must be positive"),
        ({"delay_ms": -5}, "delay_ms must be positive"),
        ({"delay_ms": 100, "jitter_ms": 150}, "jitter_ms must be between 0 and delay_ms"),
        ({"delay_ms": 100, "loss_percent": 101}, "loss_percent must be between 0 and 100"),
        ({"delay_ms": 100, "correlation_percent": -1}, "correlation_percent must be between 0 and 100"),
    ],
)
def test_bad_values_are_refused(kwargs, message):
    with pytest.raises(DriverError, match=message):
        NetemSpec(**kwargs)
