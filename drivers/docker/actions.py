"""Docker container faults and the rollbacks that undo exactly what they did.

Every fault validates its arguments, selects its targets (:mod:`drivers.docker.selection`),
announces a :class:`~mlchaos.driver_kit.ChangeRecord` naming each container (id, image, pid,
state, published ports, ``instance``) *before* it acts, acts on all targets at once (a
thread pool) and returns ``record.to_dict()``. The undo names the rollback and the exact
container ids. Rollbacks are idempotent (a container already in the undone state is listed
under ``already``), continue past individual failures and raise one DriverError listing
every failure at the end.

Selection arguments shared by every fault: ``labels`` (``{"mlchaos.target": "model"}`` or
``["k=v"]``), ``name_pattern`` (regex), ``project`` (compose project), ``count`` /
``percentage`` (+ ``at_least_one``) / ``all``, ``seed``.

This module is the driver's face: each fault family lives in a module of its own
(:mod:`~drivers.docker.lifecycle`, :mod:`~drivers.docker.pausing`, :mod:`~drivers.docker.hold`,
:mod:`~drivers.docker.ports`, :mod:`~drivers.docker.netem`, :mod:`~drivers.docker.certificates`),
and every function is reached here, as experiments, change records (undo) and watchdog
command lines name it: ``drivers.docker.actions.start_containers``.
"""

from __future__ import annotations

from drivers.docker.certificates import install_certificate, restore_container_certificate
from drivers.docker.client import preflight as preflight  # the validation hook (not an activity)
from drivers.docker.hold import hold_down, release_hold
from drivers.docker.lifecycle import kill_containers, restart_containers, start_containers, stop_containers
from drivers.docker.netem import netem_latency, remove_netem
from drivers.docker.pausing import pause_containers, unpause_containers
from drivers.docker.ports import block_port, unblock_port
from drivers.docker.targets import GONE

__all__ = [
    "GONE", "block_port", "hold_down", "install_certificate", "kill_containers", "netem_latency", "pause_containers",
    "release_hold", "remove_netem", "restart_containers", "restore_container_certificate", "start_containers",
    "stop_containers", "unblock_port", "unpause_containers",
]
